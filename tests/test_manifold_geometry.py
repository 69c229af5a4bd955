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


@jax.jit
def _torus_pairs(torus, key):
    kx, ky = jax.random.split(key)
    xs = jax.vmap(torus.random_uniform)(jax.random.split(kx, 16))
    ys = jax.vmap(torus.random_uniform)(jax.random.split(ky, 16))
    return xs, ys, jax.vmap(torus.log)(xs, ys)


@pytest.mark.parametrize("torus", TORI, ids=lambda t: f"d{t.dim}")
@given(seed=seeds())
def test_torus_log_is_the_shortest_periodic_image(torus, seed):
    xs, ys, logs = _torus_pairs(torus, jax.random.key(seed))
    logs = np.asarray(logs)
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
    wrap = jax.jit(lambda p: (jax.vmap(torus.project)(p), jax.vmap(torus.exp)(0.0 * p, p)))
    for z in wrap(pts):
        z = np.asarray(z)
        assert z.dtype == dtype
        assert np.all(z >= 0) and np.all(z < L.astype(dtype)), z


def test_torus_log_works_for_unwrapped_representatives():
    torus = FlatTorus((3.0, 5.5))
    x = jnp.array([0.2, 5.4])
    y = jnp.array([2.9, 0.1])
    shifted = jnp.array([2.9 - 6.0, 0.1 + 11.0])  # same torus point, far outside the box
    log = jax.jit(torus.log)
    np.testing.assert_allclose(log(x, shifted), log(x, y), atol=1e-12)
    np.testing.assert_allclose(log(x, y), [-0.3, 0.2], atol=1e-12)
    assert torus.injectivity_radius == 1.5
    np.testing.assert_allclose(torus.log_volume(), math.log(3.0 * 5.5))


# ----------------------------------------------------------------------------- sphere


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_sphere_log_volume_closed_forms(dim):
    expected = {1: 2 * math.pi, 2: 4 * math.pi, 3: 2 * math.pi**2}[dim]
    np.testing.assert_allclose(Sphere(dim).log_volume(), math.log(expected), rtol=1e-14)
    assert Sphere(dim).injectivity_radius == math.pi
    assert Sphere(dim).point_shape == (dim + 1,) and Sphere(dim).dim == dim


@jax.jit
def _sphere_pair(key):
    sphere = Sphere(2)
    kx, ky = jax.random.split(key)
    x, y = sphere.random_uniform(kx), sphere.random_uniform(ky)
    v = sphere.log(x, y)
    return x, y, v, sphere.dist(x, y), sphere.exp(x, v)


@given(seed=seeds())
def test_sphere_dist_is_the_angle_and_log_is_tangent(seed):
    x, y, v, dist, exp_v = (np.asarray(a) for a in _sphere_pair(jax.random.key(seed)))
    angle = np.arccos(np.clip(np.dot(x, y), -1.0, 1.0))
    np.testing.assert_allclose(dist, angle, atol=1e-7)  # arccos is ill-conditioned
    np.testing.assert_allclose(np.dot(v, x), 0.0, atol=1e-14)
    # exp(x, v) = cos|v| x + sin|v| v/|v| by the textbook formula.
    theta = np.linalg.norm(v)
    np.testing.assert_allclose(exp_v, np.cos(theta) * x + np.sin(theta) * v / theta, atol=1e-14)
    np.testing.assert_allclose(exp_v, y, atol=1e-13)


def test_circle_matches_the_torus_of_length_two_pi():
    # S^1 parametrised by the angle is the flat torus R / 2 pi Z: the same distances.
    circle, torus = Sphere(1), FlatTorus((2 * math.pi,))
    angles = jnp.asarray(np.random.default_rng(0).uniform(0, 2 * math.pi, size=(64, 2, 1)))
    points = jnp.concatenate([jnp.cos(angles), jnp.sin(angles)], axis=-1)
    on_circle = jax.jit(jax.vmap(circle.dist))(points[:, 0], points[:, 1])
    on_torus = jax.jit(jax.vmap(torus.dist))(angles[:, 0], angles[:, 1])
    np.testing.assert_allclose(on_circle, on_torus, atol=1e-12)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
@pytest.mark.parametrize("scale", [1e-30, 1e-12, 1e-6, 1e-3, 0.1, 3.0])
def test_sphere_round_trips_are_accurate_at_every_scale(dtype, scale):
    sphere = Sphere(2)
    x = np.asarray([0.48, -0.6, 0.64], dtype=dtype)  # |x| = 1 exactly in decimal
    x = np.asarray(sphere.project(jnp.asarray(x)))
    v = np.cross(x, np.asarray([1.0, 2.0, 2.0], dtype=dtype))  # tangent at x
    v = jnp.asarray(v * (scale / np.linalg.norm(v)), dtype=dtype)
    y, back = _sphere_round_trip(jnp.asarray(x), v)
    assert y.dtype == dtype
    eps = float(jnp.finfo(dtype).eps)
    # log(x, exp(x, v)) recovers v up to the rounding of the point (absolute eps); vectors
    # far below eps are recovered to relative accuracy in float64 only when representable.
    np.testing.assert_allclose(back, v, atol=8 * eps, rtol=64 * eps)
    np.testing.assert_allclose(jnp.linalg.norm(y), 1.0, atol=2 * eps)


def test_sphere_small_angle_series_match_the_closed_forms():
    # Near v = 0 exp and log switch to Taylor series (|v| below eps^(1/4) ~ 1.2e-4 in float64).
    # Both branches must agree with the closed forms to rounding, including the third-order
    # terms that a wrong series coefficient would change (~|v|^3 / 30 ~ 5e-14 at 1.2e-4).
    x = np.asarray([0.48, -0.6, 0.64])
    direction = np.cross(x, [1.0, 2.0, 2.0])
    direction /= np.linalg.norm(direction)
    thetas = np.asarray([1e-9, 1e-6, 3e-5, 1.0e-4, 1.2e-4, 1.25e-4, 1e-3, 1e-2])
    vs = thetas[:, None] * direction[None, :]
    ys = np.cos(thetas)[:, None] * x[None, :] + np.sin(thetas)[:, None] * direction[None, :]
    exp_v, log_y = _sphere_small(jnp.asarray(x), jnp.asarray(vs), jnp.asarray(ys))
    np.testing.assert_allclose(exp_v, ys, rtol=0, atol=4e-16)
    np.testing.assert_allclose(log_y, vs, rtol=0, atol=4e-16)


@jax.jit
def _sphere_small(x, vs, ys):
    sphere = Sphere(2)
    exp_v = jax.vmap(lambda v: sphere.exp(x, v))(vs)
    log_y = jax.vmap(lambda y: sphere.log(x, y))(ys)
    return exp_v, log_y


@jax.jit
def _sphere_round_trip(x, v):
    y = Sphere(2).exp(x, v)
    return y, Sphere(2).log(x, y)


@jax.jit
def _antipodal_logs(xs, ys):
    sphere = Sphere(2)
    vs = jax.vmap(sphere.log)(xs, ys)
    return vs, jax.vmap(sphere.exp)(xs, vs)


def test_sphere_antipode_gives_a_finite_tangent_vector_of_length_pi():
    rng = np.random.default_rng(0)
    xs = rng.standard_normal((8, 3))
    xs /= np.linalg.norm(xs, axis=1, keepdims=True)
    # Random points, the coordinate axes (where the fallback direction is most constrained),
    # and antipodes perturbed by rounding.
    xs = np.concatenate([xs, np.eye(3), -np.eye(3)])
    perturbed = -xs + 1e-17
    perturbed /= np.linalg.norm(perturbed, axis=1, keepdims=True)
    xs, ys = np.concatenate([xs, xs]), np.concatenate([-xs, perturbed])
    vs, back = (np.asarray(a) for a in _antipodal_logs(jnp.asarray(xs), jnp.asarray(ys)))
    assert np.all(np.isfinite(vs))
    np.testing.assert_allclose(np.linalg.norm(vs, axis=1), math.pi, rtol=1e-12)
    np.testing.assert_allclose(np.sum(vs * xs, axis=1), 0.0, atol=1e-14)
    np.testing.assert_allclose(back, ys, atol=1e-12)


def test_sphere_log_just_short_of_the_antipode_is_tangent():
    # y at angle pi - delta from x: u = y - <x, y> x is tiny and its rounding error (~eps)
    # must not leak into the normal direction.
    x = np.asarray([0.48, -0.6, 0.64])
    x /= np.linalg.norm(x)
    w = np.cross(x, [1.0, 2.0, 2.0])
    w /= np.linalg.norm(w)
    deltas = np.asarray([1e-13, 1e-12, 1e-11, 1e-9, 1e-6])
    ys = np.cos(math.pi - deltas)[:, None] * x + np.sin(math.pi - deltas)[:, None] * w
    xs = np.broadcast_to(x, ys.shape)
    vs, back = (np.asarray(a) for a in _antipodal_logs(jnp.asarray(xs), jnp.asarray(ys)))
    np.testing.assert_allclose(vs @ x, 0.0, atol=1e-14)
    np.testing.assert_allclose(np.linalg.norm(vs, axis=1), math.pi - deltas, rtol=1e-12)
    np.testing.assert_allclose(back, ys, atol=1e-12)


@jax.jit
@jax.vmap
def _sphere_derivatives_at(x):
    sphere = Sphere(2)
    return (
        jax.grad(sphere.sq_dist, argnums=1)(x, x),
        jax.jacrev(sphere.exp, argnums=1)(x, jnp.zeros(3)),
        jax.jacrev(sphere.log, argnums=1)(x, x),
    )


def test_sphere_derivatives_are_finite_at_coincident_points():
    # A coordinate axis (where y - <x, y> x is exactly 0) and a generic point.
    xs = jnp.asarray([[0.0, 0.0, 1.0], [0.48, -0.6, 0.64]])
    grads, jac_exp, jac_log = _sphere_derivatives_at(xs)
    np.testing.assert_allclose(grads, 0.0, atol=1e-15)
    # d exp(x, v) / dv at v = 0 and d log(x, y) / dy at y = x are the tangent projector.
    projector = np.eye(3)[None] - np.einsum("ni,nj->nij", xs, xs)
    np.testing.assert_allclose(jac_exp, projector, atol=1e-14)
    np.testing.assert_allclose(jac_log, projector, atol=1e-14)


def test_sphere_project_and_tangent_projection():
    sphere = Sphere(2)

    @jax.jit
    def run(a, w):
        x = sphere.project(a)
        return x, sphere.project(0.0 * a), sphere.project_tangent(x, w)

    x, zero, v = (
        np.asarray(r) for r in run(jnp.array([3.0, 0.0, 4.0]), jnp.array([1.0, 2.0, 3.0]))
    )
    np.testing.assert_allclose(x, [0.6, 0.0, 0.8])
    np.testing.assert_array_equal(zero, [1.0, 0.0, 0.0])
    np.testing.assert_allclose(v @ x, 0.0, atol=1e-15)
    np.testing.assert_allclose(v, np.array([1.0, 2.0, 3.0]) - 3.0 * x, atol=1e-15)


@jax.jit
def _sphere_samples(key):
    return jax.vmap(Sphere(2).random_uniform)(jax.random.split(key, 4000))


@given(seed=seeds())
def test_sphere_uniform_samples_have_the_uniform_moments(seed):
    # Independent of the law checkers: E[x] = 0 and E[x_i^2] = 1/3 on S^2.
    samples = np.asarray(_sphere_samples(jax.random.key(seed)))
    np.testing.assert_allclose(np.linalg.norm(samples, axis=1), 1.0, atol=1e-14)
    np.testing.assert_allclose(np.mean(samples, axis=0), 0.0, atol=6 / math.sqrt(3 * 4000))
    np.testing.assert_allclose(np.mean(samples**2, axis=0), 1 / 3, atol=6 * 0.3 / math.sqrt(4000))


# ----------------------------------------------------------------------------- Euclidean, N^M


def test_euclidean_is_flat_space():
    space = Euclidean(3)
    x, y = np.array([1.0, 2.0, 3.0]), np.array([0.0, -1.0, 5.0])
    run = jax.jit(lambda a, b: (space.log(a, b), space.exp(a, b - a), space.dist(a, b)))
    log, exp, dist = run(x, y)
    np.testing.assert_array_equal(log, y - x)
    np.testing.assert_array_equal(exp, y)
    np.testing.assert_allclose(dist, np.linalg.norm(y - x))
    assert space.injectivity_radius == math.inf and space.dim == 3


@jax.jit
def _product_case(key):
    torus = FlatTorus((3.0, 5.5))
    space = ParticleSpace(torus, 4)
    k1, k2, k3 = jax.random.split(key, 3)
    x, y = random_point(space, k1), random_point(space, k2)
    v = random_tangent(space, x, k3)
    return (
        space.dist(x, y),
        jax.vmap(torus.dist)(x, y),
        space.exp(x, v),
        jnp.stack([torus.exp(x[i], v[i]) for i in range(4)]),
    )


@given(seed=seeds())
def test_particle_space_is_the_product_manifold(seed):
    torus = FlatTorus((3.0, 5.5))
    space = ParticleSpace(torus, 4)
    dist, per_particle, exp_v, exp_each = _product_case(jax.random.key(seed))
    np.testing.assert_allclose(dist, np.sqrt(np.sum(np.asarray(per_particle) ** 2)), rtol=1e-14)
    np.testing.assert_allclose(exp_v, exp_each)
    np.testing.assert_allclose(space.log_volume(), 4 * torus.log_volume())
    assert space.dim == 8 and space.point_shape == (4, 2)
    assert space.injectivity_radius == torus.injectivity_radius


def test_geodesic_endpoints_and_mixed_precision_time():
    sphere = Sphere(2)

    @jax.jit
    def run(x, y, half):
        # A float64 time with float32 points is cast, not promoted (strict promotion is on).
        mid = sphere.geodesic(x, y, half)
        ends = sphere.geodesic(x, y, 0.0), sphere.geodesic(x, y, 1.0)
        return ends, mid, sphere.dist(x, mid), sphere.dist(x, y), sphere.uniform_log_prob(x)

    x = jnp.asarray([0.48, -0.6, 0.64], dtype=jnp.float32)
    y = jnp.asarray([0.0, 0.6, 0.8], dtype=jnp.float32)
    (start, end), mid, half_dist, dist, log_prob = run(x, y, jnp.asarray(0.5, dtype=jnp.float64))
    rtol, atol = tolerance(jnp.float32)
    np.testing.assert_allclose(start, x, rtol=rtol, atol=10 * atol)
    np.testing.assert_allclose(end, y, rtol=rtol, atol=10 * atol)
    assert mid.dtype == jnp.float32 and log_prob.dtype == jnp.float32
    np.testing.assert_allclose(half_dist, dist / 2, rtol=1e-5)
