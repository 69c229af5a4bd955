from .angle_mlp import AngleMLP as AngleMLP
from .base import (
    AbstractFieldWithDivergence as AbstractFieldWithDivergence,
    AbstractTranslationInvariantField as AbstractTranslationInvariantField,
    AbstractVectorField as AbstractVectorField,
)
from .batch import (
    DEFAULT_CHUNK_SIZE as DEFAULT_CHUNK_SIZE,
    evaluate_batch as evaluate_batch,
)
from .build import (
    FIELD_NAMES as FIELD_NAMES,
    build_field as build_field,
    count_parameters as count_parameters,
)
from .euclidean_egnn import EuclideanEGNN as EuclideanEGNN
from .kernel import KernelField as KernelField
from .torus_egnn import TorusEGNN as TorusEGNN

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "FIELD_NAMES",
    "AbstractFieldWithDivergence",
    "AbstractTranslationInvariantField",
    "AbstractVectorField",
    "AngleMLP",
    "EuclideanEGNN",
    "KernelField",
    "TorusEGNN",
    "build_field",
    "count_parameters",
    "evaluate_batch",
]
