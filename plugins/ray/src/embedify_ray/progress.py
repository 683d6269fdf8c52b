"""embed-dataset's progress: rows done, rows per second and time left, moving while a part runs.

What to show and when is decided by pure functions of the rows counted and the clock; the
reporter only writes the line. Rows found already written by an earlier run count as done but
not in the rate, so a resumed run neither boasts a huge rate nor promises a near end.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TextIO

#: Seconds between two lines: redrawn in place on a terminal, appended to a log otherwise.
TERMINAL_INTERVAL = 0.5
LOG_INTERVAL = 30.0


@dataclass(frozen=True)
class Progress:
    """Rows counted so far; ``shown_at`` is when the last line was written (``None``: never)."""

    total: int
    started: float
    done: int = 0
    skipped: int = 0
    shown_at: float | None = None

    def advanced(self, *, embedded: int = 0, skipped: int = 0) -> Progress:
        return replace(self, done=self.done + embedded + skipped, skipped=self.skipped + skipped)


def due(progress: Progress, now: float, interval: float) -> bool:
    """Whether a line is due: the first one, then one per ``interval``, and the last row."""
    if progress.shown_at is None:
        return True
    return progress.done >= progress.total or now - progress.shown_at >= interval


def progress_line(progress: Progress, now: float) -> str:
    """``embedding: 4,500/10,000 rows (45%), 450 rows/s, 0:00:12 left``."""
    total = max(progress.total, 1)
    line = f"embedding: {progress.done:,}/{progress.total:,} rows ({progress.done * 100 // total}%)"
    embedded, elapsed = progress.done - progress.skipped, now - progress.started
    if embedded <= 0 or elapsed <= 0:
        return line
    rate = embedded / elapsed
    left = max(progress.total - progress.done, 0) / rate
    return f"{line}, {rate:,.0f} rows/s, {_clock(left)} left"


def _clock(seconds: float) -> str:
    whole = round(seconds)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


class ProgressReporter:
    """Writes :func:`progress_line` to ``stream`` when :func:`due`; a terminal's line is
    redrawn in place, a log gets a line every :data:`LOG_INTERVAL` seconds."""

    def __init__(
        self,
        total: int,
        *,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.clock = clock
        self.terminal = self.stream.isatty()
        self.interval = TERMINAL_INTERVAL if self.terminal else LOG_INTERVAL
        self.progress = Progress(total, clock())

    def update(self, *, embedded: int = 0, skipped: int = 0) -> None:
        self.progress = self.progress.advanced(embedded=embedded, skipped=skipped)
        now = self.clock()
        if due(self.progress, now, self.interval):
            self._show(now)

    def close(self) -> None:
        """End the line on a terminal (a log already has its last line)."""
        if self.terminal and self.progress.shown_at is not None:
            self.stream.write("\n")
            self.stream.flush()

    def _show(self, now: float) -> None:
        line = progress_line(self.progress, now)
        self.stream.write(f"\r{line}\033[K" if self.terminal else f"{line}\n")
        self.stream.flush()
        self.progress = replace(self.progress, shown_at=now)
