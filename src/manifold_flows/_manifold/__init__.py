from .base import AbstractManifold as AbstractManifold
from .particles import ParticleSpace as ParticleSpace, check_species as check_species
from .torus import FlatTorus as FlatTorus

__all__ = ["AbstractManifold", "FlatTorus", "ParticleSpace", "check_species"]
