"""Configuration space of N particles: the power manifold M^N."""

from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int, PRNGKeyArray, Shaped

from .base import AbstractManifold


class ParticleSpace(AbstractManifold):
    """The configuration space M^N of `num_particles` points of a manifold `M` (product metric).

    A point is an array of shape `(num_particles, *M.point_shape)`; every geometric operation
    acts particle by particle (it holds its factor and forwards to it). Species are **not** part
    of the geometry: they ride along as data (see `check_species`).

    The metric is the product metric, so `dist` is the root of the sum of squared particle
    distances, `log_volume = N * M.log_volume()`, and the injectivity radius is that of `M`
    (a tangent vector of norm below it has every particle's part below it).

    **Arguments:**

    - `manifold`: the single-particle manifold `M` (e.g. `FlatTorus`).
    - `num_particles`: `N >= 1`.
    """

    manifold: AbstractManifold
    num_particles: int = eqx.field(static=True)

    def __init__(self, manifold: AbstractManifold, num_particles: int):
        if not isinstance(manifold, AbstractManifold):
            raise TypeError(
                f"ParticleSpace needs an AbstractManifold for `manifold`; got {type(manifold)}."
            )
        if (
            isinstance(num_particles, bool)
            or not isinstance(num_particles, int | np.integer)
            or num_particles < 1
        ):
            raise ValueError(
                f"ParticleSpace needs num_particles >= 1 (an integer); got {num_particles!r}."
            )
        self.manifold = manifold
        self.num_particles = int(num_particles)

    @property
    def point_shape(self) -> tuple[int, ...]:
        return (self.num_particles, *self.manifold.point_shape)

    @property
    def dim(self) -> int:
        return self.num_particles * self.manifold.dim

    @property
    def injectivity_radius(self) -> float:
        return self.manifold.injectivity_radius

    def exp(self, x: Shaped[Array, "n ..."], v: Shaped[Array, "n ..."]) -> Shaped[Array, "n ..."]:
        return jax.vmap(self.manifold.exp)(x, v)

    def log(self, x: Shaped[Array, "n ..."], y: Shaped[Array, "n ..."]) -> Shaped[Array, "n ..."]:
        return jax.vmap(self.manifold.log)(x, y)

    def inner(
        self, x: Shaped[Array, "n ..."], u: Shaped[Array, "n ..."], v: Shaped[Array, "n ..."]
    ) -> Float[Array, ""]:
        return jnp.sum(jax.vmap(self.manifold.inner)(x, u, v))

    def project(self, x: Shaped[Array, "n ..."]) -> Shaped[Array, "n ..."]:
        return jax.vmap(self.manifold.project)(x)

    def project_tangent(
        self, x: Shaped[Array, "n ..."], v: Shaped[Array, "n ..."]
    ) -> Shaped[Array, "n ..."]:
        return jax.vmap(self.manifold.project_tangent)(x, v)

    def random_uniform(self, key: PRNGKeyArray, dtype=None) -> Shaped[Array, "n ..."]:
        keys = jax.random.split(key, self.num_particles)
        return jax.vmap(lambda k: self.manifold.random_uniform(k, dtype=dtype))(keys)

    def log_volume(self) -> Float[Array, ""]:
        return self.num_particles * self.manifold.log_volume()

    def check(self, x: Shaped[ArrayLike, "..."]) -> Shaped[Array, "n ..."]:
        """Validate one configuration: shape `(num_particles, *M.point_shape)` (else
        `ValueError`), then every particle through `M.check` (dtype, NaN, on the manifold)."""
        x = jnp.asarray(x)
        if x.shape != self.point_shape:
            if x.ndim == len(self.point_shape) + 1 and x.shape[1:] == self.point_shape:
                hint = " It looks like a batch of configurations: map over it with jax.vmap."
            elif x.shape[1:] == self.point_shape[1:] and x.ndim == len(self.point_shape):
                hint = (
                    f" It holds {x.shape[0]} particles but this ParticleSpace has "
                    f"num_particles={self.num_particles}."
                )
            else:
                hint = ""
            raise ValueError(
                f"configuration must have shape {self.point_shape} = (num_particles, "
                f"*point_shape of {type(self.manifold).__name__}); got shape {x.shape}.{hint}"
            )
        return jax.vmap(self.manifold.check)(x)


def check_species(
    species: Shaped[ArrayLike, "..."] | Sequence[int],
    num_particles: int,
    num_species: int | None = None,
) -> Int[Array, " n"]:
    """Validate a species vector: integers of shape `(num_particles,)` in `[0, num_species)`.

    Structural mistakes (wrong length or rank, non-integer labels) raise `ValueError` /
    `TypeError` at trace time; out-of-range labels fail through `eqx.error_if` (also under
    `jit`).

    **Arguments:**

    - `species`: one integer label per particle.
    - `num_particles`: the number of particles `N` of the configuration.
    - `num_species`: the number of species, if known (labels must then be `< num_species`).

    **Returns:**

    The validated species array; use the returned value so the runtime check runs.
    """
    kind = np.asarray(species).dtype.kind if not isinstance(species, jax.Array) else None
    if kind is not None and kind not in "biuf":
        raise TypeError(
            "species must hold integer labels 0, 1, ...; got values of numpy kind "
            f"{kind!r} (e.g. strings). Map names to integers first (e.g. A->0, B->1)."
        )
    species = jnp.asarray(species)
    if species.ndim != 1 or species.shape[0] != num_particles:
        raise ValueError(
            f"species must be a vector of length num_particles={num_particles} (one integer "
            f"label per particle); got shape {species.shape}."
        )
    if not jnp.issubdtype(species.dtype, jnp.integer):
        raise TypeError(
            f"species must hold integer labels 0, 1, ...; got dtype {species.dtype}. Convert "
            "with jnp.asarray(species, dtype=jnp.int32), or map names to integers first "
            "(e.g. A->0, B->1)."
        )
    if num_species is not None:
        species = eqx.error_if(
            species,
            jnp.any((species < 0) | (species >= num_species)),
            f"species labels must lie in [0, {num_species}); relabel the particles or raise "
            "num_species.",
        )
    return species
