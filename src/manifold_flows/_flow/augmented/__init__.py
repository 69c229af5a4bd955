from .audit import coupling_flow_audit as coupling_flow_audit
from .base import AbstractAugmentedLikelihood as AbstractAugmentedLikelihood
from .flow import AugmentedCouplingFlow as AugmentedCouplingFlow
from .learned_aux import LearnedAux as LearnedAux
from .multi_aux import MultiAuxFlow as MultiAuxFlow
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
    "LearnedAux",
    "MultiAuxFlow",
    "coupling_flow_audit",
]
