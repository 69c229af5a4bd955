"""Vector fields whose flows have closed-form densities (used by the likelihood audit)."""

import jax.numpy as jnp
from jaxtyping import Array, Float, PyTree, Shaped

from .._field import AbstractVectorField
from .._precision import EXACT


class ConstantField(AbstractVectorField):
    """`v(t, x) = c`: on a flat torus a rigid translation, which preserves the uniform density
    exactly (`div v = 0`)."""

    velocity: Shaped[Array, "..."]

    def __init__(self, velocity: Shaped[Array, "..."]):
        self.velocity = jnp.asarray(velocity)

    def __call__(
        self, t: Float[Array, ""] | float, x: Shaped[Array, "..."], args: PyTree
    ) -> Shaped[Array, "..."]:
        return jnp.broadcast_to(self.velocity.astype(x.dtype), x.shape)


class LinearField(AbstractVectorField):
    """`v(t, x) = (A + t B) x` on flat coordinates (flattened): `div v = tr A + t tr B`, so a
    flow from `t = 0` to `1` changes the log-density by `-(tr A + tr B / 2)` exactly."""

    a: Float[Array, "m m"]
    b: Float[Array, "m m"]

    def __init__(self, a: Float[Array, "m m"], b: Float[Array, "m m"]):
        self.a = jnp.asarray(a)
        self.b = jnp.asarray(b)

    def __call__(
        self, t: Float[Array, ""] | float, x: Shaped[Array, "..."], args: PyTree
    ) -> Shaped[Array, "..."]:
        flat = x.reshape(-1)
        matrix = self.a.astype(x.dtype) + jnp.asarray(t, x.dtype) * self.b.astype(x.dtype)
        return jnp.matmul(matrix, flat, precision=EXACT).reshape(x.shape)

    def divergence_integral(self) -> Float[Array, ""]:
        """`int_0^1 div v dt = tr A + tr B / 2`."""
        return jnp.trace(self.a) + 0.5 * jnp.trace(self.b)


class SphereField(AbstractVectorField):
    """`v(t, x) = P_x (a + t M x)` on the unit sphere (`P_x` the tangent projector): a smooth
    time-dependent tangent field with non-zero divergence, for checking the Riemannian
    divergence against the Jacobian of the integrated map."""

    a: Float[Array, " m"]
    m: Float[Array, "m m"]

    def __init__(self, a: Float[Array, " m"], m: Float[Array, "m m"]):
        self.a = jnp.asarray(a)
        self.m = jnp.asarray(m)

    def __call__(
        self, t: Float[Array, ""] | float, x: Float[Array, " m"], args: PyTree
    ) -> Float[Array, " m"]:
        w = self.a.astype(x.dtype) + jnp.asarray(t, x.dtype) * jnp.matmul(
            self.m.astype(x.dtype), x, precision=EXACT
        )
        return w - jnp.sum(w * x) / jnp.sum(x * x) * x
