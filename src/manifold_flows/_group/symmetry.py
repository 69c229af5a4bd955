"""The symmetry group of a particle system in a periodic box."""

from jaxtyping import Array, Int

from .._manifold import FlatTorus
from .permutation import PermutationWithinSpecies
from .product import ProductAction
from .torus_isometry import TorusIsometryGroup


def full_symmetry_group(torus: FlatTorus, species: Int[Array, " n"]) -> ProductAction:
    """The symmetry group of a species-labelled particle system in a periodic box.

    Permutations of particles within a species, times every isometry of the box (translations
    semidirect the box point group): `ProductAction(PermutationWithinSpecies(species),
    TorusIsometryGroup(torus))`. Permutations commute with the isometries (which move every
    particle alike), so the direct product is valid. An energy of pairwise interactions under
    the minimum-image convention, and hence its Boltzmann density, is invariant under it.

    **Arguments:**

    - `torus`: the periodic box (`FlatTorus`).
    - `species`: integer species labels, shape `(n,)`.

    **Returns:**

    A `ProductAction` whose elements are `(permutation, TorusIsometry)` pairs.
    """
    return ProductAction(PermutationWithinSpecies(species), TorusIsometryGroup(torus))
