"""Reader for the atooms / ParticlesMC `xyz` dialect (the field's reference data)."""

import os
from pathlib import Path

import numpy as np

from ._frames import (
    build_dataset,
    open_text,
    parse_float,
    parse_int,
    same_for_all_frames,
)
from .dataset import Dataset

# Column names of the dialect and how many values they take (`None`: one per axis).
_VECTOR_COLUMNS = {"position", "pos", "x", "velocity", "vel", "v", "unwrapped_position"}
_SPECIES_COLUMNS = ("species", "name", "type", "element")
_POSITION_COLUMNS = ("position", "pos", "x")


def parse_atooms_header(line: str) -> dict[str, str]:
    """`key:value` pairs of an atooms `xyz` comment line (keys lower-cased)."""
    out = {}
    for token in line.split():
        key, sep, value = token.partition(":")
        if sep:
            out[key.lower()] = value
    return out


def is_atooms_header(line: str) -> bool:
    """Whether a comment line looks like the atooms dialect (`key:value` pairs with a known
    key, no extended-XYZ `key=value`)."""
    if "=" in line:
        return False
    keys = parse_atooms_header(line)
    return bool(keys.keys() & {"columns", "cell", "step", "rho", "t", "model"})


def read_xyz(path: str | os.PathLike) -> Dataset:
    """Read a multi-frame `xyz` file in the atooms / ParticlesMC dialect.

    Each frame: a line with N, a header of `key:value` pairs (`columns:species,position`,
    `cell:Lx,Ly[,Lz]`, `rho:`, `T:`, `model:`, `step:`, `potential_energy_per_particle:` ...; keys
    are case-insensitive), then N lines laid out as `columns` says (default `species,position`).

    Coordinates may be unwrapped or centred on 0: they are wrapped into `[0, L)`. Species names
    map to labels `0, 1, ...` in numeric (or string) order, and each frame is put in canonical
    order (see `Dataset.from_frames`).

    **Returns:**

    A `Dataset` with `energy = potential_energy_per_particle * N` (when every frame has it, or
    `potential_energy` as a total), `temperature` from `T`, `system` from `model`, the per-frame
    `step` in `extra["step"]`, and `rho`, `model` and the first header in `metadata`.

    Raises `ValueError` naming the file and line for malformed input, and when a header lacks
    the box (`cell:`).
    """
    path, lines = open_text(path)
    frames = []
    i = 0
    while i < len(lines):
        if not lines[i].strip():
            i += 1
            continue
        n = parse_int(path, i + 1, lines[i], "the number of particles")
        if i + 2 + n > len(lines):
            raise ValueError(
                f"{path}, line {i + 1}: frame {len(frames)} announces {n} particles but the file "
                f"ends after {max(len(lines) - i - 2, 0)} lines; is it truncated?"
            )
        header_line = lines[i + 1]
        header = parse_atooms_header(header_line)
        frames.append(_parse_frame(path, i + 3, header, lines[i + 2 : i + 2 + n], len(frames)))
        i += 2 + n
    if not frames:
        raise ValueError(f"{path}: no frames found; is it an xyz file?")
    return _to_dataset(path, frames)


def _parse_frame(path: Path, first_line: int, header: dict, body: list[str], index: int):
    if "cell" not in header:
        raise ValueError(
            f"{path}, line {first_line - 1}: the header of frame {index} lacks the box "
            "(no `cell:Lx,Ly` entry), so the periodic box is unknown; add it, or read a format "
            "that carries the box (extended XYZ `Lattice=`, LAMMPS dump)."
        )
    cell = [parse_float(path, first_line - 1, v, "cell") for v in header["cell"].split(",")]
    d = len(cell)
    columns = header.get("columns", "species,position").split(",")
    offsets, width = {}, 0
    for c in columns:
        offsets.setdefault(c.lower(), width)
        width += d if c.lower() in _VECTOR_COLUMNS else 1
    sp = next((offsets[c] for c in _SPECIES_COLUMNS if c in offsets), None)
    pos = next((offsets[c] for c in _POSITION_COLUMNS if c in offsets), None)
    if sp is None or pos is None:
        raise ValueError(
            f"{path}, line {first_line - 1}: columns:{','.join(columns)} must include a species "
            "column and a position column (e.g. columns:species,position)."
        )
    names, x = [], np.empty((len(body), d))
    for k, row in enumerate(body):
        fields = row.split()
        if len(fields) < width:
            raise ValueError(
                f"{path}, line {first_line + k}: expected {width} values "
                f"({','.join(columns)} in {d}D), got {len(fields)}."
            )
        names.append(fields[sp])
        for a in range(d):
            x[k, a] = parse_float(path, first_line + k, fields[pos + a], "a coordinate")
    return header, np.asarray(cell), names, x


def _to_dataset(path: Path, frames) -> Dataset:
    headers = [f[0] for f in frames]
    sizes = {f[3].shape for f in frames}
    if len(sizes) > 1:
        raise ValueError(
            f"{path}: frames differ in particle number or dimension ({sorted(sizes)}); a dataset "
            "holds one system."
        )
    box = same_for_all_frames(path, [f[1] for f in frames], "box (cell)")
    n = frames[0][3].shape[0]

    def per_frame(key):
        if not all(key in h for h in headers):
            return None
        try:
            return np.asarray([float(h[key]) for h in headers])
        except ValueError:
            raise ValueError(
                f"{path}: header entry `{key}:` must be a number in every frame."
            ) from None

    energy = per_frame("potential_energy_per_particle")
    energy = energy * n if energy is not None else per_frame("potential_energy")
    temps = per_frame("t")
    temperature = None
    if temps is not None:
        temperature = float(same_for_all_frames(path, list(temps), "temperature T"))
    steps = per_frame("step")
    model = headers[0].get("model", "")
    metadata = {"source": str(path), "format": "xyz (atooms)", "header": headers[0]}
    if model:
        metadata["model"] = model
    if "rho" in headers[0]:
        metadata["density"] = parse_float(path, 2, headers[0]["rho"], "rho")
    if temperature is not None:
        metadata["temperature"] = temperature
    return build_dataset(
        path,
        positions=np.stack([f[3] for f in frames]),
        frame_names=np.asarray([f[2] for f in frames]),
        box=box,
        energy=energy,
        temperature=temperature,
        system=model,
        extra={"step": steps} if steps is not None else {},
        metadata=metadata,
    )
