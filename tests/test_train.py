"""Training: the loss, learning on a tiny problem, exact resume, NaN stop, atomic checkpoints,
run directories and load_run."""

import importlib
import json
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import manifold_flows as mf
from manifold_flows._train.checkpoint import load_checkpoint, save_checkpoint

# the submodules (the package attributes `fit`, ... are the functions)
fit_module = importlib.import_module("manifold_flows._train.fit")
checkpoint_module = importlib.import_module("manifold_flows._train.checkpoint")
loop_module = importlib.import_module("manifold_flows._train.loop")

BOX = 2.0
N, D = 4, 2
SPECIES = np.array([0, 0, 1, 1], dtype=np.int32)
TORUS = mf.FlatTorus(BOX, dim=D)


class TinyField(mf.AbstractVectorField):
    """A small non-equivariant field on the torus (angle features + MLP): cheap to compile."""

    mlp: eqx.nn.MLP

    def __init__(self, key):
        self.mlp = eqx.nn.MLP(1 + 2 * N * D, N * D, width_size=16, depth=1, key=key)

    def __call__(self, t, x, args):
        angle = (2 * math.pi / BOX) * x
        t = jnp.reshape(jnp.asarray(t, dtype=x.dtype), (1,))
        features = jnp.concatenate([t, jnp.sin(angle).ravel(), jnp.cos(angle).ravel()])
        return self.mlp(features).reshape(x.shape)


class ConstantField(mf.AbstractVectorField):
    velocity: jax.Array

    def __init__(self, velocity):
        self.velocity = jnp.asarray(velocity)

    def __call__(self, t, x, args):
        return jnp.broadcast_to(self.velocity, x.shape).astype(x.dtype)


def make_dataset(num=96, seed=0):
    """Particles jittered around four fixed sites: a distribution a tiny field can learn."""
    rng = np.random.default_rng(seed)
    sites = np.array([[0.3, 0.4], [1.2, 0.5], [0.6, 1.5], [1.6, 1.4]])
    positions = sites[None] + 0.05 * rng.normal(size=(num, N, D))
    return mf.Dataset(
        positions, SPECIES, ("A", "B"), np.full(D, BOX), temperature=1.0, system="toy"
    )


STRATEGIES = dict(interpolant=mf.GeodesicInterpolant(TORUS), coupling=mf.SpeciesOTCoupling(TORUS))
# The tests share one optimiser setting, batch size and strategies, so the jitted training step
# compiles once for the whole module.
CONFIG = mf.TrainConfig(lr=1e-2, batch_size=12, epochs=8, val_fraction=0.25, log_every=3)


def trees_equal(a, b) -> bool:
    la, lb = (
        jax.tree.leaves(eqx.filter(a, eqx.is_array)),
        jax.tree.leaves(eqx.filter(b, eqx.is_array)),
    )
    return len(la) == len(lb) and all(np.array_equal(x, y) for x, y in zip(la, lb, strict=True))


# ------------------------------------------------------------------------------ the loss
def test_flow_matching_loss_is_the_mean_squared_velocity_error():
    x0 = jax.random.normal(jax.random.key(0), (3, N, D))
    shift = jnp.array([0.5, -0.25])
    x1 = x0 + shift[None, None, :]
    t = jnp.array([0.1, 0.5, 0.9])
    interp = mf.LinearInterpolant()
    exact = mf.flow_matching_loss(ConstantField(shift), interp, x0, x1, t, None)
    assert float(exact) < 1e-28  # (x0 + c) - x0 == c up to rounding
    other = jnp.array([0.0, 1.0])
    loss = mf.flow_matching_loss(ConstantField(other), interp, x0, x1, t, None)
    np.testing.assert_allclose(loss, jnp.mean((other - shift) ** 2), rtol=1e-12)
    # evaluate_loss over padded chunks equals the one-batch loss
    np.testing.assert_allclose(
        mf.evaluate_loss(ConstantField(other), interp, x0, x1, t, None, batch_size=2),
        loss,
        rtol=1e-12,
    )


# ------------------------------------------------------------------------------ learning
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    result = mf.fit(
        TinyField(jax.random.key(1)),
        make_dataset(),
        config=CONFIG,
        run_dir=run_dir,
        progress=False,
        **STRATEGIES,
    )
    return result, run_dir


def test_validation_loss_decreases_on_a_tiny_problem(trained):
    result, _ = trained
    assert result.initial_val_loss is not None and result.val_loss is not None
    assert result.val_loss < 0.6 * result.initial_val_loss, (
        result.initial_val_loss,
        result.val_loss,
    )
    assert int(result.state.step) == result.total_steps == 8 * 6


def test_run_directory_layout_and_metrics(trained):
    result, run_dir = trained
    assert {p.name for p in run_dir.iterdir()} >= {
        "run.json",
        "checkpoint.eqx",
        "checkpoint.json",
        "metrics.jsonl",
    }
    assert not list(run_dir.glob(".*partial"))
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert records[0]["step"] == 0 and records[0]["val_loss"] == pytest.approx(
        result.initial_val_loss
    )
    steps = [r["step"] for r in records]
    assert steps == sorted(set(steps)) and steps[-1] == result.total_steps
    for r in records[1:]:
        assert {"step", "epoch", "loss", "grad_norm", "lr", "steps_per_s"} <= set(r)
        assert math.isfinite(r["loss"]) and r["lr"] == pytest.approx(1e-2)
    epoch_ends = [r for r in records if "val_loss" in r and r["step"] > 0]
    assert len(epoch_ends) == 8  # one validation per epoch
    info = json.loads((run_dir / "run.json").read_text())
    assert info["space"] == "torus" and info["species"] == SPECIES.tolist()
    assert info["model"] is None and info["field_class"] == "TinyField"


def test_load_run_reads_back_ema_and_raw_weights(trained):
    result, run_dir = trained
    with pytest.raises(ValueError, match="like=field"):
        mf.load_run(run_dir)  # a user-built field cannot be rebuilt from the run alone
    run = mf.load_run(run_dir, like=TinyField(jax.random.key(9)))
    assert trees_equal(run.field, result.field) and trees_equal(run.raw_field, result.raw_field)
    assert not trees_equal(run.field, run.raw_field)  # the EMA is a real average
    assert run.step == result.total_steps and run.epoch == 8
    assert run.space == mf.ParticleSpace(TORUS, N) and run.torus == TORUS
    np.testing.assert_array_equal(run.species, SPECIES)
    assert run.species_names == ("A", "B") and run.system == "toy" and run.temperature == 1.0
    assert isinstance(run.interpolant, mf.GeodesicInterpolant)


def test_load_run_says_how_to_make_a_run(tmp_path, trained):
    with pytest.raises(FileNotFoundError, match=r"does not exist.*mflows train"):
        mf.load_run(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="not a training run directory"):
        mf.load_run(tmp_path)
    _, run_dir = trained
    (tmp_path / "run.json").write_text((run_dir / "run.json").read_text())
    with pytest.raises(FileNotFoundError, match="has no checkpoint"):
        mf.load_run(tmp_path)


def test_existing_run_needs_resume(trained):
    _, run_dir = trained
    with pytest.raises(FileExistsError, match="resume"):
        mf.fit(
            TinyField(jax.random.key(1)),
            make_dataset(),
            run_dir=run_dir,
            progress=False,
            config=mf.TrainConfig(batch_size=12, epochs=1, val_fraction=0.25),
            **STRATEGIES,
        )


# ------------------------------------------------------------------------------ resume
def test_interrupted_then_resumed_run_equals_uninterrupted(tmp_path):
    data = make_dataset()
    field = TinyField(jax.random.key(2))
    config = CONFIG.replace(epochs=2, checkpoint_every=4, log_every=1, seed=3)
    straight = mf.fit(
        field, data, config=config, run_dir=tmp_path / "a", progress=False, **STRATEGIES
    )

    def interrupt(record):
        if record["step"] == 7:  # mid-epoch, after the step-4 checkpoint
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        mf.fit(
            field,
            data,
            config=config,
            run_dir=tmp_path / "b",
            progress=False,
            callback=interrupt,
            **STRATEGIES,
        )
    partial = mf.load_run(tmp_path / "b", like=field)
    assert partial.step == 7  # the interrupt checkpointed the state it had reached
    resumed = mf.fit(
        field,
        data,
        config=config,
        run_dir=tmp_path / "b",
        resume=True,
        progress=False,
        **STRATEGIES,
    )
    assert int(resumed.state.step) == int(straight.state.step) == config.epochs * 6
    assert trees_equal(resumed.state, straight.state)  # params, EMA, optimiser state, key: bitwise

    def losses(run):
        lines = (tmp_path / run / "metrics.jsonl").read_text().splitlines()
        return [(r["step"], r.get("loss"), r.get("val_loss")) for r in map(json.loads, lines)]

    assert losses("a") == losses("b")  # same log, no duplicated steps

    # a changed setting is refused rather than silently mixed into the run
    with pytest.raises(ValueError, match="lr"):
        mf.fit(
            field,
            data,
            config=config.replace(lr=3e-2),
            run_dir=tmp_path / "b",
            resume=True,
            progress=False,
            **STRATEGIES,
        )


# A run whose records average over several steps (log_every 4) with checkpoints between them
# (checkpoint_every 3), started from an explicit key that is not the seed's.
WINDOW_CONFIG = CONFIG.replace(epochs=2, checkpoint_every=3, log_every=4, seed=3)
RUN_KEY = jax.random.key(77)


class Killed(BaseException):
    """Stands for kill -9: nothing in `fit` handles it, and nothing is written after it."""


def metrics_records(run_dir):
    """The metrics records of a run, without the one field that measures wall time."""
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k != "steps_per_s"} for line in lines]


def fit_window_run(run_dir, **kwargs):
    return mf.fit(
        TinyField(jax.random.key(2)),
        make_dataset(),
        config=WINDOW_CONFIG,
        run_dir=run_dir,
        progress=False,
        **kwargs,
        **STRATEGIES,
    )


@pytest.fixture(scope="module")
def window_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("window")
    return fit_window_run(run_dir, key=RUN_KEY), metrics_records(run_dir)


def kill_after_checkpoint(monkeypatch, at_step):
    real = loop_module.save_train_checkpoint

    def save_then_die(path, state, window):
        real(path, state, window)
        if int(state.step) == at_step:
            raise Killed

    monkeypatch.setattr(loop_module, "save_train_checkpoint", save_then_die)


def kill_at_record(monkeypatch, at_step, *, written, signal=Killed):
    real = fit_module.MetricsLog.write

    def write_or_die(self, record):
        if record["step"] == at_step and not written:
            raise signal
        real(self, record)
        if record["step"] == at_step:
            raise signal

    monkeypatch.setattr(fit_module.MetricsLog, "write", write_or_die)


@pytest.mark.parametrize(
    "kill",
    [
        # mid-window: the checkpoint of step 3 lies between the records of steps 0 and 4
        pytest.param(lambda mp: kill_after_checkpoint(mp, 3), id="after-checkpoint-mid-window"),
        # step 6 (an epoch end) has both a record and a checkpoint; kill between the two writes,
        # whichever comes first, and right after both
        pytest.param(lambda mp: kill_after_checkpoint(mp, 6), id="after-checkpoint-of-a-record"),
        pytest.param(lambda mp: kill_at_record(mp, 6, written=False), id="before-record"),
        pytest.param(lambda mp: kill_at_record(mp, 6, written=True), id="after-record"),
        # Ctrl-C checkpoints the state it reached: not while a record of that state is unsure
        pytest.param(
            lambda mp: kill_at_record(mp, 8, written=True, signal=KeyboardInterrupt),
            id="ctrl-c-after-record",
        ),
        pytest.param(
            lambda mp: kill_at_record(mp, 8, written=False, signal=KeyboardInterrupt),
            id="ctrl-c-before-record",
        ),
    ],
)
def test_killed_then_resumed_run_writes_the_uninterrupted_records(
    tmp_path, monkeypatch, window_run, kill
):
    straight, straight_records = window_run
    seed_key = jax.random.key(WINDOW_CONFIG.seed)
    assert not np.array_equal(jax.random.key_data(RUN_KEY), jax.random.key_data(seed_key))
    kill(monkeypatch)
    with pytest.raises((Killed, KeyboardInterrupt)):
        fit_window_run(tmp_path, key=RUN_KEY)
    monkeypatch.undo()
    # resumed without a key: the run's own key is the one saved in the run directory
    resumed = fit_window_run(tmp_path, resume=True)
    assert int(resumed.state.step) == int(straight.state.step) == 12
    assert trees_equal(resumed.state, straight.state)  # bitwise, with the explicit key
    # the same records (averaged over the same steps), none lost and none twice
    records = metrics_records(tmp_path)
    assert [r["step"] for r in records] == [0, 4, 6, 8, 12]
    assert records == straight_records


def test_ema_of_the_weights_equals_its_closed_form():
    """After k steps from s = 0 with the per-step decays d_s = min(ema_decay, (1+s)/(10+s)),
    the EMA is sum_j c_j p_j over the raw weights p_0..p_k, with c_0 = prod_{s<k} d_s and
    c_j = (1 - d_{j-1}) prod_{j<=s<k} d_s."""
    data = make_dataset(num=12)
    opt = mf.make_optimizer(CONFIG, 48)
    state = mf.init_train_state(
        TinyField(jax.random.key(5)), opt, key=jax.random.key(6), dtype=jnp.float32
    )
    x1 = jnp.asarray(data.positions, dtype=jnp.float32)
    options = dict(optimizer=opt, ema_decay=CONFIG.ema_decay, group=None, **STRATEGIES)
    base = mf.ParticleSpace(TORUS, N)
    raw = [state.params]
    for _ in range(4):
        state, _ = mf.train_step(state, x1, jnp.asarray(SPECIES), base=base, **options)
        raw.append(state.params)
    k = len(raw) - 1
    decay = [min(CONFIG.ema_decay, (1 + s) / (10 + s)) for s in range(k)]
    coef = [math.prod(decay)] + [(1 - decay[j - 1]) * math.prod(decay[j:]) for j in range(1, k + 1)]
    assert sum(coef) == pytest.approx(1.0)
    leaves = [jax.tree.leaves(eqx.filter(p, eqx.is_inexact_array)) for p in raw]
    ema = jax.tree.leaves(eqx.filter(state.ema_params, eqx.is_inexact_array))
    for i, got in enumerate(ema):
        expected = sum(c * np.asarray(p[i], np.float64) for c, p in zip(coef, leaves, strict=True))
        scale = max(float(np.max(np.abs(expected))), 1e-3)
        np.testing.assert_allclose(np.asarray(got, np.float64), expected, rtol=0, atol=1e-6 * scale)
    # the weights moved, so the coefficients matter
    assert not trees_equal(raw[0], raw[-1])


def test_augmentation_moves_each_data_point_within_its_symmetry_orbit():
    species = jnp.asarray(SPECIES)
    x1 = jnp.asarray(make_dataset(num=8).positions)
    draw = jax.jit(
        lambda k, x: mf.sample_pairs(
            k,
            x,
            species,
            interpolant=STRATEGIES["interpolant"],
            coupling=mf.IndependentCoupling(),
            base=mf.ParticleSpace(TORUS, N),
            group=mf.full_symmetry_group(TORUS, species),
        )
    )
    x0, y1, t, z = draw(jax.random.key(0), x1)
    assert z is None and bool(jnp.all((t >= 0) & (t < 1)))
    assert bool(jnp.all((x0 >= 0) & (x0 < BOX)))
    assert float(jnp.min(jnp.max(jnp.abs(y1 - x1), axis=(1, 2)))) > 1e-3  # every sample moved

    def distances(x):  # all minimum-image pair distances, by species pair: the orbit invariant
        d = jax.vmap(jax.vmap(TORUS.dist, (None, 0)), (0, None))(x, x)
        return jnp.sort(jnp.stack([d[:2, :2].ravel(), d[2:, 2:].ravel(), d[:2, 2:].ravel()]))

    np.testing.assert_allclose(jax.vmap(distances)(y1), jax.vmap(distances)(x1), atol=1e-9)


@pytest.mark.parametrize("point_group, with_species", [(False, True), (True, True), (False, False)])
def test_step_with_host_coupling_takes_the_loss_of_the_coupled_pairs(point_group, with_species):
    # train_step solves the coupling on the host between two compiled halves; its loss must be
    # the loss of the pairs the coupling makes when called directly (one host callback).
    data = make_dataset(num=12)
    opt = mf.make_optimizer(CONFIG, 48)
    field = TinyField(jax.random.key(3))
    state = mf.init_train_state(field, opt, key=jax.random.key(4), dtype=jnp.float32)
    x1 = jnp.asarray(data.positions, dtype=jnp.float32)
    species = jnp.asarray(SPECIES) if with_species else None  # None: one species
    strategies = dict(
        interpolant=mf.GeodesicInterpolant(TORUS),
        coupling=mf.SpeciesOTCoupling(TORUS, point_group=point_group),
        base=mf.ParticleSpace(TORUS, N),
    )
    _, out = mf.train_step(state, x1, species, optimizer=opt, ema_decay=0.9, **strategies)
    x0, y1, t, z = mf.sample_pairs(state.step_key(), x1, species, **strategies)
    assert float(jnp.max(jnp.abs(y1 - x1))) > 1e-3  # the coupling did re-pair the particles
    expected = mf.flow_matching_loss(state.params, strategies["interpolant"], x0, y1, t, species, z)
    np.testing.assert_allclose(float(out["loss"]), float(expected), rtol=1e-6)


def test_host_stage_done_a_step_ahead_gives_the_same_step():
    # fit pipelines a host coupling: the draws and assignment of step k+1 are made from the
    # state of step k (`ahead=1`) while the device computes step k. The step must be the one
    # train_step makes by itself at step k+1, bit for bit.
    data = make_dataset(num=24)
    opt = mf.make_optimizer(CONFIG, 48)
    state = mf.init_train_state(
        TinyField(jax.random.key(3)), opt, key=jax.random.key(4), dtype=jnp.float32
    )
    x = jnp.asarray(data.positions, dtype=jnp.float32)
    x_a, x_b = x[:12], x[12:]
    species = jnp.asarray(SPECIES)
    strategies = dict(
        interpolant=mf.GeodesicInterpolant(TORUS),
        coupling=mf.SpeciesOTCoupling(TORUS),
        base=mf.ParticleSpace(TORUS, N),
    )
    step = dict(optimizer=opt, ema_decay=0.9, **strategies)
    ahead = mf.solve_host_coupling(
        mf.pose_host_coupling(state, x_b, species, ahead=1, **strategies),
        strategies["coupling"],
    )
    wrong = mf.solve_host_coupling(  # the draws of step k, not k+1
        mf.pose_host_coupling(state, x_b, species, **strategies), strategies["coupling"]
    )
    s1, _ = mf.train_step(state, x_a, species, **step)
    reference, out_ref = mf.train_step(s1, x_b, species, **step)
    pipelined, out = mf.train_step(s1, x_b, species, coupled=ahead, **step)
    assert float(out["loss"]) == float(out_ref["loss"])
    assert trees_equal(pipelined, reference)
    _, out_wrong = mf.train_step(s1, x_b, species, coupled=wrong, **step)
    assert float(out_wrong["loss"]) != float(out_ref["loss"])  # the check can fail
    with pytest.raises(ValueError, match="coupled"):
        mf.train_step(
            s1, x_b, species, coupled=ahead, **dict(step, coupling=mf.IndependentCoupling())
        )


# ------------------------------------------------------------------------------ divergence
def test_nan_step_leaves_the_state_unchanged():
    data = make_dataset(num=12)
    opt = mf.make_optimizer(CONFIG, 48)
    state = mf.init_train_state(
        TinyField(jax.random.key(0)), opt, key=jax.random.key(0), dtype=jnp.float32
    )
    x1 = jnp.asarray(data.positions, dtype=jnp.float32).at[0, 0, 0].set(jnp.nan)
    new, out = mf.train_step(
        state,
        x1,
        jnp.asarray(SPECIES),
        optimizer=opt,
        ema_decay=CONFIG.ema_decay,
        group=None,
        base=mf.ParticleSpace(TORUS, N),
        **STRATEGIES,
    )
    assert not math.isfinite(float(out["loss"]))
    assert int(new.step) == 1
    assert trees_equal(new.params, state.params) and trees_equal(new.opt_state, state.opt_state)


def test_nan_loss_stops_with_a_clear_error_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    real_step = fit_module.train_step

    def poisoned(state, *args, **kwargs):
        new, out = real_step(state, *args, **kwargs)
        if int(new.step) == 6:  # inject a NaN loss at step 6
            out = {**out, "loss": jnp.asarray(jnp.nan)}
        return new, out

    monkeypatch.setattr(fit_module, "train_step", poisoned)
    config = CONFIG.replace(epochs=2, checkpoint_every=4)
    field = TinyField(jax.random.key(1))
    with pytest.raises(mf.TrainingDiverged, match=r"diverged at step 6.*step 4") as info:
        mf.fit(field, make_dataset(), config=config, run_dir=tmp_path, progress=False, **STRATEGIES)
    assert info.value.step == 6 and info.value.checkpoint_step == 4
    run = mf.load_run(tmp_path, like=field)
    assert run.step == 4
    assert all(
        math.isfinite(float(jnp.max(jnp.abs(leaf))))
        for leaf in jax.tree.leaves(eqx.filter(run.field, eqx.is_array))
    )
    last = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["diverged"] is True and last["step"] == 6


# ------------------------------------------------------------------------------ checkpoints
def test_failed_checkpoint_write_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.eqx"
    good = {"w": jnp.arange(4.0), "step": jnp.asarray(3)}
    save_checkpoint(path, good)
    before = path.read_bytes()

    def crash(fh, tree):
        fh.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint_module.eqx, "tree_serialise_leaves", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"w": jnp.zeros(4), "step": jnp.asarray(4)})
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind
    assert trees_equal(load_checkpoint(path, good), good)


def test_train_checkpoint_holds_the_state_then_the_metrics_window(tmp_path):
    state = {"w": jnp.arange(4.0), "step": jnp.asarray(3)}
    window = np.array([2.0, 0.75, 1.5])
    path = checkpoint_module.save_train_checkpoint(tmp_path / "c.eqx", state, window)
    got, got_window = checkpoint_module.load_train_checkpoint(path, state)
    assert trees_equal(got, state) and np.array_equal(got_window, window)
    assert trees_equal(load_checkpoint(path, state), state)  # what load_run reads
    # a checkpoint that holds the state alone (an older run) has no window
    save_checkpoint(path, state)
    got, got_window = checkpoint_module.load_train_checkpoint(path, state)
    assert trees_equal(got, state) and got_window is None
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(ValueError, match="cannot read checkpoint"):
        checkpoint_module.load_train_checkpoint(path, state)


# ------------------------------------------------------------------------------ bad input
def test_bad_inputs_fail_before_training(tmp_path):
    data = make_dataset(num=16)
    field = TinyField(jax.random.key(0))
    with pytest.raises(ValueError, match="batch_size 64 is larger than the training split"):
        mf.fit(field, data, config=mf.TrainConfig(batch_size=64), progress=False, **STRATEGIES)
    other = mf.FlatTorus(3.0, dim=2)
    with pytest.raises(ValueError, match="box"):
        mf.fit(
            field,
            data,
            interpolant=mf.GeodesicInterpolant(other),
            coupling=mf.IndependentCoupling(),
            config=mf.TrainConfig(batch_size=4),
            progress=False,
        )
    empty = mf.Dataset(np.zeros((0, N, D)), SPECIES, ("A", "B"), np.full(D, BOX))
    with pytest.raises(ValueError, match="empty"):
        mf.fit(field, empty, config=mf.TrainConfig(batch_size=4), progress=False, **STRATEGIES)
    with pytest.raises(ValueError, match="cannot take the dataset"):
        bigger = mf.Dataset(
            np.zeros((16, 6, D)), np.array([0, 0, 0, 1, 1, 1]), ("A", "B"), np.full(D, BOX)
        )
        mf.fit(field, bigger, config=mf.TrainConfig(batch_size=4), progress=False, **STRATEGIES)
    with pytest.raises(ValueError, match="schedule"):
        mf.TrainConfig(schedule="linear")
    with pytest.raises(ValueError, match="lr"):
        mf.TrainConfig(lr=-1.0)
    with pytest.raises(ValueError, match="unknown \\[train\\] option"):
        mf.TrainConfig.from_dict({"learning_rate": 1e-3})
    with pytest.raises(ValueError, match="valid names"):
        mf.ModelConfig(field="transformer")
    assert not list(tmp_path.iterdir())


def test_training_progress_bar_writes_to_stderr_only(capsys):
    from manifold_flows._train.progress import Progress

    bar = Progress(10, 0, True)
    bar.update(5, loss=0.5, val_loss=0.6, speed=2.0)
    bar.close()
    captured = capsys.readouterr()
    assert captured.out == ""  # stdout is for results (e.g. piped summaries)
    assert "loss 0.5" in captured.err
