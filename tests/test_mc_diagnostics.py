"""Autocorrelation and chain-agreement diagnostics on series with known answers."""

import math
import warnings

import numpy as np
import pytest
import scipy.signal
from hypothesis import given, strategies as st

from manifold_flows import (
    ChainDisagreementWarning,
    SampleSpacingWarning,
    chain_agreement,
    integrated_autocorrelation_time,
    mean_with_error,
    temperature_schedule,
)
from manifold_flows._mc.diagnostics import warn_disagreement, warn_spacing


def ar1(seed: int, phi: float, chains: int, n: int) -> np.ndarray:
    """AR(1) series x_t = phi x_{t-1} + noise, started in its stationary law."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(size=(chains, n))
    noise[:, 0] /= math.sqrt(1 - phi**2)
    return scipy.signal.lfilter([1.0], [1.0, -phi], noise, axis=1)


@given(seed=st.integers(0, 2**31 - 1), phi=st.sampled_from([0.0, 0.5, 0.8, 0.95]))
def test_ar1_integrated_autocorrelation_time(seed, phi):
    # exact: tau = 1 + 2 sum_t phi^t = (1 + phi) / (1 - phi)
    exact = (1 + phi) / (1 - phi)
    x = ar1(seed, phi, chains=4, n=50_000)
    est = integrated_autocorrelation_time(x)
    assert est.reliable
    # the estimator's own error bar must cover the truth (4 sigma; Sokal windowing also has a
    # small negative bias of order exp(-c), well inside this)
    assert abs(est.tau - exact) < 4 * est.error + 0.02 * exact, (est, exact)
    assert est.error < 0.1 * exact


def test_single_chain_and_pooled_agree():
    x = ar1(1, 0.8, chains=8, n=10_000)
    pooled = integrated_autocorrelation_time(x)
    single = [integrated_autocorrelation_time(row).tau for row in x]
    assert abs(pooled.tau - np.mean(single)) < 3 * pooled.error
    assert pooled.num_points == x.size


def test_constant_or_short_series():
    est = integrated_autocorrelation_time(np.ones((2, 100)))
    assert math.isnan(est.tau) and not est.reliable
    # a random walk has no finite tau: the window rule never triggers on a short series
    walk = np.cumsum(np.random.default_rng(0).normal(size=200))
    assert not integrated_autocorrelation_time(walk).reliable
    with pytest.raises(ValueError, match="series"):
        integrated_autocorrelation_time(np.ones(1))
    with pytest.raises(ValueError, match="NaN"):
        integrated_autocorrelation_time(np.array([1.0, np.nan, 2.0]))


def test_chain_agreement_detects_an_offset_chain():
    x = ar1(3, 0.5, chains=6, n=4000)
    tau = integrated_autocorrelation_time(x).tau
    good = chain_agreement(x, tau)
    assert good.dof == 5 and good.p_value > 1e-3
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not warn_disagreement(good)
    shifted = x.copy()
    shifted[2] += 0.5  # ~ 10 standard errors of a chain mean
    bad = chain_agreement(shifted, tau)
    assert bad.p_value < 1e-6 and bad.tau == tau
    with pytest.warns(ChainDisagreementWarning, match="chain 2") as caught:
        assert warn_disagreement(bad)
    message = str(caught[0].message)
    # it reports what the test measured ...
    assert f"chi2/dof = {bad.chi2 / bad.dof:.3g}" in message
    pull = abs(bad.chain_means[2] - bad.pooled_mean) / bad.chain_errors[2]
    assert f"chain 2 at {pull:.3g} error bars" in message
    # ... and names both causes it cannot tell apart, asserting neither
    assert "not equilibrated" in message and "autocorrelation longer than" in message
    assert "are not equilibrated" not in message


def test_chain_disagreement_from_a_long_autocorrelation_blames_no_chain():
    """Equilibrated chains whose error bars use too short an autocorrelation time (the slow
    tail missed): the test fires, and the warning must not claim unequilibrated chains."""
    x = ar1(5, 0.95, chains=20, n=2000)  # true tau = 39
    found = chain_agreement(x, 4.0)
    assert found.p_value < 1e-3
    with pytest.warns(ChainDisagreementWarning, match="scatter more than") as caught:
        assert warn_disagreement(found)
    message = str(caught[0].message)
    assert "autocorrelation time of 4 points" in message
    assert "Possible causes" in message and "are not equilibrated" not in message


def test_chain_agreement_uses_the_autocorrelation_time():
    # with tau ignored (tau = 1), correlated but consistent chains look inconsistent
    x = ar1(4, 0.95, chains=20, n=2000)
    tau = integrated_autocorrelation_time(x).tau
    assert chain_agreement(x, tau).p_value > 1e-3
    assert chain_agreement(x, 1.0).p_value < 1e-3


def test_spacing_warning():
    with pytest.warns(SampleSpacingWarning, match="raise sweeps_between to at least 30"):
        assert warn_spacing(20, 10.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not warn_spacing(30, 10.0)
        assert not warn_spacing(30, float("nan"))


def test_mean_with_error():
    m, e = mean_with_error(np.array([1.0, 2.0, 3.0, 4.0]))
    assert m == 2.5
    assert e == pytest.approx(np.std([1, 2, 3, 4], ddof=1) / 2)
    assert math.isnan(mean_with_error(np.array([1.0]))[1])


def test_temperature_schedule():
    flat = temperature_schedule(0.5, 10)
    assert np.all(flat == 0.5)
    geo = temperature_schedule(0.5, 10, anneal_from=2.0, fraction=0.5)
    assert geo[0] == 2.0 and geo[4] == 0.5 and np.all(geo[4:] == 0.5)
    ratios = geo[1:5] / geo[:4]
    np.testing.assert_allclose(ratios, ratios[0])  # geometric: constant ratio
    lin = temperature_schedule(0.5, 10, anneal_from=2.0, fraction=0.5, schedule="linear")
    np.testing.assert_allclose(np.diff(lin[:5]), np.diff(lin[:5])[0])  # linear: constant step
    assert np.all(np.diff(geo) <= 0) and np.all(np.diff(lin) <= 0)
