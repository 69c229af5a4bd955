from ._base_dist import (
    AbstractBase as AbstractBase,
    AbstractNormalizedBase as AbstractNormalizedBase,
    BoxUniformBase as BoxUniformBase,
    CenteredGaussianBase as CenteredGaussianBase,
    DatasetBase as DatasetBase,
    GaussianBase as GaussianBase,
    UniformBase as UniformBase,
)
from ._divergence import (
    AbstractDivergence as AbstractDivergence,
    AbstractStochasticDivergence as AbstractStochasticDivergence,
    ExactDivergence as ExactDivergence,
    FieldDivergence as FieldDivergence,
    HutchinsonDivergence as HutchinsonDivergence,
)
from .audit import (
    CHECK_NAMES as AUDIT_CHECKS,
    AuditCheck as AuditCheck,
    AuditReport as AuditReport,
    default_logq_tolerance as default_logq_tolerance,
    likelihood_audit as likelihood_audit,
)
from .augmented import (
    AbstractAugmentedLikelihood as AbstractAugmentedLikelihood,
    AbstractNeighbourList as AbstractNeighbourList,
    AugmentedCouplingFlow as AugmentedCouplingFlow,
    CellNeighbourList as CellNeighbourList,
    DenseNeighbourList as DenseNeighbourList,
    LearnedAux as LearnedAux,
    MultiAuxFlow as MultiAuxFlow,
    coupling_flow_audit as coupling_flow_audit,
)
from .base import AbstractLikelihood as AbstractLikelihood
from .batch import log_prob_batch as log_prob_batch, sample as sample
from .continuous import ContinuousFlow as ContinuousFlow
from .solution import (
    SOLVE_FAILED as SOLVE_FAILED,
    SOLVE_MAX_STEPS as SOLVE_MAX_STEPS,
    SOLVE_OK as SOLVE_OK,
    FlowSolution as FlowSolution,
    FlowStats as FlowStats,
)

__all__ = [
    "AUDIT_CHECKS",
    "SOLVE_FAILED",
    "SOLVE_MAX_STEPS",
    "SOLVE_OK",
    "AbstractAugmentedLikelihood",
    "AbstractBase",
    "AbstractDivergence",
    "AbstractLikelihood",
    "AbstractNeighbourList",
    "AbstractNormalizedBase",
    "AbstractStochasticDivergence",
    "AuditCheck",
    "AuditReport",
    "AugmentedCouplingFlow",
    "BoxUniformBase",
    "CellNeighbourList",
    "CenteredGaussianBase",
    "ContinuousFlow",
    "DatasetBase",
    "DenseNeighbourList",
    "ExactDivergence",
    "FieldDivergence",
    "FlowSolution",
    "FlowStats",
    "GaussianBase",
    "HutchinsonDivergence",
    "LearnedAux",
    "MultiAuxFlow",
    "UniformBase",
    "coupling_flow_audit",
    "default_logq_tolerance",
    "likelihood_audit",
    "log_prob_batch",
    "sample",
]
