"""Progress of sampling: samples done, seconds per sample, mean function evaluations
(`ProgressLine`: a live bar on a terminal, plain periodic lines elsewhere)."""

from .._progress import ProgressLine


class SampleProgress:
    """Progress on stderr (or nothing when `enabled` is false)."""

    def __init__(self, total: int, done: int, enabled: bool):
        self._line = ProgressLine("sample", total, done=done, unit="samples", enabled=enabled)
        self._line.__enter__()

    def update(self, done: int, *, seconds_per_sample: float | None, mean_nfe: float | None):
        parts = []
        if seconds_per_sample is not None:
            parts.append(f"{seconds_per_sample:.3g} s/sample")
        if mean_nfe is not None:
            parts.append(f"mean NFE {mean_nfe:.1f}")
        self._line.update(done, ", ".join(parts))

    def close(self) -> None:
        self._line.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
