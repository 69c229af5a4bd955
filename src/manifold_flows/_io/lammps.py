"""Reader for LAMMPS text dump files (`dump ... atom` / `custom`)."""

import os
from pathlib import Path

import numpy as np

from ._frames import build_dataset, open_text, parse_float, parse_int, same_for_all_frames
from .dataset import Dataset

# Coordinate column families, in order of preference: absolute, unwrapped, scaled,
# scaled-unwrapped. Scaled ones are mapped back with x = lo + s * (hi - lo).
_COORDS = (
    ("x", "y", "z", False),
    ("xu", "yu", "zu", False),
    ("xs", "ys", "zs", True),
    ("xsu", "ysu", "zsu", True),
)
_SPECIES = ("type", "element")


def read_lammps_dump(path: str | os.PathLike, *, dim: int | None = None) -> Dataset:
    """Read a LAMMPS text dump (one or more snapshots).

    Each snapshot: `ITEM: TIMESTEP`, `ITEM: NUMBER OF ATOMS`, `ITEM: BOX BOUNDS ...` (one
    `lo hi` line per axis; tilt factors must be zero, i.e. a rectangular box) and
    `ITEM: ATOMS <columns>` in any column order, with a species column (`type` or `element`) and
    coordinates `x y [z]` (or unwrapped `xu ...`, or scaled `xs ...`). Rows are ordered by `id`
    when present, then put in canonical order; coordinates are wrapped into the box.

    **Arguments:**

    - `path`: the dump file.
    - `dim`: the space dimension. Default: the number of coordinate columns, except that a `z`
      column holding only zeros is taken as a 2D system (LAMMPS 2D runs write `z = 0`).

    **Returns:**

    A `Dataset`, with the timesteps in `extra["step"]`.
    """
    path, lines = open_text(path)
    snaps, i = [], 0
    while i < len(lines):
        line = lines[i].strip()
        if not line:
            i += 1
            continue
        if line != "ITEM: TIMESTEP":
            raise ValueError(
                f"{path}, line {i + 1}: expected 'ITEM: TIMESTEP' to start a snapshot, got "
                f"{line[:40]!r}; is it a LAMMPS text dump?"
            )
        snap, i = _parse_snapshot(path, lines, i)
        snaps.append(snap)
    if not snaps:
        raise ValueError(f"{path}: no snapshots found; is it a LAMMPS text dump?")
    x = np.stack([s[3] for s in snaps]) if len({s[3].shape for s in snaps}) == 1 else None
    if x is None:
        raise ValueError(
            f"{path}: snapshots differ in the number of atoms; a dataset holds one system."
        )
    box = same_for_all_frames(path, [s[1] for s in snaps], "box (BOX BOUNDS)")
    d = x.shape[-1]
    if dim is None:
        if d == 3 and np.all(x[..., 2] == 0.0):
            d = 2
    else:
        if int(dim) != dim or not 1 <= dim <= x.shape[-1]:
            raise ValueError(
                f"dim={dim!r} is not possible for a dump with {x.shape[-1]} coordinate columns."
            )
        d = int(dim)
    return build_dataset(
        path,
        positions=x[..., :d],
        frame_names=np.asarray([s[2] for s in snaps]),
        box=np.asarray(box)[:d],
        extra={"step": np.asarray([s[0] for s in snaps], dtype=np.float64)},
        metadata={
            "source": str(path),
            "format": "lammps dump",
            "box_bounds": np.asarray(snaps[0][4]).tolist(),
        },
    )


def _expect(path: Path, lines: list[str], i: int, item: str) -> int:
    if i >= len(lines) or not lines[i].strip().startswith(f"ITEM: {item}"):
        got = lines[i].strip()[:40] if i < len(lines) else "end of file"
        raise ValueError(f"{path}, line {i + 1}: expected 'ITEM: {item}', got {got!r}.")
    return i + 1


def _parse_snapshot(path: Path, lines: list[str], i: int):
    i = _expect(path, lines, i, "TIMESTEP")
    step = parse_int(path, i + 1, lines[i], "the timestep")
    i = _expect(path, lines, i + 1, "NUMBER OF ATOMS")
    n = parse_int(path, i + 1, lines[i], "the number of atoms")
    i = _expect(path, lines, i + 1, "BOX BOUNDS")
    bounds = []
    for a in range(3):
        if i + a >= len(lines):
            raise ValueError(f"{path}: the file ends inside BOX BOUNDS; is it truncated?")
        vals = [parse_float(path, i + a + 1, v, "a box bound") for v in lines[i + a].split()]
        if len(vals) < 2:
            raise ValueError(f"{path}, line {i + a + 1}: BOX BOUNDS needs 'lo hi' per axis.")
        if len(vals) > 2 and vals[2] != 0.0:  # xy / xz / yz tilt factor
            raise ValueError(
                f"{path}, line {i + a + 1}: the box is triclinic (non-zero tilt); only "
                "rectangular periodic boxes are supported."
            )
        bounds.append(vals[:2])
    bounds = np.asarray(bounds)
    i += 3
    if i >= len(lines) or not lines[i].strip().startswith("ITEM: ATOMS"):
        got = lines[i].strip()[:40] if i < len(lines) else "end of file"
        raise ValueError(f"{path}, line {i + 1}: expected 'ITEM: ATOMS <columns>', got {got!r}.")
    columns = lines[i].split()[2:]
    col = {c: k for k, c in enumerate(columns)}
    sp = next((col[c] for c in _SPECIES if c in col), None)
    family = next((f for f in _COORDS if f[0] in col), None)
    if sp is None or family is None:
        raise ValueError(
            f"{path}, line {i + 1}: ATOMS columns {columns} need a species column (type or "
            "element) and coordinates (x y [z], xu.., or xs..)."
        )
    axes = [col[c] for c in family[:3] if c in col]
    i += 1
    if i + n > len(lines):
        raise ValueError(
            f"{path}: snapshot at timestep {step} announces {n} atoms but the file ends early; "
            "is it truncated?"
        )
    names, ids, x = [], [], np.empty((n, len(axes)))
    for j in range(n):
        fields = lines[i + j].split()
        if len(fields) < len(columns):
            raise ValueError(
                f"{path}, line {i + j + 1}: expected {len(columns)} values ({' '.join(columns)}), "
                f"got {len(fields)}."
            )
        names.append(fields[sp])
        if "id" in col:
            ids.append(parse_int(path, i + j + 1, fields[col["id"]], "the atom id"))
        for a, c in enumerate(axes):
            x[j, a] = parse_float(path, i + j + 1, fields[c], "a coordinate")
    lengths = bounds[:, 1] - bounds[:, 0]
    if family[3]:  # scaled coordinates
        x = bounds[: len(axes), 0] + x * lengths[: len(axes)]
    if ids:
        order = np.argsort(ids, kind="stable")
        x, names = x[order], [names[k] for k in order]
    if np.any(lengths[: len(axes)] <= 0):
        raise ValueError(f"{path}: BOX BOUNDS give non-positive box lengths {lengths.tolist()}.")
    return (step, lengths[: len(axes)], names, x, bounds), i + n
