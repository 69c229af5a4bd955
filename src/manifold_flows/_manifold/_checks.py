"""Validation helpers shared by the manifolds (structural errors at trace time, value errors
through `eqx.error_if`)."""

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Shaped


def check_point_array(
    x: Shaped[ArrayLike, "..."], shape: tuple[int, ...], what: str, meaning: str
) -> Shaped[Array, "..."]:
    """Shape, dtype and finiteness checks for one point of a manifold.

    **Arguments:**

    - `x`: the candidate point.
    - `shape`: the expected `point_shape`.
    - `what`: how the point is named in messages (e.g. `"FlatTorus point"`).
    - `meaning`: what the expected shape means (e.g. `"one coordinate per box axis"`).

    **Returns:**

    `x` as a JAX array, guarded by `eqx.error_if` against NaN and infinite entries.
    """
    x = jnp.asarray(x)
    if x.shape != shape:
        if x.ndim == len(shape) + 1 and x.shape[1:] == shape:
            hint = " It looks like a batch of points: map over it with jax.vmap."
        elif x.ndim != len(shape):
            hint = f" It has rank {x.ndim} instead of {len(shape)}."
        else:
            hint = ""
        raise ValueError(f"{what} must have shape {shape} ({meaning}); got shape {x.shape}.{hint}")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(
            f"{what} must be a floating-point array; got dtype {x.dtype}. Convert it with "
            "jnp.asarray(x, dtype=float)."
        )
    return eqx.error_if(
        x,
        ~jnp.all(jnp.isfinite(x)),
        f"{what} has NaN or infinite coordinates; check the input data or the step that "
        "produced it (e.g. an ODE solver that diverged).",
    )
