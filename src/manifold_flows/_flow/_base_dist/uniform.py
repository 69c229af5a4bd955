"""The uniform distribution on a compact manifold."""

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray, PyTree, Shaped

from ..._manifold import AbstractManifold
from .base import AbstractNormalizedBase


class UniformBase(AbstractNormalizedBase):
    """The normalised uniform (Riemannian volume) distribution on a compact manifold:
    `log_prob(x) = -log vol(space)`.

    For particle systems (`ParticleSpace` over a `FlatTorus`) it is uniform on the torus for
    every particle, a G-invariant prior for every subgroup of permutations, translations and
    box symmetries. The species vector rides in `args` and does not change the density.

    **Arguments:**

    - `space`: a manifold of finite volume.
    """

    space: AbstractManifold

    def __init__(self, space: AbstractManifold):
        if not isinstance(space, AbstractManifold):
            raise TypeError(f"UniformBase needs an AbstractManifold; got {type(space)}.")
        log_volume = space.log_volume()
        if not isinstance(log_volume, jax.core.Tracer) and not np.isfinite(float(log_volume)):
            raise ValueError(
                f"UniformBase needs a manifold of finite volume; {type(space).__name__} has "
                "infinite volume. Use GaussianBase on Euclidean space."
            )
        self.space = space

    def sample(self, key: PRNGKeyArray, args: PyTree) -> Shaped[Array, "..."]:
        return self.space.random_uniform(key)

    def log_prob(self, x: Shaped[ArrayLike, "..."], args: PyTree) -> Float[Array, ""]:
        x = jnp.asarray(x)
        # -log vol, cast to the dtype of x (log_volume() comes in the default float dtype, and
        # strict promotion forbids mixing it with a float32 point).
        return -jnp.asarray(self.space.log_volume(), dtype=x.dtype)
