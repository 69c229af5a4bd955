"""Large graphs are evaluated in blocks of receiver rows: same values and derivatives.

`EGNNLayer` switches to row blocks when an edge tensor would exceed the backend's
`edge_block_elements` (`batching_defaults()`). The paper's sizes never reach the threshold,
so it is lowered here to force the blocked path on a small system, with a block that does
not divide `n` (padding rows).
"""

import dataclasses
import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import manifold_flows as mf

core = importlib.import_module("manifold_flows._field._egnn_core")
backend = importlib.import_module("manifold_flows._backend")

N, WIDTH = 11, 8
TORUS = mf.FlatTorus(3.0, dim=2)
SPECIES = jnp.asarray(np.arange(N) % 2, jnp.int32)


@pytest.mark.parametrize(("platform", "rows"), [("cpu", 32), ("cuda", 512)])
def test_receiver_block_sizes(monkeypatch, platform, rows):
    # The block size follows the backend (mocked here): cache-sized blocks on a CPU, 16x
    # larger ones on an accelerator, where only memory binds.
    monkeypatch.setattr(backend.jax, "default_backend", lambda: platform)
    limit = backend.batching_defaults().edge_block_elements
    assert core.receiver_block(44, 32) is None  # the paper's size is computed whole
    assert core.receiver_block(1024, 32) == limit // (1024 * 32) == rows


@pytest.mark.parametrize("attention", [True, False])
def test_blocked_rows_give_the_same_field_jvp_and_gradient(monkeypatch, attention):
    field = mf.TorusEGNN(TORUS, 2, width=WIDTH, depth=2, attention=attention, key=jax.random.key(0))
    # make the field lively: the tiny init of the last coordinate layer hides most errors
    field = jax.tree.map(lambda p: 300 * p if p.shape == (1, WIDTH) else p, field)
    x = jax.random.uniform(jax.random.key(1), (N, 2), maxval=3.0)
    tangent = jax.random.normal(jax.random.key(2), (N, 2))
    t = jnp.asarray(0.3)

    def outputs():
        def f(z):
            return field(t, z, SPECIES)

        v, jv = jax.jvp(f, (x,), (tangent,))
        grad = jax.grad(lambda z: jnp.sum(jnp.sin(f(z))))(x)
        div = mf.ExactDivergence(5)(f, x, None, mf.ParticleSpace(TORUS, N))[1]
        return v, jv, grad, div

    # a new function for each jit, so each is traced: the block size is read at trace time
    whole = jax.jit(lambda: outputs())()
    assert core.receiver_block(N, WIDTH) is None
    # 4 rows per block: blocks of 4, 4 and 3 (+1 padding row)
    small = dataclasses.replace(backend.CPU_DEFAULTS, edge_block_elements=4 * N * WIDTH)
    monkeypatch.setattr(core, "batching_defaults", lambda: small)
    assert core.receiver_block(N, WIDTH) == 4
    blocked = jax.jit(lambda: outputs())()
    assert float(jnp.max(jnp.abs(whole[0]))) > 1e-3  # the comparison is not of zeros
    for a, b in zip(whole, blocked, strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-12)
