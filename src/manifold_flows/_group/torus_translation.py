"""Translations of the flat torus, acting on every particle of a configuration."""

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from .._manifold import FlatTorus
from ._checks import check_configuration, check_torus
from .base import AbstractGroupAction


class TorusTranslation(AbstractGroupAction):
    """The translation group of a periodic box, acting on configurations of shape `(n, d)`.

    An element is a vector `t` of shape `(d,)` (kept in the box `[0, L)`); it moves every
    particle by the same amount:

    `act(t, x)[i] = (x[i] + t) mod L`.

    The group is abelian: `compose(s, t) = (s + t) mod L`, `inverse(t) = (-t) mod L`. The
    differential is the identity, so `act_tangent(t, x, v) = v`. `random_element` is uniform in
    the box (the Haar measure of the torus).

    **Arguments:**

    - `torus`: the periodic box (`FlatTorus`).
    """

    torus: FlatTorus

    def __init__(self, torus: FlatTorus):
        self.torus = check_torus(torus, "TorusTranslation")

    def identity(self) -> Float[Array, " d"]:
        return jnp.zeros(self.torus.dim, dtype=jnp.result_type(float))

    def compose(self, g: Float[Array, " d"], h: Float[Array, " d"]) -> Float[Array, " d"]:
        return self.torus.project(g + h)

    def inverse(self, g: Float[Array, " d"]) -> Float[Array, " d"]:
        return self.torus.project(-g)

    def act(self, g: Float[Array, " d"], x: Float[Array, "n dim"]) -> Float[Array, "n dim"]:
        check_configuration(x, self.torus.dim, "TorusTranslation.act")
        t = g.astype(x.dtype)
        return jax.vmap(lambda xi: self.torus.project(xi + t))(x)

    def act_tangent(
        self, g: Float[Array, " d"], x: Float[Array, "n dim"], v: Float[Array, "n dim"]
    ) -> Float[Array, "n dim"]:
        check_configuration(v, self.torus.dim, "TorusTranslation.act_tangent")
        return v

    def random_element(self, key: PRNGKeyArray) -> Float[Array, " d"]:
        return self.torus.random_uniform(key)
