"""Euclidean space R^d with the flat metric."""

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray, Shaped

from ._checks import check_point_array
from .base import AbstractManifold


class Euclidean(AbstractManifold):
    """Euclidean space R^d.

    Points and tangent vectors are arrays of shape `(d,)`; `exp(x, v) = x + v`,
    `log(x, y) = y - x`, `project` and `project_tangent` are the identity. There is no cut
    locus (`injectivity_radius = inf`) and the volume is infinite, so `log_volume()` is `inf`,
    `uniform_log_prob` is `-inf` and `random_uniform` raises `ValueError` (use a Gaussian base
    distribution instead).

    **Arguments:**

    - `dim`: the dimension `d >= 1`.
    """

    dimension: int = eqx.field(static=True)

    def __init__(self, dim: int):
        if isinstance(dim, bool) or not isinstance(dim, int | jnp.integer) or dim < 1:
            raise ValueError(f"Euclidean needs dim >= 1 (an integer); got dim={dim!r}.")
        self.dimension = int(dim)

    @property
    def point_shape(self) -> tuple[int, ...]:
        return (self.dimension,)

    @property
    def dim(self) -> int:
        return self.dimension

    @property
    def injectivity_radius(self) -> float:
        return float("inf")

    def exp(self, x: Float[Array, " d"], v: Float[Array, " d"]) -> Float[Array, " d"]:
        return x + v

    def log(self, x: Float[Array, " d"], y: Float[Array, " d"]) -> Float[Array, " d"]:
        return y - x

    def inner(
        self, x: Float[Array, " d"], u: Float[Array, " d"], v: Float[Array, " d"]
    ) -> Float[Array, ""]:
        return jnp.sum(u * v)

    def project(self, x: Float[Array, " d"]) -> Float[Array, " d"]:
        return x

    def project_tangent(self, x: Float[Array, " d"], v: Float[Array, " d"]) -> Float[Array, " d"]:
        return v

    def random_uniform(self, key: PRNGKeyArray, dtype=None) -> Float[Array, " d"]:
        raise ValueError(
            f"Euclidean({self.dimension}).random_uniform: R^{self.dimension} has infinite "
            "volume, so there is no uniform distribution on it. Draw from a Gaussian base "
            "distribution instead, or use a compact manifold such as FlatTorus."
        )

    def log_volume(self) -> Float[Array, ""]:
        return jnp.asarray(jnp.inf, dtype=jnp.result_type(float))

    def check(self, x: Shaped[ArrayLike, "..."]) -> Float[Array, " d"]:
        """Validate one point: shape `(d,)` (else `ValueError`), a floating dtype (else
        `TypeError`), finite coordinates (else a runtime error via `eqx.error_if`)."""
        return check_point_array(x, self.point_shape, "Euclidean point", "one coordinate per axis")
