from .base import AbstractEnergy as AbstractEnergy

__all__ = ["AbstractEnergy"]
