"""The E(n)-equivariant graph network in R^d: the velocity field of the eFM baseline."""

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PRNGKeyArray

from .._manifold.particles import check_species
from ._egnn_core import EGNNCore, cast_floating
from ._options import check_common_options, coord_scale_from
from .base import AbstractVectorField


class EuclideanEGNN(AbstractVectorField):
    """The same architecture as `TorusEGNN` in R^d without periodicity.

    `Delta_ij = x_i - x_j`, positions are updated by plain addition, and the output is the
    total displacement `x^final - x` with its mean over particles removed. The field is
    equivariant under permutations within species and orthogonal maps O(d), and its output is
    invariant under translations and has zero mean over particles (a translation-invariant
    velocity, as the eFM baseline needs).

    **Arguments:**

    - `dim`: the spatial dimension `d`.
    - `num_species`, `width`, `depth`, `attention`, `tanh_bound`, `dtype`, `key`: as for
      `TorusEGNN`.
    """

    dim: int = eqx.field(static=True)
    core: EGNNCore

    def __init__(
        self,
        dim: int,
        num_species: int,
        *,
        width: int = 32,
        depth: int = 3,
        attention: bool = True,
        tanh_bound: bool | float = True,
        dtype=None,
        key: PRNGKeyArray,
    ):
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ValueError(f"EuclideanEGNN: `dim` must be a positive integer; got {dim!r}.")
        check_common_options("EuclideanEGNN", num_species=num_species, width=width, depth=depth)
        dtype = jnp.result_type(float) if dtype is None else dtype
        self.dim = dim
        self.core = EGNNCore(
            int(num_species),
            width=int(width),
            depth=int(depth),
            attention=bool(attention),
            coord_scale=coord_scale_from("EuclideanEGNN", tanh_bound, depth),
            dtype=dtype,
            key=key,
        )

    @property
    def num_species(self) -> int:
        return self.core.num_species

    def __call__(
        self, t: Float[Array, ""] | float, x: Float[Array, "n d"], args: Int[Array, " n"]
    ) -> Float[Array, "n d"]:
        if x.ndim != 2 or x.shape[-1] != self.dim:
            raise ValueError(
                f"EuclideanEGNN expects one configuration x of shape (n, {self.dim}); got "
                f"shape {x.shape}. Batch with jax.vmap."
            )
        species = check_species(args, x.shape[0], self.core.num_species)
        core = cast_floating(self.core, x.dtype)

        def displacement(y: Array) -> Array:
            return y[:, None, :] - y[None, :, :]

        def exp(y: Array, v: Array) -> Array:
            return y + v

        v = core(jnp.asarray(t, dtype=x.dtype), x, species, displacement, exp)  # x_final - x
        return v - jnp.mean(v, axis=0, keepdims=True)
