"""Temperature schedule of the equilibration phase (optional annealing)."""

import math

import numpy as np


def temperature_schedule(
    temperature: float,
    num_sweeps: int,
    *,
    anneal_from: float | None = None,
    fraction: float = 0.5,
    schedule: str = "geometric",
) -> np.ndarray:
    """Temperature of each equilibration sweep.

    Without `anneal_from`, every sweep runs at `temperature`. With it, the first
    `ceil(fraction * num_sweeps)` sweeps go from `anneal_from` (first sweep) to `temperature`
    (last of them), geometrically (constant ratio between sweeps) or linearly in T; the
    remaining sweeps stay at `temperature`.

    **Returns:**

    Float64 array `(num_sweeps,)`.
    """
    out = np.full(int(num_sweeps), float(temperature))
    if anneal_from is None or num_sweeps == 0:
        return out
    k = max(1, math.ceil(fraction * num_sweeps))
    s = np.linspace(0.0, 1.0, k) if k > 1 else np.ones(1)
    t0, t1 = float(anneal_from), float(temperature)
    if schedule == "geometric":
        ramp = t0 * (t1 / t0) ** s
    elif schedule == "linear":
        ramp = t0 + (t1 - t0) * s
    else:
        raise ValueError(f"schedule must be 'geometric' or 'linear'; got {schedule!r}.")
    ramp[-1] = t1
    out[:k] = ramp
    return out
