"""Divergence strategies: exact trace without materialising the Jacobian, Hutchinson, and the
Riemannian divergence on an embedded manifold (the sphere)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, strategies as st

import manifold_flows as mf
from manifold_flows.testing import tolerance

N, D, L = 3, 2, 3.0
TORUS = mf.FlatTorus(L, dim=D)
SPACE = mf.ParticleSpace(TORUS, N)


def periodic_field(t, x, args):
    """A smooth, periodic, time-dependent field that couples particles and axes."""
    k = 2 * jnp.pi / L
    pair = jnp.sum(jnp.sin(k * (x[:, None, :] - x[None, :, :])), axis=1)
    return 0.3 * jnp.sin(k * x[:, ::-1]) + t * jnp.cos(k * x) * x[::-1] / L + 0.2 * pair


def materialised_trace(fn, x):
    size = x.size
    return jnp.trace(jax.jacfwd(fn)(x).reshape(size, size))


def random_point(seed):
    key = jax.random.key(seed)
    return jax.vmap(TORUS.random_uniform)(jax.random.split(key, N))


def strong_egnn(n, *, key, width=8, depth=2):
    """A TorusEGNN whose last coordinate layers are scaled up from their tiny init, so that
    its Jacobian is far from zero (a fresh network is nearly the zero field)."""
    torus = mf.FlatTorus(L, dim=D)
    field = mf.TorusEGNN(torus, 2, width=width, depth=depth, key=key)
    return eqx.tree_at(
        lambda f: [layer.coord2 for layer in f.core.layers],
        field,
        replace_fn=lambda w: 300.0 * w,
    )


# Chunk sizes: one batch (None and >= size), chunks that divide the size, and chunks that
# leave a remainder (size 6 = 4 + 2).
@eqx.filter_jit
def exact_and_reference(strategy, seed):
    key = jax.random.key(seed)
    x = jax.vmap(TORUS.random_uniform)(jax.random.split(key, N))
    fn = lambda z: periodic_field(jax.random.uniform(jax.random.fold_in(key, 1)), z, None)
    v, div = strategy(fn, x, None, SPACE)
    return v, div, fn(x), materialised_trace(fn, x)


@pytest.mark.parametrize("chunk_size", [None, 1, 4, 6, 50])
@given(seed=st.integers(0, 2**31 - 1))
def test_exact_divergence_equals_materialised_trace(chunk_size, seed):
    v, div, v_ref, div_ref = exact_and_reference(mf.ExactDivergence(chunk_size), jnp.asarray(seed))
    rtol, atol = tolerance(v.dtype)
    np.testing.assert_allclose(v, v_ref, rtol=rtol, atol=atol)
    np.testing.assert_allclose(div, div_ref, rtol=rtol, atol=atol)


def test_exact_divergence_torus_egnn(key):
    n = 5
    field = strong_egnn(n, key=key)
    species = jnp.array([0, 0, 1, 1, 1], dtype=jnp.int32)
    space = mf.ParticleSpace(field.torus, n)
    x = jax.vmap(field.torus.random_uniform)(jax.random.split(jax.random.fold_in(key, 1), n))

    @jax.jit
    def divergences(z):
        fn = lambda y: field(jnp.asarray(0.3), y, species)
        # chunk 3: 10 = 3 + 3 + 3 + 1, with a remainder chunk.
        return mf.ExactDivergence(3)(fn, z, None, space)[1], materialised_trace(fn, z)

    div, reference = divergences(x)
    assert abs(float(reference)) > 1e-2  # the test needs a field with a real divergence
    # Loosened from the float64 table: a sum of 10 Jacobian entries of order 10.
    rtol, atol = (100 * tol for tol in tolerance(x.dtype))
    np.testing.assert_allclose(div, reference, rtol=rtol, atol=atol)


def test_chunking_bounds_memory(key):
    # The point of chunking: the compiled program's scratch memory is that of one chunk of
    # tangents, not of all N d of them.
    n = 12
    field = mf.TorusEGNN(TORUS, 2, width=8, depth=1, key=key)
    species = jnp.zeros(n, dtype=jnp.int32)
    space = mf.ParticleSpace(TORUS, n)
    x = space.random_uniform(key)

    def temp_bytes(chunk_size):
        fn = lambda z: mf.ExactDivergence(chunk_size)(
            lambda y: field(jnp.asarray(0.5), y, species), z, None, space
        )[1]
        stats = jax.jit(fn).lower(x).compile().memory_analysis()
        if stats is None:
            pytest.skip("this backend reports no memory analysis")
        return stats.temp_size_in_bytes

    # Measured: about 4x (the linearisation's residuals are common to both).
    assert temp_bytes(2) * 2 < temp_bytes(n * D)


def linear_gradient_field(a):
    """v(x) = P_x a, the gradient of <a, x> on the unit sphere: div v = -n <a, x> on S^n."""
    return lambda x: a - jnp.sum(a * x) * x  # not normalised: not constant along normals


@jax.jit
def sphere_divergences(seed):
    sphere = mf.Sphere(2)
    k1, k2 = jax.random.split(jax.random.key(seed))
    x = sphere.random_uniform(k1)
    a = jax.random.normal(k2, (3,))
    fn = linear_gradient_field(a)
    _, div = mf.ExactDivergence()(fn, x, None, sphere)
    return div, -2.0 * jnp.sum(a * x), materialised_trace(fn, x), jnp.sum(a * x)


@given(seed=st.integers(0, 2**31 - 1))
def test_riemannian_divergence_on_sphere_closed_form(seed):
    div, expected, ambient_trace, a_dot_x = sphere_divergences(jnp.asarray(seed))
    rtol, atol = tolerance(div.dtype)
    np.testing.assert_allclose(div, expected, rtol=100 * rtol, atol=100 * atol)
    # The plain ambient trace is wrong for this extension of v off the sphere: it adds the
    # normal derivative x^T J x = -2 <a, x>. The projector in the formula makes it right.
    np.testing.assert_allclose(ambient_trace, expected - 2 * a_dot_x, rtol=1e-8, atol=1e-8)


def test_riemannian_divergence_on_particle_sphere(key):
    space = mf.ParticleSpace(mf.Sphere(2), 2)

    @jax.jit
    def divergence(k):
        k1, k2 = jax.random.split(k)
        x = space.random_uniform(k1)
        a = jax.random.normal(k2, (2, 3))
        fn = lambda z: a - jnp.sum(a * z, axis=1, keepdims=True) * z
        return mf.ExactDivergence(chunk_size=4)(fn, x, None, space)[1], -2.0 * jnp.sum(a * x)

    div, expected = divergence(key)
    np.testing.assert_allclose(div, expected, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("distribution", ["rademacher", "gaussian"])
def test_hutchinson_is_unbiased(distribution, key):
    x = random_point(7)
    fn = lambda z: periodic_field(jnp.asarray(0.6), z, None)
    exact = materialised_trace(fn, x)
    estimator = mf.HutchinsonDivergence(1, distribution)

    def one(k):
        return estimator(fn, x, estimator.init_probe(k, SPACE, x), SPACE)[1]

    estimates = jax.jit(jax.vmap(one))(jax.random.split(key, 4000))
    mean = jnp.mean(estimates)
    stderr = jnp.std(estimates) / np.sqrt(estimates.size)
    assert float(stderr) > 0
    assert abs(float(mean - exact)) < 4 * float(stderr)


@pytest.mark.parametrize("distribution", ["rademacher", "gaussian"])
def test_hutchinson_is_unbiased_on_sphere(distribution, key):
    sphere = mf.Sphere(2)
    k1, k2, k3 = jax.random.split(key, 3)
    x = sphere.random_uniform(k1)
    a = jax.random.normal(k2, (3,))
    fn = linear_gradient_field(a)
    estimator = mf.HutchinsonDivergence(1, distribution)
    estimates = jax.jit(
        jax.vmap(lambda k: estimator(fn, x, estimator.init_probe(k, sphere, x), sphere)[1])
    )(jax.random.split(k3, 4000))
    stderr = float(jnp.std(estimates)) / np.sqrt(estimates.size)
    assert abs(float(jnp.mean(estimates)) + 2.0 * float(jnp.sum(a * x))) < 4 * stderr + 1e-12


def test_hutchinson_averages_its_probes(key):
    x = random_point(3)
    fn = lambda z: periodic_field(jnp.asarray(0.2), z, None)
    several = mf.HutchinsonDivergence(5)
    probe = several.init_probe(key, SPACE, x)
    assert probe.shape == (5, *x.shape)
    assert set(np.unique(np.asarray(probe)).tolist()) <= {-1.0, 1.0}
    single = mf.HutchinsonDivergence(1)
    each = jax.jit(jax.vmap(lambda p: single(fn, x, p[None], SPACE)[1]))(probe)
    together = jax.jit(lambda p: several(fn, x, p, SPACE)[1])(probe)
    np.testing.assert_allclose(together, np.mean(each), rtol=1e-12)


def test_rademacher_is_exact_for_a_diagonal_jacobian(key):
    # z^T J z = sum_k J_kk z_k^2 = tr J when J is diagonal and z_k = +-1.
    x = random_point(5)
    fn = lambda z: jnp.sin(z)
    estimator = mf.HutchinsonDivergence(1, "rademacher")
    _, div = estimator(fn, x, estimator.init_probe(key, SPACE, x), SPACE)
    np.testing.assert_allclose(div, jnp.sum(jnp.cos(x)), rtol=1e-12)


def test_divergence_options_are_validated():
    with pytest.raises(ValueError, match="chunk_size"):
        mf.ExactDivergence(0)
    with pytest.raises(ValueError, match="num_probes"):
        mf.HutchinsonDivergence(0)
    with pytest.raises(ValueError, match="distribution"):
        mf.HutchinsonDivergence(1, "uniform")
    x = random_point(1)
    with pytest.raises(ValueError, match="key"):
        mf.HutchinsonDivergence(1).init_probe(None, SPACE, x)
    assert mf.ExactDivergence().init_probe(None, SPACE, x) is None
    assert isinstance(mf.HutchinsonDivergence(), mf.AbstractStochasticDivergence)
    assert not isinstance(mf.ExactDivergence(), mf.AbstractStochasticDivergence)
