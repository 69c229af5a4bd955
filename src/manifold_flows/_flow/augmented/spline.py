"""Circular rational-quadratic splines: exact, smooth bijections of a circle of length L.

A monotone rational-quadratic spline (Durkan et al., "Neural Spline Flows") on `[0, L)` with
knots `(0, 0) = (x_0, y_0) < ... < (x_K, y_K) = (L, L)` and the same derivative at both ends
(Rezende et al., "Normalizing Flows on Tori and Spheres") is a diffeomorphism of the circle
`R / L Z` that fixes the point 0. Adding a rotation `phi` (a shift modulo L) gives every
orientation-preserving map of this family. The inverse solves the quadratic of the bin that
holds the point, so both directions are exact to rounding.
"""

import math

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

#: Smallest bin width/height as a fraction of L, and smallest knot derivative: they keep the
#: map away from degenerate (non-invertible in floating point) shapes.
MIN_BIN = 1e-3
MIN_DERIVATIVE = 1e-3


def num_spline_params(num_bins: int) -> int:
    """Raw parameters of one circular spline: `K` width and `K` height logits, `K` knot
    derivatives (the one at L repeats the one at 0) and one rotation."""
    return 3 * num_bins + 1


def _knots(logits: Float[Array, " k"], length: Float[Array, ""]) -> tuple[Array, Array]:
    """Bin sizes (each at least `MIN_BIN * L`, summing to L) and the knot positions."""
    k = logits.shape[0]
    fractions = MIN_BIN + (1 - MIN_BIN * k) * jax.nn.softmax(logits)
    sizes = length * fractions
    inner = jnp.cumsum(sizes)[:-1]
    zero = jnp.zeros((1,), sizes.dtype)
    # The last knot is L exactly (a cumulative sum would round it).
    return sizes, jnp.concatenate([zero, inner, jnp.reshape(length, (1,))])


def _derivatives(raw: Float[Array, " k"]) -> Float[Array, " k+1"]:
    """Positive knot derivatives, equal to 1 for raw zeros; the one at L repeats the one at 0."""
    offset = math.log(math.expm1(1 - MIN_DERIVATIVE))
    d = MIN_DERIVATIVE + jax.nn.softplus(raw + jnp.asarray(offset, raw.dtype))
    return jnp.concatenate([d, d[:1]])


def _bin(knots: Float[Array, " k"], value: Float[Array, ""]) -> Array:
    """Index of the bin `[knots[b], knots[b+1])` that holds `value` (clipped to the range)."""
    inner = knots[1:-1]
    return jnp.sum(value >= inner).astype(jnp.int32)


def _parts(raw: Float[Array, " p"], length: Float[Array, ""]):
    k = (raw.shape[0] - 1) // 3
    widths, xs = _knots(raw[:k], length)
    heights, ys = _knots(raw[k : 2 * k], length)
    d = _derivatives(raw[2 * k : 3 * k])
    return widths, xs, heights, ys, d, raw[3 * k]


def wrap(value: Float[Array, "..."], length: Float[Array, "..."]) -> Float[Array, "..."]:
    """`value mod length` in the half-open `[0, length)` (a rounded `length` folds to 0)."""
    wrapped = jnp.mod(value, length)
    return jnp.where(wrapped >= length, wrapped - length, wrapped)


def circular_spline(
    u: Float[Array, ""], raw: Float[Array, " p"], length: Float[Array, ""]
) -> tuple[Float[Array, ""], Float[Array, ""]]:
    """The circle map `y = S(u) + phi (mod L)` and `log S'(u)`.

    **Arguments:**

    - `u`: a point of the circle, any representative (it is wrapped into `[0, L)`).
    - `raw`: `3K + 1` unconstrained parameters (`num_spline_params`): width logits, height
      logits, knot-derivative pre-activations, rotation.
    - `length`: the circumference L.

    **Returns:**

    `(y, log_dy_du)` with `y` in `[0, L)`.
    """
    widths, xs, heights, ys, d, phi = _parts(raw, length)
    u = wrap(u, length)
    b = _bin(xs, u)
    w, h, x0, y0 = widths[b], heights[b], xs[b], ys[b]
    d0, d1 = d[b], d[b + 1]
    s = h / w
    xi = (u - x0) / w
    one_minus = 1 - xi
    mixed = xi * one_minus
    denominator = s + (d1 + d0 - 2 * s) * mixed
    y = y0 + h * (s * xi * xi + d0 * mixed) / denominator
    slope = s * s * (d1 * xi * xi + 2 * s * mixed + d0 * one_minus * one_minus)
    log_det = jnp.log(slope) - 2 * jnp.log(denominator)
    return wrap(y + phi, length), log_det


def _bin_root(qa: Array, qb: Array, qc: Array) -> Array:
    """The root in `[0, 1]` of `qa xi^2 + qb xi + qc = 0` (with `qc <= 0 < qb`), in the form
    `2 qc / (-qb - sqrt(qb^2 - 4 qa qc))`, which loses no digits when `qa` is small."""
    discriminant = qb * qb - 4 * qa * qc
    discriminant = jnp.where(discriminant > 0, discriminant, 0)
    return 2 * qc / (-qb - jnp.sqrt(discriminant))


def circular_spline_inverse(
    y: Float[Array, ""], raw: Float[Array, " p"], length: Float[Array, ""]
) -> tuple[Float[Array, ""], Float[Array, ""]]:
    """The inverse of `circular_spline`: `u = S^{-1}(y - phi (mod L))` and `log du/dy`.

    Within its bin the spline is a ratio of quadratics in `xi = (u - x_b) / w_b`, so `xi` is the
    root in `[0, 1]` of a quadratic (`_bin_root`).

    **Returns:**

    `(u, log_du_dy)` with `u` in `[0, L)`; `log_du_dy = -log S'(u)`.
    """
    widths, xs, heights, ys, d, phi = _parts(raw, length)
    y = wrap(y - phi, length)
    b = _bin(ys, y)
    w, h, x0, y0 = widths[b], heights[b], xs[b], ys[b]
    d0, d1 = d[b], d[b + 1]
    s = h / w
    dy = y - y0
    curvature = d1 + d0 - 2 * s
    qa = h * (s - d0) + dy * curvature
    qb = h * d0 - dy * curvature
    qc = -s * dy
    xi = _bin_root(qa, qb, qc)
    # Clamp rounding excursions with `where`, not `clip`: `clip` halves the derivative at a
    # tie (`xi` exactly 0 at a knot), which would corrupt gradients of the log-density there.
    xi = jnp.where(xi < 0, 0, jnp.where(xi > 1, 1, xi))
    u = x0 + xi * w
    one_minus = 1 - xi
    mixed = xi * one_minus
    denominator = s + curvature * mixed
    slope = s * s * (d1 * xi * xi + 2 * s * mixed + d0 * one_minus * one_minus)
    log_det = 2 * jnp.log(denominator) - jnp.log(slope)
    return wrap(u, length), log_det
