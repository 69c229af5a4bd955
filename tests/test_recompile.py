"""The jitted hot paths compile once: over the batches of training, the chunks of the
validation loss and the chunks of `sample_to_file`.

Compilations are counted with a `jax.monitoring` listener on XLA's backend-compile event,
which names the compiled function (`jit(train_step)`, `jit(_draw)`, ...). Every compilation
in the process is seen, including those of small eager operations, so "nothing compiled
during the later batches" is a strict statement. A call whose compilation was already cached
by an earlier test counts zero, which is why the assertions are "at most once" for the first
batch and "nothing at all" for the later ones.
"""

import collections
import contextlib
import importlib

import jax
import jax.numpy as jnp
import numpy as np
from test_sample import SAMPLE_OPTIONS, tiny_run_dir

import manifold_flows as mf
from manifold_flows._pipeline import sample as sample_module

loss_module = importlib.import_module("manifold_flows._train.loss")

_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"
_active: list[collections.Counter] = []


def _listener(event: str, duration: float, **kwargs) -> None:
    if event == _COMPILE_EVENT:
        for counter in _active:
            counter[kwargs.get("fun_name", "?")] += 1


jax.monitoring.register_event_duration_secs_listener(_listener)


@contextlib.contextmanager
def count_compilations():
    """Count XLA compilations by function name while the block runs."""
    counter: collections.Counter = collections.Counter()
    _active.append(counter)
    try:
        yield counter
    finally:
        _active.remove(counter)


# ------------------------------------------------------------------------------ training
N, D, BOX = 5, 2, 2.5
SPECIES = np.array([0, 0, 0, 1, 1], dtype=np.int32)
TORUS = mf.FlatTorus(BOX, dim=D)


def toy_dataset(num: int, seed: int = 0) -> mf.Dataset:
    rng = np.random.default_rng(seed)
    positions = rng.uniform(0, BOX, size=(num, N, D))
    return mf.Dataset(positions, SPECIES, ("A", "B"), np.full(D, BOX), temperature=1.0)


def test_training_steps_and_validation_compile_once(tmp_path):
    # 60 samples, 20 % validation, batch 12: 4 steps per epoch. A batch of 12 is not a
    # multiple of evaluate_batch's chunk of 8, so the loss also runs the padded-chunk path.
    config = mf.TrainConfig(batch_size=12, epochs=2, val_fraction=0.2, log_every=1)
    steps_per_epoch = 4
    snapshots: dict[int, collections.Counter] = {}
    with count_compilations() as compiled:
        mf.fit(
            mf.ModelConfig(field="mlp", width=16, depth=1),  # cheap to compile
            toy_dataset(60),
            interpolant=mf.GeodesicInterpolant(TORUS),
            coupling=mf.SpeciesOTCoupling(TORUS),
            config=config,
            run_dir=tmp_path / "run",  # checkpoints at every epoch end are part of the loop
            progress=False,
            callback=lambda record: snapshots.__setitem__(record["step"], compiled.copy()),
        )
    total = 2 * steps_per_epoch
    assert sorted(snapshots) == list(range(1, total + 1))
    assert compiled["jit(train_step)"] <= 1
    # The first step and the first epoch end (validation, checkpoint) may compile; nothing
    # after the first step of the first epoch may, apart from what the first epoch end needs,
    # and the whole second epoch, its validation and checkpoint included, compiles nothing.
    for step in range(2, total + 1):
        new = snapshots[step] - snapshots[step - 1]
        if step != steps_per_epoch:
            assert not new, f"step {step} compiled {dict(new)}"
    assert compiled == snapshots[total]


def test_validation_loss_over_many_chunks_compiles_once(monkeypatch):
    field = mf.build_field(
        "mlp",
        torus_or_dim=TORUS,
        num_particles=N,
        num_species=2,
        width=16,
        depth=1,
        key=jax.random.key(0),
    )
    key_x0, key_x1, key_t = jax.random.split(jax.random.key(1), 3)
    num = 3 * 7 + 2  # three full chunks of 7 and a padded remainder
    x0 = jax.random.uniform(key_x0, (num, N, D), maxval=BOX)
    x1 = jax.random.uniform(key_x1, (num, N, D), maxval=BOX)
    t = jax.random.uniform(key_t, (num,))
    interpolant = mf.GeodesicInterpolant(TORUS)
    species = jnp.asarray(SPECIES)
    snapshots: list[collections.Counter] = []
    real = loss_module._chunk_losses

    with count_compilations() as compiled:

        def chunk_and_snapshot(*args):
            out = real(*args)
            snapshots.append(compiled.copy())
            return out

        monkeypatch.setattr(loss_module, "_chunk_losses", chunk_and_snapshot)
        loss = mf.evaluate_loss(field, interpolant, x0, x1, t, species, batch_size=7)
    assert len(snapshots) == 4
    assert snapshots[0]["jit(_chunk_losses)"] <= 1
    for i in (1, 2, 3):
        new = snapshots[i] - snapshots[i - 1]
        assert not new, f"validation chunk {i} compiled {dict(new)}"
    # and the padded evaluation is the plain mean over the pairs
    np.testing.assert_allclose(
        loss, float(mf.flow_matching_loss(field, interpolant, x0, x1, t, species)), rtol=1e-12
    )


# ------------------------------------------------------------------------------ sampling
def test_sampling_chunks_compile_once(tmp_path, monkeypatch):
    # 10 samples in chunks of 4: two full chunks and a short last one (padded to 4).
    snapshots: list[collections.Counter] = []
    real_write = sample_module._write_chunk

    with count_compilations() as compiled:

        def write_and_snapshot(path, arrays):
            real_write(path, arrays)
            snapshots.append(compiled.copy())

        monkeypatch.setattr(sample_module, "_write_chunk", write_and_snapshot)
        dataset = mf.sample_to_file(
            tiny_run_dir(), num_samples=10, out=tmp_path / "s.npz", seed=5, **SAMPLE_OPTIONS
        )
    assert dataset.num_samples == 10 and len(snapshots) == 3
    assert snapshots[0]["jit(_draw)"] <= 1 and snapshots[0]["jit(_energies)"] <= 1
    for i in (1, 2):
        new = snapshots[i] - snapshots[i - 1]
        assert not new, f"sampling chunk {i} compiled {dict(new)}"
