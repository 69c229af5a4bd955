"""Concrete geometry of each manifold, checked against independent formulas (numpy, closed
forms), including the numerically delicate cases: tiny displacements, the antipode of the
sphere, box edges of the torus."""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given

from manifold_flows import Euclidean, FlatTorus, ParticleSpace, Sphere
from manifold_flows.testing import random_point, random_tangent, tolerance
from manifold_flows.testing.strategies import seeds

# ----------------------------------------------------------------------------- flat torus

TORI = [FlatTorus((3.0,)), FlatTorus((3.0, 5.5)), FlatTorus((2.0, 2.5, 4.0))]


def _numpy_brute_force_log(lengths, x, y):
    """Shortest displacement from x to a periodic image of y (x, y in the box)."""
    best = None
    for shift in itertools.product((-1, 0, 1), repeat=len(lengths)):
        cand = (y - x) + np.asarray(shift) * np.asarray(lengths)
        if best is None or cand @ cand < best @ best:
            best = cand
    return best


@pytest.mark.parametrize("torus", TORI, ids=lambda t: f"d{t.dim}")
@given(seed=seeds())
def test_torus_log_is_the_shortest_periodic_image(torus, seed):
    kx, ky = jax.random.split(jax.random.key(seed))
    xs = jax.vmap(torus.random_uniform)(jax.random.split(kx, 16))
    ys = jax.vmap(torus.random_uniform)(jax.random.split(ky, 16))
    logs = np.asarray(jax.vmap(torus.log)(xs, ys))
    for x, y, log in zip(np.asarray(xs), np.asarray(ys), logs, strict=True):
        np.testing.assert_allclose(log, _numpy_brute_force_log(torus.lengths, x, y), atol=1e-12)
        # Each component of the minimum image is at most half a box length.
        assert np.all(np.abs(log) <= np.asarray(torus.lengths) / 2 + 1e-12)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_torus_exp_and_project_land_in_the_half_open_box(dtype):
    torus = FlatTorus((3.0, 5.5))
    L = np.asarray(torus.lengths)
    eps = float(jnp.finfo(dtype).eps)
    edge = [0.0, -1e-30, -eps / 8, -eps * L[0], L[0], L[0] * (1 - eps / 4), -L[0], 7 * L[0], 1e6]
    pts = jnp.asarray([[a, -a] for a in edge], dtype=dtype)
    for z in (jax.vmap(torus.project)(pts), jax.vmap(torus.exp)(jnp.zeros_like(pts), pts)):
        z = np.asarray(z)
        assert z.dtype == dtype
        assert np.all(z >= 0) and np.all(z < L.astype(dtype)), z


def test_torus_log_works_for_unwrapped_representatives():
    torus = FlatTorus((3.0, 5.5))
    x = jnp.array([0.2, 5.4])
    y = jnp.array([2.9, 0.1])
    shifted = y + jnp.array([-6.0, 11.0])  # same torus point, far outside the box
    np.testing.assert_allclose(torus.log(x, shifted), torus.log(x, y), atol=1e-12)
    np.testing.assert_allclose(torus.log(x, y), [-0.3, 0.2], atol=1e-12)
    assert torus.injectivity_radius == 1.5
    np.testing.assert_allclose(torus.log_volume(), math.log(3.0 * 5.5))


# ----------------------------------------------------------------------------- sphere


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_sphere_log_volume_closed_forms(dim):
    expected = {1: 2 * math.pi, 2: 4 * math.pi, 3: 2 * math.pi**2}[dim]
    np.testing.assert_allclose(Sphere(dim).log_volume(), math.log(expected), rtol=1e-14)
    assert Sphere(dim).injectivity_radius == math.pi
    assert Sphere(dim).point_shape == (dim + 1,) and Sphere(dim).dim == dim


@given(seed=seeds())
def test_sphere_dist_is_the_angle_and_log_is_tangent(seed):
    sphere = Sphere(2)
    kx, ky = jax.random.split(jax.random.key(seed))
    x, y = sphere.random_uniform(kx), sphere.random_uniform(ky)
    angle = np.arccos(np.clip(np.dot(x, y), -1.0, 1.0))
    np.testing.assert_allclose(sphere.dist(x, y), angle, atol=1e-7)  # arccos is ill-conditioned
    v = sphere.log(x, y)
    np.testing.assert_allclose(jnp.dot(v, x), 0.0, atol=1e-14)
    # exp(x, v) = cos|v| x + sin|v| v/|v| by the textbook formula.
    theta = np.linalg.norm(v)
    np.testing.assert_allclose(
        sphere.exp(x, v), np.cos(theta) * x + np.sin(theta) * v / theta, atol=1e-14
    )
    np.testing.assert_allclose(sphere.exp(x, v), y, atol=1e-13)


def test_circle_matches_the_torus_of_length_two_pi():
    # S^1 parametrised by the angle is the flat torus R / 2 pi Z: the same distances.
    circle, torus = Sphere(1), FlatTorus((2 * math.pi,))
    angles = np.random.default_rng(0).uniform(0, 2 * math.pi, size=(64, 2))
    for a, b in angles:
        pa = jnp.array([math.cos(a), math.sin(a)])
        pb = jnp.array([math.cos(b), math.sin(b)])
        np.testing.assert_allclose(
            circle.dist(pa, pb), torus.dist(jnp.array([a]), jnp.array([b])), atol=1e-12
        )


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
@pytest.mark.parametrize("scale", [1e-30, 1e-12, 1e-6, 1e-3, 0.1, 3.0])
def test_sphere_round_trips_are_accurate_at_every_scale(dtype, scale):
    sphere = Sphere(2)
    x = sphere.random_uniform(jax.random.key(3), dtype=dtype)
    v = sphere.project_tangent(x, jax.random.normal(jax.random.key(4), (3,), dtype))
    v = v * jnp.asarray(scale / float(jnp.linalg.norm(v)), dtype=dtype)
    y = sphere.exp(x, v)
    assert y.dtype == dtype
    eps = float(jnp.finfo(dtype).eps)
    # log(x, exp(x, v)) recovers v up to the rounding of the point (absolute eps), and
    # relative accuracy is kept for small vectors that the point can resolve.
    np.testing.assert_allclose(sphere.log(x, y), v, atol=8 * eps, rtol=8 * eps / scale + 64 * eps)
    np.testing.assert_allclose(jnp.linalg.norm(y), 1.0, atol=2 * eps)


def test_sphere_antipode_gives_a_finite_tangent_vector_of_length_pi():
    sphere = Sphere(2)
    for seed in range(8):
        x = sphere.random_uniform(jax.random.key(seed))
        for y in (-x, sphere.project(-x + 1e-17)):
            v = sphere.log(x, y)
            assert np.all(np.isfinite(v))
            np.testing.assert_allclose(jnp.linalg.norm(v), math.pi, rtol=1e-12)
            np.testing.assert_allclose(jnp.dot(v, x), 0.0, atol=1e-14)
            np.testing.assert_allclose(sphere.exp(x, v), y, atol=1e-12)
    # Also for the coordinate axes, where the fallback direction is most constrained.
    e = jnp.eye(3)
    for i in range(3):
        v = sphere.log(e[i], -e[i])
        np.testing.assert_allclose(jnp.linalg.norm(v), math.pi, rtol=1e-12)
        np.testing.assert_allclose(v[i], 0.0, atol=1e-15)


def test_sphere_derivatives_are_finite_at_coincident_points():
    sphere = Sphere(2)
    x = sphere.random_uniform(jax.random.key(0))
    grad = jax.grad(sphere.sq_dist, argnums=1)(x, x)
    np.testing.assert_allclose(grad, 0.0, atol=1e-15)
    # d exp(x, v) / dv at v = 0 is the tangent projector I - x x^T.
    jac = jax.jacfwd(sphere.exp, argnums=1)(x, jnp.zeros(3))
    np.testing.assert_allclose(jac, np.eye(3) - np.outer(x, x), atol=1e-14)
    jac_log = jax.jacfwd(sphere.log, argnums=1)(x, x)
    np.testing.assert_allclose(jac_log, np.eye(3) - np.outer(x, x), atol=1e-14)


def test_sphere_project_and_tangent_projection():
    sphere = Sphere(2)
    a = jnp.array([3.0, 0.0, 4.0])
    np.testing.assert_allclose(sphere.project(a), [0.6, 0.0, 0.8])
    np.testing.assert_array_equal(sphere.project(jnp.zeros(3)), [1.0, 0.0, 0.0])
    x = sphere.project(a)
    v = sphere.project_tangent(x, jnp.array([1.0, 2.0, 3.0]))
    np.testing.assert_allclose(jnp.dot(v, x), 0.0, atol=1e-15)
    np.testing.assert_allclose(v, jnp.array([1.0, 2.0, 3.0]) - 3.0 * x, atol=1e-15)


@given(seed=seeds())
def test_sphere_uniform_samples_have_the_uniform_moments(seed):
    # Independent of the law checkers: E[x] = 0 and E[x_i^2] = 1/3 on S^2.
    samples = jax.vmap(Sphere(2).random_uniform)(jax.random.split(jax.random.key(seed), 4000))
    np.testing.assert_allclose(jnp.linalg.norm(samples, axis=1), 1.0, atol=1e-14)
    np.testing.assert_allclose(jnp.mean(samples, axis=0), 0.0, atol=6 / math.sqrt(3 * 4000))
    np.testing.assert_allclose(jnp.mean(samples**2, axis=0), 1 / 3, atol=6 * 0.3 / math.sqrt(4000))


# ----------------------------------------------------------------------------- Euclidean, N^M


def test_euclidean_is_flat_space():
    space = Euclidean(3)
    x, y = jnp.array([1.0, 2.0, 3.0]), jnp.array([0.0, -1.0, 5.0])
    np.testing.assert_array_equal(space.log(x, y), y - x)
    np.testing.assert_array_equal(space.exp(x, y - x), y)
    np.testing.assert_allclose(space.dist(x, y), np.linalg.norm(y - x))
    assert space.injectivity_radius == math.inf and space.dim == 3


@given(seed=seeds())
def test_particle_space_is_the_product_manifold(seed):
    torus = FlatTorus((3.0, 5.5))
    space = ParticleSpace(torus, 4)
    k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
    x, y = random_point(space, k1), random_point(space, k2)
    per_particle = jax.vmap(torus.dist)(x, y)
    np.testing.assert_allclose(space.dist(x, y), jnp.sqrt(jnp.sum(per_particle**2)), rtol=1e-14)
    v = random_tangent(space, x, k3)
    np.testing.assert_allclose(space.exp(x, v), jax.vmap(torus.exp)(x, v))
    np.testing.assert_allclose(space.log_volume(), 4 * torus.log_volume())
    assert space.dim == 8 and space.point_shape == (4, 2)
    assert space.injectivity_radius == torus.injectivity_radius


def test_geodesic_endpoints_and_mixed_precision_time():
    sphere = Sphere(2)
    x = sphere.random_uniform(jax.random.key(0), dtype=jnp.float32)
    y = sphere.random_uniform(jax.random.key(1), dtype=jnp.float32)
    rtol, atol = tolerance(jnp.float32)
    np.testing.assert_allclose(sphere.geodesic(x, y, 0.0), x, rtol=rtol, atol=10 * atol)
    np.testing.assert_allclose(sphere.geodesic(x, y, 1.0), y, rtol=rtol, atol=10 * atol)
    # A float64 time with float32 points is cast, not promoted (strict promotion is on).
    mid = sphere.geodesic(x, y, jnp.asarray(0.5, dtype=jnp.float64))
    assert mid.dtype == jnp.float32
    np.testing.assert_allclose(sphere.dist(x, mid), sphere.dist(x, y) / 2, rtol=1e-5)
    assert sphere.uniform_log_prob(x).dtype == jnp.float32
