"""The linear interpolant of Euclidean flow matching."""

from typing import ClassVar

from jaxtyping import Array, Float

from .base import AbstractInterpolant, as_time, check_pair


class LinearInterpolant(AbstractInterpolant):
    """Euclidean flow matching (the eFM baseline): `x_t = (1 - t) x0 + t x1` in `R^{shape}`.

    The target is the constant `x1 - x0`. It ignores any periodicity: on a periodic box the
    straight line from `x0` to `x1` is generally not the shortest path (that is what the
    `GeodesicInterpolant` on a `FlatTorus` fixes).
    """

    needs_noise: ClassVar[bool] = False

    def __init__(self):
        pass

    def interpolate(
        self,
        t: Float[Array, ""] | float,
        x0: Float[Array, "*shape"],
        x1: Float[Array, "*shape"],
        z: Float[Array, "*shape"] | None = None,
    ) -> Float[Array, "*shape"]:
        x0, x1 = check_pair("LinearInterpolant", x0, x1)
        t = as_time(t, x0)
        # Written so that t = 0 gives x0 and t = 1 gives x1 exactly.
        return (1 - t) * x0 + t * x1

    def velocity(
        self,
        t: Float[Array, ""] | float,
        x0: Float[Array, "*shape"],
        x1: Float[Array, "*shape"],
        z: Float[Array, "*shape"] | None = None,
    ) -> Float[Array, "*shape"]:
        x0, x1 = check_pair("LinearInterpolant", x0, x1)
        as_time(t, x0)
        return x1 - x0
