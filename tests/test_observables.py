"""Observables: g_ab(r), specific heat, energy per particle, energy histograms, high energies."""

import math
import warnings

import jax
import numpy as np
import pytest
import scipy.signal

import manifold_flows as mf
from manifold_flows._analysis import rdf as rdf_module
from manifold_flows.testing import tolerance

RTOL, ATOL = tolerance(np.float64)


# ----------------------------------------------------------------------------- g(r)


def ideal_gas(seed: int, num: int, counts: tuple[int, ...], box: np.ndarray):
    rng = np.random.default_rng(seed)
    n = sum(counts)
    positions = rng.uniform(size=(num, n, box.shape[0])) * box
    species = np.repeat(np.arange(len(counts)), counts)
    return positions, species


def ideal_gas_z_scores(result: mf.RadialDistribution, pair_counts: list[int]) -> np.ndarray:
    """(g - 1) / sd for an ideal gas. On a torus the distances of distinct pairs of independent
    uniform points are pairwise independent, so a bin's count over R configurations is a sum of
    R * P independent Bernoulli(p) with p = shell / V: sd(g) = sqrt((1 - p) / (R P p))."""
    dim = result.box.shape[0]
    shell = np.diff(mf.ball_volume(result.edges, dim)) / np.prod(result.box)
    z = []
    for k, count in enumerate(pair_counts):
        sd = np.sqrt((1 - shell) / (result.num_samples * count * shell))
        z.append((result.g[k] - 1.0) / sd)
    return np.asarray(z)


@pytest.mark.parametrize(
    ("box", "counts"),
    [
        (np.array([5.0, 5.0]), (4, 6)),  # square 2D, binary
        (np.array([4.0, 7.0]), (5, 5)),  # rectangular 2D
        (np.array([4.0, 5.0, 6.0]), (3, 4, 5)),  # rectangular 3D, ternary
    ],
)
def test_ideal_gas_gives_one_for_every_pair(box, counts):
    positions, species = ideal_gas(0, 300, counts, box)
    result = mf.radial_distribution(positions, species, box, num_bins=20)
    assert result.normalization == "ideal_gas"
    assert result.edges[-1] == pytest.approx(0.5 * box.min())
    pair_counts = [
        counts[a] * (counts[a] - 1) // 2 if a == b else counts[a] * counts[b]
        for a, b in result.pairs
    ]
    assert len(result.pairs) == len(counts) * (len(counts) + 1) // 2
    z = ideal_gas_z_scores(result, pair_counts)
    # chi^2 / dof of ~20-120 z-scores is 1 +- 0.3; a wrong shell volume, box or pair count
    # shifts whole curves by many sd.
    assert 0.5 < np.mean(z**2) < 1.6
    assert np.max(np.abs(z)) < 5.0
    # The textbook normalisation differs by (N_a - 1) / N_a on the diagonal only.
    other = mf.radial_distribution(
        positions, species, box, num_bins=20, normalization="number_density"
    )
    assert other.normalization == "number_density"
    for k, (a, b) in enumerate(result.pairs):
        factor = (counts[a] - 1) / counts[a] if a == b else 1.0
        np.testing.assert_allclose(other.g[k], factor * result.g[k], rtol=1e-12)


def test_two_particles_across_the_boundary_2d():
    # Distance through the periodic boundary: |0.2 - 3.75| wraps to 0.45 in a box 4 x 6.
    box = np.array([4.0, 6.0])
    positions = np.array([[[0.2, 1.0], [3.75, 1.0]]])
    result = mf.radial_distribution(positions, np.array([0, 0]), box, num_bins=20)
    assert result.pairs == ((0, 0),)
    dr = 2.0 / 20
    assert result.r[4] == pytest.approx(0.45)  # the bin [0.4, 0.5)
    expected = np.zeros(20)
    # one pair of one: g = 1 / (shell / V) with the annulus area pi (0.5^2 - 0.4^2).
    expected[4] = 24.0 / (math.pi * (0.5**2 - 0.4**2))
    np.testing.assert_allclose(result.g[0], expected, rtol=1e-12)
    assert dr == pytest.approx(result.edges[1])


def test_two_particles_across_a_corner_3d_unlike_species():
    box = np.array([3.0, 3.0, 3.0])
    positions = np.array([[[0.1, 0.1, 0.1], [2.9, 2.9, 2.9]]])  # distance 0.2 sqrt(3) = 0.346
    result = mf.radial_distribution(positions, np.array([0, 1]), box, num_bins=15)
    assert result.pairs == ((0, 1),)  # no like pairs with one particle per species
    expected = np.zeros(15)
    expected[3] = 27.0 / (4.0 / 3.0 * math.pi * (0.4**3 - 0.3**3))  # bin [0.3, 0.4)
    np.testing.assert_allclose(result.g[0], expected, rtol=1e-12)
    np.testing.assert_allclose(result.pair(1, 0), expected, rtol=1e-12)


def test_weighted_g_and_chunking():
    box = np.array([5.0, 5.0])
    positions, species = ideal_gas(3, 10, (3, 4), box)
    log_w = np.full(10, -np.inf)
    log_w[6] = 0.0
    full = mf.radial_distribution(positions, species, box, num_bins=10, log_weights=log_w)
    alone = mf.radial_distribution(positions[6:7], species, box, num_bins=10)
    np.testing.assert_allclose(full.g_reweighted, alone.g, rtol=1e-12)
    # Equal weights reproduce the raw g.
    even = mf.radial_distribution(positions, species, box, num_bins=10, log_weights=np.zeros(10))
    np.testing.assert_allclose(even.g_reweighted, even.g, rtol=1e-12)
    np.testing.assert_allclose(full.g, even.g, rtol=1e-12)
    with pytest.raises(ValueError, match="reweighted"):
        alone.pair(0, 1, reweighted=True)


def test_chunks_give_the_same_answer(monkeypatch):
    box = np.array([5.0, 5.0])
    positions, species = ideal_gas(4, 10, (3, 4), box)
    log_w = np.random.default_rng(0).normal(size=10)
    whole = mf.radial_distribution(positions, species, box, num_bins=10, log_weights=log_w)
    # 21 pairs and 3 x 10 count slots per configuration: 3 configurations per chunk, the last
    # chunk shorter.
    monkeypatch.setattr(rdf_module, "_PAIRS_PER_CHUNK", 3 * 30)
    parts = mf.radial_distribution(positions, species, box, num_bins=10, log_weights=log_w)
    np.testing.assert_allclose(parts.g, whole.g, rtol=1e-12)
    np.testing.assert_allclose(parts.g_reweighted, whole.g_reweighted, rtol=1e-12)


def test_rdf_rejects_bad_input():
    box = np.array([4.0, 4.0])
    positions, species = ideal_gas(0, 2, (2, 2), box)
    with pytest.raises(ValueError, match="r_max"):
        mf.radial_distribution(positions, species, box, r_max=2.5)
    with pytest.raises((ValueError, TypeError), match="normalization"):
        mf.radial_distribution(positions, species, box, normalization="other")  # type: ignore[arg-type]
    with pytest.raises((ValueError, TypeError)):
        mf.radial_distribution(positions, species, np.array([4.0, 4.0, 4.0]))


# ----------------------------------------------------------------------------- energies


def test_energy_per_particle():
    energy = np.random.default_rng(0).normal(-100.0, 2.0, 500)
    s = mf.energy_per_particle(energy, 10)
    assert s.name == "u"
    assert s.raw == pytest.approx(energy.mean() / 10, rel=RTOL)
    assert s.raw_err == pytest.approx(energy.std(ddof=1) / 10 / math.sqrt(500), rel=RTOL)


def test_specific_heat_of_gaussian_energies():
    n, temperature, sigma = 10, 0.5, 3.0
    energy = np.random.default_rng(1).normal(-50.0, sigma, 4000)
    s = mf.specific_heat(energy, n, temperature, np.zeros(4000), num_bootstrap=300)
    assert s.name == "c_v" and s.raw_error_method == "bootstrap"
    # The moment formula is the plain (1/R) sample variance over N T^2 ...
    assert s.raw == pytest.approx(np.var(energy) / (n * temperature**2), rel=1e-9)
    # ... whose expectation is sigma^2 / (N T^2) = 3.6; the bootstrap error is about
    # c_v sqrt(2 / R) = 0.08.
    truth = sigma**2 / (n * temperature**2)
    assert abs(s.raw - truth) < 4 * s.raw_err
    assert s.raw_err == pytest.approx(truth * math.sqrt(2 / 4000), rel=0.25)
    assert s.reweighted == pytest.approx(s.raw, rel=1e-9)


def test_reweighted_specific_heat_recovers_target_variance():
    # U ~ N(0, 2^2) reweighted to N(0, 1.5^2): c_v = 1.5^2 / (N T^2).
    rng = np.random.default_rng(2)
    s_q, s_p, n, temperature = 2.0, 1.5, 4, 0.8
    energy = rng.normal(0.0, s_q, 5000)
    log_w = scipy_norm_logpdf(energy, s_p) - scipy_norm_logpdf(energy, s_q)
    s = mf.specific_heat(energy, n, temperature, log_w, num_bootstrap=300)
    truth = s_p**2 / (n * temperature**2)
    assert abs(s.reweighted - truth) < 4 * s.reweighted_err
    assert abs(s.raw - s_q**2 / (n * temperature**2)) < 4 * s.raw_err


def test_reweighted_specific_heat_ignores_weightless_overlaps():
    """A poor flow's samples: a bulk near the target plus overlapping particles (U ~ 1e20) whose
    weight exp(-U/T) is exactly 0. The reweighted c_v is that of the bulk alone; moments taken
    about the raw mean (~1e17 here) cancel catastrophically and gave ~1e21."""
    rng = np.random.default_rng(3)
    n, temperature = 10, 0.1
    bulk = rng.normal(3.4, 0.3, 4000)
    energy = np.concatenate([bulk, 10.0 ** rng.uniform(15, 21, 400)])
    log_w = -energy / temperature  # the bulk's weights: exactly Boltzmann over uniform q
    s = mf.specific_heat(energy, n, temperature, log_w, num_bootstrap=200)
    w = np.exp(log_w[:4000] - log_w[:4000].max())
    w /= w.sum()
    mean = np.sum(w * bulk)
    direct = np.sum(w * (bulk - mean) ** 2) / (n * temperature**2)
    assert s.reweighted == pytest.approx(direct, rel=1e-9)
    assert s.reweighted_err < 0.5 * direct
    assert s.raw == pytest.approx(np.var(energy) / (n * temperature**2), rel=1e-6)


def scipy_norm_logpdf(x: np.ndarray, s: float) -> np.ndarray:
    return -0.5 * (x / s) ** 2 - math.log(math.sqrt(2 * math.pi) * s)


def ar1_chains(seed: int, phi: float, chains: int, n: int) -> np.ndarray:
    """`chains` independent AR(1) series x_t = phi x_{t-1} + e_t (unit innovations), each
    started in its stationary law N(0, 1 / (1 - phi^2))."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(size=(chains, n))
    noise[:, 0] /= math.sqrt(1 - phi**2)
    return scipy.signal.lfilter([1.0], [1.0, -phi], noise, axis=1)


def lag_sum(phi: float, n: int) -> float:
    """n + 2 sum_{k=1}^{n-1} (n - k) phi^k: the variance of a chain sum of n stationary points
    with autocorrelation phi^k, in units of the point variance."""
    k = np.arange(1, n)
    return n + 2.0 * float(np.sum((n - k) * phi**k))


def test_error_bars_of_correlated_chains_match_the_true_standard_error():
    """Known answer: 200 AR(1) chains of 250 points, phi = 0.8 (tau = 9). Chains as units give
    the true standard errors of u and c_v; treating the samples as independent gives error
    bars too small by the known factors sqrt(tau_n) and sqrt((1 + phi^2) / (1 - phi^2))."""
    phi, num_chains, n = 0.8, 200, 250
    x = ar1_chains(0, phi, num_chains, n)
    chains = np.repeat(np.arange(num_chains), n)
    var = 1.0 / (1.0 - phi**2)
    total = num_chains * n
    # u = <x> (N = 1): Var(mean) = C var lag_sum(phi, n) / (C n)^2
    true_u = math.sqrt(num_chains * var * lag_sum(phi, n)) / total
    # c_v = variance of x (N = T = 1); for Gaussian x, Cov(x_t^2, x_s^2) = 2 var^2 phi^(2|t-s|)
    true_cv = math.sqrt(num_chains * 2 * var**2 * lag_sum(phi**2, n)) / total
    u = mf.energy_per_particle(x.ravel(), 1, chains=chains)
    cv = mf.specific_heat(x.ravel(), 1, 1.0, chains=chains, num_bootstrap=400)
    assert u.num_chains == cv.num_chains == num_chains
    assert u.raw_error_method == "standard error over chains"
    assert cv.raw_error_method == "bootstrap over chains"
    # the chain estimates scatter by ~1 / sqrt(2 C) = 5 % (and the bootstrap by ~4 %)
    assert u.raw_err == pytest.approx(true_u, rel=0.2)
    assert cv.raw_err == pytest.approx(true_cv, rel=0.25)
    # the iid formulas miss the correlations by the known factors (3.0 and 2.1 here)
    iid_u = mf.energy_per_particle(x.ravel(), 1)
    iid_cv = mf.specific_heat(x.ravel(), 1, 1.0, num_bootstrap=400)
    assert iid_u.num_chains is None and iid_u.raw_error_method == "standard error"
    assert iid_u.raw_err * math.sqrt(lag_sum(phi, n) / n) == pytest.approx(true_u, rel=0.05)
    factor_cv = math.sqrt((1 + phi**2) / (1 - phi**2))
    assert iid_cv.raw_err * factor_cv == pytest.approx(true_cv, rel=0.2)
    assert iid_u.raw_err < 0.4 * u.raw_err and iid_cv.raw_err < 0.6 * cv.raw_err


def test_chain_errors_with_weights_unequal_chains_and_any_labels():
    x = ar1_chains(1, 0.5, 40, 60)
    means = x.mean(axis=1)
    chains = np.repeat(np.arange(40), 60)
    u = mf.energy_per_particle(x.ravel(), 1, chains=chains)
    # equal chains: the standard error of the chain means
    assert u.raw_err == pytest.approx(np.std(means, ddof=1) / math.sqrt(40), rel=1e-12)
    # labels are names, not positions: shuffled samples and float labels give the same
    order = np.random.default_rng(2).permutation(x.size)
    moved = mf.energy_per_particle(x.ravel()[order], 1, chains=chains[order] * 0.5 + 7)
    assert moved.raw_err == pytest.approx(u.raw_err, rel=1e-12)
    # unequal chains: the scatter of the chain sums about their share of the mean
    keep = np.ones(x.size, bool)
    keep[:30] = False  # chain 0 keeps 30 of its 60 points
    part = mf.energy_per_particle(x.ravel()[keep], 1, chains=chains[keep])
    sums = np.bincount(chains[keep], weights=x.ravel()[keep])
    lengths = np.bincount(chains[keep])
    expected = math.sqrt(40 / 39 * np.sum((sums - lengths * part.raw) ** 2)) / keep.sum()
    assert part.raw_err == pytest.approx(expected, rel=1e-12)
    # equal weights: the bootstrap over chains of the reweighted mean gives the same error
    even = mf.energy_per_particle(x.ravel(), 1, np.zeros(x.size), chains=chains)
    assert even.reweighted == pytest.approx(u.raw, rel=1e-12)
    assert even.reweighted_err == pytest.approx(u.raw_err, rel=0.15)
    # one chain cannot estimate its own error; bad labels are refused
    assert math.isnan(mf.energy_per_particle(x[0], 1, chains=np.zeros(60)).raw_err)
    with pytest.raises((ValueError, TypeError), match="chains"):
        mf.energy_per_particle(x.ravel(), 1, chains=chains[:-1])
    with pytest.raises(ValueError, match="non-finite"):
        mf.specific_heat(x[0], 1, 1.0, chains=np.full(60, np.nan))


def test_high_energy_fraction_positive_and_negative_references():
    reference = np.array([0.5, 1.0, 2.0])  # threshold 2 * 2 = 4
    energies = np.array([1.0, 3.9, 4.0, 4.1, 100.0, np.nan, np.inf, -np.inf])
    assert mf.high_energy_threshold(reference) == 4.0
    # above 4: 4.1, 100, nan (broken counts as high), inf -> 4 of 8
    assert mf.high_energy_fraction(energies, reference) == 0.5
    # Scale invariance: per-particle energies give the same share.
    assert mf.high_energy_fraction(energies / 10, reference / 10) == 0.5
    negative = np.array([-130.0, -120.0, -110.0])  # threshold -110 + 110 = 0
    assert mf.high_energy_threshold(negative) == 0.0
    assert mf.high_energy_fraction(np.array([-115.0, -50.0, 0.0, 1.0]), negative) == 0.25
    assert mf.high_energy_threshold(np.array([np.nan, 3.0])) == 6.0


def test_energy_histogram_against_reference():
    rng = np.random.default_rng(0)
    reference = rng.normal(0.0, 1.0, 2000)
    energies = np.concatenate([rng.normal(0.5, 1.0, 995), [50.0, -50.0, 60.0, np.nan, np.inf]])
    h = mf.energy_histogram(energies, reference, bins=30, log_weights=np.zeros(1000))
    width = np.diff(h.edges)
    assert h.num_above == 2 and h.num_below == 1 and h.num_nonfinite == 2
    inside = np.count_nonzero((energies >= h.edges[0]) & (energies < h.edges[-1]))
    assert np.sum(h.density * width) == pytest.approx(inside / 1000, rel=RTOL)
    assert np.sum(h.reference_density * width) == pytest.approx(1.0, rel=RTOL)
    # Equal weights: the reweighted density is the raw one.
    np.testing.assert_allclose(h.density_reweighted, h.density, rtol=1e-9)
    # Zero weight for the NaN sample: the other 999 share the unit weight.
    log_w = np.zeros(1000)
    log_w[np.isnan(energies)] = -np.inf
    h2 = mf.energy_histogram(energies, reference, bins=30, log_weights=log_w)
    np.testing.assert_allclose(h2.density_reweighted, h.density * 1000 / 999, rtol=1e-9)
    per = mf.energy_histogram(energies, reference, num_particles=10, bins=30)
    assert per.per_particle
    np.testing.assert_allclose(per.edges, h.edges / 10, rtol=1e-12)
    np.testing.assert_allclose(per.density, h.density * 10, rtol=1e-9)


def test_float32_positions_match_float64():
    box = np.array([5.0, 4.0])
    positions, species = ideal_gas(5, 20, (3, 4), box)
    g64 = mf.radial_distribution(positions, species, box, num_bins=10)
    g32 = mf.radial_distribution(positions.astype(np.float32), species, box, num_bins=10)
    rtol, _ = tolerance(np.float32)
    np.testing.assert_allclose(g32.g, g64.g, rtol=10 * rtol)


def test_g_is_computed_in_float64_whatever_the_input_dtype_or_jax_mode():
    """The library picks the precision of g(r): float32 coordinates (exact in float64) give
    the same bits as their float64 copy, and 32-bit JAX (the default outside this suite)
    neither truncates float64 input nor warns."""
    box = np.array([5.0, 4.0])
    positions, species = ideal_gas(5, 20, (3, 4), box)
    log_w = np.random.default_rng(1).normal(size=20)
    single = positions.astype(np.float32)
    options = dict(num_bins=10, log_weights=log_w)
    g32 = mf.radial_distribution(single, species, box, **options)
    g64 = mf.radial_distribution(single.astype(np.float64), species, box, **options)
    np.testing.assert_array_equal(g32.g, g64.g)
    np.testing.assert_array_equal(g32.g_reweighted, g64.g_reweighted)
    reference = mf.radial_distribution(positions, species, box, **options)
    with jax.enable_x64(False), warnings.catch_warnings():
        warnings.simplefilter("error")
        narrow = mf.radial_distribution(positions, species, box, **options)
    np.testing.assert_array_equal(narrow.g, reference.g)
    np.testing.assert_array_equal(narrow.g_reweighted, reference.g_reweighted)
