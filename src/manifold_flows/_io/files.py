"""Small file utilities: atomic writes and checksums."""

import hashlib
import os
import tempfile
from pathlib import Path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` atomically: a temporary file in the same folder, flushed to disk,
    then renamed over `path`. A crash leaves either the old file or the new one, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """`atomic_write_bytes` for UTF-8 text."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def check_writable(path: str | os.PathLike, *, what: str = "the output") -> Path:
    """Check, before any work, that `path` can be created: the nearest existing folder above it
    is a folder (not a file) and accepts new files, and `path` is not a folder. Raises
    `NotADirectoryError`, `PermissionError` or `IsADirectoryError` with one line naming the
    path and the fix; returns the path.

    The folders between that folder and `path` are created later by the writer; nothing is
    created here."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(
            f"cannot write {what} {path}: it is a folder; name a file (inside it, or elsewhere)."
        )
    parent = path.absolute().parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise NotADirectoryError(
            f"cannot write {what} {path}: {parent} is a file, not a folder; choose a path in a "
            "folder."
        )
    fix = "choose a folder you may write to (or change its permissions)"
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(
            f"cannot write {what} {path}: no permission to write in {parent}; {fix}."
        )
    try:  # a file that vanishes on closing: catches read-only and virtual file systems (/proc)
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise PermissionError(
            f"cannot write {what} {path}: {parent} does not accept new files ({reason}); {fix}."
        ) from None
    return path


def _gib(nbytes: int) -> str:
    return f"{nbytes / 2**30:.3g} GiB"


def check_fits_in_memory(nbytes: int, *, what: str, fix: str) -> None:
    """Refuse, before allocating, a job that would hold more than this machine's memory:
    `ValueError` naming `what`, the estimate and `fix`."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # not a POSIX system: no estimate to compare
        return
    if nbytes > total:
        raise ValueError(
            f"{what} would hold about {_gib(nbytes)} in memory, more than this machine's "
            f"{_gib(total)}; {fix}."
        )
