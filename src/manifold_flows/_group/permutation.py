"""Permutations of particles that only exchange particles of the same species."""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Int, PRNGKeyArray, Shaped

from .base import AbstractFiniteGroupAction

#: Largest group order `elements()` agrees to enumerate.
MAX_ENUMERATED_ORDER = 100_000


def _check_species_vector(species) -> Array:
    species = jnp.asarray(species)
    if species.ndim != 1 or species.shape[0] < 1:
        raise ValueError(
            "PermutationWithinSpecies needs `species` as a non-empty vector with one integer "
            f"label per particle; got shape {species.shape}."
        )
    if not jnp.issubdtype(species.dtype, jnp.integer):
        raise TypeError(
            f"PermutationWithinSpecies needs integer species labels; got dtype {species.dtype}. "
            "Map names to integers first (e.g. A->0, B->1)."
        )
    return species


class PermutationWithinSpecies(AbstractFiniteGroupAction):
    """The group of particle relabellings that only exchange particles of equal species.

    An element is an integer vector `p` of shape `(n,)`, a permutation of `0..n-1` with
    `species[p] == species`. It acts on a configuration `x` of shape `(n, ...)` by

    `act(p, x)[i] = x[p[i]]`  (the new particle `i` is the old particle `p[i]`),

    so `compose(p, q) = q[p]` (apply `q` first) and `inverse(p) = argsort(p)`. Tangent vectors
    are relabelled the same way. The order is `prod_a n_a!` over the species counts `n_a`.

    The species vector need not be sorted: `[1, 0, 1, 0]` is fine.

    **Arguments:**

    - `species`: integer labels, shape `(n,)`.
    """

    species: Int[Array, " n"]

    # `species` is annotated loosely so that the constructor's own check (with its message
    # naming the fix) runs before any annotation checker.
    def __init__(self, species: ArrayLike | list[int]):
        self.species = _check_species_vector(species)

    @property
    def num_particles(self) -> int:
        """The number of particles `n`."""
        return self.species.shape[0]

    def _concrete_species(self) -> np.ndarray:
        try:
            return np.asarray(self.species)
        except jax.errors.TracerArrayConversionError as exc:
            raise ValueError(
                "PermutationWithinSpecies.order/elements need a concrete species vector, but "
                "`species` is traced (the action was built inside jit/vmap). Build the action "
                "outside the transformed function, or use random_element instead."
            ) from exc

    @property
    def order(self) -> int:
        _, counts = np.unique(self._concrete_species(), return_counts=True)
        return math.prod(math.factorial(int(c)) for c in counts)

    def _check_point(self, x: Array, what: str) -> None:
        if x.ndim < 1 or x.shape[0] != self.num_particles:
            raise ValueError(
                f"PermutationWithinSpecies.{what}: `x` must have a leading axis of length "
                f"n={self.num_particles} (one row per particle, like `species`); got shape "
                f"{x.shape}. Batch with jax.vmap."
            )

    # ------------------------------------------------------------------ group structure
    def identity(self) -> Int[Array, " n"]:
        return jnp.arange(self.num_particles, dtype=jnp.int32)

    def compose(self, g: Int[Array, " n"], h: Int[Array, " n"]) -> Int[Array, " n"]:
        # act(g, act(h, x))[i] = act(h, x)[g[i]] = x[h[g[i]]].
        return h[g]

    def inverse(self, g: Int[Array, " n"]) -> Int[Array, " n"]:
        return jnp.argsort(g).astype(g.dtype)

    def act(self, g: Int[Array, " n"], x: Shaped[Array, " n *rest"]) -> Shaped[Array, " n *rest"]:
        self._check_point(x, "act")
        return x[g]

    def act_tangent(
        self, g: Int[Array, " n"], x: Shaped[Array, " n *rest"], v: Shaped[Array, " n *rest"]
    ) -> Shaped[Array, " n *rest"]:
        self._check_point(v, "act_tangent")
        return v[g]

    def random_element(self, key: PRNGKeyArray) -> Int[Array, " n"]:
        # Sort the particle indices by (species, random key): within each species block this is
        # a uniformly random ordering of that species' indices. The k-th position of the
        # species-sorted order then receives the k-th index of the shuffled order, so a
        # particle is only ever replaced by one of its own species (works for unsorted labels).
        u = jax.random.uniform(key, (self.num_particles,))
        shuffled = jnp.lexsort((u, self.species))
        by_species = jnp.argsort(self.species, stable=True)
        perm = jnp.zeros(self.num_particles, dtype=jnp.int32)
        return perm.at[by_species].set(shuffled.astype(jnp.int32))

    def elements(self) -> Int[Array, "order n"]:
        order = self.order
        if order > MAX_ENUMERATED_ORDER:
            raise ValueError(
                f"PermutationWithinSpecies has order {order} (> {MAX_ENUMERATED_ORDER}), too "
                "many elements to enumerate; draw elements with random_element(key) instead."
            )
        species = self._concrete_species()
        blocks = [np.flatnonzero(species == s) for s in np.unique(species)]
        rows = []
        for choice in itertools.product(*(itertools.permutations(b) for b in blocks)):
            perm = np.empty(species.shape[0], dtype=np.int32)
            for block, images in zip(blocks, choice, strict=True):
                perm[block] = images
            rows.append(perm)
        return jnp.asarray(np.stack(rows))
