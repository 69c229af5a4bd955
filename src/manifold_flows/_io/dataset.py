"""The in-memory dataset of particle configurations and its fast binary format (npz)."""

import dataclasses
import json
import os
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

FORMAT_NAME = "manifold_flows.dataset"
FORMAT_VERSION = 1


@dataclasses.dataclass(frozen=True)
class Dataset:
    """Configurations of N particles in a periodic box, in canonical form.

    Canonical form: positions are wrapped into `[0, box)`; particles are ordered by species
    (all species-0 particles first, then species 1, ...), so one species vector serves every
    frame. Readers reorder each frame to this form (a permutation within a species is a symmetry
    of every system here, so nothing physical is lost).

    **Fields:**

    - `positions`: float array `(num_samples, n, d)`, wrapped.
    - `species`: int array `(n,)`, sorted, labels `0 .. len(species_names) - 1`.
    - `species_names`: names of the labels, e.g. `("A", "B")`.
    - `box`: float array `(d,)`, box lengths.
    - `temperature`: the temperature T of the ensemble, or `None` if unknown.
    - `system`: preset or model name (e.g. `"ipl-n10"`), or `""` if unknown.
    - `energy`: total potential energy U per sample `(num_samples,)`, or `None`.
    - `extra`: further per-sample float arrays, e.g. `{"log_q": ..., "log_w": ...}`.
    - `metadata`: JSON-serialisable dict (system parameters, seeds, sweeps between samples,
      acceptance rates, autocorrelation estimate, provenance ...).
    """

    positions: np.ndarray
    species: np.ndarray
    species_names: tuple[str, ...]
    box: np.ndarray
    temperature: float | None = None
    system: str = ""
    energy: np.ndarray | None = None
    extra: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        pos = np.asarray(self.positions, dtype=np.float64)
        species = np.asarray(self.species)
        box = np.asarray(self.box, dtype=np.float64).reshape(-1)
        if pos.ndim != 3:
            raise ValueError(
                f"Dataset.positions must have shape (num_samples, n, d); got {pos.shape}."
            )
        r, n, d = pos.shape
        if box.shape != (d,):
            raise ValueError(
                f"Dataset.box must hold one length per axis (d={d}); got shape {box.shape}."
            )
        if not np.all(np.isfinite(box)) or np.any(box <= 0):
            raise ValueError(f"Dataset.box lengths must be positive and finite; got {box}.")
        if species.shape != (n,) or not np.issubdtype(species.dtype, np.integer):
            raise ValueError(
                f"Dataset.species must be an integer vector of length n={n}; got "
                f"shape {species.shape}, dtype {species.dtype}."
            )
        if np.any(np.diff(species) < 0):
            raise ValueError(
                "Dataset.species must be sorted (canonical order); use Dataset.from_frames to "
                "reorder frames with arbitrary per-frame species."
            )
        names = tuple(str(s) for s in self.species_names)
        if n and (species.min() < 0 or species.max() >= len(names)):
            raise ValueError(
                f"Dataset.species labels must lie in [0, {len(names)}) to match species_names "
                f"{names}; got labels {sorted(set(species.tolist()))}."
            )
        if not np.all(np.isfinite(pos)):
            bad = np.unique(np.nonzero(~np.isfinite(pos))[0])
            raise ValueError(
                f"Dataset.positions has non-finite coordinates in {bad.size} sample(s) "
                f"(first: index {int(bad[0])}); remove or repair them before use."
            )
        pos = np.mod(pos, box)
        pos = np.where(pos >= box, pos - box, pos)  # fold float round-up of mod onto 0
        object.__setattr__(self, "positions", pos)
        object.__setattr__(self, "species", species.astype(np.int32))
        object.__setattr__(self, "species_names", names)
        object.__setattr__(self, "box", box)
        if self.temperature is not None:
            t = float(self.temperature)
            if not (np.isfinite(t) and t > 0):
                raise ValueError(f"Dataset.temperature must be positive; got {self.temperature}.")
            object.__setattr__(self, "temperature", t)
        if self.energy is not None:
            e = np.asarray(self.energy, dtype=np.float64).reshape(-1)
            if e.shape != (r,):
                raise ValueError(
                    f"Dataset.energy must hold one value per sample ({r}); got shape {e.shape}."
                )
            object.__setattr__(self, "energy", e)
        extra = {}
        for k, v in dict(self.extra).items():
            v = np.asarray(v)
            if v.shape[:1] != (r,):
                raise ValueError(
                    f"Dataset.extra[{k!r}] must have one entry per sample ({r}); got {v.shape}."
                )
            extra[str(k)] = v
        object.__setattr__(self, "extra", extra)
        object.__setattr__(self, "metadata", dict(self.metadata))

    # ------------------------------------------------------------------ shape
    @property
    def num_samples(self) -> int:
        return self.positions.shape[0]

    @property
    def num_particles(self) -> int:
        return self.positions.shape[1]

    @property
    def dim(self) -> int:
        return self.positions.shape[2]

    @property
    def composition(self) -> dict[str, int]:
        """Number of particles of each species, by name."""
        counts = np.bincount(self.species, minlength=len(self.species_names))
        return {name: int(c) for name, c in zip(self.species_names, counts, strict=True)}

    def __len__(self) -> int:
        return self.num_samples

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_frames(
        cls,
        positions: np.ndarray,
        frame_species: np.ndarray,
        species_names: tuple[str, ...],
        box: np.ndarray,
        **kwargs: Any,
    ) -> "Dataset":
        """Build a dataset from frames whose species order may differ frame to frame.

        `frame_species` is `(num_samples, n)` (or `(n,)` for all frames). Each frame is
        reordered by a stable sort of its species, so the result is canonical. Every frame
        must have the same composition; otherwise `ValueError` names the first bad frame.
        """
        positions = np.asarray(positions, dtype=np.float64)
        fs = np.asarray(frame_species)
        if fs.ndim == 1:
            fs = np.broadcast_to(fs, positions.shape[:2])
        if fs.shape != positions.shape[:2]:
            raise ValueError(
                f"frame_species must have shape (num_samples, n) = {positions.shape[:2]}; "
                f"got {fs.shape}."
            )
        if fs.shape[0] == 0:
            raise ValueError("no frames: the dataset would be empty.")
        order = np.argsort(fs, axis=1, kind="stable")
        sorted_species = np.take_along_axis(fs, order, axis=1)
        bad = np.nonzero(np.any(sorted_species != sorted_species[0], axis=1))[0]
        if bad.size:
            raise ValueError(
                f"frame {int(bad[0])} has a different composition from frame 0; a dataset "
                "must have one composition (record it per dataset, never infer it)."
            )
        positions = np.take_along_axis(positions, order[..., None], axis=1)
        return cls(positions, sorted_species[0], species_names, box, **kwargs)

    def replace(self, **changes: Any) -> "Dataset":
        return dataclasses.replace(self, **changes)

    def subset(self, index: np.ndarray | slice) -> "Dataset":
        """The samples selected by `index` (per-sample fields sliced alike)."""
        return self.replace(
            positions=self.positions[index],
            energy=None if self.energy is None else self.energy[index],
            extra={k: v[index] for k, v in self.extra.items()},
        )

    # ------------------------------------------------------------------ binary format
    def save(self, path: str | os.PathLike) -> Path:
        """Write the dataset as `.npz` atomically (a temporary file renamed into place, so a
        crash never leaves a half-written file under the final name). Returns the path."""
        path = Path(path)
        header = {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "species_names": list(self.species_names),
            "temperature": self.temperature,
            "system": self.system,
            "metadata": self.metadata,
            "extra_keys": sorted(self.extra),
        }
        arrays = {
            "positions": self.positions,
            "species": self.species,
            "box": self.box,
            "header": np.frombuffer(json.dumps(header).encode(), dtype=np.uint8),
        }
        if self.energy is not None:
            arrays["energy"] = self.energy
        for k, v in self.extra.items():
            arrays[f"extra__{k}"] = v
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.partial")
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Dataset":
        """Read a dataset written by `save`.

        Raises `FileNotFoundError` for a missing file and `ValueError`, naming the file and
        what is wrong with it, for one that is empty, truncated, damaged, not a `.npz`
        archive, not a manifold_flows dataset, or whose positions lie outside its box although
        it stores energies (`save` writes positions wrapped, so such a file was changed by
        hand or pairs its coordinates with another box: its energies cannot be trusted)."""
        path = Path(path)
        header, arrays = _read_npz(path)
        positions, box = arrays["positions"], arrays["box"]
        if "energy" in arrays:
            _check_inside_box(path, positions, box)
        try:
            return cls(
                positions=positions,
                species=arrays["species"],
                species_names=tuple(header["species_names"]),
                box=box,
                temperature=header["temperature"],
                system=header["system"],
                energy=arrays.get("energy"),
                extra={k: arrays[f"extra__{k}"] for k in header["extra_keys"]},
                metadata=header["metadata"],
            )
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{path}: {exc}") from None


#: The first bytes of a zip archive (a `.npz` file is one): a local file header, or the end
#: record of an archive with no members.
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
#: How far (in box lengths) a stored position may lie outside `[0, L)`: float rounding only.
_WRAP_TOLERANCE = 1e-9


def _read_npz(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The JSON header and the arrays of a dataset file, or one clear `ValueError`."""
    if not path.exists():
        raise FileNotFoundError(f"dataset file not found: {path}")
    if not path.is_file():
        raise ValueError(f"{path} is a folder, not a dataset file; pass the .npz file inside it.")
    fix = "regenerate it, or point to the .npz file written by manifold_flows"
    with open(path, "rb") as fh:
        start = fh.read(4)
    if not start:
        raise ValueError(f"cannot read dataset {path}: the file is empty (0 bytes); {fix}.")
    if start not in _ZIP_MAGIC:
        raise ValueError(
            f"cannot read dataset {path}: it is not a .npz archive (it starts with {start!r}; "
            f"a text file or another format renamed .npz?); {fix}."
        )
    try:
        with np.load(path, allow_pickle=False) as z:
            header = json.loads(bytes(z["header"]).decode())
            arrays = {k: z[k] for k in z.files if k != "header"}
    except KeyError:
        raise ValueError(f"{path} is not a manifold_flows dataset (no header); {fix}.") from None
    except (
        EOFError,
        OSError,
        ValueError,  # numpy: a damaged array header; json: a damaged dataset header
        UnicodeDecodeError,
        zipfile.BadZipFile,
        zlib.error,
    ) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise ValueError(
            f"cannot read dataset {path}: the file is truncated or damaged ({reason}); {fix}."
        ) from None
    if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
        raise ValueError(f"{path} is not a manifold_flows dataset (no header); {fix}.")
    if header.get("version", 0) > FORMAT_VERSION:
        raise ValueError(
            f"{path} was written by a newer manifold_flows (format version "
            f"{header['version']}); upgrade the package to read it."
        )
    missing = [k for k in ("positions", "species", "box") if k not in arrays]
    missing += [f"extra__{k}" for k in header.get("extra_keys", []) if f"extra__{k}" not in arrays]
    missing += [
        k for k in ("species_names", "temperature", "system", "metadata") if k not in header
    ]
    if missing:
        raise ValueError(f"cannot read dataset {path}: it lacks {', '.join(missing)}; {fix}.")
    return header, arrays


def _check_inside_box(path: Path, positions: np.ndarray, box: np.ndarray) -> None:
    """A saved dataset's positions are wrapped; far outside the box, its energies are not
    those of the wrapped configuration unless the coordinates were unwrapped in this very box,
    which a file written by `save` never holds."""
    pos = np.asarray(positions, dtype=np.float64)
    lengths = np.asarray(box, dtype=np.float64).reshape(-1)
    if pos.ndim != 3 or lengths.shape != pos.shape[-1:] or not np.all(np.isfinite(pos)):
        return  # the Dataset constructor names these mistakes
    outside = np.maximum(-pos, pos - lengths) / lengths
    worst = float(np.max(outside, initial=0.0))
    if worst > _WRAP_TOLERANCE:
        frames = int(np.count_nonzero(np.any(outside > _WRAP_TOLERANCE, axis=(1, 2))))
        raise ValueError(
            f"{path}: positions of {frames} sample(s) lie up to {worst:.3g} box lengths outside "
            f"the box {lengths.tolist()}, but a saved dataset holds them wrapped, so its stored "
            "energies may belong to other coordinates or another box; check the box and the "
            "units, then rebuild the file with Dataset(...).save (it wraps unwrapped "
            "coordinates of the same box) or drop the energies."
        )
