"""The energy interfaces: total potential energy U of one configuration, and pair potentials."""

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, Int

from .._manifold import FlatTorus, check_species
from ._images import image_shifts


class AbstractEnergy(eqx.Module):
    """A potential energy of a particle configuration.

    Convention (used everywhere in the package): `__call__` returns the **total** potential
    energy U = sum over pairs i < j (not per particle); per-particle values are U / N. The
    Boltzmann target is p(x) ∝ exp(-U(x) / T) in reduced units (k_B = 1).

    One configuration in: `x` of shape `(n, d)`, `species` of shape `(n,)`; batch with
    `jax.vmap`.
    """

    @abc.abstractmethod
    def __call__(self, x: Float[Array, "n d"], species: Int[Array, " n"]) -> Float[Array, ""]:
        """Total potential energy U(x)."""

    @abc.abstractmethod
    def per_particle(self, x: Float[Array, "n d"], species: Int[Array, " n"]) -> Float[Array, " n"]:
        """Energy of each particle: half the sum of its pair energies, so that the entries sum
        to the total U."""

    # concrete helper, derived from `__call__` (never overridden)
    def forces(self, x: Float[Array, "n d"], species: Int[Array, " n"]) -> Float[Array, "n d"]:
        """Forces F = -dU/dx by automatic differentiation."""
        return -jax.grad(lambda y: self(y, species))(jnp.asarray(x))


class AbstractPairEnergy(AbstractEnergy):
    """A sum of isotropic pair potentials between particles in a periodic box.

    A final subclass supplies the box (`torus`), the number of species, the image convention,
    the pair potential `W_ab(r)` (`pair_energy`) and its largest cutoff (`max_cutoff`). Every
    energy below is implemented once, here.

    **Image conventions** (`images`):

    - `"minimum"`: each pair interacts through its nearest periodic image only,
      `U = sum_{i<j} W_{s_i s_j}(|log(x_i, x_j)|)`. This is what the field's reference data
      use; it equals the exact periodic sum only when every cutoff is at most half the
      shortest box side.
    - `"all"`: every periodic image closer than the cutoff counts, which is the energy per cell
      of the infinite periodic system,
      `U = sum_{i<j} sum_n W(|r_ij + n L|) + 1/2 sum_i sum_{n != 0} W_{s_i s_i}(|n L|)`,
      the last term being the interaction of a particle with its own images (zero unless a
      cutoff exceeds a box side; it never depends on positions and is unchanged by swaps).

    When half the shortest box side is below `max_cutoff()` the two differ, and constructing
    the energy warns with an `ImageConventionWarning` naming the convention in force.

    **Overlaps:** two particles at distance 0 give `U = +inf` (never NaN). Gradients are finite
    everywhere else.
    """

    torus: eqx.AbstractVar[FlatTorus]
    num_species: eqx.AbstractVar[int]
    images: eqx.AbstractVar[str]

    @abc.abstractmethod
    def pair_energy(
        self,
        r: Float[ArrayLike, "..."],
        si: Int[ArrayLike, "..."],
        sj: Int[ArrayLike, "..."],
    ) -> Float[Array, "..."]:
        """The pair potential `W_{si sj}(r)`, elementwise (arguments broadcast together).

        **Arguments:**

        - `r`: distances `r >= 0`.
        - `si`, `sj`: species labels of the two particles, in `[0, num_species)`.

        **Returns:**

        `W_{si sj}(r)`: symmetric in `(si, sj)`, exactly `0` for `r >= rc_{si sj}`, `+inf` at
        `r == 0`, in the dtype of `r`.
        """

    @abc.abstractmethod
    def max_cutoff(self) -> float:
        """The largest cutoff radius `rc_ab` over all species pairs (a Python float)."""

    # ------------------------------------------------------------------ concrete helpers
    # Implemented once here; final classes never override them (STYLE.md rule 1).

    def check_configuration(
        self, x: Float[ArrayLike, "n d"], species: Int[ArrayLike, " n"]
    ) -> tuple[Float[Array, "n d"], Int[Array, " n"]]:
        """Validate one configuration and its species vector.

        Structural mistakes (wrong rank, wrong number of axes, non-float positions, species of
        the wrong length or dtype) raise `ValueError`/`TypeError` at trace time; non-finite
        coordinates or labels outside `[0, num_species)` fail through `eqx.error_if` (works
        under `jit`).

        **Returns:**

        `(x, species)` as JAX arrays; use the returned values so that the checks run.
        """
        x = jnp.asarray(x)
        d = self.torus.dim
        if x.ndim != 2 or x.shape[1] != d:
            hint = " (a batch? map over it with jax.vmap)" if x.ndim == 3 else ""
            raise ValueError(
                f"positions `x` must have shape (n, {d}) for this {d}-dimensional box; got shape "
                f"{x.shape}{hint}."
            )
        if not jnp.issubdtype(x.dtype, jnp.floating):
            raise TypeError(
                f"positions `x` must be floating point; got dtype {x.dtype}. Convert with "
                "jnp.asarray(x, dtype=float)."
            )
        species = check_species(species, x.shape[0], self.num_species)
        x = eqx.error_if(
            x,
            ~jnp.all(jnp.isfinite(x)),
            "positions `x` contain NaN or infinite coordinates; check the data or the sampler.",
        )
        return x, species

    def _energy_row(
        self, x: Float[Array, "n d"], species: Int[Array, " n"], i: Int[ArrayLike, ""]
    ) -> Float[Array, " n"]:
        """`row[j]` = interaction of particle `i` with particle `j` summed over the images of the
        convention; `row[i]` holds the interaction of `i` with its own (non-trivial) images."""
        n, d = x.shape
        i = jnp.asarray(i)
        delta = jax.vmap(self.torus.log, in_axes=(None, 0))(x[i], x)  # (n, d), nearest image
        shifts, is_zero = image_shifts(self.torus.lengths, self.max_cutoff(), self.images)
        # Squared distances to every image, (n, m). The sum over the d box axes is written out:
        # a reduction over a minor axis of size 2 or 3 costs XLA:CPU several times more than
        # the same adds done elementwise (this is the hot loop of Monte Carlo).
        if shifts.shape[0] == 1:  # nearest image only: the shift is zero
            r2 = sum(delta[:, k] ** 2 for k in range(d))[:, None]
        else:
            shifted = delta[:, None, :] + jnp.asarray(shifts, dtype=x.dtype)[None, :, :]
            r2 = sum(shifted[:, :, k] ** 2 for k in range(d))
        # exclude the particle itself (j == i, zero shift); the double `where` keeps the
        # gradient finite there.
        excluded = jnp.logical_and(
            (jnp.arange(n, dtype=i.dtype) == i)[:, None], jnp.asarray(is_zero)[None, :]
        )
        r = jnp.sqrt(jnp.where(excluded, 1.0, r2))
        # `si` stays one label (the potential broadcasts it): looking up its row once is cheap
        w = jnp.where(excluded, 0.0, self.pair_energy(r, species[i], species[:, None]))
        return jnp.sum(w, axis=1)

    def particle_energy(
        self, x: Float[Array, "n d"], species: Int[Array, " n"], i: Int[ArrayLike, ""]
    ) -> Float[Array, ""]:
        """Energy of particle `i` with everything else, in O(n): the quantity Monte Carlo moves
        need.

        `e_i = sum_{j != i} sum_n W_{s_i s_j}(|r_ij + n L|) + sum_{n != 0} W_{s_i s_i}(|n L|)`,
        where the image sums run over the images of the convention (`"minimum"`: the nearest
        image only, and no self term). With this definition, in **both** conventions,

        - `U == 0.5 * sum_i e_i` (`per_particle` is `e_i / 2`);
        - moving particle `i` from `x` to `x'` changes U by exactly `e_i(x') - e_i(x)`;
        - exchanging the species of particles `i` and `j` changes U by exactly
          `(e_i' + e_j') - (e_i + e_j)` (their mutual term and the self terms cancel).

        No validation is done here (hot path): validate once with `check_configuration`.

        **Arguments:**

        - `x`: positions `(n, d)`; `species`: labels `(n,)`; `i`: the particle index.

        **Returns:**

        The scalar `e_i`.
        """
        x = jnp.asarray(x)
        return jnp.sum(self._energy_row(x, jnp.asarray(species), i))

    def per_particle(
        self, x: Float[ArrayLike, "n d"], species: Int[ArrayLike, " n"]
    ) -> Float[Array, " n"]:
        """Per-particle energies `e_i / 2` (see `particle_energy`); they sum to `U`."""
        x, species = self.check_configuration(x, species)
        index = jnp.arange(x.shape[0])
        rows = jax.vmap(lambda i: self._energy_row(x, species, i))(index)
        return 0.5 * jnp.sum(rows, axis=1)

    def __call__(
        self, x: Float[ArrayLike, "n d"], species: Int[ArrayLike, " n"]
    ) -> Float[Array, ""]:
        """Total potential energy `U` (sum over pairs i < j, in the image convention of
        `images`; `+inf` if two particles overlap)."""
        return jnp.sum(self.per_particle(x, species))
