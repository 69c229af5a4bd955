"""Build a vector field from configuration values, and count its parameters."""

import equinox as eqx
import jax
import numpy as np
from jaxtyping import PRNGKeyArray

from .._manifold import FlatTorus
from .angle_mlp import AngleMLP
from .base import AbstractVectorField
from .euclidean_egnn import EuclideanEGNN
from .kernel import KernelField
from .torus_egnn import TorusEGNN

#: The names `build_field` accepts, with the field each one builds.
FIELD_NAMES: tuple[str, ...] = ("torus_egnn", "euclidean_egnn", "mlp", "kernel")


def build_field(
    name: str,
    *,
    torus_or_dim: FlatTorus | int,
    num_particles: int,
    num_species: int,
    width: int = 32,
    depth: int = 3,
    attention: bool = True,
    tanh_bound: bool | float = True,
    num_kernels: int = 32,
    cutoff: float | None = None,
    dtype=None,
    key: PRNGKeyArray,
) -> AbstractVectorField:
    """Build one of the library's vector fields by name (for config files and the CLI).

    **Arguments:**

    - `name`: `"torus_egnn"` (`TorusEGNN`, eRSI), `"euclidean_egnn"` (`EuclideanEGNN`, eFM),
      `"mlp"` (`AngleMLP`, RSI) or `"kernel"` (`KernelField` on the torus: pairwise radial
      kernels with a closed-form divergence).
    - `torus_or_dim`: the `FlatTorus` of the data. `"euclidean_egnn"` also accepts a plain
      dimension `d` (it ignores periodicity and only uses the torus' dimension).
    - `num_particles`: the number of particles (used by `"mlp"`, whose input size depends on
      it; the EGNNs work for any number).
    - `num_species`: the number of species labels.
    - `width`, `depth`: hidden width and number of layers.
    - `attention`, `tanh_bound`: EGNN options (see `TorusEGNN`); ignored by `"mlp"` and
      `"kernel"`.
    - `num_kernels`, `cutoff`: `KernelField` options (radial basis functions, their range:
      default half the box); `width` is then that of its time network and `depth` is unused.
    - `dtype`: parameter dtype (default: JAX's default float dtype).
    - `key`: PRNG key for the initialisation.

    **Returns:**

    The field, an `AbstractVectorField`.

    **Raises:**

    `ValueError` for an unknown name or an option the field cannot take; `TypeError` when
    `torus_or_dim` has the wrong kind for the field.
    """
    if name not in FIELD_NAMES:
        raise ValueError(
            f"unknown vector field name {name!r}; valid names are: {', '.join(FIELD_NAMES)}."
        )
    common = dict(width=width, depth=depth, dtype=dtype, key=key)
    if name == "euclidean_egnn":
        if isinstance(torus_or_dim, FlatTorus):
            dim = torus_or_dim.dim
        elif isinstance(torus_or_dim, (int, np.integer)) and not isinstance(torus_or_dim, bool):
            dim = int(torus_or_dim)
        else:
            raise TypeError(
                "build_field('euclidean_egnn') needs `torus_or_dim` to be a FlatTorus or an "
                f"integer dimension; got {torus_or_dim!r}."
            )
        return EuclideanEGNN(dim, num_species, attention=attention, tanh_bound=tanh_bound, **common)
    if not isinstance(torus_or_dim, FlatTorus):
        raise TypeError(
            f"build_field({name!r}) needs `torus_or_dim` to be the FlatTorus of the data; got "
            f"{torus_or_dim!r}. Build it with FlatTorus(box_length, dim=2)."
        )
    if name == "kernel":
        return KernelField(
            torus_or_dim,
            num_species,
            cutoff=cutoff,
            num_kernels=num_kernels,
            width=width,
            dtype=dtype,
            key=key,
        )
    if name == "torus_egnn":
        return TorusEGNN(
            torus_or_dim, num_species, attention=attention, tanh_bound=tanh_bound, **common
        )
    return AngleMLP(torus_or_dim, num_particles, num_species, **common)


def count_parameters(module) -> int:
    """The number of trainable scalars in `module` (every floating-point array leaf)."""
    leaves = jax.tree.leaves(eqx.filter(module, eqx.is_inexact_array))
    return int(sum(leaf.size for leaf in leaves))
