"""Translations of R^d, acting on every particle of a configuration."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from ._checks import check_configuration, check_dim
from .base import AbstractGroupAction


class EuclideanTranslation(AbstractGroupAction):
    """The translation group of R^d acting on configurations `x` of shape `(n, d)`:
    `act(t, x)[i] = x[i] + t` (for the Euclidean baselines, e.g. the Euclidean EGNN).

    `compose(s, t) = s + t`, `inverse(t) = -t`, `act_tangent(t, x, v) = v`. The group is not
    compact, so it has no uniform distribution: `random_element` draws `t ~ N(0, scale^2 I)`,
    which is enough to test invariance.

    **Arguments:**

    - `dim`: the dimension `d >= 1`.
    - `scale`: standard deviation of the translations drawn by `random_element` (> 0).
    """

    dim: int = eqx.field(static=True)
    scale: float = eqx.field(static=True)

    def __init__(self, dim: int, scale: float = 1.0):
        self.dim = check_dim(dim, "EuclideanTranslation")
        if not (math.isfinite(scale) and scale > 0):
            raise ValueError(
                f"EuclideanTranslation needs a positive finite `scale`; got scale={scale!r}."
            )
        self.scale = float(scale)

    def identity(self) -> Float[Array, " d"]:
        return jnp.zeros(self.dim, dtype=jnp.result_type(float))

    def compose(self, g: Float[Array, " d"], h: Float[Array, " d"]) -> Float[Array, " d"]:
        return g + h

    def inverse(self, g: Float[Array, " d"]) -> Float[Array, " d"]:
        return -g

    def act(self, g: Float[Array, " d"], x: Float[Array, "n dim"]) -> Float[Array, "n dim"]:
        check_configuration(x, self.dim, "EuclideanTranslation.act")
        return x + g.astype(x.dtype)[None, :]

    def act_tangent(
        self, g: Float[Array, " d"], x: Float[Array, "n dim"], v: Float[Array, "n dim"]
    ) -> Float[Array, "n dim"]:
        check_configuration(v, self.dim, "EuclideanTranslation.act_tangent")
        return v

    def random_element(self, key: PRNGKeyArray) -> Float[Array, " d"]:
        return self.scale * jax.random.normal(key, (self.dim,))
