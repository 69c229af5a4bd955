"""Validation of the options shared by the fields (structural errors at construction time)."""

import math
import numbers


def check_positive_int(owner: str, name: str, value, hint: str) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{owner}: `{name}` must be a positive integer; got {value!r}. {hint}")


def check_common_options(owner: str, *, num_species, width, depth) -> None:
    """Raise `ValueError` for a non-positive or non-integer species count, width or depth."""
    check_positive_int(owner, "num_species", num_species, "Pass the number of labels, e.g. 2.")
    check_positive_int(owner, "width", width, "Pass the hidden width, e.g. width=32.")
    check_positive_int(owner, "depth", depth, "Pass the number of layers, e.g. depth=3.")


def coord_scale_from(owner: str, tanh_bound, depth: int) -> float | None:
    """The bound `C` of the coordinate coefficients: `True` -> `15 / depth`, a positive float ->
    itself, `False` -> `None` (no tanh)."""
    if isinstance(tanh_bound, bool):
        return 15.0 / depth if tanh_bound else None
    if isinstance(tanh_bound, numbers.Real) and math.isfinite(tanh_bound) and tanh_bound > 0:
        return float(tanh_bound)
    raise ValueError(
        f"{owner}: `tanh_bound` must be True (C = 15 / depth), False (no bound) or a positive "
        f"float C; got {tanh_bound!r}."
    )
