"""The group-action interface: a group G acting on the points (and tangent vectors) of a space."""

import abc

import equinox as eqx
from jaxtyping import Array, PRNGKeyArray, PyTree, Shaped

#: A group element: any pytree of arrays (a permutation, a translation vector, a tuple of both).
GroupElement = PyTree[Array]


class AbstractGroupAction(eqx.Module):
    """A left action of a group G on a space of points `x` (e.g. particle configurations).

    Elements are pytrees of arrays, so they can be vmapped, jitted and drawn in batches.

    Contract (checked for every implementation by `manifold_flows.testing`):

    - `act(identity(), x) == x`;
    - `act(compose(g, h), x) == act(g, act(h, x))` (left action; `compose(g, h)` is "h first");
    - `act(inverse(g), act(g, x)) == x`;
    - `compose` is associative;
    - `act_tangent(g, x, v)` is the differential of `x -> act(g, x)` applied to the tangent
      vector `v` at `x`; for an action by isometries `log(gx, gy) == act_tangent(g, x, log(x, y))`.
    """

    @abc.abstractmethod
    def identity(self) -> GroupElement:
        """The identity element."""

    @abc.abstractmethod
    def compose(self, g: GroupElement, h: GroupElement) -> GroupElement:
        """The product `g h`, acting as `h` first, then `g`."""

    @abc.abstractmethod
    def inverse(self, g: GroupElement) -> GroupElement:
        """The inverse element."""

    @abc.abstractmethod
    def act(self, g: GroupElement, x: Shaped[Array, "..."]) -> Shaped[Array, "..."]:
        """Apply `g` to one point `x`."""

    @abc.abstractmethod
    def act_tangent(
        self, g: GroupElement, x: Shaped[Array, "..."], v: Shaped[Array, "..."]
    ) -> Shaped[Array, "..."]:
        """Push the tangent vector `v` at `x` forward to a tangent vector at `act(g, x)`."""

    @abc.abstractmethod
    def random_element(self, key: PRNGKeyArray) -> GroupElement:
        """Draw one element uniformly (Haar measure for compact groups)."""


class AbstractFiniteGroupAction(AbstractGroupAction):
    """Marker for actions of finite groups: the elements can be enumerated.

    Contract: `elements()` returns every element exactly once, stacked along a leading axis
    of length `order`; `random_element` is uniform over them.
    """

    @property
    @abc.abstractmethod
    def order(self) -> int:
        """The number of elements of the group."""

    @abc.abstractmethod
    def elements(self) -> GroupElement:
        """All elements, stacked along a new leading axis of length `order`."""
