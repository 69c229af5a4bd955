from .angle_mlp import AngleMLP as AngleMLP
from .base import AbstractVectorField as AbstractVectorField
from .build import (
    FIELD_NAMES as FIELD_NAMES,
    build_field as build_field,
    count_parameters as count_parameters,
)
from .euclidean_egnn import EuclideanEGNN as EuclideanEGNN
from .torus_egnn import TorusEGNN as TorusEGNN

__all__ = [
    "FIELD_NAMES",
    "AbstractVectorField",
    "AngleMLP",
    "EuclideanEGNN",
    "TorusEGNN",
    "build_field",
    "count_parameters",
]
