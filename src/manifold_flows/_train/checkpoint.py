"""Checkpoints of the training state, written atomically."""

import contextlib
import os
from pathlib import Path

import equinox as eqx
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
    `like` (same array shapes and dtypes)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    try:
        return eqx.tree_deserialise_leaves(path, like)
    except (ValueError, RuntimeError, OSError, EOFError) as exc:
        raise ValueError(
            f"cannot read checkpoint {path}: {exc}. It was written for a different model or "
            "training configuration (or is damaged)."
        ) from exc
