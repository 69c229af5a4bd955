"""Importance reweighting, Pareto k-hat and reweighted estimators, against known answers."""

import math
import warnings

import numpy as np
import pytest
import scipy.stats
from hypothesis import given, strategies as st

import manifold_flows as mf
from manifold_flows.testing import tolerance

RTOL, ATOL = tolerance(np.float64)


def gaussian_toy(seed: int, num: int, s_q: float, s_p: float):
    """Samples x ~ q = N(0, s_q^2) with exact normalised log q, and the energy U = x^2 / 2 at
    T = s_p^2, so that the Boltzmann target is p = N(0, s_p^2) and Z = sqrt(2 pi) s_p."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, s_q, num)
    log_q = -(x**2) / (2 * s_q**2) - math.log(math.sqrt(2 * math.pi) * s_q)
    return x, 0.5 * x**2, log_q, s_p**2


def gaussian_ess_fraction(s_q: float, s_p: float) -> float:
    """Large-R limit of ESS / R = 1 / E_q[(p/q)^2] for Gaussian q, p (needs 2 s_q^2 > s_p^2)."""
    return s_p * math.sqrt(2 * s_q**2 - s_p**2) / s_q**2


# ----------------------------------------------------------------------------- reweight


@given(seed=st.integers(0, 2**31 - 1), temperature=st.floats(0.05, 5.0))
def test_exact_proposal_gives_uniform_weights_and_log_z(seed, temperature):
    # q = p exactly: log q = -U/T - log Z, for U = x^2/2 with x ~ N(0, T).
    num = 500
    x = np.random.default_rng(seed).normal(0.0, math.sqrt(temperature), num)
    energy = 0.5 * x**2
    log_z = 0.5 * math.log(2 * math.pi * temperature)
    res = mf.reweight(energy, -energy / temperature - log_z, temperature)
    np.testing.assert_allclose(res.weights, 1.0 / num, rtol=1e3 * RTOL)
    assert res.ess == pytest.approx(num, rel=1e3 * RTOL)
    assert res.ess_fraction == pytest.approx(1.0, rel=1e3 * RTOL)
    assert res.log_z == pytest.approx(log_z, rel=1e3 * RTOL, abs=1e3 * ATOL)
    assert res.log_z_err < 1e-6
    assert res.free_energy == pytest.approx(-temperature * log_z, rel=1e3 * RTOL, abs=1e3 * ATOL)
    assert res.num_nonfinite == 0 and res.num_samples == num
    assert res.khat == -math.inf and res.khat_status == "good"


@pytest.mark.parametrize("seed", range(5))
def test_gaussian_toy_reweighted_second_moment_within_error_bars(seed):
    x, energy, log_q, temperature = gaussian_toy(seed, 2000, s_q=1.5, s_p=1.0)
    res = mf.reweight(energy, log_q, temperature)
    summary = mf.summarize_observable(x**2, res, name="x^2", num_bootstrap=300, seed=seed)
    # Truth <x^2>_p = s_p^2 = 1; the raw mean estimates s_q^2 = 2.25 instead.
    assert abs(summary.reweighted - 1.0) < 3 * summary.reweighted_err
    assert summary.reweighted_low < 1.0 < summary.reweighted_high
    assert abs(summary.raw - 2.25) < 4 * summary.raw_err
    assert abs(summary.raw - 1.0) > 10 * summary.raw_err


def test_bootstrap_interval_has_nominal_coverage():
    # 300 independent experiments; the 90 % percentile interval and the 1-sigma bar must contain
    # the truth about 90 % and 68 % of the time (binomial sd ~ 0.017 and 0.027).
    hits_interval = hits_sigma = 0
    reps = 300
    for seed in range(reps):
        x, energy, log_q, temperature = gaussian_toy(10_000 + seed, 200, s_q=1.5, s_p=1.0)
        res = mf.reweight(energy, log_q, temperature)
        s = mf.summarize_observable(x**2, res, num_bootstrap=200, confidence=0.9, seed=seed)
        hits_interval += s.reweighted_low <= 1.0 <= s.reweighted_high
        hits_sigma += abs(s.reweighted - 1.0) <= s.reweighted_err
    assert 0.84 <= hits_interval / reps <= 0.96
    assert 0.60 <= hits_sigma / reps <= 0.76


@pytest.mark.parametrize(("s_q", "s_p"), [(1.5, 1.0), (1.0, 1.1)])
def test_ess_and_log_z_match_gaussian_closed_forms(s_q, s_p):
    _, energy, log_q, temperature = gaussian_toy(7, 20_000, s_q=s_q, s_p=s_p)
    res = mf.reweight(energy, log_q, temperature)
    fraction = gaussian_ess_fraction(s_q, s_p)
    assert res.ess_fraction == pytest.approx(fraction, rel=0.03)
    assert res.ess == pytest.approx(fraction * 20_000, rel=0.03)
    # ESS is Kish's formula of the normalised weights.
    assert res.ess == pytest.approx(1.0 / np.sum(res.weights**2), rel=RTOL)
    assert np.sum(res.weights) == pytest.approx(1.0, rel=RTOL)
    log_z = math.log(math.sqrt(2 * math.pi) * s_p)
    assert abs(res.log_z - log_z) < 4 * res.log_z_err
    # Delta-method error against its closed form sqrt((R/ESS - 1) / R) at the true ESS.
    assert res.log_z_err == pytest.approx(math.sqrt((1 / fraction - 1) / 20_000), rel=0.1)


def test_nonfinite_log_weights_are_counted_and_get_weight_zero():
    x, energy, log_q, temperature = gaussian_toy(3, 100, s_q=1.5, s_p=1.0)
    energy = energy.copy()
    log_q = log_q.copy()
    energy[5] = np.nan
    energy[17] = np.inf  # log w = -inf
    log_q[40] = -np.inf  # log w = +inf: not a usable weight either
    log_q[41] = np.nan
    res = mf.reweight(energy, log_q, temperature)
    bad = [5, 17, 40, 41]
    assert res.num_nonfinite == 4
    assert res.num_samples == 100
    assert np.all(res.weights[bad] == 0.0)
    assert not np.any(np.isfinite(res.log_w[bad]))
    good = np.setdiff1d(np.arange(100), bad)
    ref = mf.reweight(energy[good], log_q[good], temperature)
    np.testing.assert_allclose(res.weights[good], ref.weights, rtol=RTOL)
    # Same ESS as the clean subset, but the fraction is charged for all R samples.
    assert res.ess == pytest.approx(ref.ess, rel=RTOL)
    assert res.ess_fraction == pytest.approx(ref.ess / 100, rel=RTOL)
    # log Z: a non-finite weight counts as w = 0 in the mean over all R samples.
    assert res.log_z == pytest.approx(ref.log_z + math.log(96 / 100), rel=RTOL)
    # Reweighted averages ignore them; a NaN observable there is harmless.
    obs = x**2
    obs[bad] = np.nan
    assert mf.weighted_mean(obs, res) == pytest.approx(mf.weighted_mean(x[good] ** 2, ref))


def test_all_nonfinite_is_reported_not_crashed():
    res = mf.reweight(np.full(4, np.nan), np.zeros(4), 1.0)
    assert res.num_nonfinite == 4 and res.ess == 0.0 and res.log_z is None
    assert "non-finite" in res.log_z_note
    with pytest.raises(ValueError, match="non-finite"):
        mf.weighted_mean(np.ones(4), res)


@given(seed=st.integers(0, 2**31 - 1), shift=st.floats(-50.0, 50.0))
def test_constant_in_log_q_moves_log_z_not_weights(seed, shift):
    _, energy, log_q, temperature = gaussian_toy(seed, 300, s_q=1.5, s_p=1.0)
    a = mf.reweight(energy, log_q, temperature)
    b = mf.reweight(energy, log_q + shift, temperature)
    np.testing.assert_allclose(b.weights, a.weights, rtol=1e-9, atol=1e-15)
    assert b.log_z == pytest.approx(a.log_z - shift, abs=1e-9)
    assert b.khat == pytest.approx(a.khat, abs=1e-6)
    unnorm = mf.reweight(energy, log_q + shift, temperature, base_normalized=False)
    assert unnorm.log_z is None and unnorm.log_z_err is None and unnorm.free_energy is None
    assert "not a normalised density" in unnorm.log_z_note
    np.testing.assert_allclose(unnorm.weights, a.weights, rtol=1e-9, atol=1e-15)


def test_large_spread_of_log_weights_is_stable():
    # log w spread over 10^4 nats: a naive exp would overflow.
    log_q = np.array([-1.0e4, 0.0, 5.0e3, 1.0e4])
    res = mf.reweight(np.zeros(4), log_q, 1.0)
    np.testing.assert_allclose(res.weights, [1.0, 0.0, 0.0, 0.0], atol=1e-300)
    assert res.ess == pytest.approx(1.0)
    assert res.log_z == pytest.approx(1.0e4 - math.log(4))


def test_reweight_rejects_bad_input():
    with pytest.raises((ValueError, TypeError)):
        mf.reweight(np.zeros(3), np.zeros(4), 1.0)
    with pytest.raises((ValueError, TypeError)):
        mf.reweight(np.zeros((3, 2)), np.zeros((3, 2)), 1.0)
    with pytest.raises(ValueError, match="temperature"):
        mf.reweight(np.zeros(3), np.zeros(3), 0.0)
    with pytest.raises(ValueError, match="temperature"):
        mf.reweight(np.zeros(3), np.zeros(3), -1.0)
    as_dict = mf.reweight(np.zeros(3), np.zeros(3), 1.0).as_dict()
    assert "log_w" not in as_dict and as_dict["num_samples"] == 3


# ----------------------------------------------------------------------------- Pareto k-hat


@pytest.mark.parametrize("xi", [-0.2, 0.3, 0.8])
def test_gpd_fit_recovers_shape_and_agrees_with_maximum_likelihood(xi):
    x = scipy.stats.genpareto.rvs(xi, scale=2.0, size=10_000, random_state=11)
    shape, scale = mf.fit_generalized_pareto(x)
    assert shape == pytest.approx(xi, abs=0.05)
    assert scale == pytest.approx(2.0, rel=0.05)
    mle_shape, _, _ = scipy.stats.genpareto.fit(x, floc=0.0)
    assert shape == pytest.approx(mle_shape, abs=0.03)


@pytest.mark.parametrize("xi", [0.3, 0.8])
def test_khat_recovers_gpd_shape_from_the_tail(xi):
    # The top M = 300 of R = 10^4 GPD draws; one fit has sd ~ (1 + xi) / sqrt(M) ~ 0.1, so
    # check the mean over seeds tightly and each seed loosely.
    khats = []
    for seed in range(6):
        w = scipy.stats.genpareto.rvs(xi, scale=1.0, size=10_000, random_state=seed)
        diag = mf.pareto_khat(np.log(w))
        assert diag.tail_size == 300
        khats.append(diag.khat)
    assert np.mean(khats) == pytest.approx(xi, abs=0.1)
    assert np.all(np.abs(np.asarray(khats) - xi) < 0.3)


def test_khat_light_and_heavy_gaussian_weights():
    # q = N(0, 1.5^2) -> p = N(0, 1): bounded weights, k-hat < 0.5.
    _, energy, log_q, temperature = gaussian_toy(1, 10_000, s_q=1.5, s_p=1.0)
    light = mf.reweight(energy, log_q, temperature)
    assert light.khat < 0.5 and light.khat_status == "good"
    # q = N(0, 0.5^2) -> p = N(0, 1): P(w > t) ~ t^(-1/k) with k = 1 - s_q^2/s_p^2 = 0.75.
    _, energy, log_q, temperature = gaussian_toy(1, 10_000, s_q=0.5, s_p=1.0)
    heavy = mf.reweight(energy, log_q, temperature)
    assert heavy.khat > 0.6 and heavy.khat_status in ("ok", "bad")


def test_khat_thresholds_and_small_samples():
    diag = mf.pareto_khat(np.log(np.arange(1.0, 10.0)))
    assert math.isnan(diag.khat) and diag.status == "unknown"
    big = mf.pareto_khat(np.random.default_rng(0).normal(size=10_000))
    assert big.khat_threshold == pytest.approx(0.7)
    small = mf.pareto_khat(np.random.default_rng(0).normal(size=100))
    assert small.khat_threshold == pytest.approx(0.5)


def test_khat_of_weights_spanning_hundreds_of_orders_of_magnitude_is_bad_not_an_error():
    # Log weights of a failed sampler (one sample carries all the weight, the next ones are
    # e^-30, e^-73, ... below it): the tail exceedances underflow, so no tail can be fitted.
    # The diagnostic must say "bad" (k-hat = inf), without failing or warning.
    log_w = np.concatenate(
        [[0.0, -30.0, -73.0, -445.0, -686.0, -741.0], np.linspace(-900, -7e4, 94)]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow / invalid-value warnings either
        diag = mf.pareto_khat(log_w)
        energy = -0.1 * log_w  # log q = 0 at T = 0.1: the same log weights
        res = mf.reweight(energy, np.zeros_like(log_w), 0.1)
    assert diag.khat == math.inf and diag.status == "bad"
    assert "not usable" in diag.note and "nats" in diag.note
    assert res.khat_status == "bad" and res.ess == pytest.approx(1.0)


@pytest.mark.parametrize("spread", [30.0, 700.0, 1e3, 1e4, 1e5])
def test_khat_is_bad_however_widely_the_log_weights_spread(spread):
    # Gaussian log weights with standard deviation >= 30 nats: a hopeless sampler. Before the
    # underflow guard, spreads of 1e5 nats came out "good" (k-hat 0.08: a fit of zeros).
    log_w = np.random.default_rng(0).normal(0.0, spread, 500)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        diag = mf.pareto_khat(log_w)
    assert diag.status == "bad" and diag.khat > 1.0


def test_generalized_pareto_fit_is_scale_free_and_flags_unresolvable_spreads():
    x = np.random.default_rng(1).pareto(2.0, 200) + 0.01  # shape 0.5
    xi, sigma = mf.fit_generalized_pareto(x)
    xi_s, sigma_s = mf.fit_generalized_pareto(1e-200 * x)
    assert xi_s == pytest.approx(xi, rel=1e-12) and sigma_s == pytest.approx(1e-200 * sigma)
    assert 0.2 < xi < 0.8
    spread = np.concatenate([np.full(60, 1e-310), [1.0, 2.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        xi_d, sigma_d = mf.fit_generalized_pareto(spread)
    assert xi_d == math.inf and math.isnan(sigma_d)


# ----------------------------------------------------------------------------- estimators


def test_bootstrap_is_reproducible_and_seeded():
    x, energy, log_q, temperature = gaussian_toy(2, 300, s_q=1.5, s_p=1.0)
    res = mf.reweight(energy, log_q, temperature)
    a = mf.bootstrap_weighted_means(x**2, res, num_bootstrap=50, seed=4)
    b = mf.bootstrap_weighted_means(x**2, res, num_bootstrap=50, seed=4)
    c = mf.bootstrap_weighted_means(x**2, res, num_bootstrap=50, seed=5)
    assert a.shape == (50,)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_bootstrap_replicate_is_the_renormalised_weighted_mean_of_its_resample():
    # With two samples, a resample is one of (0,0), (0,1), (1,0), (1,1): its renormalised
    # weighted mean is v0, the weighted mean, or v1. Huge log-weight gaps exercise the
    # per-resample renormalisation (the global shift alone would underflow to 0/0).
    values = np.array([3.0, 7.0])
    log_w = np.array([0.0, -2000.0])
    reps = mf.bootstrap_weighted_means(values, log_w, num_bootstrap=400, seed=0)
    assert np.all(np.isfinite(reps))
    assert set(np.round(reps, 12)) == {3.0, 7.0}
    # Resamples holding sample 0 give 3 (it dominates), those with only sample 1 give 7.
    assert 0.15 < np.mean(reps == 7.0) < 0.35


def test_vector_observable_and_raw_error():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(400, 3)) + np.array([1.0, 2.0, 3.0])
    s = mf.summarize_observable(values, np.zeros(400), num_bootstrap=200)
    assert s.raw.shape == (3,) and s.reweighted_err.shape == (3,)
    np.testing.assert_allclose(s.raw, values.mean(0), rtol=RTOL)
    np.testing.assert_allclose(s.raw_err, values.std(0, ddof=1) / 20.0, rtol=RTOL)
    # Equal weights: the reweighted mean is the raw mean; the bootstrap sd ~ the standard error.
    np.testing.assert_allclose(s.reweighted, s.raw, rtol=RTOL)
    np.testing.assert_allclose(s.reweighted_err, s.raw_err, rtol=0.2)
    as_dict = s.as_dict()
    assert isinstance(as_dict["raw"], list)


def test_raw_skips_nonfinite_but_weighted_refuses_them():
    values = np.array([1.0, 2.0, np.nan, 4.0])
    s = mf.summarize_observable(values)
    assert s.raw_num_used == 3 and s.raw == pytest.approx(7.0 / 3.0) and s.reweighted is None
    with pytest.raises(ValueError, match="non-finite in 1 sample"):
        mf.summarize_observable(values, np.zeros(4))


def test_accepts_float32_jax_arrays():
    import jax.numpy as jnp

    x, energy, log_q, temperature = gaussian_toy(5, 200, s_q=1.5, s_p=1.0)
    ref = mf.reweight(energy, log_q, temperature)
    res = mf.reweight(
        jnp.asarray(energy, dtype=jnp.float32), jnp.asarray(log_q, dtype=jnp.float32), temperature
    )
    rtol, atol = tolerance(np.float32)
    np.testing.assert_allclose(res.weights, ref.weights, rtol=10 * rtol, atol=atol)
    assert res.log_w.dtype == np.float64
    summary = mf.summarize_observable(jnp.asarray(x**2, dtype=jnp.float32), res)
    assert summary.reweighted == pytest.approx(mf.weighted_mean(x**2, ref), rel=10 * rtol)
