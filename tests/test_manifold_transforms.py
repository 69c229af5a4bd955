"""JAX transformations of every registry manifold: jit agrees with eager, vmap with a python
loop, and jax.grad / jax.jvp with central finite differences (float64). The same tests run on
whatever backend JAX uses; the `gpu` test places arrays on the accelerator explicitly."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings

from manifold_flows import FlatTorus, ParticleSpace
from manifold_flows.testing import default_max_norm, manifold_registry, tolerance
from manifold_flows.testing._sampling import tangent_from_direction
from manifold_flows.testing.strategies import seeds

REGISTRY = manifold_registry()
NAMES = sorted(REGISTRY)
BATCH = 4


def _inputs(manifold, seed):
    """Points x, y, a tangent vector v at x, ambient arrays a, d (numpy-generated, so no PRNG
    graph is compiled), as float64 JAX arrays of fixed shapes."""
    rng = np.random.default_rng(seed)
    shape = (BATCH, *manifold.point_shape)
    scale = 10.0
    raw = {k: jnp.asarray(rng.standard_normal(shape)) for k in ("x", "y", "v", "a", "d", "e")}
    u = jnp.asarray(rng.uniform(0.2, 1.0, size=BATCH))
    return _prepare(manifold, raw["x"] * scale, raw["y"] * scale, raw["v"], u, raw["a"], raw["d"])


@jax.jit
def _prepare(manifold, gx, gy, gv, u, a, d):
    x = jax.vmap(manifold.project)(gx)
    y = jax.vmap(manifold.project)(gy)
    max_norm = default_max_norm(manifold)
    v = jax.vmap(lambda xi, gi, ui: tangent_from_direction(manifold, xi, gi, ui, max_norm))(
        x, gv, u
    )
    return x, y, v, a, d


def _maps(manifold, x, y, v, a):
    """Every map of the interface at one point."""
    return {
        "exp": manifold.exp(x, v),
        "log": manifold.log(x, y),
        "dist": manifold.dist(x, y),
        "sq_dist": manifold.sq_dist(x, y),
        "inner": manifold.inner(x, v, a),
        "project": manifold.project(a),
        "project_tangent": manifold.project_tangent(x, a),
        "geodesic": manifold.geodesic(x, y, 0.3),
    }


@jax.jit
def _batched(manifold, x, y, v, a, d):
    """The maps on a batch (vmap), plus their derivatives along the direction `d`."""
    maps = jax.vmap(lambda *z: _maps(manifold, *z))(x, y, v, a)

    def derivatives(x, y, v, d):
        grad_x, grad_y = jax.grad(manifold.sq_dist, argnums=(0, 1))(x, y)
        _, exp_dx = jax.jvp(lambda z: manifold.exp(z, v), (x,), (d,))
        _, exp_dv = jax.jvp(lambda w: manifold.exp(x, w), (v,), (d,))
        _, log_dy = jax.jvp(lambda z: manifold.log(x, z), (y,), (d,))
        return {
            "sq_dist_dx": jnp.sum(grad_x * d),
            "sq_dist_dy": jnp.sum(grad_y * d),
            "exp_dx": exp_dx,
            "exp_dv": exp_dv,
            "log_dy": log_dy,
        }

    return maps, jax.vmap(derivatives)(x, y, v, d)


def _point_difference(manifold, a, b):
    """b - a for points, unwrapped across the box for torus factors (finite differences of
    wrapped maps)."""
    torus = manifold.manifold if isinstance(manifold, ParticleSpace) else manifold
    diff = np.asarray(b) - np.asarray(a)
    if isinstance(torus, FlatTorus):
        L = np.asarray(torus.lengths)
        diff = diff - L * np.round(diff / L)
    return diff


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=2)
@given(seed=seeds())
def test_jit_and_vmap_agree_with_an_eager_python_loop(name, seed):
    manifold = REGISTRY[name]
    x, y, v, a, d = _inputs(manifold, seed)
    batched, _ = _batched(manifold, x, y, v, a, d)
    rtol, atol = tolerance(jnp.float64)
    for i in range(1):  # eager (op by op: slow to compile, so one point)
        eager = _maps(manifold, x[i], y[i], v[i], a[i])
        for key, value in eager.items():
            np.testing.assert_allclose(
                batched[key][i], value, rtol=rtol, atol=atol, err_msg=f"{name}: {key}"
            )


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=3)
@given(seed=seeds())
def test_derivatives_match_central_finite_differences(name, seed):
    manifold = REGISTRY[name]
    x, y, v, a, d = _inputs(manifold, seed)
    d = d / jnp.sqrt(jnp.sum(d**2, axis=tuple(range(1, d.ndim)), keepdims=True))
    _, derivs = _batched(manifold, x, y, v, a, d)
    h = 1e-6

    def at(**shift):
        args = {"x": x, "y": y, "v": v}
        args = {k: args[k] + shift.get(k, 0.0) * d for k in args}
        maps, _ = _batched(manifold, args["x"], args["y"], args["v"], a, d)
        return maps

    # FD truncation error O(h^2) and rounding O(eps / h): loosened to 1e-6 (not 1e-10).
    tol = {"rtol": 1e-6, "atol": 1e-6}
    plus, minus = at(x=h), at(x=-h)
    np.testing.assert_allclose(
        derivs["sq_dist_dx"], (plus["sq_dist"] - minus["sq_dist"]) / (2 * h), **tol
    )
    np.testing.assert_allclose(
        derivs["exp_dx"], _point_difference(manifold, minus["exp"], plus["exp"]) / (2 * h), **tol
    )
    plus, minus = at(y=h), at(y=-h)
    np.testing.assert_allclose(
        derivs["sq_dist_dy"], (plus["sq_dist"] - minus["sq_dist"]) / (2 * h), **tol
    )
    np.testing.assert_allclose(
        derivs["log_dy"], (np.asarray(plus["log"]) - np.asarray(minus["log"])) / (2 * h), **tol
    )
    plus, minus = at(v=h), at(v=-h)
    np.testing.assert_allclose(
        derivs["exp_dv"], _point_difference(manifold, minus["exp"], plus["exp"]) / (2 * h), **tol
    )


@pytest.mark.gpu
@pytest.mark.parametrize("name", NAMES)
def test_accelerator_results_match_the_cpu(name):
    manifold = REGISTRY[name]
    accelerator = next(dev for dev in jax.devices() if dev.platform != "cpu")
    cpu = jax.devices("cpu")[0]
    inputs = _inputs(manifold, 0)
    on_cpu = _batched(manifold, *jax.device_put(inputs, cpu))
    on_acc = _batched(manifold, *jax.device_put(inputs, accelerator))
    leaves = jax.tree.leaves(on_acc)
    assert all(accelerator in leaf.devices() for leaf in leaves)
    # Accelerators may use other math libraries: compare at a loosened float64 tolerance.
    for got, want in zip(leaves, jax.tree.leaves(on_cpu), strict=True):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-9, atol=1e-9)
