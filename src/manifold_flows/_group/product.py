"""Direct products of commuting group actions."""

import jax
from jaxtyping import Array, PRNGKeyArray, Shaped

from .base import AbstractGroupAction, GroupElement


class ProductAction(AbstractGroupAction):
    """The direct product `G_1 x ... x G_k` of actions on the same space.

    An element is a tuple `(g_1, ..., g_k)` with one element per factor. It acts by applying
    the factors in turn,

    `act((g_1, ..., g_k), x) = act_1(g_1, act_2(g_2, ... act_k(g_k, x)))`,

    and `compose`, `inverse` and `random_element` work factor by factor.

    !!! warning

        This is only a group action when every pair of factors **commutes**:
        `act_i(g_i, act_j(g_j, x)) == act_j(g_j, act_i(g_i, x))`. Permutations of particles
        commute with every action that moves all particles alike (torus translations, the box
        point group, their semidirect product, rotations), so
        `ProductAction(PermutationWithinSpecies(s), TorusIsometryGroup(torus))` is valid.
        Translations and point-group elements do **not** commute: combine them with
        `TorusIsometryGroup`, never with `ProductAction`.
        `manifold_flows.testing.check_group_laws` tests the commutation ("factors_commute").

    **Arguments:**

    - `*actions`: the factor actions (at least one).
    """

    actions: tuple[AbstractGroupAction, ...]

    def __init__(self, *actions: AbstractGroupAction):
        if len(actions) == 0:
            raise ValueError("ProductAction needs at least one factor action; got none.")
        for i, action in enumerate(actions):
            if not isinstance(action, AbstractGroupAction):
                raise TypeError(
                    f"ProductAction factors must be group actions (AbstractGroupAction); factor "
                    f"{i} is a {type(action).__name__}."
                )
        self.actions = tuple(actions)

    def _split(self, g: GroupElement, where: str) -> tuple:
        if not isinstance(g, tuple) or len(g) != len(self.actions):
            raise ValueError(
                f"ProductAction.{where}: an element must be a tuple with one element per factor "
                f"({len(self.actions)} factors); got {type(g).__name__}"
                + (f" of length {len(g)}" if isinstance(g, tuple) else "")
                + "."
            )
        return g

    def identity(self) -> tuple:
        return tuple(a.identity() for a in self.actions)

    def compose(self, g: GroupElement, h: GroupElement) -> tuple:
        g, h = self._split(g, "compose"), self._split(h, "compose")
        return tuple(a.compose(gi, hi) for a, gi, hi in zip(self.actions, g, h, strict=True))

    def inverse(self, g: GroupElement) -> tuple:
        g = self._split(g, "inverse")
        return tuple(a.inverse(gi) for a, gi in zip(self.actions, g, strict=True))

    def act(self, g: GroupElement, x: Shaped[Array, "..."]) -> Shaped[Array, "..."]:
        g = self._split(g, "act")
        for a, gi in reversed(tuple(zip(self.actions, g, strict=True))):
            x = a.act(gi, x)
        return x

    def act_tangent(
        self, g: GroupElement, x: Shaped[Array, "..."], v: Shaped[Array, "..."]
    ) -> Shaped[Array, "..."]:
        # Chain rule along the same order as `act`: push v forward factor by factor, moving
        # the base point along with it.
        g = self._split(g, "act_tangent")
        for a, gi in reversed(tuple(zip(self.actions, g, strict=True))):
            v = a.act_tangent(gi, x, v)
            x = a.act(gi, x)
        return v

    def random_element(self, key: PRNGKeyArray) -> tuple:
        keys = jax.random.split(key, len(self.actions))
        return tuple(a.random_element(k) for a, k in zip(self.actions, keys, strict=True))
