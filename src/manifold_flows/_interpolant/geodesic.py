"""The geodesic interpolant of Riemannian flow matching."""

from typing import ClassVar

import jax.numpy as jnp
from jaxtyping import Array, Float

from .._manifold import AbstractManifold
from .base import AbstractInterpolant, as_time, check_pair, space_for, time_derivative


def geodesic_point(space: AbstractManifold, t: Array, x0: Array, x1: Array) -> Array:
    """`exp_{x0}(t log_{x0} x1)`, evaluated from the nearer endpoint so both ends are exact.

    For `t < 1/2` the point is `exp_{x0}(t log_{x0} x1)`; for `t >= 1/2` it is
    `exp_{x1}((1 - t) log_{x1} x0)`, the same minimising geodesic run backwards (off the cut
    locus). Then `t = 0` returns `exp_{x0}(0) = x0` and `t = 1` returns `x1` bit for bit,
    instead of `x0 + (x1 - x0)` rounded.
    """
    forward = space.exp(x0, t * space.log(x0, x1))
    backward = space.exp(x1, (1 - t) * space.log(x1, x0))
    return jnp.where(t < 0.5, forward, backward)


class GeodesicInterpolant(AbstractInterpolant):
    """Riemannian flow matching: `x_t = exp_{x0}(t log_{x0} x1)`, the minimising geodesic.

    Works on any `AbstractManifold`. Points may be single points of `manifold` or
    configurations stacking `n` of them (shape `(n, *manifold.point_shape)`; the geodesic is
    then taken particle by particle, i.e. on the power manifold).

    The target `u_t = d x_t / d t` is computed by forward-mode differentiation of the curve in
    `t` and projected onto the tangent space at `x_t`. It is the geodesic's velocity at `x_t`
    (the parallel transport of `log_{x0} x1` along the geodesic); on the flat torus and in
    Euclidean space it is the constant `log_{x0}(x1)` (the minimum-image displacement on the
    torus), on the sphere it rotates with the great circle.

    **Arguments:**

    - `manifold`: the (single-particle) manifold, e.g. `FlatTorus(L, dim=2)` or `Sphere(2)`.
    """

    manifold: AbstractManifold
    needs_noise: ClassVar[bool] = False

    def __init__(self, manifold: AbstractManifold):
        if not isinstance(manifold, AbstractManifold):
            raise TypeError(
                f"GeodesicInterpolant needs an AbstractManifold; got {type(manifold).__name__}. "
                "Pass e.g. FlatTorus(box, dim=2); use LinearInterpolant() for flat R^n."
            )
        self.manifold = manifold

    def interpolate(
        self,
        t: Float[Array, ""] | float,
        x0: Float[Array, "*shape"],
        x1: Float[Array, "*shape"],
        z: Float[Array, "*shape"] | None = None,
    ) -> Float[Array, "*shape"]:
        x0, x1 = check_pair("GeodesicInterpolant", x0, x1)
        space = space_for("GeodesicInterpolant", self.manifold, x0)
        return geodesic_point(space, as_time(t, x0), x0, x1)

    def velocity(
        self,
        t: Float[Array, ""] | float,
        x0: Float[Array, "*shape"],
        x1: Float[Array, "*shape"],
        z: Float[Array, "*shape"] | None = None,
    ) -> Float[Array, "*shape"]:
        x0, x1 = check_pair("GeodesicInterpolant", x0, x1)
        space = space_for("GeodesicInterpolant", self.manifold, x0)
        x_t, u_t = time_derivative(lambda s: geodesic_point(space, s, x0, x1), as_time(t, x0))
        return space.project_tangent(x_t, u_t)
