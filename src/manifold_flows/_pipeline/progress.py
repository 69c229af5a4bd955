"""The progress bar of sampling: samples done, seconds per sample, mean function evaluations."""

import contextlib


class SampleProgress:
    """A rich progress bar on stderr (or nothing when `enabled` is false)."""

    def __init__(self, total: int, done: int, enabled: bool):
        self._bar = None
        self._task = None
        self._stack = contextlib.ExitStack()
        if not enabled:
            return
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
            TextColumn("[bold]sample"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
        )
        self._stack.enter_context(self._bar)
        self._task = self._bar.add_task("sample", total=total, completed=done, stats="")

    def update(self, done: int, *, seconds_per_sample: float | None, mean_nfe: float | None):
        if self._bar is None:
            return
        parts = []
        if seconds_per_sample is not None:
            parts.append(f"{seconds_per_sample:.3g} s/sample")
        if mean_nfe is not None:
            parts.append(f"mean NFE {mean_nfe:.1f}")
        self._bar.update(self._task, completed=done, stats="  ".join(parts))

    def close(self) -> None:
        self._stack.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
