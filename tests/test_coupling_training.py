"""Training the augmented coupling flow (maximum likelihood, energy, mixed), its runs, samples
and audit, and the exactness of its importance weights against a known partition function.

Where a property is claimed, a planted bug shows that the check can fail.
"""

import importlib
import json
import math
import shutil

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate

import manifold_flows as mf
from manifold_flows._flow.augmented import AugmentedCouplingFlow, flow as flow_module
from manifold_flows._flow.augmented.audit import coupling_flow_audit
from manifold_flows._train.config import ModelConfig, TrainConfig
from manifold_flows._train.fit_likelihood import fit_likelihood
from manifold_flows._train.from_config import setup_run, train_from_config
from manifold_flows._train.likelihood import soft_capped

CAP = 30.0  # energy soft cap of the two-particle system (T = 1)
TINY = dict(flow="augmented_coupling", num_layers=1, width=8, channels=2, num_rbf=4, num_bins=4)


# ---------------------------------------------------------------- a system with a known Z
def _pair_system(temperature=1.0):
    """Two unlike IPL particles on a circle of length 4: Z = L * int exp(-u(r)/T) dr."""
    return mf.make_system(
        "ipl", num_particles=2, composition=[1, 1], box=4.0, dim=1, temperature=temperature
    )


def _exact_log_z(system, temperature):
    species = jnp.asarray(system.species)
    length = float(system.box[0])

    energy = jax.jit(lambda x: system.energy(x, species))

    def boltzmann(r):
        x = jnp.array([[0.0], [r % length]])
        return math.exp(-float(energy(x)) / temperature)

    inner, _ = integrate.quad(boltzmann, -length / 2, length / 2, points=[0.0], limit=200)
    return math.log(length * inner)


def _dataset(system, positions):
    return mf.Dataset(
        positions=np.asarray(positions, dtype=np.float64),
        species=np.asarray(system.species),
        species_names=system.species_names,
        box=np.asarray(system.box, dtype=np.float64),
        temperature=system.default_temperature,
        system=system.name,
    )


def _exact_pair_samples(system, num, seed):
    """Exact Boltzmann samples: particle 0 uniform, the separation from its density on a
    fine grid (inverse CDF)."""
    rng = np.random.default_rng(seed)
    length = float(system.box[0])
    grid = np.linspace(-length / 2, length / 2, 20001)
    species = jnp.asarray(system.species)
    pairs = jnp.stack([jnp.zeros_like(grid), grid], axis=1)[..., None]
    u = np.asarray(jax.vmap(lambda x: system.energy(x, species))(jnp.asarray(pairs)))
    density = np.exp(-(u - u.min()) / system.default_temperature)
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (density[1:] + density[:-1]))])
    separation = np.interp(rng.uniform(0, cdf[-1], num), cdf, grid)
    first = rng.uniform(0, length, num)
    return np.mod(np.stack([first, first + separation], axis=1)[..., None], length)


@pytest.fixture(scope="module")
def pair_run(tmp_path_factory):
    """A tiny flow trained on exact samples of the two-particle system, then also on its
    energy (the mixed objective)."""
    system = _pair_system()
    data = _dataset(system, _exact_pair_samples(system, 2000, seed=0))
    config = TrainConfig(
        objective="mixed",
        energy_start_epoch=10,
        batch_size=64,
        epochs=20,
        lr=3e-3,
        val_num_samples=512,
        log_every=50,
    )
    run_dir = tmp_path_factory.mktemp("pair") / "run"
    result = fit_likelihood(
        ModelConfig(**TINY), data, config=config, system=system, run_dir=run_dir, progress=False
    )
    return system, result, run_dir


def _float64(flow):
    return jax.tree.map(lambda a: a.astype(jnp.float64) if eqx.is_inexact_array(a) else a, flow)


def _reweighted_log_z(flow, system, num, seed=0):
    species = jnp.asarray(system.species)
    keys = jax.random.split(jax.random.key(seed), num)
    x, log_q = jax.jit(jax.vmap(lambda k: flow.sample_and_log_prob(k, species)))(keys)
    u = jax.jit(jax.vmap(lambda xi: system.energy(xi, species)))(x)
    return mf.reweight(np.asarray(u), np.asarray(log_q), system.default_temperature)


def test_energy_training_reaches_exact_log_z(pair_run):
    """The importance weights of the trained flow estimate Z, which is known exactly here; the
    energy loss approaches -log Z from above (it is KL - log Z)."""
    system, result, _ = pair_run
    exact = _exact_log_z(system, system.default_temperature)
    flow = _float64(result.field)
    rw = _reweighted_log_z(flow, system, 4000)
    assert rw.ess_fraction > 0.2 and rw.khat < 0.7, (rw.ess_fraction, rw.khat)
    assert abs(rw.log_z - exact) < 4 * rw.log_z_err, (rw.log_z, exact, rw.log_z_err)
    # the maximum-likelihood phase fitted the data (the energy term that follows trades some
    # of that fit for the reverse KL: with either gradient estimator the val NLL rises again)
    first = result.history[0]
    ml_end = [h for h in result.history if h["epoch"] == 10 and "val_loss" in h][-1]
    assert ml_end["val_loss"] < first["val_loss"] - 0.1


def _energy_objective(flow, system, num, seed):
    """The energy loss `E_q[log q~ + soft_capped(U)/T]` on `num` fresh samples, and its
    error (it is the reverse KL minus log Z while no sample reaches the cap)."""
    species = jnp.asarray(system.species)
    keys = jax.random.split(jax.random.key(seed), num)
    x, log_q = eqx.filter_jit(jax.vmap(lambda k: flow.sample_and_log_prob(k, species)))(keys)
    u = jax.jit(jax.vmap(lambda xi: system.energy(xi, species)))(x)
    terms = np.asarray(log_q + soft_capped(u, CAP) / system.default_temperature)
    return float(np.mean(terms)), float(np.std(terms) / math.sqrt(num))


def test_energy_training_lowers_the_reverse_kl():
    """The energy objective alone (no data in the loss) brings the flow closer to the
    Boltzmann distribution: its reverse KL, estimated with the exact log Z, drops."""
    system = _pair_system()
    data = _dataset(system, _exact_pair_samples(system, 640, seed=1))
    config = TrainConfig(
        objective="energy",
        batch_size=64,
        epochs=20,
        lr=3e-3,
        val_num_samples=0,
        log_every=50,
        energy_soft_cap=CAP,
    )
    model = ModelConfig(**TINY)
    start = fit_likelihood(
        model, data, config=config.replace(epochs=1, lr=1e-12), system=system, progress=False
    )
    trained = fit_likelihood(model, data, config=config, system=system, progress=False)
    before, err_before = _energy_objective(_float64(start.field), system, 2000, seed=5)
    after, err_after = _energy_objective(_float64(trained.field), system, 2000, seed=5)
    assert after < before - 4 * math.hypot(err_before, err_after), (before, after)


def test_log_z_without_the_aux_correction_is_wrong(pair_run, monkeypatch):
    """Planted bug: the auxiliary density left out of log q~ biases log Z (by far more than
    its error), so the test above can fail."""
    system, result, _ = pair_run
    exact = _exact_log_z(system, system.default_temperature)
    flow = _float64(result.field)

    def uncorrected(self, key, args):  # log q(x, a) where log q(x, a) - log p_aux(a|x) belongs
        x, _, log_q = self.sample_joint(key, args)
        return x, log_q

    monkeypatch.setattr(AugmentedCouplingFlow, "sample_and_log_prob", uncorrected)
    rw = _reweighted_log_z(flow, system, 4000)
    assert abs(rw.log_z - exact) > 10 * rw.log_z_err


# ---------------------------------------------------------------- maximum likelihood, resume
@pytest.fixture(scope="module")
def ipl_data():
    system = mf.get_system("ipl-n10", temperature=0.1)
    config = mf.MCConfig(
        num_chains=4, samples_per_chain=40, sweeps_between=5, equilibration_sweeps=200
    )
    result = mf.run_monte_carlo(system, key=jax.random.key(3), config=config, progress=False)
    return system, result.dataset


def test_maximum_likelihood_lowers_the_validation_loss(ipl_data, tmp_path):
    system, data = ipl_data
    config = TrainConfig(objective="ml", batch_size=16, epochs=6, lr=3e-3, log_every=5)
    result = fit_likelihood(
        ModelConfig(**TINY), data, config=config, system=system, run_dir=tmp_path, progress=False
    )
    assert result.val_loss < result.initial_val_loss - 1.0, (
        result.initial_val_loss,
        result.val_loss,
    )
    run = mf.load_run(tmp_path)
    assert isinstance(run.field, AugmentedCouplingFlow)
    leaves = jax.tree.leaves(eqx.filter(run.field, eqx.is_inexact_array))
    expected = jax.tree.leaves(eqx.filter(result.field, eqx.is_inexact_array))
    assert all(np.array_equal(a, b) for a, b in zip(leaves, expected, strict=True))


def test_a_resumed_run_equals_the_uninterrupted_one(ipl_data, tmp_path):
    system, data = ipl_data
    config = TrainConfig(
        objective="mixed",
        energy_start_epoch=1,
        batch_size=16,
        epochs=3,
        log_every=3,
        val_num_samples=64,
    )
    model = ModelConfig(**TINY)
    whole = fit_likelihood(model, data, config=config, system=system, progress=False)

    def stop(record):
        if record["step"] == 12:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit_likelihood(
            model,
            data,
            config=config,
            system=system,
            run_dir=tmp_path,
            progress=False,
            callback=stop,
        )
    resumed = fit_likelihood(
        model, data, config=config, system=system, run_dir=tmp_path, resume=True, progress=False
    )
    a = jax.tree.leaves(eqx.filter(whole.state, eqx.is_array))
    b = jax.tree.leaves(eqx.filter(resumed.state, eqx.is_array))
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


@pytest.fixture(scope="module")
def coupling_run(ipl_data, tmp_path_factory):
    """A run of a tiny coupling flow on ipl-n10 (one epoch of maximum likelihood)."""
    system, data = ipl_data
    run = tmp_path_factory.mktemp("coupling") / "run"
    config = TrainConfig(objective="ml", batch_size=16, epochs=1, log_every=5)
    fit_likelihood(
        ModelConfig(**TINY), data, config=config, system=system, run_dir=run, progress=False
    )
    return run


def test_mcmc_takes_a_coupling_run(coupling_run, tmp_path):
    """`mflows mcmc` proposes from a coupling run (aux-corrected log q~, state auxiliaries drawn
    afresh) and writes a dataset; its adaptive mode fine-tunes the coupling flow by maximum
    likelihood on the burn-in samples."""
    from test_flow_mcmc import _cli

    run = coupling_run
    out = tmp_path / "chains.npz"
    common = ["--chains", "2", "--samples-per-chain", "3", "--sweeps-between", "2"]
    common += ["--equilibration", "0", "--flow-every", "1", "--no-progress"]
    common += ["--proposal-batch", "8", "--eval-batch", "2"]
    code, _, err = _cli(["mcmc", "--run", run, "--out", out, *common])
    assert code == 0, err
    written = mf.Dataset.load(out)
    meta = written.metadata["mc"]
    assert written.num_samples == 6
    assert meta["acceptance_production"]["flow"]["attempted"] == 2 * 3 * 2
    assert "p_aux" in meta["extra_moves"]["auxiliaries"]
    code, _, err = _cli(["mcmc", "--run", run, "--out", tmp_path / "b.npz", *common,
                         "--adapt-rounds", "1", "--adapt-samples", "8"])  # fmt: skip
    assert code == 0, err
    adaptation = json.loads((tmp_path / "b.manifest.json").read_text())["flow_mcmc"]["adaptation"]
    assert adaptation["objective"] == "ml" and len(adaptation["flow_acceptance_by_round"]) == 1
    assert mf.Dataset.load(tmp_path / "b.npz").num_samples == 6
    # K auxiliary draws: recorded; proposals from a file keep the K they were drawn with
    code, _, err = _cli(
        ["mcmc", "--run", run, "--out", tmp_path / "k.npz", *common, "--aux-draws", "2"]
    )
    assert code == 0, err
    assert mf.Dataset.load(tmp_path / "k.npz").metadata["mc"]["extra_moves"]["aux_draws"] == 2
    drawn = tmp_path / "drawn.npz"
    code, _, err = _cli(["sample", "--run", run, "-R", "16", "--out", drawn, "--aux-draws", "2",
                         "--no-progress"])  # fmt: skip
    assert code == 0, err
    code, _, err = _cli(["mcmc", "--proposals", drawn, "--out", tmp_path / "c.npz", *common,
                         "--aux-draws", "3"])  # fmt: skip
    assert code != 0 and "drawn with 2" in err and len(err.strip().splitlines()) == 1, err


def test_likelihood_adapter_fits_the_chains_samples(coupling_run, ipl_data):
    """The adaptive mode's fine-tune of a coupling flow is maximum likelihood on the samples it
    is given: their mean -log q~ drops (a no-op adapter fails), and a `MultiAuxFlow` comes back
    wrapped, with its K, around the fine-tuned flow."""
    _, data = ipl_data
    run = mf.load_run(coupling_run)
    flow = mf.flow_for_run(run)
    chains = data  # stand-in for the chains' burn-in samples
    adapt = mf.likelihood_adapter(run, epochs=6, lr=3e-3)

    @eqx.filter_jit
    def mean_nll(model):
        keys = jax.random.split(jax.random.key(7), chains.num_samples)
        x = jnp.asarray(chains.positions, dtype=jnp.float32)
        species = jnp.asarray(chains.species)
        return -jnp.mean(jax.vmap(lambda k, p: model.log_prob(p, species, key=k))(keys, x))

    def nll(model):
        return float(mean_nll(model))

    tuned = adapt(flow, chains, 0)
    assert type(tuned) is type(flow)
    assert nll(tuned) < nll(flow) - 0.2, (nll(flow), nll(tuned))  # same keys: no-op gives 0
    wrapped = adapt(mf.MultiAuxFlow(flow, 3), chains, 0)
    assert isinstance(wrapped, mf.MultiAuxFlow) and wrapped.num_aux == 3
    same = jax.tree.leaves(eqx.filter(wrapped.flow, eqx.is_array))
    assert all(
        np.allclose(a, b)
        for a, b in zip(same, jax.tree.leaves(eqx.filter(tuned, eqx.is_array)), strict=True)
    )


# ---------------------------------------------------------------- size transfer
def test_resized_flow_shares_the_parameters_and_stays_exact():
    """`resized` puts the same conditioners on another box: the audit (round trip, log-det
    against the materialised Jacobian, invariance) passes at the new size, and a box too small
    for the cutoff or of another dimension is refused."""
    small = mf.ParticleSpace(mf.FlatTorus(3.0, dim=2), 4)
    flow = AugmentedCouplingFlow(
        small, 2, num_layers=2, width=8, channels=2, num_rbf=4, init_scale=1.0,
        dtype=jnp.float64, key=jax.random.key(0),
    )  # fmt: skip
    big = flow.resized(mf.ParticleSpace(mf.FlatTorus(3.0 * 1.5**0.5, dim=2), 6))
    assert big.space.num_particles == 6 and big.aux_scale == flow.aux_scale
    assert big.position_conditioners[0].cutoff == flow.position_conditioners[0].cutoff
    same = jax.tree.leaves(eqx.filter(big.position_conditioners, eqx.is_array))
    mine = jax.tree.leaves(eqx.filter(flow.position_conditioners, eqx.is_array))
    assert all(a is b for a, b in zip(same, mine, strict=True))
    species = jnp.asarray([0, 0, 0, 1, 1, 1])
    group = mf.full_symmetry_group(big.space.manifold, species)
    assert coupling_flow_audit(big, jax.random.key(1), species, group=group).passed
    with pytest.raises(ValueError, match="too small for the cutoff"):
        flow.resized(mf.ParticleSpace(mf.FlatTorus(2.0, dim=2), 2))
    with pytest.raises(ValueError, match="resize within one dimension"):
        flow.resized(mf.ParticleSpace(mf.FlatTorus(3.0, dim=3), 4))


def test_mflows_sample_transfers_a_coupling_run_to_a_larger_system(coupling_run, tmp_path):
    """`mflows sample --num-particles 20` samples ipl-n10's model at N = 20 (same density and
    composition) with the trained flow unchanged: each sample's log q is the resized flow's,
    drawn with the sample's key, and its energy that of the N = 20 system; bad sizes are
    refused in one line."""
    from test_flow_mcmc import _cli

    from manifold_flows._pipeline.system import resized_system

    out = tmp_path / "n20.npz"
    args = ["sample", "--run", coupling_run, "-R", "6", "--out", out, "--precision", "32"]
    code, stdout, err = _cli([*args, "--num-particles", "20", "--no-progress"])
    assert code == 0, err
    assert "size transfer from N = 10" in stdout and "NFE" not in stdout
    data = mf.Dataset.load(out)
    assert data.num_particles == 20 and data.system == "ipl-n20"
    np.testing.assert_allclose(data.box, 20**0.5 * 2**0.5, rtol=1e-6)  # N / V = 0.5
    assert data.metadata["size_transfer"]["trained_num_particles"] == 10
    run = mf.load_run(coupling_run)
    system = resized_system(mf.get_system("ipl-n10", temperature=0.1), 20)
    species = jnp.asarray(system.species)
    flow = run.field.resized(mf.ParticleSpace(system.torus, 20))
    flow = jax.tree.map(lambda p: p.astype(jnp.float32) if eqx.is_inexact_array(p) else p, flow)
    x, log_q = flow.sample_and_log_prob(jax.random.fold_in(jax.random.key(0), 4), species)
    np.testing.assert_allclose(data.positions[4], np.asarray(x), atol=1e-5)
    np.testing.assert_allclose(data.extra["log_q"][4], float(log_q), rtol=1e-5)
    energy = float(system.energy(jnp.asarray(data.positions[4]), species))
    assert data.energy[4] == pytest.approx(energy, rel=1e-9)
    for extra, message in (
        (["--num-particles", "15"], "whole counts"),
        (["--composition", "5:5"], "goes with --num-particles"),
        (["--num-particles", "20", "--composition", "A=10,C=10"], "not species of the run"),
    ):
        code, _, err = _cli([*args[:-2], "--out", tmp_path / "x.npz", *extra])
        assert code != 0 and message in err and len(err.strip().splitlines()) == 1, err


def test_mflows_sample_averages_auxiliary_draws(coupling_run, tmp_path):
    """`--aux-draws 3`: each sample's log q is the mean of 3 auxiliary draws (`MultiAuxFlow`
    with the sample's key), recorded in the metadata; K < 1 is refused in one line."""
    from test_flow_mcmc import _cli

    out = tmp_path / "k3.npz"
    args = ["sample", "--run", coupling_run, "-R", "4", "--out", out, "--precision", "32"]
    code, _, err = _cli([*args, "--aux-draws", "3", "--no-progress"])
    assert code == 0, err
    data = mf.Dataset.load(out)
    assert data.metadata["aux_draws"] == 3
    flow = mf.MultiAuxFlow(mf.flow_for_run(mf.load_run(coupling_run), dtype="float32"), 3)
    species = jnp.asarray(data.species)
    x, log_q = flow.sample_and_log_prob(jax.random.fold_in(jax.random.key(0), 2), species)
    np.testing.assert_allclose(data.positions[2], np.asarray(x), atol=1e-5)
    np.testing.assert_allclose(data.extra["log_q"][2], float(log_q), rtol=1e-5)
    code, _, err = _cli([*args[:-2], "--out", tmp_path / "bad.npz", "--aux-draws", "0"])
    assert code != 0 and "--aux-draws" in err and len(err.strip().splitlines()) == 1, err


def test_skipped_steps_are_counted_across_a_resume(ipl_data, tmp_path, monkeypatch):
    """Steps with a non-finite loss are skipped and counted; a resumed run continues the count
    of the interrupted one (the final record says 2 whether or not the run was interrupted)."""
    module = importlib.import_module("manifold_flows._train.fit_likelihood")

    real = module.likelihood_step

    def flaky(state, *args, **kwargs):
        new, out = real(state, *args, **kwargs)
        if int(state.step) in (1, 5):  # the steps taking the state to 2 and 6
            out = {**out, "loss": jnp.asarray(jnp.nan)}
        return new, out

    monkeypatch.setattr(module, "likelihood_step", flaky)
    system, data = ipl_data
    config = TrainConfig(objective="ml", batch_size=16, epochs=1, log_every=1)
    model = ModelConfig(**TINY)
    whole = fit_likelihood(model, data, config=config, system=system, progress=False)
    assert whole.history[-1]["skipped"] == 2

    def stop(record):
        if record["step"] == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit_likelihood(
            model, data, config=config, system=system, run_dir=tmp_path, progress=False,
            callback=stop,
        )  # fmt: skip
    resumed = fit_likelihood(
        model, data, config=config, system=system, run_dir=tmp_path, resume=True, progress=False
    )
    assert resumed.history[-1]["skipped"] == 2


def test_soft_cap_is_continuous_and_leaves_low_energies_alone():
    u = jnp.array([-3.0, 0.0, 5.0, 5.0 + 1e-6, 1e6, jnp.inf])
    capped = soft_capped(u, 5.0)
    assert bool(jnp.isfinite(capped[5]))
    assert np.array_equal(capped[:3], u[:3])
    assert abs(float(capped[3]) - 5.0) < 1e-5
    assert float(capped[4]) == pytest.approx(5.0 + math.log1p(1e6 - 5.0))


# ---------------------------------------------------------------- configuration
def _config(tmp_path, data_path, **train):
    return {
        "run_dir": str(tmp_path / "run"),
        "data": {"path": str(data_path), "system": "ipl-n10", "temperature": 0.1},
        "model": dict(TINY),
        "train": {"objective": "ml", "batch_size": 16, "epochs": 1, **train},
    }


@pytest.fixture(scope="module")
def ipl_file(ipl_data, tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "ipl.npz"
    mf.save_configurations(path, ipl_data[1])
    return path


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda c: c["train"].update(objective="flow_matching"), "trains by its likelihood"),
        (lambda c: c["model"].update(flow="continuous"), "one-pass likelihood"),
        (lambda c: c.update(interpolant={"name": "geodesic"}), "mean nothing"),
        (lambda c: c["model"].update(flow="spline"), "unknown flow"),
        (lambda c: c["train"].update(objective="kl"), "objective must be one of"),
        (lambda c: c["model"].update(neighbours="grid"), "neighbours must be one of"),
    ],
)
def test_inconsistent_configs_are_refused(tmp_path, ipl_file, change, message):
    config = _config(tmp_path, ipl_file)
    change(config)
    with pytest.raises(ValueError, match=message):
        setup_run(config)
    assert not (tmp_path / "run").exists()


def test_energy_objective_needs_a_preset(tmp_path, ipl_file):
    config = _config(tmp_path, ipl_file, objective="energy")
    del config["data"]["system"]
    data = mf.load_configurations(ipl_file)
    if data.system:  # the file names its system: then that preset is used
        setup_run(config)
    else:
        with pytest.raises(ValueError, match="needs the system's energy"):
            setup_run(config)


def test_flow_matching_records_are_unchanged():
    """Runs of vector fields keep their records (and stay resumable): the new options are
    left out of them."""
    assert "objective" not in TrainConfig().to_dict()
    assert "init_from" not in TrainConfig().to_dict()
    assert "flow" not in ModelConfig().to_dict()
    assert ModelConfig(**TINY).to_dict()["flow"] == "augmented_coupling"


def test_train_sample_and_audit_from_a_config(tmp_path, ipl_file, ipl_data):
    config = _config(tmp_path, ipl_file, epochs=2, val_num_samples=32)
    train_from_config(config, progress=False)
    run = mf.load_run(tmp_path / "run")
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    # maximum likelihood with a known system: the ESS of flow samples is reported per epoch
    assert 0 < records[-1]["val_ess"] <= 1 and "val_khat" in records[-1]
    samples = mf.sample_to_file(
        run, num_samples=24, out=tmp_path / "s.npz", chunk_size=8, progress=False, extxyz=False
    )
    flow = mf.flow_for_run(run)  # float64, the sampling default
    keys = [jax.random.fold_in(jax.random.key(0), i) for i in range(24)]
    species = jnp.asarray(run.species)
    expected = np.array([float(flow.sample_and_log_prob(k, species)[1]) for k in keys])
    np.testing.assert_allclose(samples.extra["log_q"][:24], expected, rtol=1e-12)
    report = coupling_flow_audit(
        mf.flow_for_run(run),
        jax.random.key(1),
        species,
        group=mf.full_symmetry_group(run.torus, species),
    )
    assert report.passed, report.format()


def test_audit_catches_a_wrong_log_det(ipl_data, monkeypatch):
    """Planted bug: a log-determinant off by a factor fails the Jacobian and inverse checks."""
    system = ipl_data[0]
    flow = AugmentedCouplingFlow(
        system.space, 2, num_layers=1, width=8, channels=2, num_rbf=4, key=jax.random.key(0)
    )
    flow = jax.tree.map(lambda a: a.astype(jnp.float64) if eqx.is_inexact_array(a) else a, flow)
    species = jnp.asarray(system.species)
    assert coupling_flow_audit(flow, jax.random.key(2), species).passed
    original = flow_module._couple

    def broken(*args, **kwargs):
        moved, log_det = original(*args, **kwargs)
        return moved, 1.01 * log_det

    monkeypatch.setattr(flow_module, "_couple", broken)
    report = coupling_flow_audit(flow, jax.random.key(2), species)
    assert "jacobian" in report.failures


# ---------------------------------------------------------------- several auxiliary draws
def test_aux_draws_train_the_k_draw_bound(ipl_data):
    """`aux_draws = K`: the data term of a step is `-log q~_K` of `MultiAuxFlow(flow, K)` with
    the step's key, a tighter bound than one draw's (lower on average, for a flow whose
    `q(a | x)` is not `p_aux`); a step that ignored K would give the one-draw value."""
    from manifold_flows._train.likelihood import likelihood_step, ml_loss
    from manifold_flows._train.state import init_train_state, make_optimizer

    _, data = ipl_data
    species = jnp.asarray(data.species)
    torus = mf.FlatTorus(tuple(float(v) for v in data.box))
    flow = AugmentedCouplingFlow(
        mf.ParticleSpace(torus, 10), 2, num_layers=1, width=8, channels=2, num_rbf=4,
        num_bins=4, init_scale=0.5, dtype=jnp.float32, key=jax.random.key(0),
    )  # fmt: skip
    x = jnp.asarray(data.positions[:64], jnp.float32)
    config = TrainConfig(objective="ml", aux_draws=8)
    optimizer = make_optimizer(config, 10)
    state = init_train_state(flow, optimizer, key=jax.random.key(1), dtype=jnp.float32)
    key_ml = jax.random.split(state.step_key())[0]
    nll = {}
    for k in (1, 8):
        _, out = likelihood_step(
            state, x, species, optimizer=optimizer, ema_decay=0.9, ml_weight=1.0,
            energy_weight=0.0, aux_draws=k,
        )  # fmt: skip
        nll[k] = float(out["nll"])
        model = mf.MultiAuxFlow(flow, k) if k > 1 else flow
        expected = eqx.filter_jit(ml_loss)(model, x, species, key_ml)
        assert nll[k] == pytest.approx(float(expected), rel=1e-5, abs=1e-4)
    assert nll[8] < nll[1] - 0.5, nll


def test_a_run_trained_with_aux_draws_samples_with_them(tmp_path, ipl_file):
    """The run records `aux_draws` (left out at 1, so older records stay resumable), its
    validation and sampling use it by default, and a bad K is refused in one line."""
    with pytest.raises(ValueError, match="aux_draws must be an integer >= 1"):
        TrainConfig(objective="ml", aux_draws=0)
    assert "aux_draws" not in TrainConfig(objective="ml").to_dict()
    config = _config(tmp_path, ipl_file, epochs=1, val_num_samples=16, aux_draws=2)
    train_from_config(config, progress=False)
    run = mf.load_run(tmp_path / "run")
    assert run.config.aux_draws == 2
    samples = mf.sample_to_file(
        run, num_samples=4, out=tmp_path / "s.npz", chunk_size=4, progress=False, extxyz=False,
        dtype="float32",
    )  # fmt: skip
    assert samples.metadata["aux_draws"] == 2
    flow = mf.MultiAuxFlow(mf.flow_for_run(run, dtype="float32"), 2)
    _, log_q = flow.sample_and_log_prob(jax.random.fold_in(jax.random.key(0), 1), run.species)
    np.testing.assert_allclose(samples.extra["log_q"][1], float(log_q), rtol=1e-5)
    once = mf.sample_to_file(
        run, num_samples=4, out=tmp_path / "one.npz", chunk_size=4, progress=False,
        extxyz=False, dtype="float32", aux_draws=1,
    )  # fmt: skip
    assert "aux_draws" not in once.metadata or once.metadata["aux_draws"] == 1
    assert not np.allclose(once.extra["log_q"], samples.extra["log_q"])
    # `mflows mcmc` weighs its proposals and chain states with the run's K by default too
    from cli._mcmc import _with_aux_draws

    flow = mf.flow_for_run(run, dtype="float32")
    chosen = _with_aux_draws(flow, run, tmp_path / "run", None, None, {})
    assert isinstance(chosen, mf.MultiAuxFlow) and chosen.num_aux == 2
    assert _with_aux_draws(flow, run, tmp_path / "run", 1, None, {}) is flow


def test_energy_max_force_bounds_hot_samples_only(ipl_data):
    """`guarded_energy(..., max_force)`: the value is unchanged; a gradient larger than the
    bound is scaled down to it along the same direction, and a smaller one (an equilibrium
    configuration) is left alone. Without the bound, the hot sample's gradient exceeds it."""
    from manifold_flows._train.likelihood import guarded_energy

    system, data = ipl_data
    species = jnp.asarray(data.species)
    calm = jnp.asarray(data.positions[0])
    hot = calm.at[1].set(calm[0] + 0.05)  # two particles almost on top of each other
    bound = 30.0

    def grad(x, max_force):
        return jax.value_and_grad(lambda y: guarded_energy(system.energy, y, species, max_force))(x)

    for x in (calm, hot):
        u_free, g_free = grad(x, None)
        u, g = grad(x, bound)
        assert float(u) == float(u_free) == float(system.energy(x, species))
        norm_free = float(jnp.linalg.norm(g_free))
        if norm_free <= bound:
            np.testing.assert_array_equal(g, g_free)
        else:
            assert float(jnp.linalg.norm(g)) == pytest.approx(bound, rel=1e-6)
            np.testing.assert_allclose(g, g_free * bound / norm_free, rtol=1e-6)
    assert float(jnp.linalg.norm(grad(calm, None)[1])) < bound
    assert float(jnp.linalg.norm(grad(hot, None)[1])) > 100 * bound
    with pytest.raises(ValueError, match="energy_max_force must lie in"):
        TrainConfig(objective="mixed", energy_max_force=0.0)
    assert "energy_max_force" not in TrainConfig(objective="mixed").to_dict()
    assert (
        TrainConfig(objective="mixed", energy_max_force=bound).to_dict()["energy_max_force"]
        == bound
    )


# ---------------------------------------------------------------- warm starts (init_from)
def test_init_from_starts_where_the_source_run_ended(ipl_file, tmp_path):
    """A run with `init_from` begins with the source run's EMA flow: its untrained validation
    loss (same split, same validation keys) is the source's last one, not the fresh model's
    (the source's first); it records its [model], so `load_run` reads it without `like=`."""
    settings = dict(lr=1e-2, ema_decay=0.0, val_num_samples=0, log_every=5)
    source = train_from_config(_config(tmp_path / "source", ipl_file, **settings), progress=False)
    assert abs(source.val_loss - source.initial_val_loss) > 0.01  # the check below can fail
    config = _config(tmp_path, ipl_file, init_from=str(source.run_dir), **settings)
    warm = train_from_config(config, progress=False)
    assert warm.initial_val_loss == pytest.approx(source.val_loss, rel=1e-6, abs=1e-6)
    run = mf.load_run(tmp_path / "run")
    assert run.config.init_from == str(source.run_dir)
    assert isinstance(run.field, AugmentedCouplingFlow)
    # resuming reads the run's own checkpoint: the source is no longer needed
    shutil.rmtree(source.run_dir)
    config["train"]["epochs"] = 2
    resumed = train_from_config(config, resume=True, progress=False)
    assert int(resumed.state.step) == 2 * warm.steps_per_epoch


def test_init_from_is_refused_before_training(coupling_run, ipl_file, tmp_path):
    """A source that is not a finished run of the same model is refused in `setup_run`, with
    the fix, before anything is written."""
    config = _config(tmp_path, ipl_file, init_from=str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match=r"init_from.*does not exist"):
        setup_run(config)
    config = _config(tmp_path, ipl_file, init_from=str(coupling_run))
    config["model"]["num_layers"] = 2
    with pytest.raises(ValueError, match=r"another \[model\].*num_layers = 1 there, 2 here"):
        setup_run(config)
    python_run = tmp_path / "python_run"
    python_run.mkdir()
    info = json.loads((coupling_run / "run.json").read_text())
    (python_run / "run.json").write_text(json.dumps({**info, "model": None}))
    (python_run / "checkpoint.eqx").write_bytes((coupling_run / "checkpoint.eqx").read_bytes())
    config = _config(tmp_path, ipl_file, init_from=str(python_run))
    with pytest.raises(ValueError, match="passed from Python"):
        setup_run(config)
    with pytest.raises(ValueError, match="init_from must be a run directory"):
        TrainConfig(objective="ml", init_from="")
    assert not (tmp_path / "run").exists()


def test_init_from_a_smaller_system_is_the_resized_flow(coupling_run):
    """A coupling flow warm-started from a run at N = 10 is that run's flow resized to
    N = 20 (same density): the same log q; the default cutoff (half the larger box) is
    refused with the value to set."""
    from manifold_flows._pipeline.system import resized_system
    from manifold_flows._train.warm_start import warm_start

    source = mf.load_run(coupling_run).field
    cutoff = source.position_conditioners[0].cutoff
    system = resized_system(mf.get_system("ipl-n10", temperature=0.1), 20)
    space = mf.ParticleSpace(system.torus, 20)
    default = ModelConfig(**TINY)
    built = default.build(system.torus, 20, 2, key=jax.random.key(5))
    with pytest.raises(ValueError, match=f"set \\[model\\] cutoff = {cutoff!r}"):
        warm_start(built, coupling_run, model_config=default)
    model = ModelConfig(**TINY, cutoff=cutoff)
    built = model.build(system.torus, 20, 2, key=jax.random.key(5))
    warm = warm_start(built, coupling_run, model_config=model)
    species = jnp.asarray(system.species)
    x = jax.random.uniform(jax.random.key(1), (20, 2)) * jnp.asarray(system.torus.lengths)[None]
    a = source.sample_aux(jax.random.key(2), x, species)
    expected = source.resized(space).log_prob_joint(x, a, species)
    assert float(warm.log_prob_joint(x, a, species)) == pytest.approx(float(expected), abs=1e-4)
    assert abs(float(built.log_prob_joint(x, a, species)) - float(expected)) > 1e-2


def test_init_from_adds_a_learned_aux_target_to_a_trained_flow(coupling_run, tmp_path, ipl_file):
    """A run with `learned_aux` may start from one without: the same flow, and the learned
    target starts as the fixed one (same log q~). The other way round is refused."""
    from manifold_flows._train.warm_start import check_init_from, warm_start

    source = mf.load_run(coupling_run).field
    system = mf.get_system("ipl-n10", temperature=0.1)
    model = ModelConfig(**TINY, learned_aux=True)
    built = model.build(system.torus, 10, 2, key=jax.random.key(5))
    warm = warm_start(built, coupling_run, model_config=model)
    assert warm.learned_aux is not None
    species = jnp.asarray(system.species)
    x = jax.random.uniform(jax.random.key(1), (10, 2)) * jnp.asarray(system.torus.lengths)[None]
    a = source.sample_aux(jax.random.key(2), x, species)
    assert float(warm.log_prob_joint(x, a, species)) == pytest.approx(
        float(source.log_prob_joint(x, a, species)), abs=1e-5
    )
    assert float(warm.aux_log_prob(a, x, species)) == pytest.approx(
        float(source.aux_log_prob(a, x, species)), abs=1e-5
    )
    # a learned run as the source of a fixed-target one: refused, naming the option
    learned_run = tmp_path / "learned"
    shutil.copytree(coupling_run, learned_run)
    info = json.loads((learned_run / "run.json").read_text())
    info["model"]["learned_aux"] = True
    (learned_run / "run.json").write_text(json.dumps(info))
    with pytest.raises(ValueError, match="learned_aux = True there, False here"):
        check_init_from(learned_run, ModelConfig(**TINY))
