"""The orthogonal group O(d) acting on configurations in R^d."""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from .._precision import EXACT
from ._checks import check_configuration, check_dim
from .base import AbstractGroupAction


class OrthogonalGroup(AbstractGroupAction):
    """The orthogonal group O(d) (rotations and reflections about the origin) acting on
    configurations `x` of shape `(n, d)` in R^d: `act(Q, x)[i] = Q x[i]`.

    An element is an orthogonal matrix `Q` of shape `(d, d)`; `compose(Q1, Q2) = Q1 Q2`,
    `inverse(Q) = Q^T`, `act_tangent(Q, x, v) = Q v`. `random_element` is Haar-uniform: the Q
    factor of a Gaussian matrix with the signs of R's diagonal moved into Q.

    This is a symmetry of Euclidean particle systems (the Euclidean EGNN baseline), **not** of a
    periodic box: use `BoxPointGroup` / `TorusIsometryGroup` there.

    **Arguments:**

    - `dim`: the dimension `d >= 1`.
    """

    dim: int = eqx.field(static=True)

    def __init__(self, dim: int):
        self.dim = check_dim(dim, "OrthogonalGroup")

    def identity(self) -> Float[Array, "d d"]:
        return jnp.eye(self.dim, dtype=jnp.result_type(float))

    def compose(self, g: Float[Array, "d d"], h: Float[Array, "d d"]) -> Float[Array, "d d"]:
        return jnp.matmul(g, h, precision=EXACT)

    def inverse(self, g: Float[Array, "d d"]) -> Float[Array, "d d"]:
        return g.T

    def act(self, g: Float[Array, "d d"], x: Float[Array, "n dim"]) -> Float[Array, "n dim"]:
        check_configuration(x, self.dim, "OrthogonalGroup.act")
        return jnp.matmul(x, g.astype(x.dtype).T, precision=EXACT)

    def act_tangent(
        self, g: Float[Array, "d d"], x: Float[Array, "n dim"], v: Float[Array, "n dim"]
    ) -> Float[Array, "n dim"]:
        check_configuration(v, self.dim, "OrthogonalGroup.act_tangent")
        return jnp.matmul(v, g.astype(v.dtype).T, precision=EXACT)

    def random_element(self, key: PRNGKeyArray) -> Float[Array, "d d"]:
        a = jax.random.normal(key, (self.dim, self.dim))
        q, r = jnp.linalg.qr(a)
        # QR is unique only up to the signs of R's diagonal; fixing them makes Q Haar-distributed.
        return q * jnp.sign(jnp.diagonal(r))[None, :]
