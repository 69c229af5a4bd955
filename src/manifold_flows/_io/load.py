"""One entry point to read (and write) configuration files of any supported format."""

import os
from pathlib import Path

from .dataset import Dataset
from .extxyz import is_extxyz_header, read_extxyz, write_extxyz
from .lammps import read_lammps_dump
from .xyz import is_atooms_header, read_xyz

#: format name -> file extensions that select it
FORMATS: dict[str, tuple[str, ...]] = {
    "npz": (".npz",),
    "xyz": (".xyz",),  # atooms dialect or extended XYZ, told apart by the header
    "atooms": (),
    "extxyz": (".extxyz", ".exyz"),
    "lammps": (".lammpsdump", ".dump", ".lammpstrj"),
}


def _format_of(path: Path, format: str | None) -> str:
    if format is not None:
        if format not in FORMATS:
            raise ValueError(
                f"format={format!r} is not known; choose one of {', '.join(FORMATS)} (or None "
                "to go by the file extension)."
            )
        return format
    suffix = path.suffix.lower()
    for name, suffixes in FORMATS.items():
        if suffix in suffixes:
            return name
    known = sorted(s for v in FORMATS.values() for s in v)
    raise ValueError(
        f"cannot tell the format of {path} from its extension {suffix!r}; use one of "
        f"{', '.join(known)} or pass format= ({', '.join(FORMATS)})."
    )


def sniff_xyz(path: str | os.PathLike) -> str:
    """`"extxyz"` or `"atooms"` for an `.xyz` file, from the comment line of its first frame.

    Raises `ValueError` for a plain XYZ file, whose header carries no box."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"configuration file not found: {path}")
    with open(path, encoding="utf-8") as fh:
        fh.readline()
        comment = fh.readline()
    if is_extxyz_header(comment):
        return "extxyz"
    if is_atooms_header(comment):
        return "atooms"
    raise ValueError(
        f"{path}: the xyz header lacks the box (neither extended-XYZ `Lattice=` nor atooms "
        "`cell:`), so the periodic box is unknown; add it to the header or use another format."
    )


def load_configurations(path: str | os.PathLike, *, format: str | None = None) -> Dataset:
    """Read configurations from a file into a canonical `Dataset`.

    The format follows the extension unless `format` is given: `.npz` (`Dataset.load`), `.xyz`
    (atooms / ParticlesMC dialect or extended XYZ, told apart by the header), `.extxyz` /
    `.exyz` (extended XYZ), `.lammpsdump` / `.dump` / `.lammpstrj` (LAMMPS dump). Positions are
    wrapped into the box and particles ordered by species; species names become labels
    `0, 1, ...` in numeric (or string) order.

    Wrapping: the text formats may hold unwrapped or centred coordinates, and moving a particle
    by whole box lengths leaves a periodic energy unchanged, so their stored energies stay
    valid; frames with energies lying more than half a box length outside the box are wrapped
    but flagged (a warning and `metadata["positions_outside_box"]`), as a wrong box or wrong
    units would look the same. A `.npz` dataset is saved wrapped: one whose positions lie
    outside its box while it stores energies was changed by hand or pairs its coordinates with
    another box, and is refused (`ValueError`) rather than wrapped into configurations its
    energies do not describe. Empty, truncated or damaged files raise one `ValueError` naming
    the file.

    **Arguments:**

    - `path`: the file.
    - `format`: `"npz"`, `"xyz"`, `"atooms"`, `"extxyz"` or `"lammps"`; `None` to use the
      extension.

    **Returns:**

    A `Dataset`.
    """
    path = Path(path)
    fmt = _format_of(path, format)
    if path.is_dir():
        raise ValueError(f"{path} is a folder, not a configuration file; pass a file inside it.")
    if not path.is_file():
        raise FileNotFoundError(f"configuration file not found: {path}")
    if fmt == "xyz":
        fmt = sniff_xyz(path)
    if fmt == "npz":
        return Dataset.load(path)
    if fmt == "atooms":
        return read_xyz(path)
    if fmt == "extxyz":
        return read_extxyz(path)
    return read_lammps_dump(path)


def save_configurations(
    path: str | os.PathLike, dataset: Dataset, *, format: str | None = None
) -> Path:
    """Write a `Dataset` atomically: `.npz` (fast binary, keeps everything) or extended XYZ
    (`.extxyz`, `.exyz`, `.xyz`; readable by ASE). Returns the path."""
    path = Path(path)
    fmt = _format_of(path, format)
    if fmt == "npz":
        return dataset.save(path)
    if fmt in ("xyz", "extxyz"):
        return write_extxyz(path, dataset)
    raise ValueError(
        f"cannot write format {fmt!r}; write .npz (binary) or .extxyz (extended XYZ) instead."
    )
