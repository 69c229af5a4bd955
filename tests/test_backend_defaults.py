"""Batching defaults follow the backend: cache-sized work on a CPU, whole batches on an
accelerator. The backend is mocked (`jax.default_backend`), so these run without a GPU; the
values themselves are checked for equality of results elsewhere (chunking never changes one).
"""

import importlib

import jax
import jax.numpy as jnp
import pytest

import manifold_flows as mf

backend = importlib.import_module("manifold_flows._backend")
flow_batch = importlib.import_module("manifold_flows._flow.batch")
pipeline_sample = importlib.import_module("manifold_flows._pipeline.sample")

TORUS = mf.FlatTorus(3.0, dim=2)
N = 6
SPECIES = jnp.asarray([0, 0, 0, 1, 1, 1])


# (an id "gpu" would pick up the `gpu` marker of conftest.py and be skipped without one)
@pytest.fixture(params=["cpu", "cuda"])
def platform(request, monkeypatch):
    monkeypatch.setattr(backend.jax, "default_backend", lambda: request.param)
    return request.param


def _primitives(jaxpr) -> set[str]:
    """Names of every primitive in a jaxpr, nested jaxprs included."""
    names = set()
    for eqn in jaxpr.eqns:
        names.add(eqn.primitive.name)
        for sub in jax.core.jaxprs_in_params(eqn.params):
            names |= _primitives(sub)
    return names


@pytest.mark.parametrize(
    ("name", "expected"),
    [("cpu", mf.CPU_DEFAULTS), ("cuda", mf.ACCELERATOR_DEFAULTS), ("tpu", mf.ACCELERATOR_DEFAULTS)],
)
def test_batching_defaults_by_backend(name, expected):
    assert mf.batching_defaults(name) is expected


def test_batching_defaults_read_the_running_backend(platform):
    expected = mf.CPU_DEFAULTS if platform == "cpu" else mf.ACCELERATOR_DEFAULTS
    assert mf.batching_defaults() is expected


def test_cpu_defaults_are_the_measured_ones():
    # The CPU figures of benchmarks/README.md were measured with these; changing one is a
    # performance change that needs a benchmark, not a silent edit.
    cpu = mf.CPU_DEFAULTS
    assert (cpu.field_chunk, cpu.divergence_chunk, cpu.sample_chunk) == (8, 16, 1)
    assert (cpu.file_chunk, cpu.file_batching, cpu.edge_block_elements) == (16, "sequential", 2**20)
    assert mf.DEFAULT_CHUNK_SIZE == cpu.field_chunk


def test_evaluate_batch_chunks_only_on_a_cpu(platform):
    field = mf.TorusEGNN(TORUS, 2, width=8, depth=1, key=jax.random.key(0))
    x = jax.vmap(mf.ParticleSpace(TORUS, N).random_uniform)(jax.random.split(jax.random.key(1), 32))
    jaxpr = jax.make_jaxpr(lambda x: mf.evaluate_batch(field, 0.5, x, SPECIES))(x).jaxpr
    chunked = "scan" in _primitives(jaxpr)
    assert chunked == (platform == "cpu")  # 4 chunks of 8 on a CPU, one vmap elsewhere
    # An explicit chunk size wins on every backend.
    jaxpr = jax.make_jaxpr(lambda x: mf.evaluate_batch(field, 0.5, x, SPECIES, chunk_size=4))(x)
    assert "scan" in _primitives(jaxpr.jaxpr)


def test_exact_divergence_takes_all_columns_at_once_on_an_accelerator(platform):
    space = mf.ParticleSpace(TORUS, 20)  # 40 coordinates: 3 chunks of 16 on a CPU
    x = space.random_uniform(jax.random.key(2))

    def div(x):
        return mf.ExactDivergence()(lambda z: jnp.sin(z), x, None, space)[1]

    chunked = "scan" in _primitives(jax.make_jaxpr(div)(x).jaxpr)
    assert chunked == (platform == "cpu")
    assert mf.ExactDivergence().effective_chunk_size(40) == (16 if platform == "cpu" else 40)
    assert mf.ExactDivergence().effective_chunk_size(1000) == (16 if platform == "cpu" else 128)
    assert mf.ExactDivergence(chunk_size=5).effective_chunk_size(40) == 5


def test_sampling_chunks_follow_the_backend(platform):
    cpu = platform == "cpu"
    assert flow_batch._check_chunk("auto") == (1 if cpu else 64)
    assert flow_batch._check_chunk(7) == 7
    assert flow_batch._check_chunk(None) is None
    with pytest.raises(ValueError, match="chunk_size"):
        flow_batch._check_chunk("many")
    chunk, batching = pipeline_sample.resolve_batching(None, None)
    assert (chunk, batching) == ((16, "sequential") if cpu else (64, "vmap"))
    assert pipeline_sample.resolve_batching(3, "sequential") == (3, "sequential")
    with pytest.raises(ValueError, match="batching"):
        pipeline_sample.resolve_batching(None, "sideways")
