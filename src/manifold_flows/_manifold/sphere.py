"""The unit sphere S^n in R^(n+1), a curved manifold with a cut locus."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray, Shaped

from ._checks import check_point_array
from .base import AbstractManifold


def _small_threshold(dtype) -> float:
    """Squared norms below this use Taylor series (norm below eps^(1/4): the truncated series
    are then exact to far below one ulp)."""
    return float(np.sqrt(np.finfo(dtype).eps))


def _safe_sqrt(sq: Array, use: Array) -> Array:
    """`sqrt(sq)` where `use`, 1 elsewhere, with finite gradients in both branches."""
    return jnp.sqrt(jnp.where(use, sq, jnp.ones_like(sq)))


class Sphere(AbstractManifold):
    """The unit sphere S^n = {x in R^(n+1) : |x| = 1} with the round metric.

    Points and tangent vectors are arrays of shape `(n + 1,)`; the tangent space at `x` is
    the plane orthogonal to `x`. With `theta = |v|`:

    - `exp(x, v) = cos(theta) x + sin(theta) / theta v` (for the tangent part of `v`;
      Taylor series near `theta = 0`; the result is renormalised onto the sphere);
    - `log(x, y) = atan2(|u|, <x, y>) u / |u|` with `u = y - <x, y> x` (accurate near `y = x`
      and near the antipode; at the antipode `y = -x`, where every direction is a shortest
      geodesic, it returns a fixed unit tangent direction times pi);
    - `dist(x, y)` is the angle between `x` and `y`; `injectivity_radius = pi`;
    - `log_volume = log(2 pi^((n+1)/2) / Gamma((n+1)/2))`; `random_uniform` normalises a
      standard Gaussian vector;
    - `project` normalises (the zero vector goes to the first basis vector), and
      `project_tangent(x, v) = v - <x, v> x / |x|^2`.

    **Arguments:**

    - `dim`: the intrinsic dimension `n >= 1` (`Sphere(2)` is the ordinary sphere in R^3).
    """

    dimension: int = eqx.field(static=True)

    def __init__(self, dim: int):
        if isinstance(dim, bool) or not isinstance(dim, int | np.integer) or dim < 1:
            raise ValueError(
                f"Sphere needs an intrinsic dimension dim >= 1 (an integer); got dim={dim!r}. "
                "Sphere(2) is the unit sphere in R^3."
            )
        self.dimension = int(dim)

    @property
    def point_shape(self) -> tuple[int, ...]:
        return (self.dimension + 1,)

    @property
    def dim(self) -> int:
        return self.dimension

    @property
    def injectivity_radius(self) -> float:
        return math.pi

    # ------------------------------------------------------------------ geometry
    def exp(self, x: Float[Array, " m"], v: Float[Array, " m"]) -> Float[Array, " m"]:
        v = self.project_tangent(x, v)
        sq = jnp.sum(v * v)
        small = sq < _small_threshold(v.dtype)
        theta = _safe_sqrt(sq, ~small)
        # cos(theta) and sin(theta)/theta, by Taylor series in theta^2 near 0.
        cos_series = 1.0 - sq / 2 + sq * sq / 24 - sq * sq * sq / 720
        sinc_series = 1.0 - sq / 6 + sq * sq / 120 - sq * sq * sq / 5040
        cos = jnp.where(small, cos_series, jnp.cos(theta))
        sinc = jnp.where(small, sinc_series, jnp.sin(theta) / theta)
        return self.project(cos * x + sinc * v)

    def log(self, x: Float[Array, " m"], y: Float[Array, " m"]) -> Float[Array, " m"]:
        c = jnp.sum(x * y)
        u = y - c * x
        # Second Gram-Schmidt pass: removes the rounding error left along x, so that u is
        # tangent even when y is within rounding of -x (then u itself is rounding noise).
        u = u - jnp.sum(x * u) * x
        sq = jnp.sum(u * u)
        eps = float(np.finfo(u.dtype).eps)
        small = sq < _small_threshold(u.dtype)
        near = small & (c > 0)  # y close to x
        antipodal = (c < 0) & (sq < (64 * eps) ** 2)  # y = -x up to rounding
        generic_branch = ~near & ~antipodal & (sq > 0)
        s = _safe_sqrt(sq, generic_branch)
        theta = jnp.arctan2(s, c)
        # theta / sin(theta) as a series in sin(theta)^2 = |u|^2 near y = x.
        ratio_series = 1.0 + sq / 6 + 3 * sq * sq / 40 + 5 * sq * sq * sq / 112
        ratio = jnp.where(near, ratio_series, theta / s)
        generic = ratio * u
        return jnp.where(antipodal, jnp.pi * self._antipodal_direction(x), generic)

    def _antipodal_direction(self, x: Float[Array, " m"]) -> Float[Array, " m"]:
        """A unit tangent vector at `x`: the basis vector least aligned with `x`, projected
        onto the tangent space and normalised (the choice of geodesic to the antipode)."""
        k = jnp.argmin(jnp.abs(x))
        e = jax.nn.one_hot(k, x.shape[0], dtype=x.dtype)
        w = e - x[k] * x / jnp.sum(x * x)
        # |w|^2 = 1 - x_k^2 / |x|^2 >= 1 - 1 / (n + 1) > 0: never zero.
        return w / jnp.sqrt(jnp.sum(w * w))

    def inner(
        self, x: Float[Array, " m"], u: Float[Array, " m"], v: Float[Array, " m"]
    ) -> Float[Array, ""]:
        return jnp.sum(u * v)

    def project(self, x: Float[Array, " m"]) -> Float[Array, " m"]:
        sq = jnp.sum(x * x)
        nonzero = sq > 0
        r = _safe_sqrt(sq, nonzero)
        e0 = jnp.zeros_like(x).at[0].set(1)
        return jnp.where(nonzero, x / r, e0)

    def project_tangent(self, x: Float[Array, " m"], v: Float[Array, " m"]) -> Float[Array, " m"]:
        return v - (jnp.sum(x * v) / jnp.sum(x * x)) * x

    def random_uniform(self, key: PRNGKeyArray, dtype=None) -> Float[Array, " m"]:
        dtype = jnp.result_type(float) if dtype is None else dtype
        # A standard Gaussian is rotation invariant, so its direction is uniform on S^n.
        return self.project(jax.random.normal(key, self.point_shape, dtype=dtype))

    def log_volume(self) -> Float[Array, ""]:
        m = self.dimension + 1
        value = math.log(2.0) + 0.5 * m * math.log(math.pi) - math.lgamma(0.5 * m)
        return jnp.asarray(value, dtype=jnp.result_type(float))

    def check(self, x: Shaped[ArrayLike, "..."]) -> Float[Array, " m"]:
        """Validate one point: shape `(n + 1,)` (else `ValueError`), a floating dtype (else
        `TypeError`), finite coordinates and `| |x| - 1 | <= sqrt(eps)` of its dtype (else a
        runtime error via `eqx.error_if`; `project` puts a point back on the sphere)."""
        x = check_point_array(
            x, self.point_shape, f"Sphere({self.dimension}) point", "dim + 1 ambient coordinates"
        )
        tol = float(np.sqrt(np.finfo(x.dtype).eps))
        off = jnp.abs(jnp.sqrt(jnp.sum(x * x)) - 1)
        return eqx.error_if(
            x,
            off > tol,
            f"Sphere({self.dimension}) point is off the unit sphere (| |x| - 1 | > {tol:.1e}); "
            "normalise it with Sphere.project.",
        )
