"""Large graphs are evaluated in blocks of receiver rows: same values and derivatives.

`EGNNLayer` switches to row blocks when an edge tensor would exceed `EDGE_BLOCK_ELEMENTS`
elements. The paper's sizes never reach the threshold, so it is lowered here to force the
blocked path on a small system, with a block that does not divide `n` (padding rows).
"""

import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import manifold_flows as mf

core = importlib.import_module("manifold_flows._field._egnn_core")

N, WIDTH = 11, 8
TORUS = mf.FlatTorus(3.0, dim=2)
SPECIES = jnp.asarray(np.arange(N) % 2, jnp.int32)


def test_receiver_block_sizes():
    assert core.receiver_block(44, 32) is None  # the paper's size is computed whole
    assert core.receiver_block(1024, 32) == core.EDGE_BLOCK_ELEMENTS // (1024 * 32)
    block = core.receiver_block(1024, 32)
    assert block * 1024 * 32 <= core.EDGE_BLOCK_ELEMENTS


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
    monkeypatch.setattr(core, "EDGE_BLOCK_ELEMENTS", 4 * N * WIDTH)
    assert core.receiver_block(N, WIDTH) == 4
    blocked = jax.jit(lambda: outputs())()
    assert float(jnp.max(jnp.abs(whole[0]))) > 1e-3  # the comparison is not of zeros
    for a, b in zip(whole, blocked, strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-12)
