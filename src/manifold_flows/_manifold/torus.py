"""The flat torus: a periodic box [0, L_1) x ... x [0, L_d)."""

import math
from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray, Shaped

from ._checks import check_point_array
from .base import AbstractManifold


def _box_lengths(lengths, dim) -> tuple[float, ...]:
    """Validate the `lengths`/`dim` arguments of `FlatTorus` and return one float per axis."""
    if isinstance(lengths, str):
        raise TypeError(
            f"FlatTorus box lengths must be numbers; got the string {lengths!r}. Pass e.g. "
            "FlatTorus(4.47, dim=2) or FlatTorus((4.0, 6.5))."
        )
    try:
        array = np.asarray(lengths, dtype=float)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"FlatTorus box lengths must be numbers; got lengths={lengths!r}. Pass e.g. "
            "FlatTorus(4.47, dim=2) or FlatTorus((4.0, 6.5))."
        ) from exc
    if dim is not None and (isinstance(dim, bool) or int(dim) != dim or dim < 1):
        raise ValueError(f"FlatTorus needs dim >= 1 (an integer); got dim={dim!r}.")
    if array.ndim == 0:
        if dim is None:
            raise ValueError(
                "FlatTorus(lengths=<scalar>) needs `dim`: pass e.g. FlatTorus(4.47, dim=2) or "
                "a sequence of box lengths, one per axis."
            )
        array = np.full((int(dim),), float(array))
    elif array.ndim != 1:
        raise ValueError(
            f"FlatTorus box lengths must be a flat sequence, one length per axis; got an array "
            f"of shape {array.shape}."
        )
    elif dim is not None and dim != array.shape[0]:
        raise ValueError(
            f"FlatTorus got {array.shape[0]} box lengths but dim={dim}; pass one length per "
            "axis or drop `dim`."
        )
    if array.shape[0] == 0:
        raise ValueError("FlatTorus needs at least one axis: `lengths` is empty.")
    values = tuple(float(v) for v in array)
    if not all(math.isfinite(v) and v > 0 for v in values):
        raise ValueError(
            f"FlatTorus box lengths must be positive and finite; got lengths={values}. "
            "Pass the side of the periodic box along each axis, e.g. (4.472136, 4.472136)."
        )
    return values


class FlatTorus(AbstractManifold):
    """The flat torus R^d / (L_1 Z x ... x L_d Z), i.e. a periodic box with one length per axis.

    Points are arrays of shape `(d,)`; their canonical representatives lie in the fundamental
    domain `[0, L)` (every real vector represents a torus point, and `project` wraps it).
    Tangent vectors are arrays of shape `(d,)`. With the flat metric:

    - `log(x, y) = (y - x) - L * round((y - x) / L)` per axis (the minimum-image displacement;
      it is correct for any representatives `x`, `y`, wrapped or not);
    - `exp(x, v) = (x + v) mod L`, always in `[0, L)`;
    - `dist` is the minimum-image distance; `injectivity_radius = min(L) / 2`;
      `log_volume = sum(log L)`.

    **Arguments:**

    - `lengths`: the box lengths, one per axis (a sequence of positive floats). A single float
      together with `dim` gives a cubic box.
    - `dim`: the dimension when `lengths` is a scalar (optional check otherwise).
    """

    lengths: tuple[float, ...] = eqx.field(static=True)

    def __init__(self, lengths: float | Sequence[float] | ArrayLike, dim: int | None = None):
        self.lengths = _box_lengths(lengths, dim)

    # ------------------------------------------------------------------ properties
    @property
    def point_shape(self) -> tuple[int, ...]:
        return (len(self.lengths),)

    @property
    def dim(self) -> int:
        return len(self.lengths)

    @property
    def injectivity_radius(self) -> float:
        return 0.5 * min(self.lengths)

    def box(self, dtype=None) -> Float[Array, " d"]:
        """The box lengths as an array (default: JAX's default float dtype)."""
        return jnp.asarray(self.lengths, dtype=dtype)

    # ------------------------------------------------------------------ geometry
    def _L(self, x: Array) -> Array:
        # Box lengths in the dtype of the points (never an integer dtype, which would truncate
        # them).
        dtype = x.dtype if jnp.issubdtype(x.dtype, jnp.floating) else jnp.result_type(float)
        return jnp.asarray(self.lengths, dtype=dtype)

    def exp(self, x: Float[Array, " d"], v: Float[Array, " d"]) -> Float[Array, " d"]:
        return self.project(x + v)

    def log(self, x: Float[Array, " d"], y: Float[Array, " d"]) -> Float[Array, " d"]:
        L = self._L(x)
        delta = y - x
        return delta - L * jnp.round(delta / L)

    def inner(
        self, x: Float[Array, " d"], u: Float[Array, " d"], v: Float[Array, " d"]
    ) -> Float[Array, ""]:
        return jnp.sum(u * v)

    def project(self, x: Float[Array, " d"]) -> Float[Array, " d"]:
        L = self._L(x)
        wrapped = jnp.mod(x, L)
        # `mod` returns exactly L when a tiny negative input is added to L and rounded; fold it
        # to 0 so the result always lies in the half-open fundamental domain [0, L).
        return jnp.where(wrapped >= L, wrapped - L, wrapped)

    def project_tangent(self, x: Float[Array, " d"], v: Float[Array, " d"]) -> Float[Array, " d"]:
        return v

    def random_uniform(self, key: PRNGKeyArray, dtype=None) -> Float[Array, " d"]:
        dtype = jnp.result_type(float) if dtype is None else dtype
        u = jax.random.uniform(key, self.point_shape, dtype=dtype)
        # u < 1, but u * L may round up to L: `project` folds that back to 0.
        return self.project(u * jnp.asarray(self.lengths, dtype=dtype))

    def log_volume(self) -> Float[Array, ""]:
        return jnp.asarray(sum(math.log(v) for v in self.lengths), dtype=jnp.result_type(float))

    def check(self, x: Shaped[ArrayLike, "..."]) -> Float[Array, " d"]:
        """Validate one point: shape `(d,)` (else `ValueError`), a floating dtype (else
        `TypeError`), finite coordinates (else a runtime error via `eqx.error_if`).

        Coordinates outside `[0, L)` are accepted: they represent torus points too (apply
        `project` to get the canonical representative)."""
        return check_point_array(
            x,
            self.point_shape,
            "FlatTorus point",
            "one coordinate per box axis; use ParticleSpace for configurations of many particles",
        )
