"""Thermodynamic observables of particle systems: energy per particle, excess specific heat,
energy histograms against reference data, and the share of high-energy samples.

Energies are **total** potential energies U (the package's convention); per-particle values
are `u = U / N`.
"""

import dataclasses
import math
from typing import Any

import numpy as np
from jaxtyping import ArrayLike, Real

from ._weights import (
    as_positive_scalar,
    as_vector,
    log_weights_of,
    normalized_weights,
    require_some_weight,
)
from .estimators import (
    ObservableSummary,
    summarize_moments,
    summarize_observable,
    weighted_mean,
)
from .reweight import LogWeights


def _num_particles(value: Any, name: str = "num_particles") -> int:
    n = as_positive_scalar(value, name)
    if n != int(n):
        raise ValueError(f"`{name}` must be a positive integer; got {value}.")
    return int(n)


def energy_per_particle(
    energy: Real[ArrayLike, " r"],
    num_particles: int,
    log_weights: LogWeights | None = None,
    *,
    chains: Real[ArrayLike, " r"] | None = None,
    num_bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> ObservableSummary:
    """Mean potential energy per particle `u = <U> / N`, raw and reweighted.

    **Arguments:**

    - `energy`: total potential energy of each sample, shape `(R,)`.
    - `num_particles`: `N`.
    - `log_weights`: log importance weights `(R,)`, a `ReweightResult`, or `None`.
    - `chains`: the chain label of each sample `(R,)` when samples of a chain are correlated
      (Monte Carlo data: `Dataset.extra["chain"]`); the error then comes from the scatter of
      the chains. `None`: independent samples (generated flow samples).
    - `num_bootstrap`, `confidence`, `seed`: bootstrap settings (`summarize_observable`).

    **Returns:**

    An `ObservableSummary` named `"u"`.
    """
    u = as_vector(energy, "energy") / _num_particles(num_particles)
    return summarize_observable(
        u,
        log_weights,
        chains=chains,
        name="u",
        num_bootstrap=num_bootstrap,
        confidence=confidence,
        seed=seed,
    )


def specific_heat(
    energy: Real[ArrayLike, " r"],
    num_particles: int,
    temperature: float | int | Real[ArrayLike, ""],
    log_weights: LogWeights | None = None,
    *,
    chains: Real[ArrayLike, " r"] | None = None,
    num_bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> ObservableSummary:
    """Excess (configurational) specific heat per particle, `c_v = (<U^2> - <U>^2) / (N T^2)`
    (`k_B = 1`), raw and reweighted, both with bootstrap errors.

    The moments are taken about the weighted mean energy when weights are given, else about
    the raw mean (the variance does not depend on the shift, and `<U^2> - <U>^2` cancels
    catastrophically when the shift is far from the mean it estimates, next to the spread).
    A poor flow's raw samples may include overlapping particles (U ~ 1e20) that carry no
    weight: about the raw mean the reweighted estimate would lose every digit, while about the
    weighted mean (a point among the samples) the raw one loses at most about `log10 R` of
    float64's 16 (Chebyshev). The raw estimate is the plain (biased, `1/R`) sample variance,
    which is what the moment formula gives; the reweighted one is
    `sum_i w_i U_i^2 - (sum_i w_i U_i)^2`.

    **Arguments:**

    - `energy`: total potential energy of each sample, shape `(R,)`.
    - `num_particles`: `N`.
    - `temperature`: `T > 0` of the ensemble.
    - `log_weights`: log importance weights `(R,)`, a `ReweightResult`, or `None`.
    - `chains`: the chain label of each sample `(R,)` when samples of a chain are correlated
      (Monte Carlo data: `Dataset.extra["chain"]`); the bootstrap then resamples whole
      chains. `None`: independent samples (generated flow samples).
    - `num_bootstrap`, `confidence`, `seed`: bootstrap settings (`summarize_observable`).

    **Returns:**

    An `ObservableSummary` named `"c_v"` (errors by bootstrap for raw and reweighted alike).
    """
    e = as_vector(energy, "energy")
    n = _num_particles(num_particles)
    t = as_positive_scalar(temperature, "temperature")
    finite = e[np.isfinite(e)]
    scale = 1.0 / (n * t * t)

    def statistic(m: np.ndarray) -> np.ndarray:
        return np.asarray((m[..., 1] - m[..., 0] ** 2) * scale)

    shift = float(np.mean(finite)) if finite.size else 0.0
    if log_weights is not None:
        log_w = log_weights_of(log_weights, e.size)
        weighted = np.isfinite(log_w) & np.isfinite(e)
        if np.any(weighted):  # none: summarize_moments says what is wrong with the weights
            shift = float(weighted_mean(e[weighted], log_w[weighted]))
    centred = e - shift
    return summarize_moments(
        np.stack([centred, centred**2], axis=1),
        log_weights,
        chains=chains,
        statistic=statistic,
        name="c_v",
        num_bootstrap=num_bootstrap,
        confidence=confidence,
        seed=seed,
    )


def high_energy_threshold(reference_energies: Real[ArrayLike, " m"]) -> float:
    """The energy above which a sample counts as "high energy": `E_max + |E_max|`, with `E_max`
    the largest finite reference energy.

    For `E_max >= 0` this is `2 E_max`, "twice the largest reference energy", the eRSI paper's
    measure (its IPL energies are positive). For `E_max < 0` (attractive systems such as
    Kob-Andersen) "twice" would put the threshold *below* the reference maximum, calling
    typical equilibrium samples bad; `E_max + |E_max| = 0` keeps the same meaning, "above the
    largest reference energy by a margin as large as that energy's distance from zero". The
    rule is continuous in `E_max`, never below `E_max`, and scales with the energies (`c > 0`
    times the energies gives `c` times the threshold), so comparing total energies or
    per-particle energies (same `N`) gives the same fraction.
    """
    ref = as_vector(reference_energies, "reference_energies")
    ref = ref[np.isfinite(ref)]
    if ref.size == 0:
        raise ValueError("`reference_energies` has no finite value; cannot set a threshold.")
    top = float(np.max(ref))
    return top + abs(top)


def high_energy_fraction(
    energies: Real[ArrayLike, " r"],
    reference_energies: Real[ArrayLike, " m"],
) -> float:
    """Share of samples whose energy exceeds `high_energy_threshold(reference_energies)`
    (twice the largest reference energy when that is positive; see there for negative ones).

    Pass both arrays in the same units: total energies at the same `N`, or per-particle
    energies when the particle numbers differ. A sample with a NaN or infinite energy counts
    as high-energy (a broken sample is not a good one); the denominator is every sample.

    **Arguments:**

    - `energies`: energies of the generated samples, shape `(R,)`.
    - `reference_energies`: energies of equilibrium reference samples, shape `(M,)`.

    **Returns:**

    The fraction in `[0, 1]`, a python float.
    """
    e = as_vector(energies, "energies")
    threshold = high_energy_threshold(reference_energies)
    high = ~(e <= threshold)  # NaN compares False, so NaN counts as high
    return float(np.count_nonzero(high) / e.shape[0])


@dataclasses.dataclass(frozen=True)
class EnergyHistogram:
    """Histograms of sample energies (raw and reweighted) and of reference energies on one grid.

    Densities are normalised by the **total** number of samples (or the total weight), not by
    the samples inside the grid: the area under a curve is the share of samples inside
    `[edges[0], edges[-1])`, so samples far off the reference range show as missing area and
    in `num_below` / `num_above` instead of stretching the axis.

    **Fields:**

    - `edges`: bin edges, shape `(bins + 1,)`; `centers`: bin centres.
    - `density`: raw density of the samples.
    - `density_reweighted`: importance-weighted density, or `None`.
    - `reference_density`: density of the reference energies, or `None`.
    - `num_below`, `num_above`: samples below the first / at or above the last edge.
    - `num_nonfinite`: samples with NaN or infinite energy (in no bin).
    - `per_particle`: whether the energies were divided by `N`.
    """

    edges: np.ndarray
    centers: np.ndarray
    density: np.ndarray
    density_reweighted: np.ndarray | None
    reference_density: np.ndarray | None
    num_below: int
    num_above: int
    num_nonfinite: int
    per_particle: bool


def energy_histogram(
    energies: Real[ArrayLike, " r"],
    reference_energies: Real[ArrayLike, " m"] | None = None,
    *,
    log_weights: LogWeights | None = None,
    num_particles: int | None = None,
    reference_num_particles: int | None = None,
    bins: int = 50,
    range: tuple[float, float] | None = None,
) -> EnergyHistogram:
    """Histogram of sample energies on a grid shared with reference energies.

    The default grid spans the reference energies widened by half their spread on each side
    (so moderately wrong samples stay visible while a few absurd ones do not squash the axis),
    or the finite sample energies when there is no reference.

    **Arguments:**

    - `energies`: energies of the samples, shape `(R,)`.
    - `reference_energies`: energies of reference samples, shape `(M,)`, or `None`.
    - `log_weights`: log importance weights `(R,)` or a `ReweightResult`, for a reweighted
      histogram.
    - `num_particles`: divide the sample energies by `N` (per-particle histogram).
    - `reference_num_particles`: `N` of the reference (default `num_particles`).
    - `bins`: number of bins.
    - `range`: `(low, high)` of the grid, overriding the default.

    **Returns:**

    An `EnergyHistogram`.
    """
    e = as_vector(energies, "energies")
    ref = None if reference_energies is None else as_vector(reference_energies, "reference")
    per_particle = num_particles is not None
    if per_particle:
        e = e / _num_particles(num_particles)
        if ref is not None:
            n_ref = num_particles if reference_num_particles is None else reference_num_particles
            ref = ref / _num_particles(n_ref, "reference_num_particles")
    elif reference_num_particles is not None:
        raise ValueError(
            "`reference_num_particles` needs `num_particles` too (both sets are divided by "
            "their own N); pass both or neither."
        )
    if int(bins) < 1:
        raise ValueError(f"`bins` must be a positive integer; got {bins}.")
    if range is not None:
        low, high = float(range[0]), float(range[1])
    else:
        base = ref[np.isfinite(ref)] if ref is not None else e[np.isfinite(e)]
        if base.size == 0:
            raise ValueError("no finite energy to set the histogram range; pass `range`.")
        low, high = float(base.min()), float(base.max())
        pad = 0.5 * (high - low) if high > low else max(abs(low), 1.0) * 0.1
        low, high = low - pad, high + pad
    if not (math.isfinite(low) and math.isfinite(high) and high > low):
        raise ValueError(f"`range` must be finite with low < high; got ({low}, {high}).")
    edges = np.linspace(low, high, int(bins) + 1)
    width = np.diff(edges)
    finite = np.isfinite(e)
    inside = finite & (e >= low) & (e < high)
    raw_counts, _ = np.histogram(e[inside], bins=edges)
    density = raw_counts / (e.shape[0] * width)
    reweighted = None
    if log_weights is not None:
        log_w = log_weights_of(log_weights, e.shape[0])
        require_some_weight(log_w)
        w = normalized_weights(log_w)
        wc, _ = np.histogram(e[inside], bins=edges, weights=w[inside])
        reweighted = wc / width
    ref_density = None
    if ref is not None:
        rf = ref[np.isfinite(ref)]
        rc, _ = np.histogram(rf[(rf >= low) & (rf < high)], bins=edges)
        ref_density = rc / (max(rf.shape[0], 1) * width)
    return EnergyHistogram(
        edges=edges,
        centers=0.5 * (edges[1:] + edges[:-1]),
        density=density,
        density_reweighted=reweighted,
        reference_density=ref_density,
        num_below=int(np.count_nonzero(finite & (e < low))),
        num_above=int(np.count_nonzero(finite & (e >= high))),
        num_nonfinite=int(np.count_nonzero(~finite)),
        per_particle=per_particle,
    )
