"""An isotropic Gaussian on the zero-centre-of-mass subspace (an invariant base for clusters)."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray, PyTree

from ..._manifold import ZeroCenterOfMass
from .base import AbstractNormalizedBase


class CenteredGaussianBase(AbstractNormalizedBase):
    """The isotropic normal distribution restricted to zero centre of mass, a density with
    respect to the `(n - 1) d`-dimensional volume of `ZeroCenterOfMass(n, d)`:

        log_prob(x) = -|x|^2 / (2 s^2) - ((n - 1) d / 2) log(2 pi s^2),   sum_i x_i = 0.

    Sampling draws `z ~ N(0, s^2 I)` in `R^(n x d)` and subtracts the mean over particles:
    `P z` with `P` the orthogonal projector onto the subspace. In an orthonormal basis of
    `R^(n x d)` whose first `(n - 1) d` vectors span the subspace, the coordinates of `z` are
    independent `N(0, s^2)`, and `P z` keeps exactly the first `(n - 1) d` of them: an
    isotropic Gaussian on the subspace with the density above (the normalising constant
    counts `(n - 1) d` directions, not `n d`). It is invariant under permutations of the
    particles and rotations and reflections, so an equivariant flow on top of it has an
    invariant density.

    **Arguments:**

    - `space`: a `ZeroCenterOfMass(n, d)`.
    - `scale`: the standard deviation `s` per direction (positive).
    """

    space: ZeroCenterOfMass
    scale: float = eqx.field(static=True)

    def __init__(self, space: ZeroCenterOfMass, scale: float = 1.0):
        if not isinstance(space, ZeroCenterOfMass):
            raise TypeError(
                "CenteredGaussianBase needs a ZeroCenterOfMass space (e.g. "
                f"ZeroCenterOfMass(4, 2)); got {type(space).__name__}. On a flat space with "
                "every direction free use GaussianBase."
            )
        if isinstance(scale, bool) or not (math.isfinite(scale) and scale > 0):
            raise ValueError(
                f"CenteredGaussianBase(scale=...) must be positive and finite; got {scale!r}."
            )
        self.space = space
        self.scale = float(scale)

    def sample(self, key: PRNGKeyArray, args: PyTree) -> Float[Array, "n d"]:
        z = jax.random.normal(key, self.space.point_shape, dtype=jnp.result_type(float))
        return self.space.project(self.scale * z)

    def log_prob(self, x: Float[ArrayLike, "n d"], args: PyTree) -> Float[Array, ""]:
        x = jnp.asarray(x)
        const = 0.5 * self.space.dim * math.log(2 * math.pi * self.scale**2)
        return -0.5 * jnp.sum(x * x) / self.scale**2 - const
