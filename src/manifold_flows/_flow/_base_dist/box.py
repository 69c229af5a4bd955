"""The uniform distribution on a periodic box, seen as a density on Euclidean particle space."""

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray, PyTree

from ..._manifold import AbstractManifold, FlatTorus
from .._divergence import is_flat_embedded
from .base import AbstractNormalizedBase


class BoxUniformBase(AbstractNormalizedBase):
    """Uniform on the box `[0, L_1) x ... x [0, L_d)` for each particle, as a normalised
    density on a flat **non-periodic** space of points `(n, d)` (e.g.
    `ParticleSpace(Euclidean(d), n)`): the base of Euclidean flow matching (eFM), which draws
    its base points in the box but then moves them in R^(n d), ignoring periodicity.

        log_prob(x) = -n log vol(box)   if every coordinate lies in [0, L),   else -inf.

    (A reverse pass that ends outside the box therefore gives log q = -inf: the Euclidean
    flow cannot have produced that point.)

    **Arguments:**

    - `space`: the flat space, points of shape `(n, d)`.
    - `torus`: the box (`FlatTorus`), `d` lengths.
    """

    space: AbstractManifold
    torus: FlatTorus

    def __init__(self, space: AbstractManifold, torus: FlatTorus):
        if not isinstance(torus, FlatTorus):
            raise TypeError(f"BoxUniformBase needs a FlatTorus `torus`; got {type(torus)}.")
        shape = tuple(space.point_shape)
        if not is_flat_embedded(space) or len(shape) != 2 or shape[1] != torus.dim:
            raise ValueError(
                f"BoxUniformBase needs a flat space of points (n, {torus.dim}) such as "
                f"ParticleSpace(Euclidean({torus.dim}), n); got point shape {shape}."
            )
        self.space = space
        self.torus = torus

    def sample(self, key: PRNGKeyArray, args: PyTree) -> Float[Array, "n d"]:
        n = self.space.point_shape[0]
        return jax.vmap(self.torus.random_uniform)(jax.random.split(key, n))

    def log_prob(self, x: Float[ArrayLike, "n d"], args: PyTree) -> Float[Array, ""]:
        x = jnp.asarray(x)
        box = self.torus.box(x.dtype)
        inside = jnp.all((x >= 0) & (x < box[None, :]))
        value = -x.shape[0] * jnp.asarray(self.torus.log_volume(), dtype=x.dtype)
        return jnp.where(inside, value, jnp.asarray(-jnp.inf, dtype=x.dtype))
