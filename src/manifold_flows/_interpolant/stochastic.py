"""The Riemannian stochastic interpolant: a geodesic with a latent noise term."""

import math
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._manifold import AbstractManifold
from .base import (
    AbstractInterpolant,
    as_time,
    check_noise,
    check_pair,
    space_for,
    time_derivative,
)
from .geodesic import geodesic_point

#: Noise schedules `gamma(t)` (all vanish at t = 0 and t = 1).
GAMMA_SCHEDULES: tuple[str, ...] = ("sqrt", "quadratic")

#: The `sqrt` schedule's derivative is unbounded at the endpoints; it is evaluated at `t`
#: clipped into `[_SQRT_EPS, 1 - _SQRT_EPS]` (the value of gamma itself stays exact).
_SQRT_EPS = 1e-4


@jax.custom_jvp
def _sqrt_bridge(t: Array) -> Array:
    return jnp.sqrt(t * (1 - t))


@_sqrt_bridge.defjvp
def _sqrt_bridge_jvp(primals, tangents):
    (t,), (dt,) = primals, tangents
    tc = jnp.clip(t, _SQRT_EPS, 1 - _SQRT_EPS)
    return _sqrt_bridge(t), (1 - 2 * tc) / (2 * jnp.sqrt(tc * (1 - tc))) * dt


class StochasticInterpolant(AbstractInterpolant):
    """`x_t = exp_{m_t}(gamma(t) P_{m_t} z)` with `m_t = exp_{x0}(t log_{x0} x1)` the geodesic
    point and `z ~ N(0, I)` a latent noise, projected (`P`) onto the tangent space at `m_t`.

    On the flat torus this is `x_t = (m_t + gamma(t) z) mod L` (the noise is wrapped). Since
    `gamma(0) = gamma(1) = 0` the endpoints are exact. The target is the time derivative of the
    curve at fixed `z` (by forward-mode differentiation, projected onto the tangent space at
    `x_t`); on the torus it is `log_{x0}(x1) + gamma'(t) z`.

    Schedules (`schedule`, with `a = scale`):

    - `"sqrt"`: `gamma(t) = a sqrt(t (1 - t))`, the usual stochastic-interpolant choice. Its
      derivative diverges at the endpoints; it is evaluated at `t` clipped into
      `[1e-4, 1 - 1e-4]` so a draw of `t = 0` never produces an infinite target.
    - `"quadratic"`: `gamma(t) = a t (1 - t)`, smooth with a bounded target.

    **Arguments:**

    - `manifold`: the (single-particle) manifold; points may stack `n` of its points.
    - `scale`: the amplitude `a >= 0` (in the units of the coordinates).
    - `schedule`: `"sqrt"` or `"quadratic"`.
    """

    manifold: AbstractManifold
    scale: float = eqx.field(static=True)
    schedule: str = eqx.field(static=True)
    needs_noise: ClassVar[bool] = True

    def __init__(self, manifold: AbstractManifold, *, scale: float = 0.1, schedule: str = "sqrt"):
        if not isinstance(manifold, AbstractManifold):
            raise TypeError(
                "StochasticInterpolant needs an AbstractManifold; got "
                f"{type(manifold).__name__}. Pass e.g. FlatTorus(box, dim=2)."
            )
        scale = float(scale)
        if not (math.isfinite(scale) and scale >= 0):
            raise ValueError(
                f"StochasticInterpolant: `scale` must be a finite number >= 0; got {scale}."
            )
        if schedule not in GAMMA_SCHEDULES:
            raise ValueError(
                f"StochasticInterpolant: unknown schedule {schedule!r}; valid schedules are: "
                f"{', '.join(GAMMA_SCHEDULES)}."
            )
        self.manifold = manifold
        self.scale = scale
        self.schedule = schedule

    def gamma(self, t: Float[Array, ""]) -> Float[Array, ""]:
        """The noise amplitude `gamma(t)`."""
        if self.schedule == "sqrt":
            return self.scale * _sqrt_bridge(t)
        return self.scale * t * (1 - t)

    def _curve(self, space: AbstractManifold, x0: Array, x1: Array, z: Array):
        def curve(t):
            m = geodesic_point(space, t, x0, x1)
            return space.exp(m, self.gamma(t) * space.project_tangent(m, z))

        return curve

    def interpolate(
        self,
        t: Float[Array, ""] | float,
        x0: Float[Array, "*shape"],
        x1: Float[Array, "*shape"],
        z: Float[Array, "*shape"] | None = None,
    ) -> Float[Array, "*shape"]:
        x0, x1 = check_pair("StochasticInterpolant", x0, x1)
        z = check_noise("StochasticInterpolant", z, x0)
        space = space_for("StochasticInterpolant", self.manifold, x0)
        return self._curve(space, x0, x1, z)(as_time(t, x0))

    def velocity(
        self,
        t: Float[Array, ""] | float,
        x0: Float[Array, "*shape"],
        x1: Float[Array, "*shape"],
        z: Float[Array, "*shape"] | None = None,
    ) -> Float[Array, "*shape"]:
        x0, x1 = check_pair("StochasticInterpolant", x0, x1)
        z = check_noise("StochasticInterpolant", z, x0)
        space = space_for("StochasticInterpolant", self.manifold, x0)
        x_t, u_t = time_derivative(self._curve(space, x0, x1, z), as_time(t, x0))
        return space.project_tangent(x_t, u_t)
