"""The settings of a Monte Carlo run (one validated, JSON-serialisable dataclass)."""

import dataclasses
import math
from typing import Any

import numpy as np

from .._arguments import argument
from .._energy import ParticleSystem

ANNEAL_SCHEDULES = ("geometric", "linear")
PRECISIONS = ("float32", "float64")


def _positive_int(name: str, value: Any, *, allow_zero: bool = False) -> int:
    ok = not isinstance(value, bool) and isinstance(value, (int, np.integer))
    if not ok or value < (0 if allow_zero else 1):
        lower = ">= 0" if allow_zero else ">= 1"
        raise ValueError(f"{argument(name)} must be an integer {lower}; got {value!r}.")
    return int(value)


def _positive_float(name: str, value: Any) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{argument(name)} must be a number; got {value!r}.") from None
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"{argument(name)} must be positive and finite; got {value!r}.")
    return v


@dataclasses.dataclass(frozen=True)
class MCConfig:
    """Settings of a Monte Carlo run (`run_monte_carlo`, `generate_dataset`, `mflows generate`).

    **Fields:**

    - `temperature`: target temperature T > 0 (`None`: the system's default).
    - `num_chains`: independent chains, run together (vmapped).
    - `samples_per_chain`: samples kept from each chain (total = `num_chains *
      samples_per_chain`).
    - `sweeps_between`: sweeps between two samples of a chain (one sweep = N attempted moves).
      Should be several energy autocorrelation times; the run measures it and warns otherwise.
    - `equilibration_sweeps`: sweeps before the first sample (tuning and annealing happen here
      only).
    - `anneal_from`: if set, equilibration starts at this temperature and goes down to
      `temperature` over the first `anneal_fraction` of the equilibration sweeps
      (`anneal_schedule`: `"geometric"` or `"linear"` in T), then stays at `temperature`.
    - `p_swap`: probability that a move is a species swap (`None`: 0.2 if the system has swap
      pairs, else 0). Must be 0 for a system without swap pairs.
    - `target_acceptance`: the displacement acceptance the step size is tuned to during
      equilibration: a band `(low, high)` (default `(0.3, 0.5)`) or one value.
    - `step_size`: initial Gaussian displacement width (`None`: the system's `displacement`).
    - `tune_every`: sweeps between step-size updates during equilibration.
    - `samples_per_block`: production proceeds in blocks of this many samples per chain; a
      checkpoint is written after each block.
    - `trace_every`: the energy of every chain is recorded every `trace_every` sweeps for the
      autocorrelation analysis (`None`: `max(1, sweeps_between // 20)`, enough to resolve
      times well below the sample spacing).
    - `drift_tolerance`: relative drift `|U_running - U_exact| / (1 + |U_exact|)` above which
      the run stops with `EnergyDriftError` (`None`: 1e-6 in float64, 1e-2 in float32). The
      largest drift is always recorded.
    - `min_spacing_tau`: warn when samples are fewer than this many autocorrelation times apart.
    - `disagreement_p_value`: warn when the chains' mean energies disagree at a chi-square
      p-value below this.
    - `precision`: `"float64"` or `"float32"` for positions, energies and the running energy
      (`None`: JAX's default float, float64 when 64-bit mode is on). float32 runs about
      twice as fast; the periodic full recomputation and the drift check then run in float32
      too (see `drift_tolerance`).
    """

    temperature: float | None = None
    num_chains: int = 100
    samples_per_chain: int = 100
    sweeps_between: int = 100
    equilibration_sweeps: int = 1000
    anneal_from: float | None = None
    anneal_schedule: str = "geometric"
    anneal_fraction: float = 0.5
    p_swap: float | None = None
    target_acceptance: float | tuple[float, float] = (0.3, 0.5)
    step_size: float | None = None
    tune_every: int = 10
    samples_per_block: int = 10
    trace_every: int | None = None
    drift_tolerance: float | None = None
    min_spacing_tau: float = 3.0
    disagreement_p_value: float = 1e-3
    precision: str | None = None

    def __post_init__(self):
        set_ = lambda k, v: object.__setattr__(self, k, v)
        if self.temperature is not None:
            set_("temperature", _positive_float("temperature", self.temperature))
        for name in ("num_chains", "samples_per_chain", "sweeps_between", "tune_every"):
            set_(name, _positive_int(name, getattr(self, name)))
        set_("samples_per_block", _positive_int("samples_per_block", self.samples_per_block))
        set_(
            "equilibration_sweeps",
            _positive_int("equilibration_sweeps", self.equilibration_sweeps, allow_zero=True),
        )
        if self.trace_every is not None:
            set_("trace_every", _positive_int("trace_every", self.trace_every))
        if self.anneal_from is not None:
            set_("anneal_from", _positive_float("anneal_from", self.anneal_from))
        if self.anneal_schedule not in ANNEAL_SCHEDULES:
            raise ValueError(
                f"{argument('anneal_schedule')} must be one of {ANNEAL_SCHEDULES}; got "
                f"{self.anneal_schedule!r}."
            )
        frac = float(self.anneal_fraction)
        if not (0.0 < frac <= 1.0):
            raise ValueError(f"anneal_fraction must lie in (0, 1]; got {self.anneal_fraction}.")
        set_("anneal_fraction", frac)
        if self.p_swap is not None:
            p = float(self.p_swap)
            if not (0.0 <= p <= 1.0):
                raise ValueError(
                    f"{argument('p_swap')} must be a probability in [0, 1]; got {self.p_swap}."
                )
            set_("p_swap", p)
        target = self.target_acceptance
        band = (target, target) if np.ndim(target) == 0 else tuple(target)
        if len(band) != 2:
            raise ValueError(
                f"{argument('target_acceptance')} must be one value or a (low, high) band; got "
                f"{target!r}."
            )
        low, high = float(band[0]), float(band[1])
        if not (0.0 < low <= high < 1.0):
            raise ValueError(
                f"{argument('target_acceptance')} must satisfy 0 < low <= high < 1; got {target!r}."
            )
        set_("target_acceptance", (low, high))
        if self.step_size is not None:
            set_("step_size", _positive_float("step_size", self.step_size))
        if self.drift_tolerance is not None:
            set_("drift_tolerance", _positive_float("drift_tolerance", self.drift_tolerance))
        set_("min_spacing_tau", _positive_float("min_spacing_tau", self.min_spacing_tau))
        p = float(self.disagreement_p_value)
        if not (0.0 < p < 1.0):
            raise ValueError(f"disagreement_p_value must lie in (0, 1); got {p}.")
        set_("disagreement_p_value", p)
        if self.precision is not None and self.precision not in PRECISIONS:
            raise ValueError(
                f"{argument('precision')} must be one of {PRECISIONS} (or None for JAX's default "
                "float); got "
                f"{self.precision!r}."
            )

    def resolve(self, system: ParticleSystem) -> "MCConfig":
        """Fill the `None` defaults from `system` (temperature, p_swap, step size, trace
        spacing) and check the config against it."""
        p_swap = self.p_swap
        if p_swap is None:
            p_swap = 0.2 if system.swap_pairs else 0.0
        elif p_swap > 0 and not system.swap_pairs:
            raise ValueError(
                f"{argument('p_swap', p_swap)} but system {system.name!r} has no swap pairs (no "
                f"species may exchange); pass {argument('p_swap', 0)} or a system with swap pairs."
            )
        return dataclasses.replace(
            self,
            temperature=(
                system.default_temperature if self.temperature is None else self.temperature
            ),
            p_swap=p_swap,
            step_size=system.displacement if self.step_size is None else self.step_size,
            trace_every=(
                max(1, self.sweeps_between // 20) if self.trace_every is None else self.trace_every
            ),
        )

    def sample_bytes(self, system: ParticleSystem) -> int:
        """Memory the kept samples take: positions (float64), species and energy of every
        sample, held about three times over (per block, gathered, as the `Dataset`)."""
        n, d = system.num_particles, system.dim
        per_sample = n * d * 8 + n * 4 + 8
        return 3 * self.num_chains * self.samples_per_chain * per_sample

    def as_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["target_acceptance"] = list(self.target_acceptance)
        return d

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))
