"""A progress bar for Monte Carlo runs (rich), showing sweeps, energy per particle and
acceptance; a no-op when disabled."""

import sys


class ProgressReporter:
    """Progress over the sweeps of a run. Use as a context manager.

    **Arguments:**

    - `total_sweeps`: sweeps of the whole run (equilibration + production).
    - `enabled`: show the bar (on stderr) or do nothing.
    """

    def __init__(self, total_sweeps: int, *, enabled: bool = True):
        self.enabled = bool(enabled)
        self.total = int(total_sweeps)
        self._progress = None
        self._task = None

    def __enter__(self) -> "ProgressReporter":
        if self.enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._progress = Progress(
                TextColumn("[bold]{task.fields[phase]}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("sweeps"),
                TextColumn("T={task.fields[temperature]}"),
                TextColumn("u={task.fields[energy]}"),
                TextColumn("acc={task.fields[acceptance]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=Console(file=sys.stderr),
                transient=False,
            )
            self._progress.__enter__()
            self._task = self._progress.add_task(
                "mc",
                total=self.total,
                phase="start",
                temperature="-",
                energy="-",
                acceptance="-",
            )
        return self

    def update(
        self,
        completed: int,
        *,
        phase: str,
        temperature: float,
        energy_per_particle: float,
        acceptance: str,
    ) -> None:
        """Set the bar to `completed` sweeps and refresh the shown numbers."""
        if self._progress is None:
            return
        self._progress.update(
            self._task,
            completed=completed,
            phase=phase,
            temperature=f"{temperature:.4g}",
            energy=f"{energy_per_particle:.5f}",
            acceptance=acceptance,
        )

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)
            self._progress = None
