from .base import AbstractAugmentedLikelihood as AbstractAugmentedLikelihood
from .flow import AugmentedCouplingFlow as AugmentedCouplingFlow
from .neighbours import (
    AbstractNeighbourList as AbstractNeighbourList,
    CellNeighbourList as CellNeighbourList,
    DenseNeighbourList as DenseNeighbourList,
)

__all__ = [
    "AbstractAugmentedLikelihood",
    "AbstractNeighbourList",
    "AugmentedCouplingFlow",
    "CellNeighbourList",
    "DenseNeighbourList",
]
