"""Free energies from importance weights, with bootstrap errors, and free-energy differences
between temperatures (checked by `thermodynamic_integration`).

With samples `x_i` of a normalised density `q` and weights `w_i = exp(-U_i / T) / q(x_i)`,
`Z = E_q[w]`, so `log Z = logsumexp(log w) - log R` and `F = -T log Z` (`k_B = 1`). The same
holds when `log q` is a one-sample estimate whose exponential is unbiased for `q(x)` (the
augmented coupling flow): `Z = E[w]` still.

Between two inverse temperatures, `beta_2 F_2 - beta_1 F_1 = -(log Z_2 - log Z_1)`, and since
`d(beta F) / d beta = <U>_beta`, also `= integral_{beta_1}^{beta_2} <U> d beta`: the
thermodynamic integration (TI) of Monte Carlo energies checks the reweighted estimate.

Error bars take the independent units as given: each sample (flow samples are independent
draws) or, with `chains=`, each Monte Carlo chain (or block), resampled whole by the bootstrap.
"""

import dataclasses
import math
from typing import Any

import numpy as np
from jaxtyping import ArrayLike, Real

from ._results import plain_dict
from ._weights import as_positive_scalar, as_vector
from .estimators import _BLOCK_ENTRIES, _chain_index, _chain_standard_error, unit_counts
from .reweight import ReweightResult, reweight

#: a bootstrap resample whose drawn weights sum below this (after the global max shift) is
#: recomputed with its own maximum, so that it does not underflow to log 0
_TINY = 1e-280


@dataclasses.dataclass(frozen=True)
class FreeEnergyResult:
    """The free energy `F = -T log Z` of the Boltzmann distribution `exp(-U / T) / Z`,
    estimated from `R` samples of a normalised model density `q`.

    **Fields:**

    - `temperature`: `T`.
    - `num_particles`: `N`, or `None` when not given (then the per-particle fields are `None`).
    - `log_z`: `logsumexp(log w) - log R`, `log w = -U / T - log q` (non-finite `log w` count
      as `w = 0`); equal to `reweight(...).log_z`.
    - `log_z_err`: bootstrap standard deviation of `log_z` (resampling samples, or whole
      chains).
    - `log_z_low`, `log_z_high`: percentile bootstrap interval of `log_z` at `confidence`.
    - `free_energy`, `free_energy_err`, `free_energy_low`, `free_energy_high`: `F = -T log Z`,
      total (not per particle), its bootstrap error and interval (`-T` times those of `log Z`).
    - `free_energy_delta_err`: the delta-method error `T se(w / mean w)` for comparison (over
      samples: equal to `reweight(...).free_energy_err`; over chains: from the scatter of the
      chain sums). It trusts the variance of the weights, so it fails with the bootstrap when
      k-hat is bad.
    - `free_energy_per_particle`, `free_energy_per_particle_err`: `F / N` and its error.
    - `beta_free_energy_per_particle`, `beta_free_energy_per_particle_err`: `F / (N T) =
      -log Z / N` (dimensionless) and its error.
    - `num_samples`: `R`; `num_nonfinite`: samples with non-finite `log w` (weight 0).
    - `num_chains`: the chains treated as independent units, or `None` (every sample is one).
    - `ess`, `ess_fraction`, `khat`, `khat_threshold`, `khat_status`: the weight diagnostics
      of `reweight`.
    - `reliable`: `khat_status` is `"good"` or `"ok"` (the weights have a finite mean).
    - `note`: what limits the estimate (heavy tail, non-finite weights, dropped resamples), or
      `""`.
    - `num_bootstrap`, `confidence`, `seed`: the bootstrap settings.
    - `log_z_replicates`: the bootstrap replicates of `log_z` (left out of `as_dict`).

    Jensen's inequality biases `log_z` low by about `log_z_err^2 / 2` (F high by `T` times
    that); negligible when the error is small.
    """

    temperature: float
    num_particles: int | None
    log_z: float
    log_z_err: float
    log_z_low: float
    log_z_high: float
    free_energy: float
    free_energy_err: float
    free_energy_low: float
    free_energy_high: float
    free_energy_delta_err: float
    free_energy_per_particle: float | None
    free_energy_per_particle_err: float | None
    beta_free_energy_per_particle: float | None
    beta_free_energy_per_particle_err: float | None
    num_samples: int
    num_nonfinite: int
    num_chains: int | None
    ess: float
    ess_fraction: float
    khat: float
    khat_threshold: float
    khat_status: str
    reliable: bool
    note: str
    num_bootstrap: int
    confidence: float
    seed: int
    log_z_replicates: np.ndarray

    def as_dict(self) -> dict[str, Any]:
        """The scalar fields as a JSON-friendly dict (no replicates)."""
        return plain_dict(self)


@dataclasses.dataclass(frozen=True)
class FreeEnergyDifference:
    """`Delta(beta F) = beta_2 F_2 - beta_1 F_1 = -(log Z_2 - log Z_1)` between two
    temperatures, with its error.

    **Fields:**

    - `temperature_1`, `temperature_2`: `T_1`, `T_2`.
    - `num_particles`: `N`, or `None`.
    - `delta_beta_f`: `beta_2 F_2 - beta_1 F_1` (dimensionless, total).
    - `delta_beta_f_err`: its bootstrap standard error: from one sample set, both `log Z` of
      each replicate come from the same resampled indices (their covariance is kept); from two
      independent sets, the two errors in quadrature.
    - `delta_beta_f_low`, `delta_beta_f_high`: percentile bootstrap interval at `confidence`
      (for independent sets, of the differences of randomly paired replicates).
    - `delta_beta_f_delta_err`: the delta-method error for comparison.
    - `delta_beta_f_per_particle`, `delta_beta_f_per_particle_err`: divided by `N`.
    - `correlation`: bootstrap correlation of `log Z_1` and `log Z_2` (0 for independent
      sets). From one sample set it is far from 0 and of either sign: positive when the model
      lies beyond both temperatures (the difference is then more precise than the quadrature
      of the two errors), negative when it lies between them (less precise); the error above
      includes it either way.
    - `route`: `"one sample set"` or `"independent sample sets"`.
    - `first`, `second`: the `FreeEnergyResult` at `T_1` and `T_2` (weights diagnostics and
      marginal errors of each).
    - `reliable`: both are.
    - `note`: the notes of both, or `""`.
    - `confidence`: the coverage of the interval.
    """

    temperature_1: float
    temperature_2: float
    num_particles: int | None
    delta_beta_f: float
    delta_beta_f_err: float
    delta_beta_f_low: float
    delta_beta_f_high: float
    delta_beta_f_delta_err: float
    delta_beta_f_per_particle: float | None
    delta_beta_f_per_particle_err: float | None
    correlation: float
    route: str
    first: FreeEnergyResult
    second: FreeEnergyResult
    reliable: bool
    note: str
    confidence: float

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict; `first` and `second` as their own dicts."""
        return plain_dict(self)


# ---------------------------------------------------------------------------- estimation
def _check_finite_inputs(u: np.ndarray, lq: np.ndarray) -> None:
    """NaN energies or log q, `U = -inf` and `log q = +-inf` are broken samples: refused.
    `U = +inf` (overlapping particles) is a real configuration of Boltzmann weight 0."""
    broken = {
        "energy": np.flatnonzero(np.isnan(u) | (u == -np.inf)),
        "log_q": np.flatnonzero(~np.isfinite(lq)),
    }
    for name, where in broken.items():
        if where.size:
            raise ValueError(
                f"`{name}` has {where.size} non-finite value(s) (first: index {where[0]}); "
                "only U = +inf (weight 0) is allowed. Drop the broken samples, or recompute "
                "their energy and log q."
            )


def _unit_log_sums(log_w: np.ndarray, units: np.ndarray | None, num_units: int):
    """Log of the sum of `w` over each unit, `(K, C)` for log weights `(K, R)` (non-finite
    entries are weight 0), and each unit's number of samples `(C,)`."""
    finite = np.isfinite(log_w)
    if units is None:
        return np.where(finite, log_w, -np.inf), np.ones(num_units)
    lengths = np.bincount(units, minlength=num_units).astype(np.float64)
    out = np.full((log_w.shape[0], num_units), -np.inf)
    for k, row in enumerate(log_w):
        top = np.full(num_units, -np.inf)
        np.maximum.at(top, units[finite[k]], row[finite[k]])
        shift = np.where(np.isfinite(top), top, 0.0)
        sums = np.zeros(num_units)
        np.add.at(sums, units[finite[k]], np.exp(row[finite[k]] - shift[units[finite[k]]]))
        with np.errstate(divide="ignore"):
            out[k] = np.log(sums) + shift
    return out, lengths


def _bootstrap_log_z(log_s: np.ndarray, lengths: np.ndarray, num_bootstrap: int, seed: int):
    """Bootstrap replicates `(B, K)` of `log Z_k = log(sum_c S_kc) - log(sum_c n_c)` from the
    unit sums `S = exp(log_s)` `(K, C)`: each replicate draws the `C` units with replacement,
    the same draws for every row `k`. A replicate that drew no weight is `-inf`."""
    num_rows, num_units = log_s.shape
    rng = np.random.default_rng(int(seed))
    top = np.max(log_s, axis=1, keepdims=True)
    scaled = np.exp(log_s - top)
    out = np.empty((num_bootstrap, num_rows))
    block = max(1, min(num_bootstrap, _BLOCK_ENTRIES // num_units))
    for start in range(0, num_bootstrap, block):
        count = min(block, num_bootstrap - start)
        counts = unit_counts(num_units, count, rng)
        sums = counts @ scaled.T
        with np.errstate(divide="ignore"):
            log_sums = np.log(sums) + top.T
        tiny = sums < _TINY
        for b, k in zip(*np.nonzero(tiny), strict=True):
            drawn = log_s[k][counts[b] > 0]
            row_top = np.max(drawn)
            if np.isfinite(row_top):
                weights = counts[b][counts[b] > 0]
                log_sums[b, k] = row_top + math.log(np.sum(weights * np.exp(drawn - row_top)))
        out[start : start + count] = log_sums - np.log(counts @ lengths)[:, None]
    return out


def _relative_weights(log_w: np.ndarray, log_z: float) -> np.ndarray:
    """`w_i / mean(w)` (0 where `log w` is not finite)."""
    finite = np.isfinite(log_w)
    return np.where(finite, np.exp(np.where(finite, log_w, 0.0) - log_z), 0.0)


def _standard_error(values: np.ndarray, units: np.ndarray | None) -> float:
    """Standard error of the mean of `values` over independent samples or over chains."""
    if units is None:
        return float(np.std(values, ddof=1) / math.sqrt(values.shape[0]))
    return float(_chain_standard_error(values[:, None], units)[0])


def _check_bootstrap(num_bootstrap: Any, confidence: Any) -> tuple[int, float]:
    if isinstance(num_bootstrap, bool) or int(num_bootstrap) != num_bootstrap or num_bootstrap < 2:
        raise ValueError(
            f"`num_bootstrap` must be an integer of at least 2; got {num_bootstrap!r}. Use e.g. "
            "1000."
        )
    if not 0.0 < float(confidence) < 1.0:
        raise ValueError(
            f"`confidence` must lie strictly between 0 and 1; got {confidence}. Use e.g. 0.95."
        )
    return int(num_bootstrap), float(confidence)


def _check_num_particles(num_particles: Any) -> int | None:
    if num_particles is None:
        return None
    if isinstance(num_particles, bool) or int(num_particles) != num_particles or num_particles < 1:
        raise ValueError(
            f"`num_particles` must be a positive integer (N) or None; got {num_particles!r}."
        )
    return int(num_particles)


def _interval(replicates: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = 50.0 * (1.0 - confidence)
    low, high = np.percentile(replicates, [tail, 100.0 - tail])
    return float(low), float(high)


def _weights_note(weights: ReweightResult) -> str:
    notes = []
    if weights.khat_status != "good":
        notes.append(f"k-hat {weights.khat:.3g} ({weights.khat_status}): {weights.khat_note}")
    if weights.num_nonfinite:
        notes.append(
            f"{weights.num_nonfinite} of {weights.num_samples} samples have U = +inf (weight 0)."
        )
    return " ".join(notes)


def _result(
    weights: ReweightResult,
    replicates: np.ndarray,
    delta_err: float,
    num_particles: int | None,
    num_chains: int | None,
    num_bootstrap: int,
    confidence: float,
    seed: int,
) -> FreeEnergyResult:
    """A `FreeEnergyResult` from the weights and the bootstrap replicates of `log Z`."""
    t = weights.temperature
    good = replicates[np.isfinite(replicates)]
    note = _weights_note(weights)
    if good.size < replicates.size:
        note += (
            f" {replicates.size - good.size} of {replicates.size} bootstrap resamples drew no "
            "sample of positive weight and were left out."
        )
    err = float(np.std(good, ddof=1)) if good.size > 1 else math.nan
    low, high = _interval(good, confidence) if good.size else (math.nan, math.nan)
    log_z = float(weights.log_z)
    per = None if num_particles is None else 1.0 / num_particles
    return FreeEnergyResult(
        temperature=t,
        num_particles=num_particles,
        log_z=log_z,
        log_z_err=err,
        log_z_low=low,
        log_z_high=high,
        free_energy=-t * log_z,
        free_energy_err=t * err,
        free_energy_low=-t * high,
        free_energy_high=-t * low,
        free_energy_delta_err=t * delta_err,
        free_energy_per_particle=None if per is None else -t * log_z * per,
        free_energy_per_particle_err=None if per is None else t * err * per,
        beta_free_energy_per_particle=None if per is None else -log_z * per,
        beta_free_energy_per_particle_err=None if per is None else err * per,
        num_samples=weights.num_samples,
        num_nonfinite=weights.num_nonfinite,
        num_chains=num_chains,
        ess=weights.ess,
        ess_fraction=weights.ess_fraction,
        khat=weights.khat,
        khat_threshold=weights.khat_threshold,
        khat_status=weights.khat_status,
        reliable=weights.khat_status in ("good", "ok"),
        note=note.strip(),
        num_bootstrap=num_bootstrap,
        confidence=confidence,
        seed=int(seed),
        log_z_replicates=replicates,
    )


def _estimate(energy, log_q, temperatures, num_particles, num_bootstrap, confidence, seed, chains):
    """The free energy at each temperature from one sample set, with bootstrap replicates
    drawn from the same resampled units for all temperatures. Returns the results and the
    relative weights `w / mean(w)` `(K, R)` (for delta-method errors of differences)."""
    u = as_vector(energy, "energy")
    lq = as_vector(log_q, "log_q", length=u.shape[0])
    temps = [as_positive_scalar(t, name) for name, t in temperatures]
    _check_finite_inputs(u, lq)
    num_bootstrap, confidence = _check_bootstrap(num_bootstrap, confidence)
    num_particles = _check_num_particles(num_particles)
    if u.shape[0] < 2:
        raise ValueError("a free energy with an error bar needs at least 2 samples; got 1.")
    units, num_units = (None, u.shape[0]) if chains is None else _chain_index(chains, u.shape[0])
    if units is not None and num_units < 2:
        raise ValueError(
            "`chains` labels every sample with the same chain: one independent unit has no "
            "error bar. Pass at least two chains, or chains=None for independent samples."
        )
    weights = [reweight(u, lq, t) for t in temps]
    for w in weights:
        if w.log_z is None:
            raise ValueError(
                f"no sample has positive weight at T={w.temperature:g} (every energy is +inf): "
                "log Z cannot be estimated. Draw samples the target can reach."
            )
    log_w = np.stack([w.log_w for w in weights])
    replicates = _bootstrap_log_z(*_unit_log_sums(log_w, units, num_units), num_bootstrap, seed)
    relative = np.stack([_relative_weights(w.log_w, w.log_z) for w in weights])
    num_chains = None if units is None else num_units
    results = [
        _result(
            w,
            replicates[:, k],
            _standard_error(relative[k], units),
            num_particles,
            num_chains,
            num_bootstrap,
            confidence,
            seed,
        )
        for k, w in enumerate(weights)
    ]
    return results, relative, units


def free_energy(
    energy: Real[ArrayLike, " r"],
    log_q: Real[ArrayLike, " r"],
    temperature: float | int | Real[ArrayLike, ""],
    *,
    num_particles: int | None = None,
    num_bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    chains: Real[ArrayLike, " r"] | None = None,
) -> FreeEnergyResult:
    """The free energy `F = -T log Z` from samples of a normalised model density, with a
    bootstrap error.

    `log Z = logsumexp(log w) - log R` with `log w = -U / T - log q` (float64, max-shifted),
    because `Z = integral exp(-U / T) dx = E_q[w]`. The bootstrap resamples the samples (or,
    with `chains`, whole chains: the replicate is then the mean weight over every sample of
    the drawn chains) and recomputes `log Z`; the delta-method error is reported next to it.
    Trust either only as far as `khat` allows (`reliable`, `note`).

    **Arguments:**

    - `energy`: total potential energy `U` of each sample, shape `(R,)`; `+inf` (overlapping
      particles) is weight 0, NaN or `-inf` is refused.
    - `log_q`: the **normalised** log-density of each sample under the model, shape `(R,)`
      (e.g. the flow's `log q` from a uniform base on the torus), finite.
    - `temperature`: `T > 0` of the target, in the energy's units (`k_B = 1`).
    - `num_particles`: `N`, for the per-particle values; `None` leaves them out.
    - `num_bootstrap`: bootstrap resamples.
    - `confidence`: coverage of the percentile interval.
    - `seed`: bootstrap seed (fixed by default: reports are reproducible).
    - `chains`: the chain label of each sample `(R,)` for correlated samples (Monte Carlo
      chains, or blocks of consecutive samples); `None` (default) for independent samples,
      as flow samples are.

    **Returns:**

    A `FreeEnergyResult`.
    """
    results, _, _ = _estimate(
        energy,
        log_q,
        [("temperature", temperature)],
        num_particles,
        num_bootstrap,
        confidence,
        seed,
        chains,
    )
    return results[0]


def _difference(first, second, replicates, delta_err, correlation, route, confidence):
    """The `FreeEnergyDifference` of two results given the replicates of `-(log Z_2 - log Z_1)`."""
    good = replicates[np.isfinite(replicates)]
    value = -(second.log_z - first.log_z)
    err = float(np.std(good, ddof=1)) if good.size > 1 else math.nan
    low, high = _interval(good, confidence) if good.size else (math.nan, math.nan)
    n = first.num_particles if first.num_particles is not None else second.num_particles
    notes = [f"T={r.temperature:g}: {r.note}" for r in (first, second) if r.note]
    return FreeEnergyDifference(
        temperature_1=first.temperature,
        temperature_2=second.temperature,
        num_particles=n,
        delta_beta_f=value,
        delta_beta_f_err=err,
        delta_beta_f_low=low,
        delta_beta_f_high=high,
        delta_beta_f_delta_err=float(delta_err),
        delta_beta_f_per_particle=None if n is None else value / n,
        delta_beta_f_per_particle_err=None if n is None else err / n,
        correlation=float(correlation),
        route=route,
        first=first,
        second=second,
        reliable=first.reliable and second.reliable,
        note=" ".join(notes),
        confidence=confidence,
    )


def free_energy_difference(
    energy: Real[ArrayLike, " r"],
    log_q: Real[ArrayLike, " r"],
    temperature_1: float | int | Real[ArrayLike, ""],
    temperature_2: float | int | Real[ArrayLike, ""],
    *,
    num_particles: int | None = None,
    num_bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    chains: Real[ArrayLike, " r"] | None = None,
) -> FreeEnergyDifference:
    """`beta_2 F_2 - beta_1 F_1 = -(log Z_2 - log Z_1)` from **one** sample set reweighted to
    both temperatures (targeted free-energy perturbation).

    The same samples and their `log q` give `log Z(T_1)` and `log Z(T_2)`; every bootstrap
    replicate takes both from the same resampled samples (or chains), so the covariance of the
    two estimates (large, of either sign) is in the error of the difference. Both weight
    sets must be usable: check `first.ess`, `second.ess` and `reliable` (a model between the
    two Boltzmann distributions serves both).

    **Arguments:**

    - `energy`, `log_q`: as in `free_energy` (`log q` normalised).
    - `temperature_1`, `temperature_2`: `T_1`, `T_2 > 0`.
    - `num_particles`, `num_bootstrap`, `confidence`, `seed`, `chains`: as in `free_energy`.

    **Returns:**

    A `FreeEnergyDifference` (`route == "one sample set"`), holding the free energy at each
    temperature as `first` and `second`.
    """
    (first, second), relative, units = _estimate(
        energy,
        log_q,
        [("temperature_1", temperature_1), ("temperature_2", temperature_2)],
        num_particles,
        num_bootstrap,
        confidence,
        seed,
        chains,
    )
    reps = np.stack([first.log_z_replicates, second.log_z_replicates], axis=1)
    reps = reps[np.all(np.isfinite(reps), axis=1)]
    correlation = np.corrcoef(reps.T)[0, 1] if reps.shape[0] > 2 else math.nan
    return _difference(
        first,
        second,
        -(second.log_z_replicates - first.log_z_replicates),
        _standard_error(relative[1] - relative[0], units),
        correlation,
        "one sample set",
        first.confidence,
    )


def free_energy_difference_independent(
    first: FreeEnergyResult, second: FreeEnergyResult, *, seed: int = 0
) -> FreeEnergyDifference:
    """`beta_2 F_2 - beta_1 F_1` from free energies estimated from **two independent** sample
    sets (e.g. a flow trained at `T_1` and one at `T_2`): errors add in quadrature.

    **Arguments:**

    - `first`, `second`: `free_energy` results at `T_1` and `T_2`, from independent samples.
    - `seed`: seed of the random pairing of their bootstrap replicates, whose differences
      give the percentile interval.

    **Returns:**

    A `FreeEnergyDifference` (`route == "independent sample sets"`, `correlation == 0`).
    """
    for name, value in (("first", first), ("second", second)):
        if not isinstance(value, FreeEnergyResult):
            raise TypeError(
                f"`{name}` must be a FreeEnergyResult (from free_energy); got "
                f"{type(value).__name__}."
            )
    if None not in (first.num_particles, second.num_particles) and (
        first.num_particles != second.num_particles
    ):
        raise ValueError(
            f"the two free energies are of different systems (N = {first.num_particles} and "
            f"N = {second.num_particles}); compare one system at two temperatures."
        )
    one = first.log_z_replicates[np.isfinite(first.log_z_replicates)]
    two = second.log_z_replicates[np.isfinite(second.log_z_replicates)]
    rng = np.random.default_rng(int(seed))
    size = min(one.size, two.size)
    paired = -(rng.permutation(two)[:size] - rng.permutation(one)[:size])
    delta_errs = [r.free_energy_delta_err / r.temperature for r in (first, second)]
    out = _difference(
        first,
        second,
        paired,
        math.hypot(*delta_errs),
        0.0,
        "independent sample sets",
        min(first.confidence, second.confidence),
    )
    err = math.hypot(first.log_z_err, second.log_z_err)
    n = out.num_particles
    return dataclasses.replace(
        out, delta_beta_f_err=err, delta_beta_f_per_particle_err=None if n is None else err / n
    )
