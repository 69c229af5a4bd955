"""Data parallelism: training and sampling on 2 devices give the numbers of 1 device.

The checks run in a subprocess started with `XLA_FLAGS=--xla_force_host_platform_device_count=2`
(the flag must be set before JAX starts, which in the test process has already happened), so
two CPU devices stand in for two GPUs. The subprocess is this file run as a script: it trains a
tiny torus EGNN for a few steps and samples it, once with one device (`SingleDevice`) and once
with the batch split over two (`DataParallel`), and prints what the test compares.
"""

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import manifold_flows as mf

#: Float64 runs: the two paths differ only in the order of floating-point sums (the batch mean
#: is a mean of two half-batch means), so they agree far below these tolerances.
RTOL, ATOL = 1e-9, 1e-12
STEPS = 4  # training steps compared (2 epochs of 2 steps)
BATCH = 8
NUM_SAMPLES = 6  # sampling: one chunk of 4 and a padded one of 2
CHUNK = 4


# ------------------------------------------------------------------------------ worker
MODEL = mf.ModelConfig(field="torus_egnn", width=8, depth=1)


def _config() -> mf.TrainConfig:
    options = dict(val_fraction=0.25, log_every=1, dtype="float64", lr=1e-2)
    return mf.TrainConfig(batch_size=BATCH, epochs=STEPS // 2, **options)


def _dataset(num: int = 3 * BATCH) -> mf.Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mf.ImageConventionWarning)
        system = mf.get_system("ipl-n10")
    rng = np.random.default_rng(0)
    positions = rng.uniform(0.0, 1.0, (num, system.num_particles, 2)) * np.asarray(system.box)
    return mf.Dataset(
        positions,
        np.asarray(system.species),
        system.species_names,
        np.asarray(system.box),
        temperature=0.1,
        system=system.name,
    )


def _train(parallel, run_dir: Path) -> dict:
    import jax

    dataset = _dataset()
    torus = mf.FlatTorus(tuple(float(v) for v in dataset.box))
    result = mf.fit(
        MODEL,
        dataset,
        interpolant=mf.GeodesicInterpolant(torus),
        coupling=mf.SpeciesOTCoupling(torus),
        config=_config(),
        run_dir=run_dir,
        progress=False,
        parallel=parallel,
    )
    leaves = jax.tree.leaves(result.state.params)
    return {
        "losses": [r["loss"] for r in result.history if "loss" in r],
        "grad_norms": [r["grad_norm"] for r in result.history if "grad_norm" in r],
        "val_loss": result.val_loss,
        "params": np.concatenate([np.ravel(a) for a in leaves]).tolist(),
    }


def _sample(parallel, run_dir: Path, out: Path) -> dict:
    ds = mf.sample_to_file(
        run_dir,
        num_samples=NUM_SAMPLES,
        out=out,
        chunk_size=CHUNK,
        solver="heun",
        num_steps=3,
        progress=False,
        extxyz=False,
        parallel=parallel,
    )
    return {"positions": ds.positions.tolist(), "log_q": ds.extra["log_q"].tolist()}


#: What the recording strategy saw (filled in the worker process).
SEEN: dict[str, list] = {"batch_shards": [], "local_sizes": [], "trained_params": []}


class RecordingParallel(mf.AbstractParallelism):
    """`DataParallel` that records how data is placed: the shard shapes of every batch, the
    batch size each device's function is traced with, and the placement of the parameters
    that come out of the training steps."""

    inner: mf.DataParallel

    def __init__(self, inner):
        self.inner = inner

    @property
    def num_devices(self):
        return self.inner.num_devices

    def check_batch(self, size, what):
        self.inner.check_batch(size, what)

    def shard_batch(self, x):
        out = self.inner.shard_batch(x)
        SEEN["batch_shards"].append([list(s.data.shape) for s in out.addressable_shards])
        return out

    def replicate(self, tree):
        return self.inner.replicate(tree)

    def to_host(self, x):
        return self.inner.to_host(x)

    def to_local(self, tree):
        import equinox as eqx
        import jax

        leaf = jax.tree.leaves(eqx.filter(tree, eqx.is_inexact_array))[0]
        SEEN["trained_params"].append(
            [len(leaf.sharding.device_set), bool(leaf.sharding.is_fully_replicated)]
        )
        return self.inner.to_local(tree)

    def _spy(self, fn):
        import jax

        def spy(shared, batched):  # runs at trace time, once per device program
            SEEN["local_sizes"].append(sorted({a.shape[0] for a in jax.tree.leaves(batched)}))
            return fn(shared, batched)

        return spy

    def map_batch(self, fn, shared, batched):
        return self.inner.map_batch(self._spy(fn), shared, batched)

    def mean_over_batch(self, fn, shared, batched):
        return self.inner.mean_over_batch(self._spy(fn), shared, batched)


def worker(tmp: Path) -> dict:
    import jax

    jax.config.update("jax_enable_x64", True)
    assert len(jax.devices()) == 2, jax.devices()
    one, two = mf.make_parallelism(1), mf.make_parallelism(2)
    report = {"device_count": len(jax.devices()), "kinds": [type(one).__name__, type(two).__name__]}
    try:
        two.check_batch(BATCH + 1, "batch_size")
    except ValueError as exc:
        report["odd_batch_error"] = str(exc)
    two = RecordingParallel(two)
    for name, parallel in (("one", one), ("two", two)):
        run_dir = tmp / f"run_{name}"
        report[f"train_{name}"] = _train(parallel, run_dir)
        report[f"sample_{name}"] = _sample(parallel, run_dir, tmp / f"samples_{name}.npz")
    report["seen"] = SEEN
    # a solver failure on both devices: one clear error, nothing raised again at exit
    try:
        mf.sample_to_file(
            tmp / "run_two",
            num_samples=NUM_SAMPLES,
            out=tmp / "failed.npz",
            chunk_size=CHUNK,
            max_steps=2,
            progress=False,
            extxyz=False,
            parallel=mf.make_parallelism(2),
        )
        report["sampling_error"] = None
    except mf.SamplingError as exc:
        report["sampling_error"] = str(exc)
    return report


# ------------------------------------------------------------------------------ the test
@pytest.fixture(scope="module")
def report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("multidevice")
    env = dict(os.environ)
    env["XLA_FLAGS"] = (
        env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2"
    ).strip()
    env["JAX_PLATFORMS"] = "cpu"
    proc = subprocess.run(
        [sys.executable, __file__, str(tmp)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,  # a guard against a hung worker, not a speed check
        check=False,
    )
    assert proc.returncode == 0, f"worker failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return {**json.loads(proc.stdout.strip().splitlines()[-1]), "stderr": proc.stderr}


def test_worker_saw_two_devices_and_chose_the_strategies(report):
    assert report["device_count"] == 2
    assert report["kinds"] == ["SingleDevice", "DataParallel"]


def test_training_on_two_devices_follows_the_one_device_trajectory(report):
    one, two = report["train_one"], report["train_two"]
    assert len(one["losses"]) == STEPS
    np.testing.assert_allclose(two["losses"], one["losses"], rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(two["grad_norms"], one["grad_norms"], rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(two["val_loss"], one["val_loss"], rtol=RTOL, atol=ATOL)
    # the parameters moved (the comparison is not between two untrained fields) and agree
    assert len(set(one["losses"])) > 1
    np.testing.assert_allclose(two["params"], one["params"], rtol=1e-8, atol=1e-10)


def test_sampling_on_two_devices_gives_the_one_device_samples(report):
    one, two = report["sample_one"], report["sample_two"]
    assert np.shape(one["positions"])[0] == NUM_SAMPLES
    np.testing.assert_allclose(two["positions"], one["positions"], rtol=RTOL, atol=1e-10)
    np.testing.assert_allclose(two["log_q"], one["log_q"], rtol=RTOL, atol=1e-8)
    # distinct samples: every device did not draw the same stream
    assert len({round(v, 6) for v in one["log_q"]}) == NUM_SAMPLES


def test_batch_is_split_and_parameters_replicated(report):
    seen = report["seen"]
    # every training batch and every sampling chunk was split in two halves ...
    assert seen["batch_shards"], "nothing was sharded"
    train_shards = [[BATCH // 2, 10, 2]] * 2
    # the coupling's host solutions (a permutation and a point-group index per pair) go back
    # to the devices split like the batch
    perm_shards, index_shards = [[BATCH // 2, 10]] * 2, [[BATCH // 2]] * 2
    chunk_shards = [[CHUNK // 2]] * 2
    expected = (train_shards, perm_shards, index_shards, chunk_shards)
    assert all(s in expected for s in seen["batch_shards"])
    assert seen["batch_shards"].count(train_shards) == STEPS
    assert seen["batch_shards"].count(perm_shards) == STEPS
    assert seen["batch_shards"].count(index_shards) == STEPS
    assert seen["batch_shards"].count(chunk_shards) == -(-NUM_SAMPLES // CHUNK)
    # ... each device's program was traced for its half (training step, then sampling) ...
    assert seen["local_sizes"] == [[BATCH // 2], [CHUNK // 2]]
    # ... and the trained parameters came out replicated on both devices
    assert seen["trained_params"] and all(p == [2, True] for p in seen["trained_params"])


def test_solver_failure_on_two_devices_is_one_clear_error(report):
    message = report["sampling_error"]
    assert message is not None and "max_steps=2" in message and "raise max_steps" in message
    # each device's failure used to be raised separately: the second one surfaced as a
    # traceback when the interpreter exited
    assert "Traceback" not in report["stderr"] and "Exception ignored" not in report["stderr"]


def test_batch_size_that_does_not_split_is_refused_with_the_fix(report):
    message = report["odd_batch_error"]
    assert "batch_size = 9" in message and "multiple of 2" in message and "8 or 10" in message


def test_batch_size_must_split_over_the_devices():
    import jax

    parallel = mf.DataParallel(jax.devices()[:1] * 1)
    parallel.check_batch(3, "batch_size")  # one device: anything splits
    with pytest.raises(ValueError, match="devices"):
        mf.make_parallelism(len(jax.devices()) + 1)
    with pytest.raises(ValueError, match="'all' or a positive"):
        mf.make_parallelism("many")
    assert isinstance(mf.make_parallelism("all"), mf.SingleDevice) == (len(jax.devices()) == 1)


def test_distributed_settings_must_be_complete(monkeypatch):
    for name in ("MFLOWS_COORDINATOR_ADDRESS", "MFLOWS_NUM_PROCESSES", "MFLOWS_PROCESS_ID"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValueError, match="process id"):
        mf.initialize_distributed("localhost:1234", num_processes=2)
    with pytest.raises(ValueError, match=r"process_id must lie in \[0, 2\)"):
        mf.initialize_distributed("localhost:1234", num_processes=2, process_id=2)
    monkeypatch.setenv("MFLOWS_NUM_PROCESSES", "two")
    with pytest.raises(ValueError, match="MFLOWS_NUM_PROCESSES"):
        mf.initialize_distributed("localhost:1234", process_id=0)


# ------------------------------------------------------------ larger optimal-transport batches
LARGE_N, LARGE_BATCH = 44, 64


def large_ot_worker() -> dict:
    """Two training steps with the species-OT coupling at 44 particles and 32 pairs per device.

    With the Hungarian assignment as a host callback inside the per-device computation this
    deadlocked on two CPU devices (JAX stages callback inputs on CPU device 0, which is busy
    with its own part); small problems slipped through, so the size matters here.
    """
    import jax
    import jax.numpy as jnp
    import optax

    torus = mf.FlatTorus((6.0, 6.0))
    species = jnp.asarray(np.arange(LARGE_N) % 2, dtype=jnp.int32)
    rng = np.random.default_rng(1)
    x1 = jnp.asarray(rng.uniform(0.0, 6.0, (LARGE_BATCH, LARGE_N, 2)), dtype=jnp.float32)
    optimizer = optax.adam(1e-3)
    field = mf.TorusEGNN(torus, 2, width=8, depth=1, key=jax.random.key(0))
    losses = {}
    for name, parallel in (("one", mf.SingleDevice()), ("two", mf.DataParallel())):
        state = parallel.replicate(
            mf.init_train_state(field, optimizer, key=jax.random.key(1), dtype=jnp.float32)
        )
        batch = parallel.shard_batch(x1)
        losses[name] = []
        for _ in range(2):
            state, out = mf.train_step(
                state,
                batch,
                species,
                interpolant=mf.GeodesicInterpolant(torus),
                coupling=mf.SpeciesOTCoupling(torus),
                base=mf.ParticleSpace(torus, LARGE_N),
                optimizer=optimizer,
                ema_decay=0.999,
                parallel=parallel,
            )
            losses[name].append(float(out["loss"]))
    return losses


def test_optimal_transport_training_on_two_devices_does_not_deadlock():
    env = dict(os.environ)
    env["XLA_FLAGS"] = (
        env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2"
    ).strip()
    env["JAX_PLATFORMS"] = "cpu"
    try:
        proc = subprocess.run(
            [sys.executable, __file__, "--large-ot"],
            env=env,
            capture_output=True,
            text=True,
            timeout=240,  # the steps take seconds; a deadlock never returns
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("two-device training with the species-OT coupling hung (deadlock)")
    assert proc.returncode == 0, f"worker failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    losses = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(losses["two"]) == 2 and all(np.isfinite(losses["two"]))
    # float32: the two paths differ in the order of the sums of the batch mean
    np.testing.assert_allclose(losses["two"], losses["one"], rtol=1e-5)


if __name__ == "__main__":
    if sys.argv[1] == "--large-ot":
        print(json.dumps(large_ot_worker()))
    else:
        print(json.dumps(worker(Path(sys.argv[1]))))
