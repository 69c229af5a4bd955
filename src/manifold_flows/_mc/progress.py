"""Progress of a Monte Carlo run: sweeps, temperature, energy per particle and acceptance
(`ProgressLine`: a live bar on a terminal, plain periodic lines elsewhere)."""

from .._progress import ProgressLine


class ProgressReporter:
    """Progress over the sweeps of a run. Use as a context manager.

    **Arguments:**

    - `total_sweeps`: sweeps of the whole run (equilibration + production).
    - `enabled`: show progress (on stderr) or do nothing.
    """

    def __init__(self, total_sweeps: int, *, enabled: bool = True):
        self._line = ProgressLine("mc", total_sweeps, unit="sweeps", enabled=enabled)

    def __enter__(self) -> "ProgressReporter":
        self._line.__enter__()
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
        """Set the progress to `completed` sweeps and show the current numbers."""
        self._line.update(
            completed,
            f"{phase}, T={temperature:.4g}, u={energy_per_particle:.5f}, acc={acceptance}",
        )

    def __exit__(self, *exc) -> None:
        self._line.__exit__(*exc)
