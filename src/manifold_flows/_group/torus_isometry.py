"""The isometry group of a periodic box: translations semidirect the box point group."""

from typing import NamedTuple

import jax
from jaxtyping import Array, Float, Int, PRNGKeyArray

from .._manifold import FlatTorus
from ._checks import check_configuration, check_torus
from .base import AbstractGroupAction
from .point_group import (
    BoxPointGroup,
    SignedPermutation,
    signed_permutation_apply,
)
from .torus_translation import TorusTranslation


class TorusIsometry(NamedTuple):
    """An isometry `x -> (R x + t) mod L` of a periodic box.

    - `linear`: the point-group part `R`, a `SignedPermutation` (int32 `perm`, `signs`, (d,));
    - `translation`: `t`, shape `(d,)`, in the box `[0, L)`.
    """

    linear: SignedPermutation
    translation: Float[Array, " d"]


#: An isometry as passed around: a `TorusIsometry` or a plain `((perm, signs), t)`.
TorusIsometryLike = tuple[tuple[Int[Array, " d"], Int[Array, " d"]], Float[Array, " d"]]


class TorusIsometryGroup(AbstractGroupAction):
    """All isometries of a periodic box: translations and the box point group together.

    This is the semidirect product `T ⋊ P` of the torus translations `T` and the point group
    `P` (`BoxPointGroup`): an element `(R, t)` (a `TorusIsometry`) acts on a configuration
    `x` of shape `(n, d)` particle by particle as

    `act((R, t), x)[i] = (R x[i] + t) mod L`.

    Translations and point-group elements do not commute (`R (x + t) != R x + t`), so the
    product is **not** component-wise:

    `compose((R1, t1), (R2, t2)) = (R1 R2, (R1 t2 + t1) mod L)`,
    `inverse((R, t)) = (R^{-1}, (-R^{-1} t) mod L)`.

    `act_tangent((R, t), x, v) = R v`. `random_element` draws `R` uniformly from the point group
    and `t` uniformly in the box (the Haar measure). For a square/cubic box this is the full
    symmetry group of the torus geometry; continuous rotations are not isometries of a periodic
    box.

    **Arguments:**

    - `torus`: the periodic box (`FlatTorus`) of dimension `1 <= d <= 6`.
    """

    point_group: BoxPointGroup
    translations: TorusTranslation

    def __init__(self, torus: FlatTorus):
        torus = check_torus(torus, "TorusIsometryGroup")
        self.point_group = BoxPointGroup(torus)
        self.translations = TorusTranslation(torus)

    @property
    def torus(self) -> FlatTorus:
        """The periodic box."""
        return self.translations.torus

    def identity(self) -> TorusIsometry:
        return TorusIsometry(self.point_group.identity(), self.translations.identity())

    def compose(self, g: TorusIsometryLike, h: TorusIsometryLike) -> TorusIsometry:
        (r1, t1), (r2, t2) = g, h
        linear = self.point_group.compose(r1, r2)
        translation = self.torus.project(signed_permutation_apply(r1, t2) + t1)
        return TorusIsometry(linear, translation)

    def inverse(self, g: TorusIsometryLike) -> TorusIsometry:
        r, t = g
        r_inv = self.point_group.inverse(r)
        return TorusIsometry(r_inv, self.torus.project(-signed_permutation_apply(r_inv, t)))

    def act(self, g: TorusIsometryLike, x: Float[Array, "n dim"]) -> Float[Array, "n dim"]:
        check_configuration(x, self.torus.dim, "TorusIsometryGroup.act")
        r, t = g
        rx = signed_permutation_apply(r, x)
        t = t.astype(x.dtype)
        return jax.vmap(lambda y: self.torus.project(y + t))(rx)

    def act_tangent(
        self, g: TorusIsometryLike, x: Float[Array, "n dim"], v: Float[Array, "n dim"]
    ) -> Float[Array, "n dim"]:
        check_configuration(v, self.torus.dim, "TorusIsometryGroup.act_tangent")
        r, _ = g
        return signed_permutation_apply(r, v)

    def random_element(self, key: PRNGKeyArray) -> TorusIsometry:
        key_r, key_t = jax.random.split(key)
        return TorusIsometry(
            self.point_group.random_element(key_r), self.translations.random_element(key_t)
        )
