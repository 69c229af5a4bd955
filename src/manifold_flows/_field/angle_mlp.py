"""A non-equivariant MLP on angle-encoded torus coordinates: the velocity field of RSI."""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PRNGKeyArray

from .._manifold import FlatTorus
from .._manifold.particles import check_species
from ._egnn_core import cast_floating
from ._options import check_common_options, check_positive_int
from .base import AbstractVectorField


class AngleMLP(AbstractVectorField):
    """A plain MLP on the flattened configuration, periodic through an angle encoding.

    Input: `[sin(2 pi x / L), cos(2 pi x / L)]` for every coordinate of every particle, the
    time `t` and the one-hot species of every particle, concatenated into one vector of length
    `2 n d + 1 + n S`; output: a vector of length `n d`, reshaped to `(n, d)`. The encoding makes
    the field periodic (`f(t, x + L k) == f(t, x)`), but it is **not** equivariant under
    permutations, translations or the point group: the RSI baseline trains it with random group
    augmentation instead.

    **Arguments:**

    - `torus`: the `FlatTorus` (box).
    - `num_particles`: `n` (the input size depends on it).
    - `num_species`: the number of species labels.
    - `width`: width of the hidden layers (default 256).
    - `depth`: number of hidden layers (default 3).
    - `dtype`: parameter dtype (default: JAX's default float dtype).
    - `key`: PRNG key for the initialisation.
    """

    torus: FlatTorus
    mlp: eqx.nn.MLP
    num_particles: int = eqx.field(static=True)
    num_species: int = eqx.field(static=True)

    def __init__(
        self,
        torus: FlatTorus,
        num_particles: int,
        num_species: int,
        *,
        width: int = 256,
        depth: int = 3,
        dtype=None,
        key: PRNGKeyArray,
    ):
        if not isinstance(torus, FlatTorus):
            raise TypeError(
                f"AngleMLP needs a FlatTorus for `torus`; got {type(torus).__name__}. Build one "
                "with FlatTorus(box_length, dim=2)."
            )
        check_common_options("AngleMLP", num_species=num_species, width=width, depth=depth)
        check_positive_int(
            "AngleMLP", "num_particles", num_particles, "Pass the number of particles, e.g. 44."
        )
        dtype = jnp.result_type(float) if dtype is None else dtype
        n, d, s = int(num_particles), torus.dim, int(num_species)
        self.torus = torus
        self.num_particles = n
        self.num_species = s
        self.mlp = eqx.nn.MLP(
            in_size=2 * n * d + 1 + n * s,
            out_size=n * d,
            width_size=int(width),
            depth=int(depth),
            activation=jax.nn.silu,
            dtype=dtype,
            key=key,
        )

    def __call__(
        self, t: Float[Array, ""] | float, x: Float[Array, "n d"], args: Int[Array, " n"]
    ) -> Float[Array, "n d"]:
        expected = (self.num_particles, self.torus.dim)
        if x.shape != expected:
            raise ValueError(
                f"AngleMLP was built for configurations of shape {expected} (num_particles, "
                f"dim); got x of shape {x.shape}. Batch with jax.vmap, or build the field for "
                "this number of particles."
            )
        species = check_species(args, self.num_particles, self.num_species)
        dtype = x.dtype
        mlp = cast_floating(self.mlp, dtype)
        angle = (2 * jnp.pi) * x / self.torus.box(dtype)[None]
        features = jnp.concatenate(
            [
                jnp.sin(angle).reshape(-1),
                jnp.cos(angle).reshape(-1),
                jnp.asarray(t, dtype=dtype).reshape(1),
                jax.nn.one_hot(species, self.num_species, dtype=dtype).reshape(-1),
            ]
        )
        return mlp(features).reshape(expected)
