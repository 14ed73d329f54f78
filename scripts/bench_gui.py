#!/usr/bin/env python
"""Interactive-rate benchmark of the main window on a 256³ pair (issue 5).

Measures, on the real window under X (Xvfb is started when there is no display):
  * redraw of the three views after a slice step (wheel/key) — median and p95;
  * redraw after a manual-alignment mouse move (Shift-drag preview) — median and p95;
  * startup to first frame (process start → window shown with both images drawn);
  * peak RSS, against 3× the two images' float32 size.
Goals: ≤ 16 ms median redraw, ≤ 2 s startup, peak RSS ≤ 3× the images.

    .venv/bin/python scripts/bench_gui.py [--size 256] [--steps 60] [--no-panels] [--no-3d]
"""

from __future__ import annotations

import time

T_START = time.perf_counter()

import argparse  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def make_pair(size: int, folder: Path) -> tuple[Path, Path]:
    """A size³ float32 pair from the MNI T1 (moving = rotated and shifted copy), written as .nii.
    Made in a child process so the benchmark's own memory starts clean."""
    code = f"""
import numpy as np, SimpleITK as sitk
from pathlib import Path
src = Path({str(ROOT.parent / 'shared' / 'data' / 'mni152_2009a_t1_1mm.nii.gz')!r})
size = {size}
if src.exists():
    t1 = sitk.Cast(sitk.ReadImage(str(src)), sitk.sitkFloat32)
else:  # a smooth synthetic blob if the shared data is missing
    g = np.indices((size,) * 3, dtype=np.float32) - size / 2
    t1 = sitk.GetImageFromArray((200 * np.exp(-(g ** 2).sum(0) / (2 * (size / 5) ** 2))).astype(np.float32))
spacing = [s * n / size for s, n in zip(t1.GetSpacing(), t1.GetSize())]
ref = sitk.Image([size] * 3, sitk.sitkFloat32)
ref.SetSpacing(spacing); ref.SetDirection(t1.GetDirection()); ref.SetOrigin(t1.GetOrigin())
fixed = sitk.Resample(t1, ref, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
centre = fixed.TransformContinuousIndexToPhysicalPoint([(size - 1) / 2] * 3)
rigid = sitk.Euler3DTransform(centre, 0.12, -0.05, 0.15, (6.0, -4.0, 3.0))
moving = sitk.Resample(fixed, fixed, rigid, sitk.sitkLinear, 0.0, sitk.sitkFloat32)
sitk.WriteImage(fixed, {str(folder / 'fixed.nii')!r})
sitk.WriteImage(moving, {str(folder / 'moving.nii')!r})
"""
    subprocess.run([sys.executable, "-c", code], check=True)
    return folder / "fixed.nii", folder / "moving.nii"


def stats(times_s: list[float]) -> tuple[float, float]:
    import numpy as np

    arr = np.asarray(times_s) * 1000.0
    return float(np.median(arr)), float(np.percentile(arr, 95))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=60, help="slice steps and mouse moves to time")
    parser.add_argument("--no-panels", action="store_true", help="window without the landmark/live/QA panels")
    parser.add_argument("--no-3d", action="store_true", help="window without the VTK view")
    parser.add_argument("--data", help="folder with fixed.nii/moving.nii (made if missing)")
    args = parser.parse_args()
    if not os.environ.get("DISPLAY") and os.environ.get("QT_QPA_PLATFORM", "xcb") == "xcb" and shutil.which("xvfb-run"):
        tmp = Path(tempfile.mkdtemp(prefix="regviewer-bench-"))
        make_pair(args.size, tmp)
        cmd = ["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24", sys.executable, __file__,
               "--size", str(args.size), "--steps", str(args.steps), "--data", str(tmp)]
        cmd += ["--no-panels"] * args.no_panels + ["--no-3d"] * args.no_3d
        code = subprocess.call(cmd, env={**os.environ, "QT_QPA_PLATFORM": "xcb"})
        shutil.rmtree(tmp, ignore_errors=True)
        return code
    data = Path(args.data) if args.data else Path(tempfile.mkdtemp(prefix="regviewer-bench-"))
    if not (data / "fixed.nii").exists():
        make_pair(args.size, data)
    fixed_path, moving_path = data / "fixed.nii", data / "moving.nii"
    if args.no_3d:
        os.environ["REGVIEWER_NO_3D"] = "1"
    os.environ.setdefault("REGVIEWER_RECOVERY_DIR", str(data / "recovery"))
    # Startup is measured from here: the data preparation above is not the app's.
    t0 = time.perf_counter()

    from PyQt6 import QtWidgets

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    from regviewer.gui.main_window import MainWindow

    baseline_rss = _rss_mb()
    window = MainWindow(sessions=False, panels=not args.no_panels)
    window.resize(1600, 1000)
    window.show()
    window.open_images(str(fixed_path), str(moving_path))
    app.processEvents()
    views = window.visible_slice_views()
    for v in views:
        v.graphics.viewport().repaint()
    startup = time.perf_counter() - t0
    import_and_start = time.perf_counter() - T_START

    def frame() -> None:
        # Deliver everything the event would cause: the coalesced preview redraw, then
        # Qt's pending paint requests (drawn here, as the next screen frame would be).
        window.flush_preview()
        app.sendPostedEvents()
        app.processEvents()

    axial = window.view("overlay", "axial")
    step_times, step_cpu = [], []
    for i in range(args.steps):
        direction = 1 if (i // 20) % 2 == 0 else -1
        t, c = time.perf_counter(), time.process_time()
        axial.step_slice(direction)
        frame()
        step_times.append(time.perf_counter() - t)
        step_cpu.append(time.process_time() - c)

    dock = window.manual_dock
    start = axial.to_physical(100, 100)
    axis, pivot = axial.plane.n, window._cursor
    move_times, move_cpu = [], []
    for i in range(1, args.steps + 1):
        now = axial.to_physical(100 + 0.5 * i, 100 + 0.25 * i)
        t, c = time.perf_counter(), time.process_time()
        dock.drag("translate", start, now, False, axis, pivot)
        frame()
        move_times.append(time.perf_counter() - t)
        move_cpu.append(time.process_time() - c)
    dock.drag("translate", start, now, True, axis, pivot)
    app.processEvents()

    f_mb = 2 * args.size ** 3 * 4 / 2**20
    peak = _peak_rss_mb()
    sm, sp = stats(step_times)
    mm, mp = stats(move_times)
    scm, _ = stats(step_cpu)
    mcm, _ = stats(move_cpu)
    panels = "off" if args.no_panels else os.environ.get("REGVIEWER_PANELS", "all")
    config = f"{args.size}³ pair, panels {panels}, 3D view {'off' if args.no_3d else 'on'}"
    load = os.getloadavg()[0]
    print(f"regviewer GUI benchmark ({config}; {args.steps} events each; load average {load:.1f} on {os.cpu_count()} CPUs)")
    print(f"| measure | value | goal |")
    print(f"|---|---|---|")
    print(f"| redraw after slice step, median / p95 (CPU median) | {sm:.1f} / {sp:.1f} ms ({scm:.1f} ms) | ≤ 16 ms median |")
    print(f"| redraw after manual-alignment move, median / p95 (CPU median) | {mm:.1f} / {mp:.1f} ms ({mcm:.1f} ms) | ≤ 16 ms median |")
    print(f"| startup to first frame (Qt + window + read both images + draw) | {startup:.2f} s | ≤ 2 s |")
    print(f"| same, including Python imports of numpy/SimpleITK/Qt | {import_and_start:.2f} s | |")
    print(f"| peak RSS (Qt/VTK baseline before images: {baseline_rss:.0f} MB) | {peak:.0f} MB | ≤ 3 × {f_mb:.0f} MB = {3 * f_mb:.0f} MB |")
    window.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
