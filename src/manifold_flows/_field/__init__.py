from .base import AbstractVectorField as AbstractVectorField

__all__ = ["AbstractVectorField"]
