"""How landmark work scales with the number of pairs: building a set, reading a CSV, and the
affine / B-spline / TPS fits with leave-one-out errors and flags. Prints a markdown table of
seconds and the process's peak resident memory (MB, the whole fresh process, imports included).

    python scripts/bench_landmark_scale.py                       # this checkout only
    python scripts/bench_landmark_scale.py --reference ../old    # and an older checkout, same run
    python scripts/bench_landmark_scale.py --only fit            # only the cases whose task contains "fit"

Each measurement runs in a fresh process (so one checkout's imports never serve the other)
with a time limit; ">N" means it did not finish in N seconds.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_JOB = r"""
import resource, sys, time, tempfile, numpy as np
from regviewer.core.landmarks.model import LandmarkPair, LandmarkSet, load_landmarks
from regviewer.core.landmarks import fitting
what, n = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(3)
f = rng.uniform(0, 100, (n, 3))
m = f * 1.01 + 2 * np.sin(f / 20) + rng.normal(0, 0.5, (n, 3))
data = {"dimension": 3, "pairs": [{"name": f"L{i}", "fixed": list(f[i]), "moving": list(m[i])} for i in range(n)]}
start = time.perf_counter()
if what == "build":
    LandmarkSet.from_dict(data)
elif what == "read csv":
    s = LandmarkSet.from_dict(data)
    path = tempfile.mktemp(suffix=".csv")
    s.save(path)
    start = time.perf_counter()
    load_landmarks(path)
else:
    s = LandmarkSet.from_dict(data)
    start = time.perf_counter()
    fitting.fit(s, what.split()[0])
print(f"{time.perf_counter() - start:.2f} {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}")
"""

CASES = [("build", 8000), ("build", 32000), ("read csv", 8000), ("read csv", 32000),
         ("affine fit+LOO", 1000), ("affine fit+LOO", 5000),
         ("bspline fit+LOO", 500), ("bspline fit+LOO", 1000), ("bspline fit+LOO", 2000), ("bspline fit+LOO", 5000),
         ("tps fit+LOO", 1000), ("tps fit+LOO", 3000), ("tps fit+LOO", 5000)]


def measure(checkout: Path, what: str, n: int, limit: float) -> tuple[str, str]:
    """(seconds, peak MB) of one case in a fresh process."""
    env = dict(os.environ, PYTHONPATH=str(checkout), OPENBLAS_NUM_THREADS="1")
    try:  # cwd: `python -c` puts the current folder first on sys.path, which must not be a checkout
        done = subprocess.run([sys.executable, "-c", _JOB, what, str(n)], capture_output=True, text=True,
                              timeout=limit, env=env, cwd=tempfile.gettempdir())
    except subprocess.TimeoutExpired:
        return f">{limit:g}", "?"
    if done.returncode != 0 or len(done.stdout.split()) != 2:
        return "error", "?"
    seconds, peak = done.stdout.split()
    return seconds, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, help="an older checkout to compare with")
    parser.add_argument("--limit", type=float, default=120.0, help="seconds per measurement (default 120)")
    parser.add_argument("--only", default="", help="run only the cases whose task contains this text")
    args = parser.parse_args()
    head = "| task | pairs | this s | this peak MB |" + (" reference s | reference peak MB | ratio |" if args.reference else "")
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for what, n in CASES:
        if args.only not in what:
            continue
        ours, ours_mb = measure(ROOT, what, n, args.limit)
        row = f"| {what} | {n} | {ours} | {ours_mb} |"
        if args.reference:
            ref, ref_mb = measure(args.reference, what, n, args.limit)
            try:
                r = float(ref.lstrip('>')) / max(float(ours), 1e-3)
                ratio = (f"{r:.1f}x" if r < 10 else f"{r:.0f}x") + ("+" if ref.startswith(">") else "")
            except ValueError:
                ratio = "n/a"
            row += f" {ref} | {ref_mb} | {ratio} |"
        print(row, flush=True)


if __name__ == "__main__":
    main()
