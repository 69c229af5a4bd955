"""Raw and reweighted averages of observables, with error bars.

Error bars take the independent units of the data as given by the caller: each sample (the
default: generated flow samples are independent draws) or, with `chains=`, each Monte Carlo
chain (or block of consecutive samples), whose samples are correlated with each other but not
with those of another chain. The standard error of a mean is then the scatter of the chain
sums, and the bootstrap resamples whole chains.
"""

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import numpy as np
from jaxtyping import ArrayLike, Real

from ._results import plain_dict
from ._weights import log_weights_of, normalized_weights, require_some_weight
from .reweight import LogWeights

#: Bootstrap resamples are drawn in blocks of at most this many (resample x sample) entries,
#: which bounds the memory of the bootstrap whatever R and the number of resamples.
_BLOCK_ENTRIES = 1 << 21


@dataclasses.dataclass(frozen=True)
class ObservableSummary:
    """An observable estimated from `R` samples, raw (each sample counts once) next to
    reweighted (self-normalised importance weights).

    Values are python floats for a scalar observable, or arrays of the observable's shape.

    **Fields:**

    - `name`: what was estimated.
    - `raw`: the unweighted estimate over the samples with a finite observable.
    - `raw_err`: its standard error (see `raw_error_method`): for a plain mean `std / sqrt(n)`
      over independent samples, or over chains the scatter of the chain sums
      `sqrt(C / (C - 1) sum_c (S_c - n_c raw)^2) / n` (`std(chain means) / sqrt(C)` for equal
      chains); for a nonlinear statistic the bootstrap standard deviation (resampling samples,
      or whole chains).
    - `raw_num_used`: samples entering `raw` (those whose observable is finite).
    - `reweighted`: the self-normalised importance-sampling estimate, or `None` without weights.
    - `reweighted_err`: bootstrap standard deviation of `reweighted`: resample (observable,
      log w) pairs (or whole chains of them) with replacement, renormalise the weights inside
      each resample, recompute.
    - `reweighted_low`, `reweighted_high`: the percentile bootstrap interval at `confidence`.
    - `confidence`: the coverage the interval aims at, e.g. 0.95.
    - `num_samples`: `R`.
    - `ess`: effective sample size of the weights, or `None` without weights.
    - `num_bootstrap`, `seed`: the bootstrap settings (the same seed gives the same numbers).
    - `raw_error_method`: `"standard error"` or `"bootstrap"` over independent samples, or
      `"standard error over chains"` or `"bootstrap over chains"`.
    - `num_chains`: the number of chains the errors treat as independent units, or `None`
      when every sample is one.
    """

    name: str
    raw: float | np.ndarray
    raw_err: float | np.ndarray
    raw_num_used: int
    reweighted: float | np.ndarray | None
    reweighted_err: float | np.ndarray | None
    reweighted_low: float | np.ndarray | None
    reweighted_high: float | np.ndarray | None
    confidence: float
    num_samples: int
    ess: float | None
    num_bootstrap: int
    seed: int
    raw_error_method: str
    num_chains: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict (arrays become nested lists)."""
        return plain_dict(self)


def _as_samples(values: Any) -> tuple[np.ndarray, tuple[int, ...]]:
    """`values` of shape `(R, ...)` as float64 `(R, K)` plus the per-sample shape."""
    arr = np.asarray(values)
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise TypeError(
            f"`values` must be a real numeric array of shape (num_samples, ...); got dtype "
            f"{arr.dtype}."
        )
    if arr.ndim == 0 or arr.shape[0] == 0:
        raise ValueError(
            f"`values` must have one entry per sample along axis 0; got shape {arr.shape}."
        )
    shape = arr.shape[1:]
    return arr.reshape(arr.shape[0], -1).astype(np.float64), shape


def _chain_index(chains: Any, num: int) -> tuple[np.ndarray, int]:
    """`chains` (one label per sample) as `(index of each sample's chain in 0..C-1, C)`."""
    labels = np.asarray(chains)
    if labels.shape != (num,) or not (
        np.issubdtype(labels.dtype, np.integer) or np.issubdtype(labels.dtype, np.floating)
    ):
        raise ValueError(
            f"`chains` must hold one numeric chain label per sample, shape ({num},); got shape "
            f"{labels.shape}, dtype {labels.dtype}. Pass e.g. Dataset.extra['chain']."
        )
    if not np.all(np.isfinite(labels)):
        raise ValueError("`chains` has non-finite labels; every sample needs its chain.")
    _, index = np.unique(labels, return_inverse=True)
    return index.reshape(num), int(index.max()) + 1


def unit_counts(num_units: int, count: int, rng) -> np.ndarray:
    """How often each of `num_units` independent units is drawn in each of `count` bootstrap
    resamples (`num_units` draws with replacement each), as float64 of shape
    `(count, num_units)`; every row sums to `num_units`."""
    idx = rng.integers(0, num_units, size=(count, num_units))
    flat = (np.arange(count)[:, None] * num_units + idx).ravel()
    counts = np.bincount(flat, minlength=count * num_units).reshape(count, num_units)
    return counts.astype(np.float64)


def _resample_weights(
    base: np.ndarray | None,
    log_w: np.ndarray | None,
    units: np.ndarray | None,
    num_units: int,
    count: int,
    rng,
):
    """Normalised weights of `count` bootstrap resamples, shape `(count, num)`.

    A resample draws `num_units` independent units (samples, or chains when `units` gives the
    unit of each sample) with replacement; a sample whose unit is drawn `c` times contributes
    `c * w_i` to its weights, then the row is renormalised. `base` holds the normalised
    weights of all samples (0 for non-finite log w), or is `None` for equal weights."""
    counts = unit_counts(num_units, count, rng)
    if units is not None:
        counts = counts[:, units]
    if base is None:
        return counts / np.sum(counts, axis=1, keepdims=True)
    w = counts * base[None, :]
    # A resample that missed every large weight may be left with underflowed (or subnormal)
    # weights under the global shift: renormalise those rows with their own maximum.
    tiny = np.max(w, axis=1) < 1e-200
    if np.any(tiny):
        chosen = np.where(counts[tiny] > 0, log_w[None, :], -np.inf)
        w[tiny] = normalized_weights(chosen) * counts[tiny]
    total = np.sum(w, axis=1, keepdims=True)
    return np.divide(w, total, out=np.full_like(w, np.nan), where=total > 0)


def bootstrap_weighted_means(
    values: Real[ArrayLike, "r ..."],
    log_weights: LogWeights | None = None,
    *,
    chains: Real[ArrayLike, " r"] | None = None,
    num_bootstrap: int = 1000,
    seed: int = 0,
) -> np.ndarray:
    """Bootstrap replicates of the (self-normalised, importance-weighted) mean of `values`.

    Each replicate resamples the `R` pairs `(values_i, log_w_i)` with replacement (or, with
    `chains`, the `C` chains of pairs, each drawn chain bringing all its samples) and
    renormalises the weights inside the resample, so the spread of the replicates estimates the
    sampling error of the self-normalised estimator including the error of its normaliser.

    **Arguments:**

    - `values`: per-sample observable, shape `(R, ...)`; must be finite wherever the weight is
      positive.
    - `log_weights`: log importance weights `(R,)` (non-finite means weight 0), a
      `ReweightResult`, or `None` for equal weights (the plain bootstrap of the mean).
    - `chains`: the chain label of each sample, shape `(R,)`, when samples of one chain are
      correlated (Monte Carlo data: `Dataset.extra["chain"]`); `None` when the samples are
      independent.
    - `num_bootstrap`: number of resamples.
    - `seed`: seed of the resampling (a numpy `Generator`); fixed by default so that a report
      is reproducible.

    **Returns:**

    Array of shape `(num_bootstrap, ...)`. A resample whose drawn samples all have weight 0
    gives NaN.
    """
    data, shape = _as_samples(values)
    num = data.shape[0]
    units, num_units = (None, num) if chains is None else _chain_index(chains, num)
    log_w = None
    if log_weights is not None:
        log_w = log_weights_of(log_weights, num)
        require_some_weight(log_w)
        _check_finite_where_weighted(data, log_w)
        data = np.where(np.isfinite(log_w)[:, None], data, 0.0)
    elif not np.all(np.isfinite(data)):
        raise ValueError(
            "`values` has non-finite entries; drop those samples or pass log weights that give "
            "them weight 0."
        )
    if int(num_bootstrap) < 2:
        raise ValueError(f"`num_bootstrap` must be at least 2; got {num_bootstrap}.")
    base = None if log_w is None else normalized_weights(log_w)
    rng = np.random.default_rng(int(seed))
    block = max(1, min(int(num_bootstrap), _BLOCK_ENTRIES // num))
    out = np.empty((int(num_bootstrap), data.shape[1]))
    for start in range(0, int(num_bootstrap), block):
        count = min(block, int(num_bootstrap) - start)
        w = _resample_weights(base, log_w, units, num_units, count, rng)
        out[start : start + count] = w @ data
    return out.reshape((int(num_bootstrap), *shape))


def weighted_mean(values: Real[ArrayLike, "r ..."], log_weights: LogWeights) -> float | np.ndarray:
    """Self-normalised importance-sampling mean `sum_i w_i values_i`, `w = softmax(log_w)`,
    with weight 0 for non-finite `log_w`.

    **Arguments:**

    - `values`: per-sample observable, shape `(R, ...)`, finite wherever the weight is positive.
    - `log_weights`: log importance weights `(R,)` or a `ReweightResult`.

    **Returns:**

    A float for a scalar observable, otherwise an array of shape `values.shape[1:]`.
    """
    data, shape = _as_samples(values)
    log_w = log_weights_of(log_weights, data.shape[0])
    require_some_weight(log_w)
    _check_finite_where_weighted(data, log_w)
    data = np.where(np.isfinite(log_w)[:, None], data, 0.0)
    return _shaped(normalized_weights(log_w) @ data, shape)


def _check_finite_where_weighted(data: np.ndarray, log_w: np.ndarray) -> None:
    bad = np.isfinite(log_w) & ~np.all(np.isfinite(data), axis=1)
    if np.any(bad):
        first = int(np.nonzero(bad)[0][0])
        raise ValueError(
            f"the observable is non-finite in {int(np.count_nonzero(bad))} sample(s) that carry "
            f"weight (first: index {first}); a reweighted average cannot skip them without bias. "
            "Fix the observable, or give those samples log weight -inf on purpose."
        )


def _shaped(value: Any, shape: tuple[int, ...]) -> float | np.ndarray:
    value = np.asarray(value).reshape(shape)
    return float(value) if shape == () else value


def _chain_standard_error(data: np.ndarray, units: np.ndarray) -> np.ndarray:
    """Standard error of the column means of `data` `(n, K)` whose rows fall into chains
    (`units`: chain index of each row): `sqrt(C / (C - 1) sum_c (S_c - n_c m)^2) / n` with
    `S_c` the chain sums and `n_c` the chain lengths (the scatter of the chain means over
    `sqrt(C)` for chains of equal length). NaN for a single chain."""
    present, units = np.unique(units, return_inverse=True)
    num_chains = present.size
    if num_chains < 2:
        return np.full(data.shape[1], np.nan)
    sums = np.zeros((num_chains, data.shape[1]))
    np.add.at(sums, units, data)
    lengths = np.bincount(units, minlength=num_chains)[:, None]
    mean = np.sum(sums, axis=0) / data.shape[0]
    scatter = np.sum((sums - lengths * mean) ** 2, axis=0)
    return np.sqrt(num_chains / (num_chains - 1) * scatter) / data.shape[0]


def summarize_moments(
    moments: Real[ArrayLike, "r k"],
    log_weights: LogWeights | None = None,
    *,
    chains: Real[ArrayLike, " r"] | None = None,
    statistic: Callable[[np.ndarray], np.ndarray] | None = None,
    name: str = "observable",
    num_bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> ObservableSummary:
    """Raw and reweighted estimates of `statistic(mean of moments)`, with bootstrap errors.

    This is the engine behind `summarize_observable` (where `statistic` is the identity) and
    nonlinear observables such as the specific heat (`statistic(m) = (m[1] - m[0]^2) / ...`).

    **Arguments:**

    - `moments`: per-sample quantities whose means enter the statistic, shape `(R, K)`.
    - `log_weights`: log importance weights `(R,)`, a `ReweightResult`, or `None` for raw only.
    - `chains`: the chain (or block) label of each sample, shape `(R,)`, for correlated
      samples: the errors then treat the chains as the independent units. `None` (the
      default) treats every sample as independent (right for generated flow samples).
    - `statistic`: maps means of shape `(..., K)` to the estimate (vectorised over leading
      axes); `None` for the means themselves.
    - `name`, `num_bootstrap`, `confidence`, `seed`: as in `summarize_observable`.

    **Returns:**

    An `ObservableSummary`.
    """
    data, _ = _as_samples(moments)
    num = data.shape[0]
    units, num_chains = (None, None) if chains is None else _chain_index(chains, num)
    if not 0.0 < float(confidence) < 1.0:
        raise ValueError(f"`confidence` must lie strictly between 0 and 1; got {confidence}.")
    fn = (lambda m: m) if statistic is None else statistic
    finite_rows = np.all(np.isfinite(data), axis=1)
    used = int(np.count_nonzero(finite_rows))
    if used == 0:
        raise ValueError(f"`{name}` is non-finite in every sample; nothing to average.")
    raw_data = data[finite_rows]
    raw_units = None if units is None else units[finite_rows]
    raw = np.asarray(fn(np.mean(raw_data, axis=0)))
    method = "standard error" if statistic is None else "bootstrap"
    if units is not None:
        method += " over chains"
    # one independent unit says nothing about its own spread
    independent = used if raw_units is None else np.unique(raw_units).size
    if independent < 2:
        raw_err = np.full_like(raw, np.nan)
    elif statistic is None and raw_units is None:
        raw_err = np.std(raw_data, axis=0, ddof=1) / math.sqrt(used)
    elif statistic is None:
        raw_err = _chain_standard_error(raw_data, raw_units)
    else:
        reps = bootstrap_weighted_means(
            raw_data, None, chains=raw_units, num_bootstrap=num_bootstrap, seed=seed
        )
        raw_err = np.std(np.asarray(fn(reps)), axis=0, ddof=1)
    out_shape = raw.shape

    reweighted = err = low = high = ess = None
    if log_weights is not None:
        log_w = log_weights_of(log_weights, num)
        weights = normalized_weights(log_w)
        ess = float(1.0 / np.sum(weights**2)) if np.any(weights > 0) else 0.0
        reweighted = np.asarray(fn(weighted_mean(data, log_w)))
        reps = bootstrap_weighted_means(
            data, log_w, chains=units, num_bootstrap=num_bootstrap, seed=seed
        )
        reps = np.asarray(fn(reps))
        good = np.all(np.isfinite(reps.reshape(reps.shape[0], -1)), axis=1)
        reps = reps[good]
        err = np.std(reps, axis=0, ddof=1) if reps.shape[0] > 1 else np.full_like(raw, np.nan)
        tail = 50.0 * (1.0 - float(confidence))
        low, high = np.percentile(reps, [tail, 100.0 - tail], axis=0)
        reweighted, err, low, high = (_shaped(v, out_shape) for v in (reweighted, err, low, high))
    return ObservableSummary(
        name=name,
        raw=_shaped(raw, out_shape),
        raw_err=_shaped(raw_err, out_shape),
        raw_num_used=used,
        reweighted=reweighted,
        reweighted_err=err,
        reweighted_low=low,
        reweighted_high=high,
        confidence=float(confidence),
        num_samples=num,
        ess=ess,
        num_bootstrap=int(num_bootstrap),
        seed=int(seed),
        raw_error_method=method,
        num_chains=num_chains,
    )


def summarize_observable(
    values: Real[ArrayLike, "r ..."],
    log_weights: LogWeights | None = None,
    *,
    chains: Real[ArrayLike, " r"] | None = None,
    name: str = "observable",
    num_bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> ObservableSummary:
    """Raw mean (with its standard error) next to the reweighted mean (with bootstrap errors).

    The raw mean is what the model's samples say as drawn; the reweighted mean is the consistent
    estimate of the Boltzmann average `<A>_p = sum_i w_i A_i`. Their difference shows how much
    the reweighting corrects. Trust the reweighted error bars only as far as the weights allow:
    check `ReweightResult.khat` (below 0.7) and the ESS.

    **Arguments:**

    - `values`: the observable per sample, shape `(R,)` or `(R, ...)` (e.g. a histogram per
      sample); it must be finite wherever the weight is positive (the raw mean skips
      non-finite samples and reports how many it used).
    - `log_weights`: log importance weights `(R,)` (non-finite means weight 0), a
      `ReweightResult`, or `None` for the raw mean only.
    - `chains`: the chain label of each sample `(R,)` for correlated samples (Monte Carlo
      data: `Dataset.extra["chain"]`): the standard error and the bootstrap then take the
      chains as the independent units. `None` (default): the samples are independent, as
      generated flow samples are.
    - `name`: label carried into the summary.
    - `num_bootstrap`: bootstrap resamples for the reweighted error.
    - `confidence`: coverage of the percentile interval (`reweighted_low`, `reweighted_high`).
    - `seed`: bootstrap seed (fixed by default: reports are reproducible).

    **Returns:**

    An `ObservableSummary`; scalars for a scalar observable, arrays otherwise.
    """
    data, shape = _as_samples(values)
    summary = summarize_moments(
        data,
        log_weights,
        chains=chains,
        name=name,
        num_bootstrap=num_bootstrap,
        confidence=confidence,
        seed=seed,
    )
    fields = ("raw", "raw_err", "reweighted", "reweighted_err", "reweighted_low", "reweighted_high")
    return dataclasses.replace(
        summary,
        **{
            f: _shaped(np.asarray(getattr(summary, f)), shape)
            for f in fields
            if getattr(summary, f) is not None
        },
    )
