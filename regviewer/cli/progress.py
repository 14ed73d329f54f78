"""Progress on the terminal: one self-updating line on a TTY, throttled plain lines otherwise.

A log file or a CI console cannot take carriage returns, and a person at a terminal
does not want a scrolling wall of numbers; both get the same facts (stage, level,
iteration, metric). Progress goes to stderr so stdout stays for results.
"""

from __future__ import annotations

import shutil
import sys
import time
from typing import TextIO


class ProgressPrinter:
    """Prints registration `Progress` events (see `regviewer.core.registration.engine.Progress`).

    On a TTY the line is redrawn at most `tty_interval` s apart; otherwise a plain
    line is printed at most every `plain_interval` s, and whenever the stage or
    pyramid level changes (so a log shows every level was reached).
    """

    def __init__(self, stream: TextIO | None = None, label: str = "", tty: bool | None = None,
                 plain_interval: float = 0.5, tty_interval: float = 0.1) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.label = label
        self.interval = tty_interval if self.tty else plain_interval
        self._last_time = 0.0
        self._last_key: tuple[int, int] | None = None
        self._drawn = False

    def __call__(self, progress) -> None:
        now = time.monotonic()
        key = (progress.stage, progress.level)
        if key == self._last_key and now - self._last_time < self.interval:
            return
        self._last_key, self._last_time = key, now
        text = self.format(progress)
        if self.tty:
            width = max(20, shutil.get_terminal_size((100, 20)).columns - 1)
            self.stream.write("\r" + text[:width].ljust(width))
            self._drawn = True
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def format(self, p) -> str:
        prefix = f"[{self.label}] " if self.label else ""
        return (f"{prefix}stage {p.stage + 1} {p.stage_name} | level {p.level + 1}/{p.n_levels} | "
                f"iteration {p.iteration} | metric {p.metric:.5g} | {p.elapsed:.1f} s")

    def message(self, text: str) -> None:
        """A line of its own (ends the self-updating line first)."""
        self.finish()
        self.stream.write(text + "\n")
        self.stream.flush()

    def finish(self) -> None:
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False


class BatchProgress:
    """Pairs finished out of the total, with counts and an estimate of the time left."""

    def __init__(self, total: int, stream: TextIO | None = None, tty: bool | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.total = total
        self.done = self.ok = self.failed = self.skipped = 0
        self.start = time.monotonic()

    def skip(self, earlier: list) -> None:
        """Pairs finished by an earlier run (results with this_run == "skipped"): counted as
        done, left out of the time estimate."""
        self.skipped += len(earlier)
        self.done += len(earlier)
        if earlier:
            failed = sum(r.status != "ok" for r in earlier)
            note = f" ({failed} of them failed; --retry-failed runs those again)" if failed else ""
            self._line(f"{len(earlier)} pair(s) finished in an earlier run are skipped{note}")
        if self.tty:
            self._bar()

    def __call__(self, result) -> None:
        self.done += 1
        if result.status == "ok":
            self.ok += 1
        else:
            self.failed += 1
        what = (f"ok in {result.seconds:.1f} s" + (f", metric {result.final_metric:.5g}" if result.final_metric is not None else "")
                if result.status == "ok" else f"FAILED: {result.error}")
        if self.tty:
            self._line(f"{result.pair}: {what}")
            self._bar()
        else:
            self._line(f"[{self.done}/{self.total}] {result.pair}: {what}")

    def _bar(self) -> None:
        width = 24
        filled = int(width * self.done / max(1, self.total))
        elapsed = time.monotonic() - self.start
        ran = self.done - self.skipped
        left = self.total - self.done
        eta = f" | about {elapsed / ran * left:.0f} s left" if ran and left else ""
        text = (f"[{'#' * filled}{'-' * (width - filled)}] {self.done}/{self.total} pairs | {self.ok} ok | "
                f"{self.failed} failed | {elapsed:.0f} s{eta}")
        self.stream.write("\r" + text)
        self.stream.flush()

    def _line(self, text: str) -> None:
        if self.tty:
            self.stream.write("\r\x1b[2K" + text + "\n")
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def finish(self) -> None:
        if self.tty:
            self._bar()
            self.stream.write("\n")
            self.stream.flush()
