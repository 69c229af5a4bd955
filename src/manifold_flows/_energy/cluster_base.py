"""Pair energies of particle clusters in Euclidean space (no box): translation invariant."""

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, Int

from .._manifold import check_species
from .base import AbstractEnergy


class AbstractClusterEnergy(AbstractEnergy):
    """A sum of isotropic pair potentials between particles in open Euclidean space `R^d`:

        U(x) = sum_{i<j} W(|x_i - x_j|).

    It depends on the positions only through pair distances, so it is invariant under
    translations, rotations, reflections and permutations of the particles; its Boltzmann
    density is a density on the configurations with the centre of mass removed
    (`ZeroCenterOfMass`). A final subclass supplies the spatial dimension (`dim`) and the
    pair potential (`pair_energy`), and `num_particles` when the potential depends on it
    (`None` otherwise); every energy below is implemented once, here. One species:
    the `species` argument is checked (length `n`, labels `0`) and otherwise ignored.
    """

    dim: eqx.AbstractVar[int]
    num_particles: eqx.AbstractVar[int | None]

    @abc.abstractmethod
    def pair_energy(self, r: Float[ArrayLike, "..."]) -> Float[Array, "..."]:
        """The pair potential `W(r)`, elementwise, in the dtype of `r` (distances `r > 0`)."""

    # ------------------------------------------------------------------ concrete helpers
    def check_configuration(
        self, x: Float[ArrayLike, "n d"], species: Int[ArrayLike, " n"]
    ) -> tuple[Float[Array, "n d"], Int[Array, " n"]]:
        """Validate one configuration: shape `(n, dim)` and a floating dtype (else
        `ValueError`/`TypeError` at trace time), one species label `0` per particle, finite
        coordinates (runtime `eqx.error_if`). Returns `(x, species)`; use them."""
        x = jnp.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.dim:
            hint = " (a batch? map over it with jax.vmap)" if x.ndim == 3 else ""
            raise ValueError(
                f"positions `x` must have shape (n, {self.dim}) for this {self.dim}-dimensional "
                f"cluster; got shape {x.shape}{hint}."
            )
        if not jnp.issubdtype(x.dtype, jnp.floating):
            raise TypeError(
                f"positions `x` must be floating point; got dtype {x.dtype}. Convert with "
                "jnp.asarray(x, dtype=float)."
            )
        if self.num_particles is not None and x.shape[0] != self.num_particles:
            raise ValueError(
                f"positions `x` hold {x.shape[0]} particles but this {type(self).__name__} is "
                f"built for num_particles={self.num_particles}; build it for {x.shape[0]}."
            )
        species = check_species(species, x.shape[0], 1)
        x = eqx.error_if(
            x,
            ~jnp.all(jnp.isfinite(x)),
            "positions `x` contain NaN or infinite coordinates; check the data or the sampler.",
        )
        return x, species

    def _row(self, x: Float[Array, "n d"], i: Int[ArrayLike, ""]) -> Float[Array, " n"]:
        """`row[j] = W(|x_i - x_j|)` for `j != i`, `row[i] = 0` (double `where`: finite
        gradients at `j == i`)."""
        n = x.shape[0]
        delta = x - x[i][None, :]
        r2 = jnp.sum(delta * delta, axis=-1)
        itself = jnp.arange(n) == i
        r = jnp.sqrt(jnp.where(itself, 1.0, r2))
        return jnp.where(itself, 0.0, self.pair_energy(r))

    def particle_energy(self, x: Float[Array, "n d"], i: Int[ArrayLike, ""]) -> Float[Array, ""]:
        """`e_i = sum_{j != i} W(|x_i - x_j|)` in O(n): moving particle `i` changes `U` by
        exactly `e_i(x') - e_i(x)` (what Monte Carlo moves need). No validation (hot path)."""
        return jnp.sum(self._row(jnp.asarray(x), i))

    def per_particle(
        self, x: Float[ArrayLike, "n d"], species: Int[ArrayLike, " n"]
    ) -> Float[Array, " n"]:
        """Per-particle energies `e_i / 2`; they sum to `U`."""
        x, _ = self.check_configuration(x, species)
        rows = jax.vmap(lambda i: self._row(x, i))(jnp.arange(x.shape[0]))
        return 0.5 * jnp.sum(rows, axis=1)

    def __call__(
        self, x: Float[ArrayLike, "n d"], species: Int[ArrayLike, " n"]
    ) -> Float[Array, ""]:
        """Total potential energy `U = sum_{i<j} W(r_ij)`."""
        return jnp.sum(self.per_particle(x, species))
