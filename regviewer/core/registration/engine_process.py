"""The engine process's side of `remote.py`: receive staged images and the job, run the
engine, stream progress and the result back; and the wire format of the images (raw pixel
buffers after a small description) that both sides use.

The process lowers its own CPU priority first thing (see `remote.ENGINE_NICE`), then
imports the engine and says "ready"; a spare waits here for images and its job.
"""

from __future__ import annotations

import os
import pickle
from typing import Any

import SimpleITK as sitk

from regviewer.core.errors import RegistrationFailed
from regviewer.core.registration.run_state import Progress

FIELD_INTERVAL_S = 2.0
IMAGE_KEYS = ("fixed", "moving", "fixed_mask", "moving_mask")
_STAGED = ("staged",)  # in a job: "the image the spare already holds under this key"


class _EventToken:
    """A CancelToken backed by a process-shared event."""

    def __init__(self, event: Any) -> None:
        self._event = event

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()


def _pack_image(image: Any, buffers: list) -> Any:
    """A Volume or image as a small description; its pixels go into `buffers`, sent raw
    after the job (`send_bytes` from a view: no pickled copy of a 1 mm brain in the window)."""
    from regviewer.core.imaging.image import Volume

    path, warnings = None, []
    if isinstance(image, Volume):
        image, path, warnings = image.sitk, image.path, list(image.warnings)
    elif not isinstance(image, sitk.Image):
        return image  # None or a path
    view = sitk.GetArrayViewFromImage(image)
    buffers.append(view)
    return ("image", len(buffers) - 1, view.dtype.str, view.shape, image.GetNumberOfComponentsPerPixel() > 1,
            image.GetSpacing(), image.GetOrigin(), image.GetDirection(), path, warnings)


def _unpack_image(packed: Any, conn: Any) -> Any:
    if not (isinstance(packed, tuple) and packed and packed[0] == "image"):
        return packed
    import numpy as np

    from regviewer.core.imaging.image import Volume

    _, _, dtype, shape, vector, spacing, origin, direction, path, warnings = packed
    array = np.frombuffer(conn.recv_bytes(), dtype=dtype).reshape(shape)
    image = sitk.GetImageFromArray(array, isVector=vector)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    image.SetDirection(direction)
    return Volume(image, path, warnings)


def _pack_landmarks(landmarks: Any) -> Any:
    """A LandmarkSet (its undo history holds callbacks, not picklable) as its pairs."""
    if landmarks is None or not hasattr(landmarks, "pairs") or not hasattr(landmarks, "dimension"):
        return landmarks
    return ("landmarks", landmarks.dimension, tuple(landmarks.pairs))


def _unpack_landmarks(packed: Any) -> Any:
    if isinstance(packed, tuple) and packed and packed[0] == "landmarks":
        from regviewer.core.landmarks.model import LandmarkSet

        return LandmarkSet(packed[1], packed[2])
    return packed


def _split(tx: sitk.Transform) -> tuple[sitk.Transform | None, sitk.Transform]:
    """A snapshot as (earlier stages, current stage) - see `stages._compose_snapshot`."""
    if tx.GetName() == "CompositeTransform":
        comp = sitk.CompositeTransform(tx)
        n = comp.GetNumberOfTransforms()
        if n >= 2:
            previous = sitk.CompositeTransform(tx.GetDimension())
            for i in range(n - 1):
                previous.AddTransform(comp.GetNthTransform(i))
            return previous, comp.GetNthTransform(n - 1)
    return None, tx


def _lower_priority(nice: int) -> None:
    """Add `nice` to this process's nice value. On Linux a nice value belongs to a thread:
    every thread already running (numpy's BLAS pool, started at import) is lowered, and
    threads made later (ITK's pool) inherit it from the main thread."""
    if nice <= 0:
        return
    try:
        tids = [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:  # not Linux
        tids = [0]
    for tid in tids:
        try:
            os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice))
        except (AttributeError, OSError):  # not on this platform, not allowed, or the thread ended
            pass


def _child_main(conn: Any, stop: Any, nice: int = 0) -> None:
    """The engine process: import the engine, then receive staged images and the job (a
    spare process waits here), run it, stream progress, send the result."""
    _lower_priority(nice)
    from regviewer.core.registration.engine import register
    from regviewer.core.registration.run_state import RunState

    staged: dict[str, Any] = {}
    try:
        conn.send(("ready",))
        while True:
            job = conn.recv()
            if isinstance(job, dict):
                break
            for key, packed in job[1].items():  # ("images", {key: packed}): the buffers follow
                staged[key] = _unpack_image(packed, conn)
    except (EOFError, OSError):
        return  # a spare never used: its window closed
    snapshot_hz = job.pop("snapshot_hz")
    RunState.snapshot_interval_s = 1.0 / snapshot_hz if snapshot_hz > 0 else 0.0
    for key in IMAGE_KEYS:  # the raw pixel buffers follow the job, in this order
        job[key] = staged.get(key) if job.get(key) == _STAGED else _unpack_image(job.get(key), conn)
    staged.clear()
    if "landmarks" in job:
        job["landmarks"] = _unpack_landmarks(job["landmarks"])
    sent = {"snapshot": None, "previous_key": None, "field_at": -FIELD_INTERVAL_S}

    def _due(p: Progress) -> bool:
        """A dense field (demons, displacement stages) is the size of the image: send one
        every FIELD_INTERVAL_S at most; anything else as often as the engine makes them."""
        if "Displacement" not in _split(p.transform)[1].GetName():
            return True
        if p.elapsed - sent["field_at"] < FIELD_INTERVAL_S:
            return False
        sent["field_at"] = p.elapsed
        return True

    def progress(p: Progress) -> None:
        payload = None
        if p.transform is not sent["snapshot"] and _due(p):  # a new snapshot (the engine throttles them)
            sent["snapshot"] = p.transform
            previous, current = _split(p.transform)
            key = (p.stage, previous.GetNumberOfTransforms() if previous is not None else 0)
            if key != sent["previous_key"]:
                sent["previous_key"] = key
                conn.send(("previous", previous))
            payload = current
        conn.send(("iteration", p.stage, p.stage_name, p.level, p.n_levels, p.iteration, p.metric, p.elapsed,
                   payload))

    try:
        preset = job.pop("preset", None)
        result = register(job.pop("fixed"), job.pop("moving"), preset=preset, progress=progress,
                          cancel=_EventToken(stop), **job)
        conn.send(("result", result.transform, result.history, result.stop_reason, result.elapsed, result.params,
                   result.cancelled, result.details, list(result.warnings)))
    except BaseException as exc:  # noqa: BLE001 -- every failure goes back as words
        try:
            pickle.loads(pickle.dumps(exc))
            conn.send(("error", exc))
        except Exception:  # noqa: BLE001 -- an exception that does not survive pickling
            conn.send(("error", RegistrationFailed(f"{type(exc).__name__}: {exc}")))
    finally:
        conn.close()
