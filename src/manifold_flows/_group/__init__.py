from .base import (
    AbstractFiniteGroupAction as AbstractFiniteGroupAction,
    AbstractGroupAction as AbstractGroupAction,
    GroupElement as GroupElement,
)

__all__ = ["AbstractFiniteGroupAction", "AbstractGroupAction", "GroupElement"]
