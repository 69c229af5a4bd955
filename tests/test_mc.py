"""The Monte Carlo engine: exact energy changes, detailed balance, swaps, tuning, drift checks,
checkpoint/resume.

To keep compilation cheap, the engine tests share one small ternary system and one shape
(`SMALL`, 4 chains, 5 sweeps between samples); the two exact detailed-balance tests use their
own tiny systems.
"""

import itertools
import math
import warnings
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.integrate
import scipy.stats
from hypothesis import given, settings, strategies as st
from jaxtyping import Array, Float

import manifold_flows as mf
from manifold_flows import (
    AbstractAcceptance,
    Barker,
    EnergyDriftError,
    Metropolis,
    make_system,
    propose_move,
    random_configurations,
    run_monte_carlo,
)
from manifold_flows._mc import engine as engine_module
from manifold_flows._mc.engine import total_energies
from manifold_flows.testing import tolerance


def small_system(images: str = "minimum", **kw):
    """Ternary smoothed KA, 12 particles (4:4:4) at density 0.8: swaps A<->C and B<->C."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mf.ImageConventionWarning)
        return make_system(
            "ka3", num_particles=12, composition=[4, 4, 4], density=0.8, images=images, **kw
        )


#: the shared run shape of the engine tests (one compilation of `advance`)
RUN = dict(num_chains=4, sweeps_between=5, samples_per_block=2, progress=False)


class ParametrizedRule(AbstractAcceptance):
    """Test-only acceptance `min(1, exp(-sign * dU / T**power))`: sign=1, power=1 is Metropolis;
    power=0 forgets the temperature; sign=-1 favours higher energies. One class, so every rule
    runs through the same compiled engine."""

    sign: Float[Array, ""]
    power: Float[Array, ""]

    def log_probability(self, delta_energy, temperature):
        return jnp.minimum(-self.sign * delta_energy / temperature**self.power, 0.0)


def rule(sign: float, power: float) -> ParametrizedRule:
    return ParametrizedRule(jnp.asarray(sign), jnp.asarray(power))


RULES = {
    "metropolis": rule(1.0, 1.0),
    "no-temperature": rule(1.0, 0.0),
    "uphill": rule(-1.0, 1.0),
}


# ------------------------------------------------------------------------------ acceptance
def test_acceptance_rules_satisfy_detailed_balance_identity():
    du = jnp.linspace(-5.0, 5.0, 41)
    for t in (0.3, 1.0, 2.5):
        t = jnp.asarray(t)
        for ok in (Metropolis(), Barker(), RULES["metropolis"]):
            lhs = jax.vmap(lambda d, ok=ok, t=t: ok.log_probability(d, t))(du)
            rhs = -du / t + jax.vmap(lambda d, ok=ok, t=t: ok.log_probability(-d, t))(du)
            np.testing.assert_allclose(lhs, rhs, atol=1e-12)
            assert float(ok.log_probability(jnp.asarray(jnp.inf), t)) == -jnp.inf
        # the injected rule is Metropolis exactly when sign = power = 1
        np.testing.assert_array_equal(
            jax.vmap(lambda d, t=t: Metropolis().log_probability(d, t))(du),
            jax.vmap(lambda d, t=t: RULES["metropolis"].log_probability(d, t))(du),
        )
    t = jnp.asarray(0.5)
    for name in ("no-temperature", "uphill"):
        bad = RULES[name]
        lhs = jax.vmap(lambda d, bad=bad: bad.log_probability(d, t))(du)
        rhs = -du / t + jax.vmap(lambda d, bad=bad: bad.log_probability(-d, t))(du)
        assert not np.allclose(lhs, rhs)


# ------------------------------------------------------------------------------ energy changes
@eqx.filter_jit
def _proposals(energy, x, s, uniforms, noise, step, p_swap, pairs):
    def one(u, z):
        p = propose_move(energy, x, s, u, z, step, p_swap, pairs)
        return p, energy(p.positions, p.species)

    proposals, u_new = jax.vmap(one)(uniforms, noise)
    return proposals, u_new, energy(x, s)


@pytest.mark.parametrize("images", ["minimum", "all"])
@settings(max_examples=2)
@given(seed=st.integers(0, 2**31 - 1))
def test_incremental_energy_change_equals_full_recomputation(images, seed):
    system = small_system(images)
    energy = system.energy
    rng = np.random.default_rng(seed)
    x = random_configurations(energy, system.species, 1, key=jax.random.key(seed))[0]
    s = rng.permutation(system.species)  # non-canonical order, as after swaps
    moves = 256
    uniforms = rng.uniform(size=(moves, 6))
    noise = rng.normal(size=(moves, 2))
    x, s = jnp.asarray(x), jnp.asarray(s, dtype=jnp.int32)
    pairs = jnp.asarray(system.swap_pairs, dtype=jnp.int32)
    prop, u_new, u_old = _proposals(
        energy,
        x,
        s,
        jnp.asarray(uniforms),
        jnp.asarray(noise),
        jnp.asarray(0.4),
        jnp.asarray(0.5),
        pairs,
    )
    _, atol = tolerance(x.dtype)
    delta, full = np.asarray(prop.delta_energy), np.asarray(u_new - u_old)
    # round-off scales with the energies involved (a move into a near-overlap reaches 1e9)
    bound = 1e3 * atol * (1.0 + np.abs(np.asarray(u_new)) + abs(float(u_old)))
    assert np.all(np.abs(delta - full) <= bound), np.max(np.abs(delta - full) / bound)
    kinds = np.asarray(prop.move_type)
    assert set(kinds.tolist()) == {0, 1, 2}  # displacements and both swap pairs occurred
    # a swap keeps positions and composition and exchanges exactly two labels of the pair
    for k, (a, b) in enumerate(system.swap_pairs, start=1):
        idx = np.nonzero(kinds == k)[0]
        assert np.array_equal(
            np.asarray(prop.positions)[idx], np.broadcast_to(x, (idx.size, 12, 2))
        )
        changed = np.asarray(prop.species)[idx] != np.asarray(s)[None]
        assert np.all(changed.sum(axis=1) == 2)
        new = np.asarray(prop.species)[idx][changed].reshape(-1, 2)
        assert all(sorted(row) == sorted((a, b)) for row in new.tolist())
    # a displacement moves one particle by the step, wrapped into the box
    idx = np.nonzero(kinds == 0)[0]
    moved = np.any(np.asarray(prop.positions)[idx] != np.asarray(x)[None], axis=-1)
    assert np.all(moved.sum(axis=1) == 1)
    assert np.all((np.asarray(prop.positions) >= 0) & (np.asarray(prop.positions) < system.box))


# ------------------------------------------------------------------------------ detailed balance
def _two_particle_cdf(box: float, temperature: float, energy) -> tuple[np.ndarray, np.ndarray]:
    """Exact CDF of the minimum-image distance of two particles on a square 2D torus: density
    of states (perimeter of the circle of radius r inside the square [-L/2, L/2]^2) times
    exp(-W(r)/T), integrated by quadrature on a fine grid."""
    r = np.linspace(0.0, box / math.sqrt(2.0), 40_001)
    half = box / 2
    dos = np.where(
        r <= half,
        2 * np.pi * r,
        8 * r * (np.pi / 4 - np.arccos(np.minimum(half / np.maximum(r, 1e-300), 1.0))),
    )
    zero = jnp.zeros(r.shape, jnp.int32)
    w = np.asarray(energy.pair_energy(jnp.asarray(np.maximum(r, 1e-3)), zero, zero))
    dens = dos * np.exp(-(w - w.min()) / temperature)
    cdf = scipy.integrate.cumulative_trapezoid(dens, r, initial=0.0)
    return r, cdf / cdf[-1]


@pytest.mark.parametrize("name", ["metropolis", "no-temperature", "uphill"])
def test_two_particle_distance_distribution_is_exact(name):
    """Detailed balance on a system known exactly: two soft disks on a 2D torus. The histogram
    of their minimum-image distance must match the exact law; the wrong acceptance rules must
    fail the same test at the same seed."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mf.ImageConventionWarning)
        system = make_system("ipl", num_particles=2, composition=[2], sigma=1.0, box=2.5)
    temperature = 0.5
    result = run_monte_carlo(
        system,
        key=20240611,
        acceptance=RULES[name],
        temperature=temperature,
        num_chains=256,
        samples_per_chain=40,
        sweeps_between=10,
        equilibration_sweeps=100,
        samples_per_block=40,
        progress=False,
    )
    pos = result.dataset.positions
    torus = system.torus
    d = np.linalg.norm(np.asarray(jax.vmap(torus.log)(pos[:, 0], pos[:, 1])), axis=-1)
    r, cdf = _two_particle_cdf(2.5, temperature, system.energy)
    ks = scipy.stats.kstest(d, lambda v: np.interp(v, r, cdf))
    if name == "metropolis":
        # samples are (nearly) independent: the measured spacing backs the KS assumption
        assert result.diagnostics["autocorrelation_samples"]["tau"] < 1.5
        assert ks.pvalue > 1e-3, ks
    else:
        assert ks.pvalue < 1e-8, ks


def _all_labelings(counts: list[int]) -> np.ndarray:
    """Every distinct assignment of labels with the given counts (multiset permutations)."""
    n = sum(counts)
    out = [np.full(n, -1)]
    for label, c in enumerate(counts):
        grown = []
        for lab in out:
            free = np.nonzero(lab < 0)[0]
            for chosen in itertools.combinations(free, c):
                new = lab.copy()
                new[list(chosen)] = label
                grown.append(new)
        out = grown
    return np.asarray(out)


def test_swap_moves_sample_the_exact_label_distribution():
    """Detailed balance of the swap moves, exactly: with positions frozen (p_swap = 1) the chain
    walks over the 34650 labelings of the 4:4:4 system, whose Boltzmann law follows by
    enumeration. The energy histogram of the samples must match it. (Wrong acceptance rules are
    shown to fail in the two-particle test; a swap proposal that is not uniform within a species
    fails this one.)"""
    system = small_system()
    temperature = 2.0
    # a relaxed configuration to freeze (from a short run of the shared shape)
    start = run_monte_carlo(
        system, key=8, temperature=1.0, samples_per_chain=2, equilibration_sweeps=100, **RUN
    )
    x0 = np.asarray(start.final_state.chains.positions[0])
    # exact: U(labels) = sum_{i<j} W_{l_i l_j}(r_ij) from a table of pair energies
    torus = system.torus
    r = np.linalg.norm(
        np.asarray(jax.vmap(jax.vmap(torus.log, (None, 0)), (0, None))(x0, x0)), axis=-1
    )
    iu = np.triu_indices(12, 1)
    a, b = np.meshgrid(np.arange(3), np.arange(3), indexing="ij")
    table = np.asarray(
        system.energy.pair_energy(
            jnp.asarray(r[iu])[:, None, None], jnp.asarray(a, jnp.int32), jnp.asarray(b, jnp.int32)
        )
    )  # (pairs, 3, 3)
    labels = _all_labelings([4, 4, 4])
    assert labels.shape == (34650, 12)
    u_exact = table[np.arange(iu[0].size), labels[:, iu[0]], labels[:, iu[1]]].sum(axis=1)
    weights = np.exp(-(u_exact - u_exact.min()) / temperature)
    weights /= weights.sum()
    # 10 bins of about equal exact probability, edges between distinct energy values
    order = np.argsort(u_exact)
    levels, cum = u_exact[order], np.cumsum(weights[order])
    cuts = np.searchsorted(cum, np.arange(1, 10) / 10)
    edges = 0.5 * (levels[cuts] + levels[np.minimum(cuts + 1, levels.size - 1)])
    expected = np.bincount(np.searchsorted(edges, u_exact), weights=weights, minlength=10)

    def energies(acceptance):
        result = run_monte_carlo(
            system,
            key=7,
            acceptance=acceptance,
            initial_positions=x0,
            temperature=temperature,
            p_swap=1.0,
            samples_per_chain=300,
            equilibration_sweeps=20,
            **{**RUN, "samples_per_block": 300},
        )
        np.testing.assert_array_equal(
            result.final_state.chains.positions, np.broadcast_to(x0, (4, 12, 2))
        )
        return result

    good = energies(Metropolis())
    tau = good.diagnostics["autocorrelation_samples"]["tau"]
    assert tau < 1.5, tau  # nearly independent samples, as the test assumes
    counts = np.bincount(np.searchsorted(edges, good.sample_energies.ravel()), minlength=10)
    chi2 = scipy.stats.chisquare(counts, counts.sum() * expected)
    assert chi2.pvalue > 1e-3, (chi2, counts, expected)


# ------------------------------------------------------------------------------ engine runs
def test_swap_and_no_swap_runs_agree_at_high_temperature():
    system = small_system()
    common = dict(RUN, temperature=2.0, samples_per_chain=150, equilibration_sweeps=100)
    with_swaps = run_monte_carlo(system, key=1, p_swap=0.5, **common)
    without = run_monte_carlo(system, key=2, p_swap=0.0, **common)
    a = with_swaps.diagnostics["energy_per_particle"]
    b = without.diagnostics["energy_per_particle"]
    assert abs(a["mean"] - b["mean"]) < 4 * math.hypot(a["error"], b["error"]), (a, b)
    # swaps were tried and accepted for both pairs, and recorded per pair
    rates = with_swaps.acceptance
    assert set(rates) == {"displacement", "swap A<->C", "swap B<->C"}
    assert all(0 < v < 1 for v in rates.values())
    assert without.dataset.metadata["mc"]["acceptance_production"]["swap A<->C"]["attempted"] == 0


def test_step_size_tuned_in_equilibration_and_frozen_in_production():
    system = small_system()
    result = run_monte_carlo(
        system,
        key=3,
        temperature=1.0,
        step_size=1.5,  # far too large: acceptance would be tiny
        target_acceptance=(0.35, 0.45),
        equilibration_sweeps=200,
        samples_per_chain=40,
        **RUN,
    )
    n_eq = 200 // RUN["sweeps_between"]
    steps = result.step_sizes
    assert steps.shape == (n_eq + 40,)
    assert steps[-1] < 0.5  # tuned down from 1.5
    # frozen in production: the step size after every production call is the final tuned one
    assert np.all(steps[n_eq:] == steps[n_eq - 1])
    meta = result.dataset.metadata["mc"]
    assert meta["step_size_initial"] == 1.5 and meta["step_size_final"] == steps[-1]
    rate = result.acceptance["displacement"]
    assert 0.3 < rate < 0.5, rate


def test_running_energy_matches_recomputation_and_drift_is_checked(monkeypatch):
    system = small_system()
    result = run_monte_carlo(
        system, key=4, temperature=1.0, samples_per_chain=4, equilibration_sweeps=20, **RUN
    )
    meta = result.dataset.metadata["mc"]
    # hundreds of accepted moves of both kinds: running energy = exact energy to round-off
    assert meta["energy_drift_max_relative"] < 1e-10
    np.testing.assert_allclose(
        result.dataset.energy,
        np.asarray(
            total_energies(
                system.energy,
                jnp.asarray(result.dataset.positions),
                jnp.asarray(
                    np.broadcast_to(result.dataset.species, result.dataset.positions.shape[:2])
                ),
            )
        ),
        rtol=1e-10,
    )

    # inject an inconsistency: corrupt the running energy of chain 1 before the third call
    real_advance = engine_module.advance
    calls = {"n": 0}

    def corrupted(energy, acceptance, sampler, *args):
        calls["n"] += 1
        if calls["n"] == 3:
            chains = sampler.chains
            bad = eqx.tree_at(lambda c: c.energy, chains, chains.energy.at[1].add(0.5))
            sampler = eqx.tree_at(lambda s: s.chains, sampler, bad)
        return real_advance(energy, acceptance, sampler, *args)

    monkeypatch.setattr(engine_module, "advance", corrupted)
    with pytest.raises(EnergyDriftError, match="chain 1"):
        run_monte_carlo(
            system, key=4, temperature=1.0, samples_per_chain=4, equilibration_sweeps=20, **RUN
        )


def test_resume_gives_the_same_samples_as_an_uninterrupted_run(tmp_path):
    system = small_system()
    opts = dict(RUN, temperature=1.5, samples_per_chain=6, equilibration_sweeps=20, anneal_from=3.0)
    full = run_monte_carlo(system, key=5, checkpoint_dir=tmp_path / "a", **opts)

    class Stop(Exception):
        pass

    def stop_after(k):
        def callback(info):
            if info.index == k:
                raise Stop

        return callback

    # eq: 20 sweeps / 5 = 4 calls = 2 blocks; production: 3 blocks. Stop after the first
    # production block, then once more mid-way, then finish.
    ckpt = tmp_path / "b"
    with pytest.raises(Stop):
        run_monte_carlo(system, key=5, checkpoint_dir=ckpt, on_block=stop_after(2), **opts)
    assert sorted(p.name for p in ckpt.glob("block_*.npz")) == [
        "block_000000.npz",
        "block_000001.npz",
        "block_000002.npz",
    ]
    with pytest.raises(Stop):
        run_monte_carlo(
            system, key=5, checkpoint_dir=ckpt, resume=True, on_block=stop_after(3), **opts
        )
    resumed = run_monte_carlo(system, key=5, checkpoint_dir=ckpt, resume=True, **opts)
    np.testing.assert_array_equal(resumed.dataset.positions, full.dataset.positions)
    np.testing.assert_array_equal(resumed.dataset.energy, full.dataset.energy)
    np.testing.assert_array_equal(resumed.sample_energies, full.sample_energies)
    np.testing.assert_array_equal(resumed.energy_trace, full.energy_trace)
    np.testing.assert_array_equal(resumed.step_sizes, full.step_sizes)
    assert resumed.acceptance == full.acceptance

    # a checkpoint of other settings is refused; an existing one is not overwritten silently
    with pytest.raises(ValueError, match="temperature"):
        run_monte_carlo(
            system, key=5, checkpoint_dir=ckpt, resume=True, **{**opts, "temperature": 1.0}
        )
    with pytest.raises(FileExistsError, match="resume"):
        run_monte_carlo(system, key=5, checkpoint_dir=ckpt, **opts)


def test_metadata_records_the_run(tmp_path):
    system = small_system()
    result = run_monte_carlo(
        system,
        key=11,
        temperature=1.2,
        samples_per_chain=4,
        equilibration_sweeps=10,
        anneal_from=2.4,
        **RUN,
    )
    ds = result.dataset
    assert ds.num_samples == 16 and ds.temperature == 1.2 and ds.system == system.name
    assert np.all(np.diff(ds.species) >= 0)  # canonical order despite swaps
    np.testing.assert_array_equal(ds.extra["chain"], np.repeat(np.arange(4), 4))
    np.testing.assert_array_equal(ds.extra["sweep"][:4], 10 + 5 * np.arange(1, 5))
    meta = mf.Dataset.load(ds.save(tmp_path / "d.npz")).metadata  # JSON round trip
    mc = meta["mc"]
    assert mc["seed"] == 11 and mc["sweeps_between_samples"] == 5
    assert mc["p_swap"] == 0.2 and mc["swap_pairs"] == ["swap A<->C", "swap B<->C"]
    assert mc["anneal"] == {"from": 2.4, "to": 1.2, "schedule": "geometric", "sweeps": 5}
    for k in ("acceptance_equilibration", "acceptance_production", "energy_drift_max"):
        assert k in mc
    assert meta["system"]["parameters"]["composition"] == {"A": 4, "B": 4, "C": 4}
    assert meta["temperature"] == 1.2
    diag = meta["diagnostics"]
    assert "tau_sweeps" in diag["autocorrelation"] and "chain_agreement" in diag
    assert diag["energy_per_particle"]["error"] > 0


def test_bad_input_is_refused():
    system = small_system()
    with pytest.raises(ValueError, match="temperature"):
        run_monte_carlo(system, key=0, temperature=0.0, **RUN)
    with pytest.raises(ValueError, match="temperature"):
        run_monte_carlo(system, key=0, temperature=-1.0, **RUN)
    with pytest.raises(TypeError, match="unknown option"):
        run_monte_carlo(system, key=0, temprature=1.0, **RUN)
    overlapping = np.tile(np.linspace(0.1, 3.0, 12)[:, None], (1, 2))
    overlapping[5] = overlapping[4]
    with pytest.raises(ValueError, match="overlap"):
        run_monte_carlo(system, key=0, initial_positions=overlapping, **RUN)
    with pytest.raises(ValueError, match="initial_positions"):
        run_monte_carlo(system, key=0, initial_positions=np.zeros((3, 2)), **RUN)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mf.ImageConventionWarning)
        no_swaps = make_system("ka2", num_particles=10, composition=[5, 5], density=0.8)
    with pytest.raises(ValueError, match="no swap pairs"):
        run_monte_carlo(no_swaps, key=0, p_swap=0.2, **RUN)
    with pytest.raises(ValueError, match="p_swap"):
        run_monte_carlo(system, key=0, p_swap=1.5, **RUN)
    with pytest.raises(TypeError, match="ParticleSystem"):
        run_monte_carlo(system.energy, key=0, **RUN)


def test_random_configurations_are_free_of_overlaps(key):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mf.ImageConventionWarning)
        system = mf.get_system("ka3-n44")  # the dense preset
    x = random_configurations(system.energy, system.species, 3, key=key)
    assert x.shape == (3, 44, 2)
    assert np.all((x >= 0) & (x < system.box))
    cut = mf.contact_distances(system.energy, 1e3)
    for c in range(3):
        for i, j in itertools.combinations(range(44), 2):
            d = x[c, i] - x[c, j]
            d -= system.box * np.round(d / system.box)
            si, sj = system.species[i], system.species[j]
            assert np.linalg.norm(d) >= 0.999 * cut[si, sj]
    u = np.asarray(
        total_energies(
            system.energy, jnp.asarray(x), jnp.asarray(np.broadcast_to(system.species, (3, 44)))
        )
    )
    assert np.all(np.isfinite(u))


REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "data" / "ipl_bhhp_N10_T0.1.xyz"


@pytest.mark.slow
def test_ipl_n10_mean_energy_matches_the_reference_chain():
    """Our generator against the field's reference data: 100 frames of IPL N = 10 at T = 0.1
    from the authors' Monte Carlo code (10^4 sweeps apart, so independent). The mean energy per
    particle must agree within 4 combined standard errors. (Several minutes.)"""
    if not REFERENCE.exists():
        pytest.skip(f"reference data not found at {REFERENCE}")
    ref = mf.load_configurations(REFERENCE)
    u_ref = ref.energy / ref.num_particles
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mf.ImageConventionWarning)
        system = mf.get_system("ipl-n10")
    result = run_monte_carlo(
        system,
        key=2026,
        temperature=0.1,
        num_chains=64,
        samples_per_chain=30,
        sweeps_between=300,
        equilibration_sweeps=10000,
        anneal_from=0.3,
        progress=False,
    )
    ours = result.diagnostics["energy_per_particle"]
    ref_err = u_ref.std(ddof=1) / math.sqrt(u_ref.size)
    assert abs(ours["mean"] - u_ref.mean()) < 4 * math.hypot(ours["error"], ref_err), (
        ours,
        u_ref.mean(),
        ref_err,
    )


# ------------------------------------------------------------------------------ fast paths
@pytest.mark.parametrize("num_species", [3, 9])  # select-based lookup, and the gather fallback
def test_pair_parameter_lookup_equals_plain_indexing(num_species):
    from manifold_flows._energy._params import gather_pairs

    rng = np.random.default_rng(num_species)
    m = rng.uniform(size=(num_species, num_species))
    m = jnp.asarray(m + m.T)
    r = jnp.asarray(rng.uniform(0.5, 2.0, size=(7, 5)))
    # a single label against a column of labels (the energy row), and full index arrays
    cases = [
        (jnp.asarray(num_species - 1), jnp.asarray(rng.integers(0, num_species, (7, 1)))),
        (
            jnp.asarray(rng.integers(0, num_species, (7, 5))),
            jnp.asarray(rng.integers(0, num_species, (7, 5))),
        ),
    ]
    for si, sj in cases:
        r_out, looked_up = gather_pairs(r, si, sj, m)
        assert r_out.shape == looked_up.shape == (7, 5)
        want = np.asarray(m)[np.broadcast_to(si, (7, 5)), np.broadcast_to(sj, (7, 5))]
        np.testing.assert_array_equal(np.asarray(looked_up), want)


def test_float32_runs_keep_their_precision_and_a_consistent_running_energy():
    system = small_system()
    result = run_monte_carlo(
        system,
        key=5,
        temperature=1.0,
        samples_per_chain=2,
        equilibration_sweeps=10,
        precision="float32",
        **RUN,
    )
    assert result.final_state.chains.positions.dtype == jnp.float32
    assert result.final_state.chains.energy.dtype == jnp.float32
    meta = result.dataset.metadata["mc"]
    assert meta["precision"] == "float32" and meta["config"]["precision"] == "float32"
    # running float32 energies against a float64 recomputation of the same samples
    x = jnp.asarray(result.dataset.positions, jnp.float64)
    s = jnp.asarray(np.broadcast_to(result.dataset.species, x.shape[:2]))
    exact = np.asarray(total_energies(system.energy, x, s))
    np.testing.assert_allclose(result.dataset.energy, exact, rtol=1e-4, atol=1e-3)
    assert 0 < meta["energy_drift_max_relative"] < 1e-2
    assert np.all((result.dataset.positions >= 0) & (result.dataset.positions < system.box))


def test_precision_option_is_checked():
    from manifold_flows._mc.engine import resolve_dtype

    with pytest.raises(ValueError, match="precision"):
        mf.MCConfig(precision="float16")
    assert resolve_dtype("float32") == jnp.float32
    assert resolve_dtype(None) == jnp.result_type(float)
    with jax.enable_x64(False):
        with pytest.raises(ValueError, match="jax_enable_x64"):
            resolve_dtype("float64")
