"""Metrics log (JSON lines) and the progress bar of a training run."""

import dataclasses
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from .._progress import ProgressLine


def _clean(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else str(value)
    return value


class MetricsLog:
    """Append-only JSON-lines log. On resume, lines from beyond the checkpoint (written by the
    interrupted run after its last checkpoint) are dropped so the log has no duplicate steps."""

    def __init__(self, path: str | os.PathLike | None, *, resume_step: int | None = None):
        self.path = None if path is None else Path(path)
        if self.path is None:
            return
        if resume_step is not None and self.path.is_file():
            kept = []
            for line in self.path.read_text().splitlines():
                try:
                    if int(json.loads(line).get("step", 0)) <= resume_step:
                        kept.append(line)
                except (json.JSONDecodeError, TypeError, ValueError, AttributeError):
                    continue
            from .._io import atomic_write_text

            atomic_write_text(self.path, "".join(k + "\n" for k in kept))
        elif resume_step is None and self.path.is_file():
            self.path.unlink()

    def last_value(self, key: str, default: Any = None) -> Any:
        """The value of `key` in the last record that has it (after a resume: the last one up
        to the checkpoint), or `default`."""
        if self.path is None or not self.path.is_file():
            return default
        value = default
        for line in self.path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict) and key in record:
                value = record[key]
        return value

    def write(self, record: dict[str, Any]) -> None:
        if self.path is None:
            return
        line = json.dumps({k: _clean(v) for k, v in record.items()})
        with open(self.path, "a") as fh:
            fh.write(line + "\n")


@dataclasses.dataclass(frozen=True)
class MetricsWindow:
    """The steps since the last metrics record: their number and the sums of their losses and
    gradient norms (float64), whose means the next record reports.

    It travels with every checkpoint (`as_array` / `from_array`), so a run resumed from a
    checkpoint taken between two records averages over the same steps as the uninterrupted
    run and writes the same records."""

    num_steps: int = 0
    loss_sum: float = 0.0
    grad_norm_sum: float = 0.0

    def add(self, loss: float, grad_norm: float) -> "MetricsWindow":
        return MetricsWindow(
            self.num_steps + 1, self.loss_sum + float(loss), self.grad_norm_sum + float(grad_norm)
        )

    def means(self) -> tuple[float, float]:
        """`(mean loss, mean gradient norm)` over the window (NaN for an empty window)."""
        if self.num_steps == 0:
            return math.nan, math.nan
        return self.loss_sum / self.num_steps, self.grad_norm_sum / self.num_steps

    def as_array(self) -> np.ndarray:
        """`[num_steps, loss_sum, grad_norm_sum]` as float64 (exact for the step count)."""
        return np.array([self.num_steps, self.loss_sum, self.grad_norm_sum], dtype=np.float64)

    @classmethod
    def from_array(cls, values: np.ndarray) -> "MetricsWindow":
        count, loss_sum, grad_norm_sum = (float(v) for v in np.asarray(values).reshape(3))
        return cls(int(count), loss_sum, grad_norm_sum)


class Progress:
    """Progress of training on stderr: step, loss, validation loss and speed (`ProgressLine`:
    a live bar on a terminal, plain periodic lines elsewhere; nothing when disabled)."""

    def __init__(self, total: int, start: int, enabled: bool):
        self._line = ProgressLine("train", total, done=start, unit="steps", enabled=enabled)
        self._line.__enter__()

    def update(self, step: int, *, loss=None, val_loss=None, speed=None) -> None:
        parts = []
        if loss is not None:
            parts.append(f"loss {loss:.4g}")
        if val_loss is not None:
            parts.append(f"val {val_loss:.4g}")
        if speed is not None:
            parts.append(f"{speed:.3g} steps/s")
        self._line.update(step, ", ".join(parts))

    def close(self) -> None:
        self._line.close()
