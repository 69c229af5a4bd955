from .base import AbstractAugmentedLikelihood as AbstractAugmentedLikelihood
from .flow import AugmentedCouplingFlow as AugmentedCouplingFlow
from .neighbours import (
    AbstractNeighbourList as AbstractNeighbourList,
    DenseNeighbourList as DenseNeighbourList,
)

__all__ = [
    "AbstractAugmentedLikelihood",
    "AbstractNeighbourList",
    "AugmentedCouplingFlow",
    "DenseNeighbourList",
]
