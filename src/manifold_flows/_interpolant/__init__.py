from .base import AbstractInterpolant as AbstractInterpolant
from .build import INTERPOLANT_NAMES as INTERPOLANT_NAMES, build_interpolant as build_interpolant
from .geodesic import GeodesicInterpolant as GeodesicInterpolant
from .linear import LinearInterpolant as LinearInterpolant
from .stochastic import (
    GAMMA_SCHEDULES as GAMMA_SCHEDULES,
    StochasticInterpolant as StochasticInterpolant,
)

__all__ = [
    "GAMMA_SCHEDULES",
    "INTERPOLANT_NAMES",
    "AbstractInterpolant",
    "GeodesicInterpolant",
    "LinearInterpolant",
    "StochasticInterpolant",
    "build_interpolant",
]
