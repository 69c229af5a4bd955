"""evaluate_batch: chunked, checkpointed batching equals a plain vmap, in value and gradient."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_field_helpers import lively

from manifold_flows import FlatTorus, TorusEGNN, evaluate_batch
from manifold_flows.testing import tolerance

SPECIES = jnp.array([0, 1, 0, 1, 1, 0])
L = 3.0


@pytest.fixture(scope="module")
def field():
    key = jax.random.key(60)
    small = TorusEGNN(FlatTorus(L, dim=2), 2, width=8, depth=1, key=key)
    return lively(small, jax.random.fold_in(key, 1))


def _batch(seed: int, batch: int = 5):
    k = jax.random.key(seed)
    x = L * jax.random.uniform(k, (batch, 6, 2))
    t = jax.random.uniform(jax.random.fold_in(k, 1), (batch,))
    return t, x


def test_chunked_equals_vmap_with_padding(field):
    # 5 points in chunks of 2: two full chunks and one padded chunk whose padding is dropped.
    t, x = _batch(1)
    rtol, atol = tolerance(x.dtype)
    plain = jax.jit(jax.vmap(field, in_axes=(0, 0, None)))(t, x, SPECIES)
    chunked = eqx.filter_jit(evaluate_batch)(field, t, x, SPECIES, chunk_size=2)
    assert chunked.shape == x.shape
    np.testing.assert_allclose(chunked, plain, rtol=rtol, atol=atol)
    # One time for the whole batch, and per-point species (args_axis=0).
    species = jnp.stack([SPECIES, 1 - SPECIES, SPECIES, SPECIES, 1 - SPECIES])
    per_point = eqx.filter_jit(evaluate_batch)(field, 0.25, x, species, args_axis=0, chunk_size=2)
    expected = jax.jit(jax.vmap(lambda xb, sb: field(0.25, xb, sb)))(x, species)
    np.testing.assert_allclose(per_point, expected, rtol=rtol, atol=atol)


def test_chunked_gradient_equals_vmap_gradient(field):
    # The checkpointed chunks recompute the forward pass in the backward pass: same gradient.
    t, x = _batch(2)
    target = jax.random.normal(jax.random.key(3), x.shape)
    params, static = eqx.partition(field, eqx.is_inexact_array)

    def loss(params, chunk_size):
        v = evaluate_batch(eqx.combine(params, static), t, x, SPECIES, chunk_size=chunk_size)
        return jnp.mean((v - target) ** 2)

    grads = jax.jit(jax.grad(loss), static_argnums=1)
    chunked, plain = grads(params, 2), grads(params, None)
    rtol, atol = tolerance(x.dtype)
    for a, b in zip(jax.tree.leaves(chunked), jax.tree.leaves(plain), strict=True):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)
    assert any(float(jnp.max(jnp.abs(g))) > 0 for g in jax.tree.leaves(plain))


def test_errors(field):
    t, x = _batch(4)
    with pytest.raises(ValueError, match="args_axis"):
        evaluate_batch(field, t, x, SPECIES, args_axis=1)
    # ValueError from evaluate_batch, or first jaxtyping's TypeCheckError under the hook.
    with pytest.raises((ValueError, TypeError)):
        evaluate_batch(field, t[:3], x, SPECIES)
    with pytest.raises(ValueError, match="leading axis"):
        evaluate_batch(field, t, x, jnp.stack([SPECIES] * 3), args_axis=0)
    with pytest.raises(ValueError, match="chunk_size"):
        evaluate_batch(field, t, x, SPECIES, chunk_size=0)
