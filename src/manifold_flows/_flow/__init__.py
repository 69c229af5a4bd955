from ._base_dist import (
    AbstractBase as AbstractBase,
    AbstractNormalizedBase as AbstractNormalizedBase,
    DatasetBase as DatasetBase,
    GaussianBase as GaussianBase,
    UniformBase as UniformBase,
)
from ._divergence import (
    AbstractDivergence as AbstractDivergence,
    AbstractStochasticDivergence as AbstractStochasticDivergence,
    ExactDivergence as ExactDivergence,
    HutchinsonDivergence as HutchinsonDivergence,
)
from .base import AbstractLikelihood as AbstractLikelihood
from .batch import log_prob_batch as log_prob_batch, sample as sample
from .continuous import ContinuousFlow as ContinuousFlow
from .solution import FlowSolution as FlowSolution, FlowStats as FlowStats

__all__ = [
    "AbstractBase",
    "AbstractDivergence",
    "AbstractLikelihood",
    "AbstractNormalizedBase",
    "AbstractStochasticDivergence",
    "ContinuousFlow",
    "DatasetBase",
    "ExactDivergence",
    "FlowSolution",
    "FlowStats",
    "GaussianBase",
    "HutchinsonDivergence",
    "UniformBase",
    "log_prob_batch",
    "sample",
]
