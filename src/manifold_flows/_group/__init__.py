from .base import (
    AbstractFiniteGroupAction as AbstractFiniteGroupAction,
    AbstractGroupAction as AbstractGroupAction,
    GroupElement as GroupElement,
)
from .euclidean_translation import EuclideanTranslation as EuclideanTranslation
from .orthogonal import OrthogonalGroup as OrthogonalGroup
from .permutation import PermutationWithinSpecies as PermutationWithinSpecies
from .point_group import BoxPointGroup as BoxPointGroup, SignedPermutation as SignedPermutation
from .product import ProductAction as ProductAction
from .symmetry import full_symmetry_group as full_symmetry_group
from .torus_isometry import (
    TorusIsometry as TorusIsometry,
    TorusIsometryGroup as TorusIsometryGroup,
)
from .torus_translation import TorusTranslation as TorusTranslation

__all__ = [
    "AbstractFiniteGroupAction",
    "AbstractGroupAction",
    "BoxPointGroup",
    "EuclideanTranslation",
    "GroupElement",
    "OrthogonalGroup",
    "PermutationWithinSpecies",
    "ProductAction",
    "SignedPermutation",
    "TorusIsometry",
    "TorusIsometryGroup",
    "TorusTranslation",
    "full_symmetry_group",
]
