"""An isotropic Gaussian base on a flat, non-compact space (Euclidean space)."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray, PyTree, Shaped

from ..._manifold import AbstractManifold
from .._divergence import is_flat_embedded
from .base import AbstractNormalizedBase


class GaussianBase(AbstractNormalizedBase):
    """The isotropic normal distribution `N(0, scale^2 I)` on the ambient coordinates of a flat
    space (every ambient direction tangent, e.g. Euclidean space):

        log_prob(x) = -|x|^2 / (2 scale^2) - (D / 2) log(2 pi scale^2),   D = prod(point_shape).

    **Arguments:**

    - `space`: a flat-embedded manifold (`dim == prod(point_shape)`).
    - `scale`: the standard deviation (positive).
    """

    space: AbstractManifold
    scale: float = eqx.field(static=True)

    def __init__(self, space: AbstractManifold, scale: float = 1.0):
        if not isinstance(space, AbstractManifold):
            raise TypeError(f"GaussianBase needs an AbstractManifold; got {type(space)}.")
        if not is_flat_embedded(space):
            raise ValueError(
                f"GaussianBase is a density on flat ambient coordinates; {type(space).__name__} "
                "is a curved embedded manifold. Use UniformBase there."
            )
        if not (math.isfinite(scale) and scale > 0):
            raise ValueError(f"GaussianBase(scale=...) must be positive; got {scale!r}.")
        self.space = space
        self.scale = float(scale)

    def sample(self, key: PRNGKeyArray, args: PyTree) -> Shaped[Array, "..."]:
        z = jax.random.normal(key, self.space.point_shape, dtype=jnp.result_type(float))
        return self.scale * z

    def log_prob(self, x: Shaped[ArrayLike, "..."], args: PyTree) -> Float[Array, ""]:
        x = jnp.asarray(x)
        size = x.size
        const = 0.5 * size * math.log(2 * math.pi * self.scale**2)
        return -0.5 * jnp.sum(x * x) / self.scale**2 - const
