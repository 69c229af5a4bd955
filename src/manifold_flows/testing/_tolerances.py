"""One table of numerical tolerances, by dtype (STYLE.md rule 14).

Tests and checkers look tolerances up here instead of inventing their own; a test that needs a
looser bound multiplies these and says why in a comment.
"""

import jax.numpy as jnp
import numpy as np

#: (rtol, atol) for comparisons of quantities of order one, by floating dtype.
_TOLERANCES: dict[str, tuple[float, float]] = {
    "float64": (1e-10, 1e-10),
    "float32": (1e-5, 1e-5),
    "bfloat16": (2e-2, 2e-2),
    "float16": (5e-3, 5e-3),
}


def tolerance(dtype=None) -> tuple[float, float]:
    """`(rtol, atol)` for arrays of `dtype` (default: JAX's default float dtype)."""
    dtype = jnp.result_type(float) if dtype is None else np.dtype(dtype)
    try:
        return _TOLERANCES[np.dtype(dtype).name]
    except KeyError as exc:
        raise ValueError(
            f"no tolerance for dtype {dtype}; pass a floating dtype ({', '.join(_TOLERANCES)})."
        ) from exc
