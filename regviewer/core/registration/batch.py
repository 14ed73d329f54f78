"""Batch registration of many pairs, on a Dask cluster or in a plain loop.

A pairs CSV has a header with `fixed` and `moving` columns and optionally `name`,
`landmarks`, `fixed_mask`, `moving_mask`; relative paths are relative to the CSV.
Each pair's outputs (see `api.register_to_folder`) are written into a hidden staging
folder that is renamed to ``OUT/<name>/`` only when complete, so ``OUT/<name>/done.json``
marks a finished pair and a rerun skips it (resumable). A pair that fails gets
``OUT/<name>/failed.json`` with its error. A rerun skips a finished or failed pair only
when the content of its input files (a hash) and the settings are those recorded; a
failed one also runs again with `retry_failed`. Pair names must be unique. `summary.csv` lists every pair.

Dask (`pip install regviewer[batch]`) is imported only when used. By default a local
cluster of worker *processes* is started; `scheduler="tcp://host:8786"` uses an
existing cluster instead (its workers must see the same paths, e.g. a shared disk).
Each worker sets ITK's thread count so workers x threads does not exceed the cores.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import shutil
import time
import traceback
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable, Iterable

from regviewer.core.atomic import atomic_write_text
from regviewer.core.errors import ParameterError, RegistrationCancelled, RegviewerError
from regviewer.core.registration.presets import DEFAULT_PRESET

DONE_MARKER = "done.json"
FAILED_MARKER = "failed.json"
SUMMARY_NAME = "summary.csv"
_STAGING_PREFIX = ".staging-"
_OPTIONAL_COLUMNS = ("landmarks", "fixed_mask", "moving_mask")
DASK_MISSING = ("Batch registration on Dask needs the optional 'dask[distributed]' package: install it with\n"
                "    pip install 'regviewer[batch]'\n"
                "or run the pairs one after another in this process with --no-dask.")


class BatchSetupError(RegviewerError):
    """The batch cannot start (bad pairs file, Dask missing, scheduler unreachable)."""


@dataclass(frozen=True)
class PairSpec:
    """One pair to register; paths are absolute. `name` is the output folder's name."""

    name: str
    fixed: str
    moving: str
    landmarks: str | None = None
    fixed_mask: str | None = None
    moving_mask: str | None = None

    def input_files(self) -> list[str]:
        return [p for p in (self.fixed, self.moving, self.landmarks, self.fixed_mask, self.moving_mask) if p]


@dataclass(frozen=True)
class BatchSettings:
    """The registration settings every pair uses. `params_json` is a Pipeline's JSON text
    (it overrides `preset`); it travels to remote workers as text, not as a path."""

    preset: str | None = DEFAULT_PRESET
    params_json: str | None = None
    seed: int = 0
    evaluate: bool = True

    def fingerprint(self) -> str:
        return hashlib.sha1(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]


@dataclass
class PairResult:
    """One row of the summary. `status` is "ok" or "failed"; `this_run` says whether the
    pair ran now or was finished by an earlier run ("skipped")."""

    pair: str
    status: str
    seconds: float | None = None
    final_metric: float | None = None
    tre_mean_mm: float | None = None
    tre_max_mm: float | None = None
    this_run: str = "ran"
    folder: str = ""
    error: str = ""
    worker: str = ""
    itk_threads: int | None = None
    inputs: str = field(default="", repr=False)
    settings: str = field(default="", repr=False)


SUMMARY_COLUMNS = [f.name for f in fields(PairResult) if f.name not in ("inputs", "settings")]


# --- the pairs file -------------------------------------------------------------------
def _safe_name(text: str) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._")
    return name or "pair"


def _stem(path: str) -> str:
    name = Path(path).name
    for suffix in (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd", ".png", ".tif", ".tiff", ".jpg", ".jpeg"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


def read_pairs(csv_path: str | Path) -> list[PairSpec]:
    """Read the pairs CSV (see module doc). Raises `BatchSetupError` naming the file and line:
    a row with more cells than the header, a quote left open (it would swallow the rows
    below), a missing path, or a pair name used twice (results are kept per name)."""
    p = Path(csv_path)
    if not p.is_file():
        raise BatchSetupError(f"Cannot read the pairs file '{p}': the file does not exist")
    try:
        text = p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise BatchSetupError(f"Cannot read the pairs file '{p}': it is not a UTF-8 text file") from None
    except OSError as exc:
        raise BatchSetupError(f"Cannot read the pairs file '{p}': {exc.strerror or exc}") from None
    reader = csv.reader(io.StringIO(text))
    rows: list[tuple[int, list[str]]] = []
    try:
        line = 1
        for cells in reader:
            rows.append((line, cells))
            line = reader.line_num + 1
    except csv.Error as exc:
        raise BatchSetupError(f"The pairs file '{p}', line {reader.line_num}: it is not valid CSV ({exc})") from None
    for line, cells in rows:
        if any("\n" in c or "\r" in c for c in cells):
            raise BatchSetupError(f"The pairs file '{p}', line {line}: a quote opened on this line is not closed, "
                                  "so the cell runs over the following lines; close the quote")
    rows = [(line, cells) for line, cells in rows if any(c.strip() for c in cells)]
    if not rows:
        raise BatchSetupError(f"The pairs file '{p}' has no pairs (it needs a header 'fixed,moving' and one row per pair)")
    header_line, header = rows[0]
    columns = [h.strip().lower() for h in header]
    missing = [k for k in ("fixed", "moving") if k not in columns]
    if missing:
        raise BatchSetupError(f"The pairs file '{p}' has no column {' or '.join(missing)}; its header must name "
                              "'fixed' and 'moving' (and optionally name, landmarks, fixed_mask, moving_mask)")
    if len(set(c for c in columns if c)) != len([c for c in columns if c]):
        raise BatchSetupError(f"The pairs file '{p}', line {header_line}: the header names a column twice")
    if len(rows) == 1:
        raise BatchSetupError(f"The pairs file '{p}' has no pairs (only a header)")
    base = p.resolve().parent
    specs: list[PairSpec] = []
    seen: dict[str, int] = {}

    def resolve(value: str | None) -> str | None:
        return str((base / value).resolve()) if value else None

    parsed = []
    for line, cells in rows[1:]:
        if len(cells) > len(columns) and any(c.strip() for c in cells[len(columns):]):
            raise BatchSetupError(f"The pairs file '{p}', line {line}: {len(cells)} cells but the header has "
                                  f"{len(columns)} columns (a comma inside a path needs quotes)")
        row = {k: (cells[i].strip() if i < len(cells) else "") for i, k in enumerate(columns) if k}
        if not row.get("fixed") or not row.get("moving"):
            raise BatchSetupError(f"The pairs file '{p}', line {line}: both 'fixed' and 'moving' need a path")
        parsed.append((line, row))
    # A name without a 'name' column comes from the row itself, never from its position: the
    # moving file's stem, or its path when stems collide (subj1/m.nii.gz, subj2/m.nii.gz).
    stems = [_stem(row["moving"]) for _, row in parsed if not (row.get("name") or row.get("pair"))]
    for line, row in parsed:
        explicit = row.get("name") or row.get("pair")
        if explicit:
            name = _safe_name(explicit)
        elif stems.count(_stem(row["moving"])) > 1:
            name = _safe_name(_stem(row["moving"].replace("\\", "/").replace("/", "_")))
        else:
            name = _safe_name(_stem(row["moving"]))
        if name in seen:
            raise BatchSetupError(f"The pairs file '{p}', line {line}: the pair name '{name}' repeats line "
                                  f"{seen[name]}; each pair's results are kept under its name, so names must be "
                                  "unique (add or fix a 'name' column)")
        seen[name] = line
        specs.append(PairSpec(name, resolve(row["fixed"]), resolve(row["moving"]),
                              *(resolve(row.get(c)) for c in _OPTIONAL_COLUMNS)))
    return specs


def _hash_path(h, path: str) -> None:
    target = Path(path)
    files = sorted(q for q in target.rglob("*") if q.is_file()) if target.is_dir() else [target]
    for f in files:
        h.update(str(f.relative_to(target) if target.is_dir() else f.name).encode())
        with f.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)


def inputs_fingerprint(spec: PairSpec) -> str:
    """A hash of every input file's content, by role: a finished pair whose inputs changed
    (even with the same name, size and time) runs again; a missing input hashes as such."""
    h = hashlib.sha256()
    for role in ("fixed", "moving", "landmarks", "fixed_mask", "moving_mask"):
        path = getattr(spec, role)
        h.update(f"|{role}:".encode())
        if not path:
            continue
        try:
            _hash_path(h, path)
        except OSError:
            h.update(b"<missing>")
    return h.hexdigest()[:16]


# --- one pair (runs on a worker) --------------------------------------------------------
def run_pair(spec: PairSpec, out_root: str, settings: BatchSettings, itk_threads: int | dict | None = None,
             cancel=None) -> PairResult:
    """Register one pair into ``out_root/<name>``; never raises for a failed pair (the
    error is recorded in the result and in failed.json). `itk_threads` is a count, or a
    {worker address: count} map when run on a Dask cluster."""
    import SimpleITK as sitk

    from regviewer.core.registration.headless import register_to_folder
    from regviewer.core.registration.params import Pipeline

    worker = _worker_address()
    threads = itk_threads.get(worker) if isinstance(itk_threads, dict) else itk_threads
    if worker and not threads:  # a worker that joined after the batch started
        threads = itk_threads_for(1, _worker_nthreads())
    if threads:
        sitk.ProcessObject_SetGlobalDefaultNumberOfThreads(int(threads))
    root = Path(out_root)
    final = root / spec.name
    stage = root / f"{_STAGING_PREFIX}{spec.name}-{os.getpid()}-{time.monotonic_ns()}"
    start = time.monotonic()
    result = PairResult(pair=spec.name, status="failed", folder=str(final), worker=worker,
                        itk_threads=sitk.ProcessObject_GetGlobalDefaultNumberOfThreads(), inputs=inputs_fingerprint(spec), settings=settings.fingerprint())
    try:
        try:
            params = Pipeline.from_json(settings.params_json) if settings.params_json else None
            outcome = register_to_folder(spec.fixed, spec.moving, stage, preset=settings.preset, params=params,
                                         landmarks=spec.landmarks, fixed_mask=spec.fixed_mask,
                                         moving_mask=spec.moving_mask, cancel=cancel, seed=settings.seed,
                                         evaluate=settings.evaluate)
            result.status = "ok"
            result.final_metric = outcome.final_metric
            result.tre_mean_mm, result.tre_max_mm = outcome.tre_mean_mm, outcome.tre_max_mm
        except RegistrationCancelled:
            raise  # not a result: the pair stays unfinished and runs again next time
        except RegviewerError as exc:
            result.error = str(exc)
        except Exception as exc:  # noqa: BLE001 -- one broken pair must not stop the batch
            result.error = f"{type(exc).__name__}: {exc}"
            stage.mkdir(parents=True, exist_ok=True)
            (stage / "traceback.txt").write_text(traceback.format_exc(), encoding="utf-8")
        result.seconds = round(time.monotonic() - start, 3)
        stage.mkdir(parents=True, exist_ok=True)
        atomic_write_text(stage / (DONE_MARKER if result.status == "ok" else FAILED_MARKER),
                          json.dumps(asdict(result), indent=2))
        if final.exists():
            shutil.rmtree(final)  # an earlier failure's record
        os.replace(stage, final)
    except OSError as exc:
        result.status, result.error = "failed", f"cannot write '{final}': {exc.strerror or exc}"
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return result


def _worker_address() -> str:
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return ""


def _worker_nthreads() -> int:
    from distributed import get_worker

    return int(getattr(get_worker(), "nthreads", None) or get_worker().state.nthreads)


# --- resuming ---------------------------------------------------------------------------
def previous_result(spec: PairSpec, out_root: Path, settings: BatchSettings, retry_failed: bool) -> PairResult | None:
    """The earlier run's result when the pair need not run again, else None."""
    folder = out_root / spec.name
    for marker in (DONE_MARKER, FAILED_MARKER):
        path = folder / marker
        if not path.is_file():
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            old = PairResult(**{k: v for k, v in data.items() if k in {f.name for f in fields(PairResult)}})
        except (OSError, ValueError, TypeError):
            return None
        if old.inputs != inputs_fingerprint(spec) or old.settings != settings.fingerprint():
            return None  # the inputs' content or the settings changed: the old result is not this pair's
        if marker == FAILED_MARKER and retry_failed:
            return None
        old.this_run = "skipped"
        return old
    return None


def clean_staging(out_root: Path) -> None:
    """Remove staging folders left by an interrupted run."""
    if out_root.is_dir():
        for p in out_root.glob(_STAGING_PREFIX + "*"):
            shutil.rmtree(p, ignore_errors=True)


def write_summary(results: Iterable[PairResult], path: str | Path) -> Path:
    """The summary CSV: pair, status, seconds, final metric, TRE, whether it ran now, folder, error."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=SUMMARY_COLUMNS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in results:
        w.writerow({k: ("" if v is None else v) for k, v in asdict(r).items()})
    atomic_write_text(path, buf.getvalue())
    return Path(path)


# --- the batch ----------------------------------------------------------------------------
def itk_threads_for(workers: int, threads_per_worker: int = 1, cores: int | None = None) -> int:
    """ITK threads per task so that workers x tasks x ITK threads stays within the cores."""
    cores = cores or os.cpu_count() or 1
    return max(1, cores // max(1, workers * threads_per_worker))


def run_batch(pairs: list[PairSpec], out_dir: str | Path, settings: BatchSettings = BatchSettings(),
              workers: int | None = None, scheduler: str | None = None, use_dask: bool = True,
              retry_failed: bool = False, on_result: Callable[[PairResult], None] | None = None,
              on_skip: Callable[[list[PairResult]], None] | None = None, cancel=None) -> list[PairResult]:
    """Register every pair; return one result per pair in the input order and write summary.csv.

    `use_dask=False` runs the pairs one after another in this process (no Dask needed).
    Otherwise `scheduler` (``tcp://host:port``) selects an existing Dask cluster, else a
    local cluster of `workers` processes (default: number of cores) is started and stopped.
    On KeyboardInterrupt the cluster's tasks are cancelled, the summary of what finished
    is written and the interrupt propagates; unfinished pairs leave nothing behind.
    """
    out_root = Path(out_dir).resolve()
    names = [p.name for p in pairs]
    if len(set(names)) != len(names):
        raise ParameterError("pair names must be unique")
    out_root.mkdir(parents=True, exist_ok=True)
    clean_staging(out_root)
    results: dict[str, PairResult] = {}
    todo = []
    for spec in pairs:
        old = previous_result(spec, out_root, settings, retry_failed)
        if old is None:
            todo.append(spec)
        else:
            results[spec.name] = old
    if on_skip:
        on_skip(list(results.values()))

    def record(r: PairResult) -> None:
        results[r.pair] = r
        if on_result:
            on_result(r)
        write_summary([results[n] for n in names if n in results], out_root / SUMMARY_NAME)

    write_summary([results[n] for n in names if n in results], out_root / SUMMARY_NAME)
    try:
        if todo and not use_dask:
            threads = itk_threads_for(1)
            for spec in todo:
                if cancel is not None and cancel.cancelled:
                    raise KeyboardInterrupt
                try:
                    r = run_pair(spec, str(out_root), settings, threads, cancel=cancel)
                except RegistrationCancelled:
                    raise KeyboardInterrupt from None
                record(r)
        elif todo:
            from regviewer.core.registration.batch_dask import run_on_dask

            try:
                run_on_dask(todo, out_root, settings, workers, scheduler, record)
            except KeyboardInterrupt:
                if not scheduler:  # the local workers are gone: remove what they left half-done
                    clean_staging(out_root)
                raise
    finally:
        write_summary([results[n] for n in names if n in results], out_root / SUMMARY_NAME)
    return [results[n] for n in names]


__all__ = ["PairSpec", "BatchSettings", "PairResult", "BatchSetupError", "read_pairs", "run_pair", "run_batch",
           "write_summary", "itk_threads_for", "DASK_MISSING", "SUMMARY_NAME", "DONE_MARKER", "FAILED_MARKER"]
