"""Equilibration and independence diagnostics: autocorrelation times and chain agreement.

These run on the host (NumPy) on the energy series a Monte Carlo run records; they never touch
the sampler itself.
"""

import dataclasses
import math
import warnings

import numpy as np
import scipy.stats


class MCDiagnosticWarning(UserWarning):
    """Base class of the warnings a Monte Carlo run raises about its own statistics."""


class SampleSpacingWarning(MCDiagnosticWarning):
    """Samples are spaced by fewer sweeps than a few energy autocorrelation times, so they are
    not nearly independent."""


class ChainDisagreementWarning(MCDiagnosticWarning):
    """The means of independent chains scatter more than their within-chain error bars allow
    (a chi-square test). The test does not say why: chains that are not equilibrated (or are
    stuck) cause it, and so does an autocorrelation longer than the estimated time, which makes
    the within-chain error bars too small."""


class AutocorrelationWarning(MCDiagnosticWarning):
    """The autocorrelation time could not be estimated reliably (series too short compared with
    the time itself, or constant)."""


@dataclasses.dataclass(frozen=True)
class AutocorrelationTime:
    """An integrated autocorrelation time, in units of the series' spacing.

    **Fields:**

    - `tau`: the integrated autocorrelation time `1 + 2 sum_{t>=1} rho(t)` (so independent
      points give 1 and the variance of a mean of `n` points is `var * tau / n`); `nan` for a
      constant series.
    - `error`: its statistical error (Madras-Sokal: `tau * sqrt(2 (2 M + 1) / n)`).
    - `window`: the summation window `M` chosen by Sokal's rule `M >= c tau(M)`.
    - `num_points`: number of points used (all chains together).
    - `reliable`: `False` when no window satisfied Sokal's rule, when a chain is shorter than
      `min_length * tau` (50 by default), or when the series is constant.
    """

    tau: float
    error: float
    window: int
    num_points: int
    reliable: bool

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def _autocovariance(x: np.ndarray) -> np.ndarray:
    """Autocovariance of each row of `x` (shape `(c, n)`), biased estimator, by FFT."""
    n = x.shape[-1]
    x = x - x.mean(axis=-1, keepdims=True)
    size = 1 << (2 * n - 1).bit_length()
    f = np.fft.rfft(x, n=size, axis=-1)
    return np.fft.irfft(f * np.conj(f), n=size, axis=-1)[..., :n] / n


def integrated_autocorrelation_time(
    series: np.ndarray, *, c: float = 5.0, min_length: float = 50.0
) -> AutocorrelationTime:
    """Estimate the integrated autocorrelation time of a stationary series with Sokal's
    automatic windowing.

    `tau(M) = 1 + 2 sum_{t=1}^{M} rho(t)` with `rho` the normalised autocorrelation; the window
    is the smallest `M` with `M >= c * tau(M)`. Several chains (rows) are pooled by averaging
    their autocovariances (each chain centred on its own mean), which is far less noisy than
    averaging per-chain estimates.

    **Arguments:**

    - `series`: shape `(n,)` for one chain or `(chains, n)`.
    - `c`: Sokal's window constant (5 is customary; larger is safer and noisier).
    - `min_length`: the estimate is flagged unreliable unless each chain is at least this
      many autocorrelation times long.

    **Returns:**

    An `AutocorrelationTime` (in units of the series' spacing).
    """
    x = np.asarray(series, dtype=np.float64)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2 or x.shape[1] < 2:
        raise ValueError(
            f"`series` must have shape (n,) or (chains, n) with n >= 2; got shape {x.shape}."
        )
    if not np.all(np.isfinite(x)):
        raise ValueError("`series` holds NaN or infinite values; clean the series first.")
    chains, n = x.shape
    acov = _autocovariance(x).mean(axis=0)
    if not acov[0] > 1e-300 * max(1.0, float(np.mean(x**2))):
        return AutocorrelationTime(math.nan, math.nan, 0, chains * n, False)
    rho = acov / acov[0]
    taus = 2.0 * np.cumsum(rho) - 1.0  # taus[M] = 1 + 2 sum_{t=1}^{M} rho(t)
    ok = np.arange(n) >= c * taus
    found = bool(np.any(ok))
    window = int(np.argmax(ok)) if found else n - 1
    tau = float(max(taus[window], 1e-12))
    # Windowing alone is fooled by series much shorter than tau (the biased autocovariance
    # decays artificially); ask for at least `min_length` tau per chain as well.
    reliable = found and n >= min_length * tau
    error = tau * math.sqrt(2.0 * (2 * window + 1) / (chains * n))
    return AutocorrelationTime(tau, error, window, chains * n, reliable)


@dataclasses.dataclass(frozen=True)
class ChainAgreement:
    """Do independent chains agree on a mean? A chi-square test of the chain means against
    their pooled (error-weighted) mean.

    **Fields:**

    - `chain_means`, `chain_errors`: per-chain means and their standard errors (corrected for
      autocorrelation with the pooled `tau`).
    - `pooled_mean`: error-weighted mean of the chain means.
    - `chi2`, `dof`, `p_value`: `sum_c (m_c - m)^2 / e_c^2`, `chains - 1`, and the chi-square
      survival probability (small = the chains disagree).
    - `tau`: the integrated autocorrelation time the errors were computed with (in units of the
      series' spacing, at least 1).
    """

    chain_means: np.ndarray
    chain_errors: np.ndarray
    pooled_mean: float
    chi2: float
    dof: int
    p_value: float
    tau: float

    def as_dict(self) -> dict:
        return {
            "chain_means": [float(v) for v in self.chain_means],
            "chain_errors": [float(v) for v in self.chain_errors],
            "pooled_mean": self.pooled_mean,
            "chi2": self.chi2,
            "dof": self.dof,
            "p_value": self.p_value,
            "tau": self.tau,
        }


def chain_agreement(series: np.ndarray, tau: float) -> ChainAgreement:
    """Chi-square test that the chains of `series` (shape `(chains, n)`) share one mean.

    Each chain's standard error is `sqrt(var_c * tau / n)` with `tau` the integrated
    autocorrelation time in units of the series' spacing (use the pooled estimate: per-chain
    estimates of short chains are noisy).
    """
    x = np.asarray(series, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] < 2:
        raise ValueError(f"`series` must have shape (chains, n) with n >= 2; got {x.shape}.")
    chains, n = x.shape
    tau = max(float(tau), 1.0) if math.isfinite(tau) else 1.0
    means = x.mean(axis=1)
    var = x.var(axis=1, ddof=1)
    errors = np.sqrt(np.maximum(var, 0.0) * tau / n)
    if chains < 2:
        return ChainAgreement(means, errors, float(means[0]), 0.0, 0, 1.0, tau)
    # Chains whose series is constant (error 0) would make the statistic infinite; give them a
    # floor at the smallest non-zero error so that a stuck chain still counts against the rest.
    positive = errors[errors > 0]
    floor = float(positive.min()) if positive.size else 1.0
    errors = np.where(errors > 0, errors, floor)
    w = 1.0 / errors**2
    pooled = float(np.sum(w * means) / np.sum(w))
    chi2 = float(np.sum(w * (means - pooled) ** 2))
    dof = chains - 1
    p_value = float(scipy.stats.chi2.sf(chi2, dof))
    return ChainAgreement(means, errors, pooled, chi2, dof, p_value, tau)


def mean_with_error(chain_means: np.ndarray) -> tuple[float, float]:
    """Mean over independent chains and its standard error from their scatter
    (`std(ddof=1) / sqrt(chains)`): needs no autocorrelation estimate. `nan` error for one
    chain."""
    m = np.asarray(chain_means, dtype=np.float64).reshape(-1)
    if m.size < 2:
        return float(m.mean()), math.nan
    return float(m.mean()), float(m.std(ddof=1) / math.sqrt(m.size))


def warn_spacing(sweeps_between: int, tau_sweeps: float, *, minimum: float = 3.0) -> bool:
    """Warn (`SampleSpacingWarning`) when samples are fewer than `minimum` autocorrelation times
    apart. Returns whether it warned."""
    if math.isfinite(tau_sweeps) and sweeps_between < minimum * tau_sweeps:
        warnings.warn(
            f"samples are {sweeps_between} sweeps apart but the energy autocorrelation time is "
            f"about {tau_sweeps:.3g} sweeps (spacing {sweeps_between / tau_sweeps:.2g} tau < "
            f"{minimum:g} tau): samples are correlated; raise sweeps_between to at least "
            f"{math.ceil(minimum * tau_sweeps)}.",
            SampleSpacingWarning,
            stacklevel=3,
        )
        return True
    return False


def warn_disagreement(agreement: ChainAgreement, *, threshold: float = 1e-3) -> bool:
    """Warn (`ChainDisagreementWarning`) when the chains' means disagree at p-value below
    `threshold`. Returns whether it warned.

    The message says what the test found (how far the chain means scatter beyond their
    within-chain error bars, and the largest single deviation) and lists the causes it cannot
    tell apart; it does not name one."""
    if agreement.dof > 0 and agreement.p_value < threshold:
        pulls = np.abs(agreement.chain_means - agreement.pooled_mean) / agreement.chain_errors
        worst = int(np.argmax(pulls))
        warnings.warn(
            f"the chain means of the energy scatter more than their within-chain error bars "
            f"allow: chi2/dof = {agreement.chi2 / agreement.dof:.3g} (chi2 = "
            f"{agreement.chi2:.4g} for {agreement.dof} degrees of freedom, p = "
            f"{agreement.p_value:.2g}; error bars with an autocorrelation time of "
            f"{agreement.tau:.3g} points); the largest deviation is chain {worst} at "
            f"{pulls[worst]:.3g} error bars. Possible causes: chains not equilibrated (or "
            "stuck), or an autocorrelation longer than the estimate (its slow tail makes the "
            "error bars too small). Longer equilibration or annealing (anneal_from), swaps if "
            "the system has them, and longer chains tell them apart.",
            ChainDisagreementWarning,
            stacklevel=3,
        )
        return True
    return False
