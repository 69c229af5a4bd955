"""Periodic-image conventions: the image lattice to sum over, and the warning for short boxes."""

import functools
import itertools
import math
import warnings

import numpy as np

#: The image conventions a pair energy accepts.
IMAGE_CONVENTIONS = ("minimum", "all")


class ImageConventionWarning(UserWarning):
    """Half the shortest box side is below a cutoff, so the choice between the minimum-image
    convention and the sum over all periodic images changes the energy. The message names the
    convention in force and how to choose the other."""


def check_images(images: str) -> str:
    """Validate an image convention name (`"minimum"` or `"all"`)."""
    if images not in IMAGE_CONVENTIONS:
        raise ValueError(
            f"images={images!r} is not an image convention; pass images='minimum' (nearest "
            "image of each pair, as in the reference data) or images='all' (every periodic "
            "image within the cutoff)."
        )
    return images


@functools.lru_cache(maxsize=64)
def image_shifts(
    lengths: tuple[float, ...], max_cutoff: float, images: str
) -> tuple[np.ndarray, np.ndarray]:
    """The lattice translations `n * L` to add to a nearest-image displacement.

    For `"minimum"` only the zero translation. For `"all"`, every translation that can bring
    an image closer than `max_cutoff`: a nearest-image component satisfies `|d_a| <= L_a / 2`,
    so `|d_a + n_a L_a| >= (|n_a| - 1/2) L_a`, and only `|n_a| <= floor(rc / L_a + 1/2)` matter.

    **Returns:**

    `(shifts, is_zero)`: float64 array `(m, d)` of translations and a boolean `(m,)` marking
    the zero translation.
    """
    d = len(lengths)
    if images == "minimum":
        return np.zeros((1, d)), np.ones((1,), dtype=bool)
    ranges = [range(-k, k + 1) for k in (math.floor(max_cutoff / L + 0.5) for L in lengths)]
    n = np.array(list(itertools.product(*ranges)), dtype=np.float64).reshape(-1, d)
    shifts = n * np.asarray(lengths, dtype=np.float64)[None, :]
    return shifts, np.all(n == 0, axis=1)


def short_box_note(lengths: tuple[float, ...], max_cutoff: float, images: str, who: str) -> str:
    """The sentence that says which image convention is in force and how to choose the other,
    when half the shortest box side is below `max_cutoff` (so the choice changes the energy);
    `""` otherwise."""
    half = 0.5 * min(lengths)
    if half >= max_cutoff:
        return ""
    if images == "minimum":
        told = (
            "images='minimum' is in force: each pair interacts through its nearest image only "
            "(the convention of the published reference data); pass images='all' to sum every "
            "periodic image within the cutoff instead (a different Hamiltonian)"
        )
    else:
        told = (
            "images='all' is in force: every periodic image within the cutoff is summed (the "
            "exact periodic system); pass images='minimum' for the nearest-image convention of "
            "the published reference data (a different Hamiltonian)"
        )
    return (
        f"{who}: half the shortest box side ({half:.6g}) is below the largest cutoff "
        f"({max_cutoff:.6g}), so the image convention matters; {told}."
    )


def warn_if_short_box(
    lengths: tuple[float, ...], max_cutoff: float, images: str, who: str, stacklevel: int = 3
) -> bool:
    """Warn (`ImageConventionWarning`) when half the shortest box side is below `max_cutoff`,
    naming the convention in force and the alternative (`short_box_note`). Returns whether it
    warned."""
    note = short_box_note(lengths, max_cutoff, images, who)
    if note:
        warnings.warn(note, ImageConventionWarning, stacklevel=stacklevel)
    return bool(note)
