"""Shared helpers of the text readers: species names to labels, frames to a `Dataset`."""

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .dataset import Dataset


def open_text(path: str | os.PathLike) -> tuple[Path, list[str]]:
    """`(path, lines)` of a text file; `FileNotFoundError` if it does not exist."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"configuration file not found: {path}")
    with open(path, encoding="utf-8") as fh:
        return path, fh.read().splitlines()


def _sort_key(names: Sequence[str]):
    for cast in (int, float):
        try:
            for n in names:
                cast(n)
        except ValueError:
            continue
        return cast
    return str


def species_labels(
    frame_names: np.ndarray, order: Sequence[str] | None = None
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Map species names `(num_frames, n)` to integer labels.

    Labels follow `order` when given (every name must appear in it), else the sorted names:
    numeric order when every name is a number (`"1" < "2" < "10"`), string order otherwise.

    **Returns:**

    `(labels, names)`: int array like `frame_names`, and the name of each label.
    """
    frame_names = np.asarray(frame_names, dtype=str)
    present = sorted(set(np.unique(frame_names).tolist()))
    if order is None:
        names = tuple(sorted(present, key=_sort_key(present)))
    else:
        names = tuple(str(n) for n in order)
        missing = [n for n in present if n not in names]
        if missing:
            raise ValueError(
                f"species {missing} appear in the file but not in its species list {list(names)}."
            )
    lookup = {n: i for i, n in enumerate(names)}
    labels = np.vectorize(lookup.__getitem__, otypes=[np.int32])(frame_names)
    return labels, names


def build_dataset(
    path: Path,
    *,
    positions: np.ndarray,
    frame_names: np.ndarray,
    box: np.ndarray,
    species_order: Sequence[str] | None = None,
    energy: np.ndarray | None = None,
    temperature: float | None = None,
    system: str = "",
    extra: dict[str, np.ndarray] | None = None,
    metadata: dict[str, Any] | None = None,
) -> Dataset:
    """A canonical `Dataset` from parsed frames (wraps positions, sorts particles by species).

    Text formats may hold unwrapped or centred coordinates: wrapping them moves particles by
    whole box lengths, which leaves a periodic energy unchanged. Frames with stored energies
    whose positions lie more than half a box length outside `[0, L)` (more than centred
    coordinates explain) are wrapped all the same, but flagged: an `OutsideBoxWarning` and
    `metadata["positions_outside_box"]`, since with a wrong box or wrong units the stored
    energies would not describe the wrapped frames."""
    labels, names = species_labels(frame_names, species_order)
    metadata = dict(metadata or {})
    if energy is not None:
        outside = _outside_box(path, positions, box)
        if outside is not None:
            metadata["positions_outside_box"] = outside
    try:
        return Dataset.from_frames(
            positions,
            labels,
            names,
            box,
            energy=energy,
            temperature=temperature,
            system=system,
            extra=extra or {},
            metadata=metadata,
        )
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc


class OutsideBoxWarning(UserWarning):
    """A file's frames carry energies and lie far outside its box: they are wrapped, and the
    energies are right only if the coordinates are unwrapped ones of this very box."""


#: Beyond this many box lengths outside `[0, L)` a position is neither rounding nor a centred
#: coordinate (`[-L/2, L/2)`).
_FAR_OUTSIDE = 0.5


def _outside_box(path: Path, positions: np.ndarray, box: np.ndarray) -> dict[str, Any] | None:
    pos = np.asarray(positions, dtype=np.float64)
    lengths = np.asarray(box, dtype=np.float64).reshape(-1)
    if pos.ndim != 3 or lengths.shape != pos.shape[-1:] or not np.all(np.isfinite(pos)):
        return None  # the Dataset constructor names these mistakes
    depth = np.maximum(-pos, pos - lengths) / lengths
    frames = np.nonzero(np.any(depth > _FAR_OUTSIDE, axis=(1, 2)))[0]
    if not frames.size:
        return None
    worst = float(np.max(depth))
    warnings.warn(
        f"{path}: positions of {frames.size} frame(s) with stored energies lie up to "
        f"{worst:.3g} box lengths outside the box {lengths.tolist()} and were wrapped; the "
        "energies describe the wrapped frames only if these are unwrapped coordinates of this "
        "box, so check the box and the units if they are not.",
        OutsideBoxWarning,
        stacklevel=4,
    )
    return {"frames": int(frames.size), "max_box_lengths": worst, "first_frame": int(frames[0])}


def parse_float(path: Path, lineno: int, text: str, what: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{path}, line {lineno}: {what} must be a number; got {text!r}.") from None


def parse_int(path: Path, lineno: int, text: str, what: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise ValueError(
            f"{path}, line {lineno}: {what} must be an integer; got {text.strip()!r}."
        ) from None


def same_for_all_frames(path: Path, values: list, what: str):
    """The common value of a per-frame quantity that a dataset holds once (box, T)."""
    first = values[0]
    for k, v in enumerate(values):
        if not np.allclose(np.asarray(v, dtype=float), np.asarray(first, dtype=float), rtol=1e-9):
            raise ValueError(
                f"{path}: the {what} changes between frames (frame 0: {first}, frame {k}: {v}); "
                "a dataset holds configurations of one fixed box and state point."
            )
    return first
