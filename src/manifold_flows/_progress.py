"""Progress of long work on stderr: a live bar on a terminal, plain periodic lines elsewhere.

One mechanism for every long command (Monte Carlo, training, sampling). On a terminal it
draws a rich progress bar. Off a terminal (a log file, CI, a pipe) a bar is only drawn at
the end, truncated, so it prints instead one plain line every `interval` seconds (and one at
the end): label, done / total with the unit, percentage, the caller's figures, elapsed and
estimated remaining time. `MFLOWS_PROGRESS_INTERVAL` sets the interval (seconds, default 30).
"""

import math
import os
import sys
import time

#: Seconds between two plain progress lines off a terminal (MFLOWS_PROGRESS_INTERVAL).
DEFAULT_INTERVAL = 30.0


def _interval() -> float:
    value = os.environ.get("MFLOWS_PROGRESS_INTERVAL")
    if value is None:
        return DEFAULT_INTERVAL
    try:
        seconds = float(value)
    except ValueError:
        return DEFAULT_INTERVAL
    return seconds if math.isfinite(seconds) and seconds >= 0 else DEFAULT_INTERVAL


def _clock(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class ProgressLine:
    """Progress of one piece of work, shown on stderr (or nothing when `enabled` is false).

    Use as a context manager; call `update(done, stats)` as work completes.

    **Arguments:**

    - `label`: what runs (`"train"`, `"sample"`, `"mc"`).
    - `total`: the amount of work, in `unit`s.
    - `done`: work already done when this starts (a resumed run).
    - `unit`: the unit of `total` (`"steps"`, `"samples"`, `"sweeps"`).
    - `enabled`: show anything at all.
    - `stream`: where to write (default `sys.stderr`); a terminal gets a live bar.
    - `interval`: seconds between plain lines off a terminal (default: the environment's
      `MFLOWS_PROGRESS_INTERVAL`, else 30).
    """

    def __init__(
        self,
        label: str,
        total: int,
        *,
        done: int = 0,
        unit: str = "",
        enabled: bool = True,
        stream=None,
        interval: float | int | None = None,
    ):
        self.label = label
        self.total = int(total)
        self.unit = unit
        self.enabled = bool(enabled)
        self.stream = sys.stderr if stream is None else stream
        self.interval = _interval() if interval is None else float(interval)
        self._start_done = self._done = int(done)
        self._stats = ""
        self._bar = None
        self._task = None
        self._started = time.perf_counter()
        self._last_line = None  # time of the last plain line
        self._printed_done = None  # the work done it showed

    @property
    def live(self) -> bool:
        """Whether a live bar is drawn (the stream is a terminal)."""
        isatty = getattr(self.stream, "isatty", None)
        return bool(isatty and isatty())

    def __enter__(self) -> "ProgressLine":
        if self.enabled and self.live:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(
                TextColumn(f"[bold]{self.label}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn(self.unit),
                TextColumn("{task.fields[stats]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=Console(file=self.stream),
            )
            self._bar.__enter__()
            self._task = self._bar.add_task(
                self.label, total=self.total, completed=self._done, stats=""
            )
        return self

    def update(self, done: int, stats: str = "") -> None:
        """`done` units of work are complete; `stats` is a short text of the current figures."""
        self._done, self._stats = int(done), stats
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(self._task, completed=self._done, stats=stats)
            return
        now = time.perf_counter()
        if self._last_line is None or now - self._last_line >= self.interval:
            self._print_line(now)

    def _print_line(self, now: float) -> None:
        self._last_line, self._printed_done = now, self._done
        elapsed = now - self._started
        share = self._done / self.total if self.total else 1.0
        parts = [f"{self.label}: {self._done}/{self.total} {self.unit}".rstrip()]
        parts[0] += f" ({100 * share:.0f} %)"
        if self._stats:
            parts.append(self._stats)
        parts.append(f"elapsed {_clock(elapsed)}")
        new_work = self._done - self._start_done
        if 0 < new_work and self._done < self.total:
            parts.append(f"remaining ~{_clock(elapsed / new_work * (self.total - self._done))}")
        print(", ".join(parts), file=self.stream, flush=True)

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)
            self._bar = None
        elif self.enabled and self._last_line is not None and self._printed_done != self._done:
            self._print_line(time.perf_counter())  # where it ended

    def close(self) -> None:
        self.__exit__(None, None, None)
