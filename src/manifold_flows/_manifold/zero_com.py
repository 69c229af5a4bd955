"""Particle configurations in R^d with the centre of mass removed: a linear subspace."""

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray, Shaped

from ._checks import check_point_array
from .base import AbstractManifold


def _check_count(name: str, value, minimum: int, example: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(
            f"ZeroCenterOfMass needs `{name}` >= {minimum} (an integer, {example}); got {value!r}."
        )
    return int(value)


class ZeroCenterOfMass(AbstractManifold):
    """Configurations of `n` particles in `R^d` whose centre of mass is at the origin:

        M = {x in R^(n x d) : sum_i x_i = 0},

    a linear subspace of dimension `(n - 1) d` with the flat metric it inherits. It is the
    quotient of `(R^d)^n` by translations, the configuration space of a cluster whose energy
    depends on relative positions only (the systems DW4 and LJ13).

    Points and tangent vectors are arrays of shape `(n, d)`; the tangent space at every point
    is `M` itself. `project` and `project_tangent` subtract the mean over particles (the
    orthogonal projector `P = I - (1/n) 1 1^T`, per axis); `exp(x, v) = x + P v`,
    `log(x, y) = P (y - x)`, and the inner product is the ambient one. There is no cut locus
    and the volume is infinite: `random_uniform` raises (use `CenteredGaussianBase`).

    Since `dim != prod(point_shape)`, the generic exact divergence takes `tr(P J)`; a
    translation-invariant field (`AbstractTranslationInvariantField`) has `J P = J`, so there
    `tr(P J) = tr(J)` and its own closed-form divergence applies unchanged.

    **Arguments:**

    - `num_particles`: `n >= 2` (with one particle the space is a point).
    - `dim`: the spatial dimension `d >= 1`.
    """

    num_particles: int = eqx.field(static=True)
    spatial_dim: int = eqx.field(static=True)

    def __init__(self, num_particles: int, dim: int):
        self.num_particles = _check_count("num_particles", num_particles, 2, "e.g. 4 for DW4")
        self.spatial_dim = _check_count("dim", dim, 1, "e.g. 2 for DW4, 3 for LJ13")

    @property
    def point_shape(self) -> tuple[int, ...]:
        return (self.num_particles, self.spatial_dim)

    @property
    def dim(self) -> int:
        return (self.num_particles - 1) * self.spatial_dim

    @property
    def injectivity_radius(self) -> float:
        return float("inf")

    def exp(self, x: Float[Array, "n d"], v: Float[Array, "n d"]) -> Float[Array, "n d"]:
        return x + self.project_tangent(x, v)

    def log(self, x: Float[Array, "n d"], y: Float[Array, "n d"]) -> Float[Array, "n d"]:
        return self.project_tangent(x, y - x)

    def inner(
        self, x: Float[Array, "n d"], u: Float[Array, "n d"], v: Float[Array, "n d"]
    ) -> Float[Array, ""]:
        return jnp.sum(u * v)

    def project(self, x: Float[Array, "n d"]) -> Float[Array, "n d"]:
        return x - jnp.mean(x, axis=0, keepdims=True)

    def project_tangent(
        self, x: Float[Array, "n d"], v: Float[Array, "n d"]
    ) -> Float[Array, "n d"]:
        return v - jnp.mean(v, axis=0, keepdims=True)

    def random_uniform(self, key: PRNGKeyArray, dtype=None) -> Float[Array, "n d"]:
        raise ValueError(
            f"ZeroCenterOfMass({self.num_particles}, {self.spatial_dim}).random_uniform: the "
            "space is a linear subspace of infinite volume, so there is no uniform "
            "distribution on it. Draw from CenteredGaussianBase instead."
        )

    def log_volume(self) -> Float[Array, ""]:
        return jnp.asarray(jnp.inf, dtype=jnp.result_type(float))

    def check(self, x: Shaped[ArrayLike, "..."]) -> Float[Array, "n d"]:
        """Validate one configuration: shape `(n, d)` (else `ValueError`), a floating dtype
        (else `TypeError`), finite coordinates and a centre of mass at the origin up to
        rounding (else a runtime error via `eqx.error_if`; `project` first to centre it)."""
        x = check_point_array(x, self.point_shape, "ZeroCenterOfMass point", "(num_particles, dim)")
        tolerance = 1e3 * jnp.finfo(x.dtype).eps * (1 + jnp.max(jnp.abs(x)))
        return eqx.error_if(
            x,
            jnp.any(jnp.abs(jnp.mean(x, axis=0)) > tolerance),
            "ZeroCenterOfMass point has a centre of mass away from the origin; centre it "
            "with space.project(x) (subtract the mean over particles).",
        )
