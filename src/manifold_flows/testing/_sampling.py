"""Random test inputs for any manifold: points and tangent vectors, one at a time."""

import math

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray, Shaped

from .._manifold import AbstractManifold

__all__ = ["default_max_norm", "random_point", "random_tangent"]


def default_max_norm(manifold: AbstractManifold) -> float:
    """Largest tangent-vector norm used by the checkers: `0.9 * injectivity_radius` (away
    from the cut locus, so that exp/log round trips hold), or 3 without a cut locus."""
    radius = manifold.injectivity_radius
    return 3.0 if math.isinf(radius) else 0.9 * radius


def has_finite_volume(manifold: AbstractManifold) -> bool:
    """Whether `manifold.log_volume()` is finite (evaluated at trace time, so this also works
    inside `jit` for manifolds whose volume does not depend on traced arrays)."""
    with jax.ensure_compile_time_eval():
        return math.isfinite(float(manifold.log_volume()))


def random_point(
    manifold: AbstractManifold, key: PRNGKeyArray, *, dtype=None
) -> Shaped[Array, "..."]:
    """One random point of `manifold`: `random_uniform` on a manifold of finite volume, the
    projection of a Gaussian of scale 2 otherwise.

    **Arguments:**

    - `manifold`: any `AbstractManifold`.
    - `key`: a JAX PRNG key.
    - `dtype`: floating dtype (default: JAX's default float dtype).

    **Returns:**

    An array of shape `manifold.point_shape`.
    """
    dtype = jnp.result_type(float) if dtype is None else dtype
    if has_finite_volume(manifold):
        return manifold.random_uniform(key, dtype=dtype)
    return manifold.project(2.0 * jax.random.normal(key, manifold.point_shape, dtype))


def tangent_from_direction(
    manifold: AbstractManifold,
    x: Shaped[Array, "..."],
    direction: Shaped[Array, "..."],
    u: Float[Array, ""],
    max_norm: float,
) -> Shaped[Array, "..."]:
    """The tangent vector at `x` along the projection of the ambient `direction`, of norm
    `max_norm * u^4` for `u` in [0, 1) (so that tiny vectors, down to ~1e-4 of `max_norm`,
    come up too)."""
    v = manifold.project_tangent(x, direction)
    norm = manifold.norm(x, v)
    length = max_norm * u**4
    return jnp.where(norm > 0, v * (length / jnp.where(norm > 0, norm, 1.0)), jnp.zeros_like(v))


def random_tangent(
    manifold: AbstractManifold,
    x: Shaped[Array, "..."],
    key: PRNGKeyArray,
    *,
    max_norm: float | None = None,
) -> Shaped[Array, "..."]:
    """A random tangent vector at `x` with norm below `max_norm`.

    The direction is a projected Gaussian; the norm is `max_norm * u^4` with `u ~ U(0, 1)`,
    so that both tiny and large vectors are drawn.

    **Arguments:**

    - `manifold`: any `AbstractManifold`.
    - `x`: a point of `manifold`.
    - `key`: a JAX PRNG key.
    - `max_norm`: bound on the norm (default `default_max_norm(manifold)`, below the
      injectivity radius).

    **Returns:**

    A tangent vector at `x` (the shape and dtype of `x`).
    """
    max_norm = default_max_norm(manifold) if max_norm is None else float(max_norm)
    k_dir, k_len = jax.random.split(key)
    direction = jax.random.normal(k_dir, x.shape, x.dtype)
    u = jax.random.uniform(k_len, (), x.dtype)
    return tangent_from_direction(manifold, x, direction, u, max_norm)
