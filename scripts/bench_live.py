#!/usr/bin/env python
"""Live registration in the window: GUI responsiveness and overhead versus headless.

On the 3D demo pair (brain T1 fixed, T2-like moving, fixed brain mask; `--pair 1mm`: the
1 mm MNI T1 and a T2-like image under a known affine, 197x233x189, built from the
shared data), runs the `affine-bspline-mi` preset (seed 0) in two ways, `--repeat` times
interleaved (alternating which goes first; the ratio reported is the median of the pairs'):

1. headless: `regviewer.register(...)` with no progress callback, in a child process
   (so the window process's peak RSS is the window's own), timed after the engine's
   imports (the window's spare engine process has made them before Run);
2. in the real main window with every live view on (checkerboard overlay redrawn per
   snapshot, deformation grid in the slice views and the 3D view, metric plot). The
   engine runs in its own process (core/registration/remote.py), the spare one the window
   starts when images open (the run starts once it is ready, as a user's Run would). Then
   the result is applied and evaluated in the QA panel, as a user would next.

While (2) runs, a 10 ms QTimer probes the GUI event loop: its lateness (time between
ticks minus 10 ms) is the latency a user feels; every 150 ms the axial slice steps and
the time until it is drawn is the slice-step latency. Reports p50/p95/max latency, wall
times and their ratio, the live redraw rate, and peak RSS of the window process and of
the engine process. A benchmark, not a test: it prints a table. Run under Xvfb:

    QT_QPA_PLATFORM=xcb xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python scripts/bench_live.py [--pair 1mm]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def headless(fixed: str, moving: str, mask: str, preset: str) -> tuple[float, float, float, float]:
    """(wall s, final metric, CPU s of the whole process, the engine's own elapsed s),
    measured in a child process."""
    # The engine's imports come before the clock, as the window's engine process has made
    # them before Run; reading the three files stays inside (the window has them in memory).
    code = ("import json, sys, time; sys.path.insert(0, sys.argv[5]); import regviewer; "
            "import regviewer.core.registration.engine; "
            "t0, c0 = time.perf_counter(), time.process_time(); "
            "r = regviewer.register(sys.argv[1], sys.argv[2], preset=sys.argv[4], fixed_mask=sys.argv[3], seed=0); "
            "print(json.dumps([time.perf_counter() - t0, float(r.final_metric), time.process_time() - c0, r.elapsed]))")
    out = subprocess.run([sys.executable, "-c", code, fixed, moving, mask, preset, str(ROOT)], check=True,
                         capture_output=True, text=True).stdout
    return tuple(json.loads(out.strip().splitlines()[-1]))


def pair_1mm(folder: Path, data: Path) -> tuple[str, str, str]:
    """The 1 mm MNI T1 (fixed), a T2-like moving image under a known affine, the brain mask."""
    import SimpleITK as sitk

    from regviewer.core.imaging import synthetic as syn

    pair = syn.brain_pair(data, shrink=1, with_warp=False)
    paths = [str(folder / n) for n in ("t1_1mm.nii", "t2like_1mm.nii", "mask_1mm.nii")]
    for image, path in zip((pair.fixed, pair.moving, pair.mask), paths):
        sitk.WriteImage(image, path)
    return paths[0], paths[1], paths[2]


def live(fixed: str, moving: str, mask: str, preset: str, three_d: bool, profile: str | None = None,
         engine_nice: int | None = None) -> dict:
    from PyQt6 import QtCore, QtWidgets

    from regviewer.core.registration import remote

    if engine_nice is not None and hasattr(remote, "ENGINE_NICE"):  # a variant to compare in the same run
        remote.ENGINE_NICE = engine_nice

    from regviewer.gui.main_window import MainWindow

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    window = MainWindow(sessions=False)
    window.resize(1600, 1000)
    window.show()
    if not window.open_images(fixed, moving):
        raise SystemExit(f"cannot open the demo pair: {window.last_error}")
    dock = window.panels["LiveRegistrationDock"]
    dock.raise_()
    dock.set_mask("fixed", mask)
    dock.params.choose_preset(preset)
    dock.grid_check.setChecked(True)
    for _ in range(20):
        app.processEvents()
    deadline = time.perf_counter() + 10.0  # a user looks at the images before Run: the spare engine is up
    ready = getattr(remote, "spare_ready", None)  # (absent in older versions: compare them with this script)
    while ready is not None and not ready(0.05) and time.perf_counter() < deadline:
        app.processEvents()
    rss_open = _rss_now()
    done = {}
    dock.runFinished.connect(lambda record: done.setdefault("record", record))
    ticks: list[float] = []
    probe = QtCore.QTimer()
    probe.setTimerType(QtCore.Qt.TimerType.PreciseTimer)
    probe.timeout.connect(lambda: ticks.append(time.perf_counter()))
    probe.start(10)
    axial = window.view("overlay", "axial")
    steps: list[float] = []
    step_cpu: list[float] = []  # the GUI thread's own CPU time per step: what a loaded machine does not inflate
    profiler = None
    whole_run = bool(profile) and profile.startswith("run:")  # --profile-run: the whole span, not the steps
    if profile:
        import cProfile

        profiler = cProfile.Profile(time.thread_time)  # CPU of the GUI thread: a loaded machine does not blur it
        profile = profile[4:] if whole_run else profile
    step_profiler = None if whole_run else profiler

    def step() -> None:  # a user scrolling through slices while the engine runs
        if step_profiler is not None:
            step_profiler.enable()
        t, c = time.perf_counter(), time.thread_time()
        axial.step_slice(1 if (len(steps) // 20) % 2 == 0 else -1)
        window.flush_preview()
        app.sendPostedEvents()
        app.processEvents()
        steps.append((time.perf_counter() - t) * 1000.0)
        step_cpu.append((time.thread_time() - c) * 1000.0)
        if step_profiler is not None:
            step_profiler.disable()

    stepper = QtCore.QTimer()
    stepper.timeout.connect(step)
    stepper.start(150)
    loop = QtCore.QEventLoop()  # the application's own event loop, as a user would have it
    dock.runFinished.connect(loop.quit)
    if whole_run:
        profiler.enable()
    threads0 = _thread_cpu()
    children0 = _children_cpu()
    spare = getattr(getattr(remote, "_Spare", None), "process", None)
    spare_cpu0 = _process_cpu(spare.pid) if spare is not None else 0.0  # its imports, before Run
    t0, c0 = time.perf_counter(), time.process_time()
    dock.run()
    dock.worker.failed.connect(lambda error: (print("failed:", error), loop.quit()))
    loop.exec()
    wall = time.perf_counter() - t0
    cpu = time.process_time() - c0
    threads = {k: v - threads0.get(k, 0.0) for k, v in _thread_cpu().items()}
    threads["threads that ended (the run's worker and preview)"] = cpu - sum(threads.values())
    waited = time.perf_counter() + 10.0  # the engine process is reaped aside: wait for its CPU figure
    while _children_cpu() == children0 and time.perf_counter() < waited:
        time.sleep(0.02)
    engine_cpu = _children_cpu() - children0 - spare_cpu0
    if whole_run:
        profiler.disable()
    probe.stop()
    stepper.stop()
    if profiler is not None:
        profiler.dump_stats(profile)
    lateness = np.maximum(np.diff(ticks) - 0.010, 0.0) * 1000.0
    record = done["record"]
    rss_run = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    rss_after_run = _rss_now()
    qa_s = float("nan")
    qa = window.panels.get("QADock") if hasattr(window.panels, "get") else None
    if qa is not None:  # apply the result and evaluate it, as a user would next
        dock.apply()
        qa_loop = QtCore.QEventLoop()
        qa.evaluated.connect(lambda _e: qa_loop.quit())
        QtCore.QTimer.singleShot(600_000, qa_loop.quit)
        t_qa = time.perf_counter()
        if qa.evaluate():
            qa_loop.exec()
            qa_s = time.perf_counter() - t_qa
    rss_after_qa = _rss_now()
    image_mb = sum(v.sitk.GetNumberOfPixels() * 4 for v in (window.fixed_volume(), window.moving_volume())) / 2**20
    window.close()
    return {
        "wall": wall,
        "cpu": cpu,
        "engine_cpu": engine_cpu,
        "threads": {k: v for k, v in sorted(threads.items(), key=lambda kv: -kv[1]) if v > 0.0},
        "engine": record.elapsed_s,
        "final_metric": record.final_metric,
        "snapshots": dock.snapshots_shown,
        "iterations": len(record.metric_curve),
        "lat_p50": float(np.percentile(lateness, 50)),
        "lat_p95": float(np.percentile(lateness, 95)),
        "lat_max": float(lateness.max()),
        "step_p50": float(np.percentile(steps, 50)) if steps else float("nan"),
        "step_p95": float(np.percentile(steps, 95)) if steps else float("nan"),
        "step_max": float(max(steps)) if steps else float("nan"),
        "step_cpu_p50": float(np.percentile(step_cpu, 50)) if step_cpu else float("nan"),
        "step_cpu_p95": float(np.percentile(step_cpu, 95)) if step_cpu else float("nan"),
        "rss_window": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "rss_run": rss_run,
        "rss_now": (rss_open, rss_after_run, rss_after_qa),
        "qa_s": qa_s,
        "rss_engine": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0,
        "image_mb": image_mb,
        "three_d": bool(getattr(window.volume_view(), "created", window.volume_view() is not None)),
    }


def live_in_child(fixed: str, moving: str, mask: str, preset: str, profile: str | None,
                  engine_nice: int | None = None) -> dict:
    """`live(...)` in a fresh process: each run's peak RSS is its own (a second window in
    one process would start from the first one's heap)."""
    code = ("import json, sys; sys.path.insert(0, sys.argv[1]); import bench_live; "
            "s = bench_live.live(*sys.argv[2:6], three_d=True, profile=sys.argv[6] or None, "
            "engine_nice=int(sys.argv[7]) if sys.argv[7] else None); "
            "print('RESULT ' + json.dumps(s))")
    nice = "" if engine_nice is None else str(engine_nice)
    done = subprocess.run([sys.executable, "-X", "faulthandler", "-c", code, str(ROOT / "scripts"), fixed, moving, mask,
                           preset, profile or "", nice], capture_output=True, text=True)
    if done.returncode != 0:  # show where the window process died (faulthandler prints the Python stacks)
        print(done.stderr[-6000:], file=sys.stderr)
        done.check_returncode()
    out = done.stdout
    return json.loads(next(line for line in out.splitlines() if line.startswith("RESULT "))[7:])


def _children_cpu() -> float:
    """CPU seconds of this process's ended (reaped) children: the engine process after a run."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _process_cpu(pid: int) -> float:
    import os

    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _thread_cpu() -> dict[str, float]:
    """CPU seconds of each thread of this process so far, by name (Python threads by their
    `threading` name, others - Qt, ITK, the OpenGL rasteriser - by the system's)."""
    import os
    import threading

    names = {t.native_id: t.name for t in threading.enumerate() if t.native_id is not None}
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        name = names.get(int(tid), comm)
        name = "GUI thread" if int(tid) == os.getpid() else name
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


def _rss_now() -> float:
    """The window process's resident memory now (MB)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="affine-bspline-mi")
    parser.add_argument("--repeat", type=int, default=3,
                        help="headless/live pairs, interleaved; the ratio reported is the median of the pairs'")
    parser.add_argument("--profile-steps", metavar="FILE",
                        help="write a cProfile of the slice steps (of the first live run) to FILE")
    parser.add_argument("--profile-run", metavar="FILE",
                        help="write a cProfile of the GUI thread's CPU over the whole first live run (Run to "
                             "the end, slice steps included) to FILE")
    parser.add_argument("--pair", choices=("demo", "1mm"), default="demo")
    parser.add_argument("--pair-dir", type=Path,
                        help="keep the 1 mm pair in this folder and re-use it (built there when missing)")
    parser.add_argument("--engine-nice", type=str, default="",
                        help="comma-separated nice values for the engine process: each repeat runs one live "
                             "run per value (compared in the same run); default: the module's ENGINE_NICE")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data",
                        help="the shared data folder (the MNI images) for --pair 1mm")
    args = parser.parse_args()
    from regviewer.core.resources import demo_dir

    tmp = tempfile.TemporaryDirectory(prefix="bench_live_")
    if args.pair == "1mm":  # built in a child process: the window's peak RSS is the window's own
        folder = args.pair_dir or Path(tmp.name)
        fixed, moving, mask = (str(folder / n) for n in ("t1_1mm.nii", "t2like_1mm.nii", "mask_1mm.nii"))
        if not all(Path(f).exists() for f in (fixed, moving, mask)):
            folder.mkdir(parents=True, exist_ok=True)
            code = ("import sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]); import bench_live; "
                    "bench_live.pair_1mm(Path(sys.argv[2]), Path(sys.argv[3]))")
            subprocess.run([sys.executable, "-c", code, str(ROOT / "scripts"), str(folder), str(args.data)], check=True)
        what = "the 1 mm MNI brain (197x233x189)"
    else:
        demo = demo_dir()
        fixed, moving = str(demo / "brain_t1_fixed.nii.gz"), str(demo / "brain_t2like_moving.nii.gz")
        mask = str(demo / "brain_mask_fixed.nii.gz")
        what = "the 3D demo brain (98x116x94, 2 mm)"
    nices = [int(n) for n in args.engine_nice.split(",") if n.strip()] or [None]
    rows = []
    for i in range(args.repeat):  # interleaved, alternating which goes first, so drifts in load cancel
        for j, nice in enumerate(nices):
            profile = None
            if i == 0 and j == 0:
                profile = args.profile_steps or (f"run:{args.profile_run}" if args.profile_run else None)
            if i % 2 == 0:
                *h, = headless(fixed, moving, mask, args.preset)
                stats = live_in_child(fixed, moving, mask, args.preset, profile, nice)
            else:
                stats = live_in_child(fixed, moving, mask, args.preset, profile, nice)
                *h, = headless(fixed, moving, mask, args.preset)
            stats["nice"] = nice
            rows.append((*h, stats))
    import os

    print(f"\nLive registration benchmark: {args.preset} on {what}, "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}\n")
    print("| run | engine nice | headless wall (s) | live wall (s) | live / headless | engine's own time headless / live (s) "
          "| event loop p50 / p95 / max (ms) "
          "| slice step p50 / p95 / max (ms) | step CPU p50 / p95 (ms) | CPU headless / live engine + window (s) | redraws (Hz) | peak RSS window run / +QA / engine (MB) "
          "| RSS now: opened / after run / after QA (MB) | iterations | final metric headless / live |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for i, (t_h, m_h, c_h, e_h, s) in enumerate(rows, 1):
        nice = "default" if s["nice"] is None else s["nice"]
        print(f"| {i} | {nice} | {t_h:.2f} | {s['wall']:.2f} | {s['wall'] / t_h:.2f}x | {e_h:.2f} / {s['engine']:.2f} | "
              f"{s['lat_p50']:.1f} / {s['lat_p95']:.1f} / "
              f"{s['lat_max']:.0f} | {s['step_p50']:.1f} / {s['step_p95']:.1f} / {s['step_max']:.0f} | "
              f"{s['step_cpu_p50']:.1f} / {s['step_cpu_p95']:.1f} | {c_h:.2f} / {s['engine_cpu']:.2f} + {s['cpu']:.2f} | "
              f"{s['snapshots']} ({s['snapshots'] / s['wall']:.1f}) | {s['rss_run']:.0f} / {s['rss_window']:.0f} "
              f"(QA {s['qa_s']:.0f} s) / {s['rss_engine']:.0f} | "
              + " / ".join(f"{x:.0f}" for x in s["rss_now"]) + " | "
              f"{s['iterations']} | {m_h:.4f} / {s['final_metric']:.4f} |")
    print(f"\nThe two images as float32: {rows[-1][4]['image_mb']:.0f} MB; memory goal "
          f"{4 * rows[-1][4]['image_mb'] + 300:.0f} MB (window process peak: {max(r[4]['rss_window'] for r in rows):.0f} MB)")
    print("\nThe window's CPU during the run, by thread (s): the engine's cores lose what it takes")
    for i, r in enumerate(rows, 1):
        print(f"  run {i}: " + ", ".join(f"{k} {v:.2f}" for k, v in r[4]["threads"].items()))
    for nice in nices:
        mine = [r for r in rows if r[4]["nice"] == nice]
        ratios = [r[4]["wall"] / r[0] for r in mine]
        engine = [r[4]["engine"] / r[3] for r in mine]
        steps_p95 = [r[4]["step_p95"] for r in mine]
        lat_p95 = [r[4]["lat_p95"] for r in mine]
        cpu_p95 = [r[4]["step_cpu_p95"] for r in mine]
        label = "" if nice is None else f" (engine nice {nice})"
        outside = [(r[4]["wall"] - r[4]["engine"]) - (r[0] - r[3]) for r in mine]
        # CPU seconds do not depend on how busy the machine is: (engine + window) live against
        # the headless process, the slow-down a run would see with every core its own.
        cpu_ratio = [(r[4]["engine_cpu"] + r[4]["cpu"]) / r[2] for r in mine]
        engine_cpu = [r[4]["engine_cpu"] / r[2] for r in mine]
        print(f"\nMedian of {len(mine)} interleaved pairs{label}: live / headless {np.median(ratios):.2f}x "
              f"(the engine's own time {np.median(engine):.2f}x; outside the engine's clock the window adds "
              f"{np.median(outside):.2f} s: handing over the job, drawing the result), "
              f"window CPU {np.median([r[4]['cpu'] / r[4]['wall'] for r in mine]):.2f} cores; CPU seconds live "
              f"(engine + window) / headless {np.median(cpu_ratio):.2f}x (the engine's alone {np.median(engine_cpu):.2f}x), "
              f"event loop p95 {np.median(lat_p95):.1f} ms, slice step p95 {np.median(steps_p95):.1f} ms "
              f"(its GUI-thread CPU p95 {np.median(cpu_p95):.1f} ms: the wall time above minus waiting for a loaded machine)")
    print("Goals: event loop p95 <= 50 ms; slice step p95 <= 33 ms; live / headless <= 1.10x; window peak RSS <= "
          "4x the two float32 images + 300 MB. 3D view present:", rows[-1][4]["three_d"])
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
