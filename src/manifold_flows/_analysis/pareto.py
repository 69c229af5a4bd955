"""Pareto k-hat: how heavy is the tail of the importance weights (the PSIS diagnostic)?

The effective sample size is itself an estimate built from the weights, and it is most wrong
exactly when it matters: when a few rare, huge weights have not been drawn yet. Pareto smoothed
importance sampling (Vehtari, Simpson, Gelman, Yao & Gabry) reads the tail instead: fit a
generalised Pareto distribution (GPD) to the largest weights; its shape `k` says how many moments
the weight distribution has (the moment of order `1/k` and above are infinite).
"""

import dataclasses
import math

import numpy as np
from jaxtyping import ArrayLike, Real

from ._weights import as_vector

#: Below this k-hat the weights have a finite variance: ESS and error bars behave.
KHAT_GOOD = 0.5
#: Above this k-hat importance-sampling estimates are unreliable for any practical sample size.
KHAT_BAD = 0.7
#: PSIS regularisation: the fitted shape is pulled towards 0.5 as if by this many extra points.
_PRIOR_STRENGTH = 10.0
_PRIOR_SHAPE = 0.5
#: Tail fits need at least this many tail points; with fewer, k-hat is reported as NaN.
_MIN_TAIL = 5


#: smallest first-quartile-to-maximum ratio the grid of fit_generalized_pareto handles
_MIN_QUARTILE = 1e-300


def fit_generalized_pareto(exceedances: Real[ArrayLike, " m"]) -> tuple[float, float]:
    """Fit a generalised Pareto distribution with location 0 to positive exceedances.

    The GPD with shape `xi` and scale `sigma > 0` has survival function
    `P(X > x) = (1 + xi x / sigma)^(-1/xi)` (exponential for `xi = 0`); moments of order
    `>= 1/xi` are infinite when `xi > 0`. The fit is the empirical-Bayes estimator of Zhang &
    Stephens (Technometrics, 2009), implemented here from its formulas: with `theta = xi / sigma`,
    the profile likelihood over `xi` is maximised in closed form,
    `xi(theta) = mean(log(1 + theta x))` and
    `l(theta) = m [log(theta / xi(theta)) - xi(theta) - 1]`;
    `theta` is then the posterior mean over a fixed grid of `30 + floor(sqrt(m))` points spread
    between `-1 / max(x)` and the scale of the first quartile (weights proportional to
    `exp(l)`), and `xi = xi(theta_hat)`, `sigma = xi / theta_hat`.

    Unlike plain maximum likelihood it never fails to converge, is defined for every shape
    (including `xi > 1`, where the likelihood of the MLE is unbounded), and is nearly unbiased
    for the tail sizes used by PSIS; no prior is applied here (see `pareto_khat`).

    **Arguments:**

    - `exceedances`: values above a threshold, minus the threshold (`>= 0`, not all zero).

    **Returns:**

    `(xi, sigma)` as python floats; `(inf, nan)` when a quarter of the values are below 1e-300
    times the largest (no finite shape can be resolved).
    """
    x = np.sort(as_vector(exceedances, "exceedances"))
    if not np.all(np.isfinite(x)) or x[0] < 0:
        raise ValueError(
            "`exceedances` must be finite and non-negative (values above a threshold minus the "
            f"threshold); got min {x[0]}, max {x[-1]}."
        )
    n = x.shape[0]
    if n < 2 or x[-1] <= 0:
        raise ValueError(
            f"`exceedances` needs at least two values and a positive maximum; got {n} value(s) "
            f"with maximum {x[-1]}."
        )
    # The shape does not depend on the scale: fit x / max(x) (keeps the grid below in range)
    # and scale sigma back at the end.
    scale = x[-1]
    x = x / scale
    m = 30 + math.isqrt(n)
    quartile = x[max(math.floor(n / 4 + 0.5) - 1, 0)]
    if quartile <= 0:  # many exact ties at the threshold: fall back to the smallest positive one
        quartile = x[x > 0][0]
    if quartile < _MIN_QUARTILE:
        # a quarter of the values are 1e-300 times the largest or less: heavier than any
        # shape the grid can resolve (see pareto_khat, which never gets here)
        return math.inf, math.nan
    j = np.arange(1, m + 1, dtype=np.float64)
    theta = -1.0 / x[-1] + (np.sqrt(m / (j - 0.5)) - 1.0) / (3.0 * quartile)
    # Every grid point satisfies 1 + theta * x > 0 for all x, so the log1p below is finite.
    xi = np.mean(np.log1p(theta[:, None] * x[None, :]), axis=1)
    profile = n * (np.log(theta / xi) - xi - 1.0)
    post = np.exp(profile - np.max(profile))
    post /= np.sum(post)
    theta_hat = float(np.sum(post * theta))
    xi_hat = float(np.mean(np.log1p(theta_hat * x)))
    sigma_hat = xi_hat / theta_hat if theta_hat != 0.0 else float(np.mean(x))
    return xi_hat, float(sigma_hat * scale)


@dataclasses.dataclass(frozen=True)
class ParetoDiagnostic:
    """The Pareto k-hat diagnostic of a set of importance weights.

    How to read `khat` (Vehtari et al., "Pareto smoothed importance sampling"):

    - `khat < 0.5` (`status == "good"`): the weights have a finite variance; ESS and bootstrap
      error bars can be trusted.
    - `0.5 <= khat <= khat_threshold` (`"ok"`): infinite variance but a finite mean; estimates
      still converge at a usable rate, error bars are optimistic.
    - `khat > khat_threshold` (`"bad"`): so heavy a tail that reweighted averages, the ESS and
      log Z are unreliable however they look; the model's density misses regions the target
      visits.
    - `khat == -inf`: the largest weights are all equal (no tail at all: the ideal sampler).
    - `khat == +inf` (`"bad"`): the largest weights span more than 300 orders of magnitude,
      beyond what floating point can fit; one or a few samples carry all the weight.
    - `khat` is NaN (`"unknown"`) when there are too few finite weights to fit a tail.

    **Fields:**

    - `khat`: the regularised GPD shape of the weight tail.
    - `sigma`: the fitted GPD scale, in units of the largest weight (NaN if not fitted).
    - `tail_size`: number of largest weights used, `M = ceil(min(R / 5, 3 sqrt(R)))` of the
      `R` finite weights.
    - `khat_threshold`: the sample-size-aware limit `min(1 - 1 / log10(R), 0.7)` above which the
      status is `"bad"` (at small `R` even a moderate tail is not sampled well enough).
    - `status`: `"good"`, `"ok"`, `"bad"` or `"unknown"` as above.
    - `note`: a sentence explaining the value.
    """

    khat: float
    sigma: float
    tail_size: int
    khat_threshold: float
    status: str
    note: str


#: log(1e-300): weights further below the largest than this are not fitted (see pareto_khat).
_LOG_FLOAT_RANGE = -300.0 * math.log(10.0)


def _khat_threshold(num: int) -> float:
    if num <= 10:
        return 0.0
    return min(1.0 - 1.0 / math.log10(num), KHAT_BAD)


def _status(khat: float, threshold: float) -> str:
    if math.isnan(khat):
        return "unknown"
    if khat < KHAT_GOOD:
        return "good"
    if khat <= threshold:
        return "ok"
    return "bad"


def pareto_khat(log_weights: Real[ArrayLike, " r"]) -> ParetoDiagnostic:
    """Pareto k-hat of importance weights given as log weights (any additive constant).

    Non-finite log weights are weight zero and take no part in the tail. Of the `R` finite
    ones, the `M = ceil(min(R / 5, 3 sqrt(R)))` largest weights are taken; their exceedances over
    the `(M + 1)`-th largest weight are fitted by `fit_generalized_pareto`, and the shape is
    regularised as in PSIS, `k = (M xi + 10 * 0.5) / (M + 10)`, which steadies small tails and
    changes large ones little. Weights are scaled by the largest one first, so the result does
    not depend on the normalisation of `log_weights`.

    **Arguments:**

    - `log_weights`: log importance weights, shape `(R,)`.

    **Returns:**

    A `ParetoDiagnostic` (see there for how to read it).
    """
    lw = as_vector(log_weights, "log_weights")
    lw = np.sort(lw[np.isfinite(lw)])
    num = lw.shape[0]
    threshold = _khat_threshold(num)
    tail = math.ceil(min(0.2 * num, 3.0 * math.sqrt(num))) if num else 0

    def diagnostic(**fields) -> ParetoDiagnostic:  # the tail size and threshold of every case
        return ParetoDiagnostic(tail_size=tail, khat_threshold=threshold, **fields)

    if tail < _MIN_TAIL or tail + 1 > num:
        return diagnostic(
            khat=math.nan,
            sigma=math.nan,
            status="unknown",
            note=(
                f"only {num} finite weight(s): a tail fit needs at least {_MIN_TAIL} tail points "
                "(about 25 samples); k-hat is not estimated."
            ),
        )
    top = lw[-1]
    cut = lw[-tail - 1]
    # The log weights carry round-off of order eps * |log w|; a spread below that is no tail.
    if top - cut <= 1e-10 * max(1.0, abs(top)):
        return diagnostic(
            khat=-math.inf,
            sigma=0.0,
            status="good",
            note="the largest weights are all equal (up to round-off): the weights have no tail.",
        )
    if lw[-tail] - top < _LOG_FLOAT_RANGE:
        # Some of the M largest weights are more than ~1e-300 times the largest: in floating
        # point they are zero next to it, so no tail can be fitted, and no fit is needed: one
        # or a few samples carry all the weight. (Fitting the underflowed zeros regardless
        # returns arbitrary shapes, "good" ones included.)
        return diagnostic(
            khat=math.inf,
            sigma=math.nan,
            status="bad",
            note=(
                f"the {tail} largest weights span {top - lw[-tail]:.3g} nats (more than floating "
                "point holds): one or a few samples carry all the weight; the weights are not "
                "usable."
            ),
        )
    exceed = np.exp(lw[-tail:] - top) - math.exp(cut - top)
    xi, sigma = fit_generalized_pareto(np.maximum(exceed, 0.0))
    khat = (tail * xi + _PRIOR_STRENGTH * _PRIOR_SHAPE) / (tail + _PRIOR_STRENGTH)
    status = _status(khat, threshold)
    notes = {
        "good": "k-hat < 0.5: finite-variance weights; ESS and error bars are trustworthy.",
        "ok": (
            f"0.5 <= k-hat <= {threshold:.2f}: infinite-variance weights; estimates are usable "
            "but error bars are optimistic."
        ),
        "bad": (
            f"k-hat > {threshold:.2f}: the weight tail is too heavy; reweighted estimates, ESS and "
            "log Z are unreliable."
        ),
        "unknown": (
            "the tail fit gave no finite k-hat (the largest weights span too many orders of "
            "magnitude, e.g. one sample carries all the weight); the weights are not usable."
        ),
    }
    return diagnostic(
        khat=float(khat),
        sigma=float(sigma),
        status=status,
        note=notes[status],
    )
