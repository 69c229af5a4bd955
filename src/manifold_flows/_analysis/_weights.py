"""Private helpers shared by the analysis functions: input checks and stable weight arithmetic.

All analysis runs on the host in float64 numpy: these are reductions over at most ~10^6 numbers,
and float64 keeps the log-sum-exp of widely spread log weights honest.
"""

import math
from typing import Any

import numpy as np


def as_vector(values: Any, name: str, *, length: int | None = None) -> np.ndarray:
    """`values` as a float64 vector, or a ValueError naming `name`, its shape and the fix."""
    arr = np.asarray(values)
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
    ):
        raise TypeError(
            f"`{name}` must be a real numeric array; got dtype {arr.dtype}. Pass a float array "
            "with one value per sample."
        )
    if arr.ndim != 1:
        raise ValueError(
            f"`{name}` must be a vector with one value per sample, shape (num_samples,); got "
            f"shape {arr.shape}. Flatten it or pass per-sample totals."
        )
    if length is not None and arr.shape[0] != length:
        raise ValueError(
            f"`{name}` has {arr.shape[0]} entries but {length} samples were given; pass one "
            "value per sample, in the same order."
        )
    if arr.shape[0] == 0:
        raise ValueError(f"`{name}` is empty: at least one sample is needed.")
    return arr.astype(np.float64)


def as_positive_scalar(value: Any, name: str) -> float:
    """`value` as a positive finite python float, or a ValueError."""
    arr = np.asarray(value)
    if arr.shape != () or not (
        np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
    ):
        raise ValueError(f"`{name}` must be a positive number; got {value!r}.")
    out = float(arr)
    if not (math.isfinite(out) and out > 0):
        raise ValueError(f"`{name}` must be positive and finite; got {out}.")
    return out


def log_weights_of(log_weights: Any, num_samples: int) -> np.ndarray:
    """The log importance weights held by `log_weights` (a vector, or any object with a `log_w`
    attribute such as `ReweightResult`), as a float64 vector of length `num_samples`.
    Non-finite entries are kept: they mean weight zero."""
    raw = getattr(log_weights, "log_w", log_weights)
    return as_vector(raw, "log_weights", length=num_samples)


def normalized_weights(log_w: np.ndarray) -> np.ndarray:
    """Self-normalised weights softmax(log_w) along the last axis, with weight 0 wherever
    `log_w` is not finite. A row with no finite entry gets all-zero weights."""
    finite = np.isfinite(log_w)
    masked = np.where(finite, log_w, -np.inf)
    top = np.max(masked, axis=-1, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    unnorm = np.where(finite, np.exp(masked - top), 0.0)
    total = np.sum(unnorm, axis=-1, keepdims=True)
    return np.divide(unnorm, total, out=np.zeros_like(unnorm), where=total > 0)


def require_some_weight(log_w: np.ndarray) -> None:
    if not np.any(np.isfinite(log_w)):
        raise ValueError(
            "every log weight is non-finite (NaN or infinite): no sample carries weight, so no "
            "reweighted estimate exists. Check the energies and log q of the samples."
        )
