"""The files of a sampling run in progress: the output paths, the `.parts` folder with its
settings and one atomically written file per finished chunk, and the timing they carry.

Layout while sampling to `samples.npz`: `samples.npz.parts/state.json` holds the settings
(a resumed run must match them) and `samples.npz.parts/chunk_00000.npz`, ... one file per
finished chunk (positions, log q, energy, solver statistics, timing)."""

import io
import json
import os
import shutil
from pathlib import Path

import numpy as np

from .._arguments import argument
from .._io import atomic_write_bytes, atomic_write_text

STATE = "state.json"
#: Settings that may change when resuming: they change no finished sample (a larger step
#: budget lets a failed solve finish; the batching of a chunk changes results only by solver
#: round-off; the number of samples extends or shortens the stream).
_RESUME_FREE = {"max_steps", "batching"}
PARTS_SUFFIX = ".parts"


def sample_paths(out: str | os.PathLike) -> dict[str, Path]:
    """The files `sample_to_file(out=...)` writes: `npz`, `extxyz`, `manifest`, `parts`."""
    out = Path(out)
    if out.suffix.lower() != ".npz":
        raise ValueError(
            f"out={str(out)!r} must name the binary output, a .npz file (the extended XYZ copy "
            f"is written next to it as {out.with_suffix('.extxyz').name}); e.g. samples.npz."
        )
    return {
        "npz": out,
        "extxyz": out.with_suffix(".extxyz"),
        "manifest": out.with_name(f"{out.stem}.manifest.json"),
        "parts": out.with_name(out.name + PARTS_SUFFIX),
    }


def _chunk_path(parts: Path, index: int) -> Path:
    return parts / f"chunk_{index:05d}.npz"


def _write_chunk(path: Path, arrays: dict[str, np.ndarray]) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    atomic_write_bytes(path, buffer.getvalue())


def _read_chunk(path: Path) -> dict[str, np.ndarray] | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError):
        return None  # damaged (cannot happen with atomic writes, but never trust it): redo


def _timing_over_chunks(chunks: list[dict[str, np.ndarray]]) -> dict:
    """Total computing time and seconds per sample over the chunks that carry their timing
    (chunk files written before timing was recorded carry none)."""
    timed = [c for c in chunks if "seconds" in c]
    steady = [c for c in timed if not bool(c["first_of_call"])] or timed
    sizes = [int(c["stop"] - c["start"]) for c in steady]
    return {
        "seconds_all_calls": float(sum(float(c["seconds"]) for c in timed)) if timed else None,
        "samples_timed": int(sum(int(c["stop"] - c["start"]) for c in timed)),
        "seconds_per_sample": (
            sum(float(c["seconds"]) for c in steady) / sum(sizes) if steady else None
        ),
    }


def _chunk_ranges(num_samples: int, chunk_size: int) -> list[tuple[int, int]]:
    return [
        (start, min(start + chunk_size, num_samples)) for start in range(0, num_samples, chunk_size)
    ]


def _prepare_parts(paths, settings, *, resume: bool, force: bool) -> bool:
    """Check the output paths and set up the parts folder; returns whether it resumes."""
    parts, npz = paths["parts"], paths["npz"]
    state_path = parts / STATE
    if parts.exists():
        if not parts.is_dir():
            raise FileExistsError(f"{parts} exists and is not a folder; move it away.")
        if force:
            _remove_parts(parts)
        elif not resume:
            raise FileExistsError(
                f"{parts} holds an unfinished sampling run for {npz}; pass "
                f"{argument('resume', True)} to continue it or {argument('force', True)} to "
                "start over."
            )
    elif npz.exists() and not force:
        raise FileExistsError(
            f"{npz} already exists (a finished sampling run); pass {argument('force', True)} to "
            "overwrite it, or choose another output file."
        )
    if parts.is_dir() and resume:
        try:
            saved = json.loads(state_path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(
                f"cannot read {state_path} ({exc}); pass {argument('force', True)} to start over."
            ) from exc
        keys = (set(saved) | set(settings)) - _RESUME_FREE
        diff = sorted(k for k in keys if saved.get(k) != settings.get(k))
        if diff:
            detail = "; ".join(
                f"{k}: {saved.get(k)!r} saved, {settings.get(k)!r} now" for k in diff
            )
            raise ValueError(
                f"cannot resume sampling into {npz}: settings differ ({detail}); resume with the "
                f"same run and options, or pass {argument('force', True)} to start over."
            )
        atomic_write_text(state_path, json.dumps(settings, indent=2, sort_keys=True))
        return True
    parts.mkdir(parents=True, exist_ok=True)
    atomic_write_text(state_path, json.dumps(settings, indent=2, sort_keys=True))
    return False


def _remove_parts(parts: Path) -> None:
    # Only ever delete a folder this module made: its files are state.json and chunk_*.npz.
    unexpected = [
        p.name
        for p in parts.iterdir()
        if not (p.name == STATE or (p.name.startswith("chunk_") and p.suffix == ".npz"))
        and not p.name.endswith(".partial")
    ]
    if unexpected:
        raise FileExistsError(
            f"{parts} holds files sample_to_file did not write ({', '.join(unexpected[:3])}); "
            "move them away first."
        )
    shutil.rmtree(parts)
