"""The flat torus: a periodic box [0, L_1) x ... x [0, L_d)."""

import math
from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from .base import AbstractManifold


class FlatTorus(AbstractManifold):
    """The flat torus R^d / (L_1 Z x ... x L_d Z), i.e. a periodic box with one length per axis.

    Points are arrays of shape `(d,)` in the fundamental domain `[0, L)`; tangent vectors are
    arrays of shape `(d,)`. With the flat metric:

    - `log(x, y) = (y - x) - L * round((y - x) / L)` per axis (the minimum-image displacement);
    - `exp(x, v) = (x + v) mod L`;
    - `dist` is the minimum-image distance; `log_volume = sum(log L)`.

    **Arguments:**

    - `lengths`: the box lengths, one per axis (a sequence of positive floats). A single float
      together with `dim` gives a cubic box.
    - `dim`: the dimension when `lengths` is a scalar.
    """

    lengths: tuple[float, ...] = eqx.field(static=True)

    def __init__(self, lengths: float | Sequence[float], dim: int | None = None):
        if isinstance(lengths, (int, float, np.floating, np.integer)):
            if dim is None:
                raise ValueError(
                    "FlatTorus(lengths=<scalar>) needs `dim`: pass e.g. FlatTorus(4.47, dim=2) or "
                    "a sequence of box lengths, one per axis."
                )
            lengths = (float(lengths),) * int(dim)
        else:
            lengths = tuple(float(v) for v in np.asarray(lengths, dtype=float).reshape(-1))
            if dim is not None and dim != len(lengths):
                raise ValueError(
                    f"FlatTorus got {len(lengths)} box lengths but dim={dim}; pass one length "
                    "per axis or drop `dim`."
                )
        if len(lengths) == 0:
            raise ValueError("FlatTorus needs at least one axis: `lengths` is empty.")
        bad = [v for v in lengths if not (math.isfinite(v) and v > 0)]
        if bad:
            raise ValueError(
                f"FlatTorus box lengths must be positive and finite; got lengths={lengths}. "
                "Pass the side of the periodic box along each axis, e.g. (4.472136, 4.472136)."
            )
        self.lengths = lengths

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
        """The box lengths as an array."""
        return jnp.asarray(self.lengths, dtype=dtype)

    # ------------------------------------------------------------------ geometry
    def _L(self, x: Array) -> Array:
        return jnp.asarray(self.lengths, dtype=x.dtype)

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
        # `mod` can return exactly L for tiny negative inputs in floating point; fold it to 0 so
        # the result always lies in the half-open fundamental domain [0, L).
        return jnp.where(wrapped >= L, wrapped - L, wrapped)

    def project_tangent(self, x: Float[Array, " d"], v: Float[Array, " d"]) -> Float[Array, " d"]:
        return v

    def random_uniform(self, key: PRNGKeyArray, dtype=None) -> Float[Array, " d"]:
        dtype = jnp.result_type(float) if dtype is None else dtype
        u = jax.random.uniform(key, self.point_shape, dtype=dtype)
        return self.project(u * jnp.asarray(self.lengths, dtype=dtype))

    def log_volume(self) -> Float[Array, ""]:
        return jnp.asarray(sum(math.log(v) for v in self.lengths), dtype=jnp.result_type(float))

    def check(self, x: Float[Array, "..."]) -> Float[Array, "..."]:
        x = jnp.asarray(x)
        if x.shape != self.point_shape:
            raise ValueError(
                f"FlatTorus point must have shape {self.point_shape} (one coordinate per box "
                f"axis); got shape {x.shape}. Batch with jax.vmap, or use ParticleSpace for "
                "configurations of many particles."
            )
        if not jnp.issubdtype(x.dtype, jnp.floating):
            raise TypeError(
                f"FlatTorus point must be a floating-point array; got dtype {x.dtype}. "
                "Convert with jnp.asarray(x, dtype=float)."
            )
        x = eqx.error_if(
            x,
            ~jnp.all(jnp.isfinite(x)),
            "FlatTorus point has NaN or infinite coordinates; check the data or the solver.",
        )
        return x
