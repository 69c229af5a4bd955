"""Configuration space of N particles: the power manifold M^N."""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray, Shaped

from .base import AbstractManifold


class ParticleSpace(AbstractManifold):
    """The configuration space M^N of `num_particles` points of a manifold `M` (product metric).

    A point is an array of shape `(num_particles, *M.point_shape)`; every geometric operation
    acts particle by particle (it holds its factor and forwards to it). Species are **not** part
    of the geometry: they ride along as data (see `check_species`).

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
        if int(num_particles) != num_particles or num_particles < 1:
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

    def check(self, x: Shaped[Array, "..."]) -> Shaped[Array, "..."]:
        x = jnp.asarray(x)
        if x.shape != self.point_shape:
            hint = (
                " (a batch? map over it with jax.vmap)"
                if x.ndim == len(self.point_shape) + 1 and x.shape[1:] == self.point_shape
                else ""
            )
            raise ValueError(
                f"configuration must have shape {self.point_shape} = (num_particles, "
                f"*point_shape); got shape {x.shape}{hint}."
            )
        return jax.vmap(self.manifold.check)(x)


def check_species(
    species: Array, num_particles: int, num_species: int | None = None
) -> Array:
    """Validate a species vector: integers of shape `(num_particles,)` in `[0, num_species)`.

    Structural mistakes raise at trace time; out-of-range labels fail through `eqx.error_if`.
    Returns the (validated) species array; use the returned value.
    """
    species = jnp.asarray(species)
    if species.ndim != 1 or species.shape[0] != num_particles:
        raise ValueError(
            f"species must be a vector of length num_particles={num_particles} (one integer "
            f"label per particle); got shape {species.shape}."
        )
    if not jnp.issubdtype(species.dtype, jnp.integer):
        raise TypeError(
            f"species must hold integer labels 0, 1, ...; got dtype {species.dtype}. Map names "
            "to integers first (e.g. A->0, B->1)."
        )
    if num_species is not None:
        species = eqx.error_if(
            species,
            jnp.any((species < 0) | (species >= num_species)),
            f"species labels must lie in [0, {num_species}); relabel the particles or raise "
            "num_species.",
        )
    return species
