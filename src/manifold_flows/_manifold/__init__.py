from .base import AbstractManifold as AbstractManifold
from .euclidean import Euclidean as Euclidean
from .particles import ParticleSpace as ParticleSpace, check_species as check_species
from .sphere import Sphere as Sphere
from .torus import FlatTorus as FlatTorus
from .zero_com import ZeroCenterOfMass as ZeroCenterOfMass

__all__ = [
    "AbstractManifold",
    "Euclidean",
    "FlatTorus",
    "ParticleSpace",
    "Sphere",
    "ZeroCenterOfMass",
    "check_species",
]
