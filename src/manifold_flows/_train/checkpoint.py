"""Checkpoints of the training state, written atomically."""

import contextlib
import os
from pathlib import Path

import equinox as eqx
import numpy as np
from jaxtyping import PyTree


def save_checkpoint(path: str | os.PathLike, tree: PyTree) -> Path:
    """Serialise the array leaves of `tree` (`eqx.tree_serialise_leaves`) to `path`,
    atomically.

    The bytes go to a temporary file in the same folder, which is flushed to disk and then
    renamed over `path` (`os.replace`). A failure at any point (full disk, crash, interrupt)
    leaves the previous file at `path` untouched and removes the temporary file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    try:
        with open(tmp, "wb") as fh:
            eqx.tree_serialise_leaves(fh, tree)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return path


def load_checkpoint(path: str | os.PathLike, like: PyTree) -> PyTree:
    """Read a checkpoint written by `save_checkpoint` into a tree with the structure of
    `like` (same array shapes and dtypes).

    The leaves are read in order from the start of the file; leaves stored after those of
    `like` are not read (so `load_run` reads the training state of a file written by
    `save_train_checkpoint`)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    try:
        return eqx.tree_deserialise_leaves(path, like)
    except (ValueError, RuntimeError, OSError, EOFError) as exc:
        raise _unreadable(path, exc) from exc


def save_train_checkpoint(path: str | os.PathLike, state: PyTree, window: np.ndarray) -> Path:
    """Checkpoint a training run: the leaves of `state` (the `TrainState`), then the float64
    vector `window` (the metrics window, `MetricsWindow.as_array`), in one file written
    atomically by `save_checkpoint`. The state comes first, so `load_checkpoint(path, state)`
    reads it alone."""
    return save_checkpoint(path, (state, np.asarray(window, dtype=np.float64)))


def load_train_checkpoint(
    path: str | os.PathLike, like: PyTree
) -> tuple[PyTree, np.ndarray | None]:
    """Read a file written by `save_train_checkpoint`: `(state, window)`, with `state`
    shaped like `like`. `window` is `None` for a checkpoint that holds the state alone
    (written by `save_checkpoint`)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    try:
        with open(path, "rb") as fh:
            state = eqx.tree_deserialise_leaves(fh, like)
            if not fh.read(1):
                return state, None
            fh.seek(-1, os.SEEK_CUR)
            window = np.load(fh, allow_pickle=False)
    except (ValueError, RuntimeError, OSError, EOFError) as exc:
        raise _unreadable(path, exc) from exc
    if window.dtype != np.float64 or window.ndim != 1:
        raise _unreadable(path, ValueError(f"trailing {window.dtype} array {window.shape}"))
    return state, window


def _unreadable(path: Path, exc: BaseException) -> ValueError:
    return ValueError(
        f"cannot read checkpoint {path}: {exc}. It was written for a different model or "
        "training configuration (or is damaged)."
    )
