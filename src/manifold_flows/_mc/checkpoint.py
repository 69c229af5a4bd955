"""Checkpoints of a Monte Carlo run: one atomically written file per finished block.

Layout of a checkpoint folder:

- `run.json`: the fingerprint of the run (settings, system, seed); a resume must match it.
- `block_000000.npz`, `block_000001.npz`, ...: each holds the data produced by that block
  (samples, energy trace) and the complete state after it (chains, keys, step size, counters).

Every file is written to a temporary name and renamed into place, so a crash leaves only
complete blocks behind; resuming continues after the last one and loses nothing written.
"""

import io
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from .._io import atomic_write_bytes, atomic_write_text

_BLOCK = re.compile(r"^block_(\d{6})\.npz$")


class CheckpointStore:
    """A checkpoint folder (see the module docstring). Not an array container: plain Python.

    **Arguments:**

    - `directory`: the folder (created on first write).
    """

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)

    @property
    def run_file(self) -> Path:
        return self.directory / "run.json"

    def block_file(self, index: int) -> Path:
        return self.directory / f"block_{index:06d}.npz"

    def block_indices(self) -> list[int]:
        """Indices of the blocks on disk, in order."""
        if not self.directory.is_dir():
            return []
        found = []
        for p in self.directory.iterdir():
            m = _BLOCK.match(p.name)
            if m:
                found.append(int(m.group(1)))
        return sorted(found)

    def exists(self) -> bool:
        return self.run_file.exists() or bool(self.block_indices())

    def write_run(self, fingerprint: dict[str, Any]) -> None:
        atomic_write_text(self.run_file, json.dumps(fingerprint, indent=2, sort_keys=True))

    def read_run(self) -> dict[str, Any] | None:
        if not self.run_file.exists():
            return None
        try:
            return json.loads(self.run_file.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(
                f"checkpoint {self.run_file} is unreadable ({exc}); delete the folder "
                f"{self.directory} to start over."
            ) from exc

    def write_block(self, index: int, header: dict[str, Any], arrays: dict[str, np.ndarray]):
        buf = io.BytesIO()
        payload = dict(arrays)
        payload["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
        np.savez(buf, **payload)
        atomic_write_bytes(self.block_file(index), buf.getvalue())

    def read_block(self, index: int) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        path = self.block_file(index)
        try:
            with np.load(path, allow_pickle=False) as z:
                header = json.loads(bytes(z["header"]).decode())
                arrays = {k: z[k] for k in z.files if k != "header"}
        except (OSError, KeyError, ValueError) as exc:
            raise ValueError(
                f"checkpoint block {path} is unreadable ({exc}); delete it (and later blocks) "
                "to resume from the previous one."
            ) from exc
        return header, arrays

    def read_blocks(self) -> list[tuple[dict[str, Any], dict[str, np.ndarray]]]:
        """All consecutive blocks from 0 (a gap ends the list)."""
        out = []
        for expected, index in enumerate(self.block_indices()):
            if index != expected:
                break
            out.append(self.read_block(index))
        return out

    def clear(self) -> None:
        """Delete the folder and everything in it."""
        if self.directory.exists():
            shutil.rmtree(self.directory)


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: value}


def fingerprint_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Dotted keys (e.g. `config.temperature`) whose values differ between two fingerprints
    (compared as JSON)."""
    canon = lambda v: json.dumps(v, sort_keys=True)
    a, b = _flatten(saved), _flatten(current)
    return [k for k in sorted(set(a) | set(b)) if canon(a.get(k)) != canon(b.get(k))]
