"""Extended XYZ (the format of ASE and most atomistic tools): reader and writer."""

import base64
import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from ._frames import build_dataset, open_text, parse_float, parse_int, same_for_all_frames
from .dataset import FORMAT_NAME, FORMAT_VERSION, Dataset
from .files import atomic_write_text

# key, then optionally `= value` with value "double quoted", 'single quoted', {braced} or bare.
_PAIR = re.compile(r"""([^\s=]+)(?:\s*=\s*("(?:[^"\\]|\\.)*"|'[^']*'|\{[^}]*\}|\S+))?""")
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_HEADER_KEY = "mflows_header"
_RESERVED = {"lattice", "properties", "pbc", "energy", "t", "temperature", "system", _HEADER_KEY}
_SPECIES_PROPS = ("type", "species", "element", "z")


def parse_extxyz_comment(line: str) -> dict[str, str]:
    """`key=value` pairs of an extended-XYZ comment line (quotes removed; a bare key maps to
    `"T"`). Keys keep their case."""
    out = {}
    for m in _PAIR.finditer(line):
        key, value = m.group(1), m.group(2)
        if value is None:
            value = "T"
        elif value[0] == '"' and value[-1] == '"':
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        elif value[0] in "'{" and len(value) >= 2:
            value = value[1:-1]
        out[key] = value
    return out


def is_extxyz_header(line: str) -> bool:
    """Whether a comment line looks like extended XYZ (has `Lattice=` or `Properties=`)."""
    keys = {k.lower() for k in parse_extxyz_comment(line)} if "=" in line else set()
    return bool(keys & {"lattice", "properties"})


def _properties(path: Path, lineno: int, spec: str) -> dict[str, tuple[str, int, int]]:
    """`{name: (type, offset, count)}` from `Properties=name:T:count:...`."""
    parts = spec.split(":")
    if len(parts) % 3:
        raise ValueError(
            f"{path}, line {lineno}: Properties={spec} is not a list of name:type:count triples."
        )
    out, offset = {}, 0
    for k in range(0, len(parts), 3):
        name, kind = parts[k], parts[k + 1].upper()
        count = parse_int(path, lineno, parts[k + 2], f"the column count of property {name!r}")
        out[name.lower()] = (kind, offset, count)
        offset += count
    return out


def read_extxyz(path: str | os.PathLike) -> Dataset:
    """Read a multi-frame extended-XYZ file (written by `write_extxyz`, ASE, ParticlesMC ...).

    The box comes from `Lattice="ax ay az bx by bz cx cy cz"`, which must be orthogonal (a
    rectangular box). The dimension is the number of `pos` columns (`pos:R:2` is 2D), except
    that a zero third lattice vector means a 2D system stored with `z = 0` (as ASE writes
    it). Species come from a `type`, `species`, `element` or `Z` column. Per-frame `energy=`
    (total) or `potential_energy_per_particle=` gives `Dataset.energy`; `T=` (or
    `temperature=`) the temperature; `log_q`, `log_w`, `step` (and any per-sample arrays
    written by `write_extxyz`) go to `Dataset.extra`.

    Raises `ValueError` naming the file and line for malformed input, a non-rectangular box,
    and a header without `Lattice=` (the box).
    """
    path, lines = open_text(path)
    frames, i = [], 0
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
        frames.append(_parse_frame(path, i + 2, lines[i + 1], lines[i + 2 : i + 2 + n]))
        i += 2 + n
    if not frames:
        raise ValueError(f"{path}: no frames found; is it an extended XYZ file?")
    return _to_dataset(path, frames)


def _parse_frame(path: Path, lineno: int, comment: str, body: list[str]):
    info = parse_extxyz_comment(comment)
    lower = {k.lower(): v for k, v in info.items()}
    if "lattice" not in lower:
        raise ValueError(
            f'{path}, line {lineno}: the header lacks the box (no Lattice="..." entry), so the '
            "periodic box is unknown; add Lattice= with the three box vectors."
        )
    try:
        lattice = np.asarray([float(v) for v in lower["lattice"].split()]).reshape(3, 3)
    except ValueError:
        raise ValueError(
            f'{path}, line {lineno}: Lattice="{lower["lattice"]}" must hold 9 numbers.'
        ) from None
    scale = max(float(np.max(np.abs(lattice))), 1.0)
    if np.any(np.abs(lattice - np.diag(np.diag(lattice))) > 1e-12 * scale):
        raise ValueError(
            f"{path}, line {lineno}: Lattice is not a rectangular box (off-diagonal entries); "
            "only orthogonal periodic boxes are supported."
        )
    props = _properties(path, lineno, lower.get("properties", "species:S:1:pos:R:3"))
    if "pos" not in props:
        raise ValueError(f"{path}, line {lineno}: Properties has no `pos` column.")
    sp_name = next((c for c in _SPECIES_PROPS if c in props), None)
    if sp_name is None:
        raise ValueError(
            f"{path}, line {lineno}: Properties has no species column (type, species, element "
            "or Z)."
        )
    _, p0, k = props["pos"]
    _, s0, _ = props[sp_name]
    width = sum(c for _, _, c in props.values())
    names, x = [], np.empty((len(body), k))
    for j, row in enumerate(body):
        fields = row.split()
        if len(fields) < width:
            raise ValueError(
                f"{path}, line {lineno + 1 + j}: expected {width} values per particle "
                f"(Properties={lower.get('properties')}), got {len(fields)}."
            )
        names.append(fields[s0])
        for a in range(k):
            x[j, a] = parse_float(path, lineno + 1 + j, fields[p0 + a], "a coordinate")
    diag = np.diag(lattice)
    d = k
    if k == 3 and diag[2] == 0.0:  # 2D system stored with z = 0 and a zero third vector
        if np.any(x[:, 2] != 0.0):
            raise ValueError(
                f"{path}, line {lineno}: the third lattice vector is zero but some z "
                "coordinates are not; give the box its third length."
            )
        d = 2
    box = diag[:d]
    if np.any(box <= 0):
        raise ValueError(
            f"{path}, line {lineno}: the box lengths {box.tolist()} from Lattice must be "
            "positive for every axis holding coordinates."
        )
    return info, lower, box, names, x[:, :d]


def _float_or_array(path: Path, key: str, value: str):
    try:
        parts = [float(v) for v in value.replace(",", " ").split()]
    except ValueError:
        raise ValueError(f"{path}: per-frame entry {key}={value!r} must be numeric.") from None
    return parts[0] if len(parts) == 1 else np.asarray(parts)


def _to_dataset(path: Path, frames) -> Dataset:
    sizes = {f[4].shape for f in frames}
    if len(sizes) > 1:
        raise ValueError(
            f"{path}: frames differ in particle number or dimension ({sorted(sizes)}); a dataset "
            "holds one system."
        )
    lowers = [f[1] for f in frames]
    box = same_for_all_frames(path, [f[2] for f in frames], "box (Lattice)")
    n = frames[0][4].shape[0]
    header: dict[str, Any] = {}
    if _HEADER_KEY in lowers[0]:
        try:
            header = json.loads(base64.b64decode(lowers[0][_HEADER_KEY]).decode())
        except ValueError as exc:
            raise ValueError(f"{path}: unreadable {_HEADER_KEY} entry ({exc}).") from None

    def per_frame(key):
        if not all(key in low for low in lowers):
            return None
        return np.asarray([_float_or_array(path, key, low[key]) for low in lowers])

    energy = per_frame("energy")
    if energy is None and (u := per_frame("potential_energy_per_particle")) is not None:
        energy = u * n
    temps = per_frame("t")
    temps = per_frame("temperature") if temps is None else temps
    temperature = header.get("temperature")
    if temps is not None:
        temperature = float(same_for_all_frames(path, list(temps), "temperature"))
    extra_keys = header.get("extra_keys", ["log_q", "log_w", "step"])
    extra = {}
    for key in extra_keys:
        values = per_frame(key.lower())
        if values is not None:
            extra[key] = values
    system = header.get("system", lowers[0].get("system", ""))
    metadata = dict(header.get("metadata", {}))
    if not header:
        metadata["source"] = str(path)
        metadata["format"] = "extxyz"
        metadata["header"] = {
            k: v for k, v in frames[0][0].items() if k.lower() not in ("lattice", "properties")
        }
    return build_dataset(
        path,
        positions=np.stack([f[4] for f in frames]),
        frame_names=np.asarray([f[3] for f in frames]),
        box=box,
        species_order=header.get("species_names"),
        energy=energy,
        temperature=temperature,
        system=system,
        extra=extra,
        metadata=metadata,
    )


def _quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _number(v) -> str:
    return repr(float(v))


def write_extxyz(path: str | os.PathLike, dataset: Dataset) -> Path:
    """Write a `Dataset` as extended XYZ that ASE reads (`ase.io.read(path, index=":")`).

    One frame per sample: `Lattice` holds the box (a 2D box gets a zero third vector and
    `pbc="T T F"`, positions get `z = 0`), `Properties=type:S:1:pos:R:3` (species names in the
    `type` column; ASE sees them as dummy atoms `X` with `atoms.arrays["type"]`), `energy=` the
    total energy U (ASE: `atoms.get_potential_energy()`), `T=` the temperature, and every
    per-sample array of `dataset.extra` (`log_q`, `log_w`, ...) under its own key
    (`atoms.info`). The first frame also carries `mflows_header`, base64-encoded JSON with the
    species names, system, metadata and extra keys, so `read_extxyz` gives back the dataset.

    Written atomically (temporary file, then rename). Returns the path.
    """
    if not isinstance(dataset, Dataset):
        raise TypeError(f"write_extxyz needs a Dataset; got {type(dataset).__name__}.")
    d, n = dataset.dim, dataset.num_particles
    if d > 3:
        raise ValueError(f"extended XYZ holds at most 3 dimensions; this dataset has d={d}.")
    bad = [s for s in dataset.species_names if not s or any(c.isspace() for c in s)]
    if bad:
        raise ValueError(
            f"species names {bad} are empty or contain spaces, which extended XYZ cannot hold; "
            "rename the species."
        )
    for key, v in dataset.extra.items():
        if not _KEY.match(key) or key.lower() in _RESERVED:
            raise ValueError(
                f"extra array name {key!r} cannot be an extended-XYZ key (letters, digits, _; "
                f"not one of {sorted(_RESERVED)}); rename it or save as .npz."
            )
        if v.ndim > 2 or not np.issubdtype(v.dtype, np.number):
            raise ValueError(
                f"extra[{key!r}] has shape {v.shape} and dtype {v.dtype}; extended XYZ holds "
                "one number or one vector of numbers per sample. Save as .npz instead."
            )
    header = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "species_names": list(dataset.species_names),
        "system": dataset.system,
        "temperature": dataset.temperature,
        "metadata": dataset.metadata,
        "extra_keys": sorted(dataset.extra),
        "dim": d,
    }
    encoded = base64.b64encode(json.dumps(header, default=_json_default).encode()).decode()
    box3 = np.zeros(3)
    box3[:d] = dataset.box
    lattice = " ".join(_number(v) for v in np.diag(box3).reshape(-1))
    pbc = " ".join("T" if a < d else "F" for a in range(3))
    common = f'Lattice="{lattice}" Properties=type:S:1:pos:R:3 pbc="{pbc}"'
    if dataset.temperature is not None:
        common += f" T={_number(dataset.temperature)}"
    if dataset.system:
        common += f" system={_quote(dataset.system)}"
    names = np.asarray(dataset.species_names, dtype=object)[dataset.species]
    pos3 = np.zeros((dataset.num_samples, n, 3))
    pos3[:, :, :d] = dataset.positions
    chunks = []
    for r in range(dataset.num_samples):
        comment = common
        if dataset.energy is not None:
            comment += f" energy={_number(dataset.energy[r])}"
        for key in sorted(dataset.extra):
            v = np.asarray(dataset.extra[key][r])
            text = _number(v) if v.ndim == 0 else _quote(" ".join(_number(a) for a in v))
            comment += f" {key}={text}"
        if r == 0:
            comment += f' {_HEADER_KEY}="{encoded}"'
        rows = "\n".join(
            f"{s} {x!r} {y!r} {z!r}" for s, (x, y, z) in zip(names, pos3[r].tolist(), strict=True)
        )
        chunks.append(f"{n}\n{comment}\n{rows}\n")
    return atomic_write_text(path, "".join(chunks))


def _json_default(obj):
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"metadata value of type {type(obj).__name__} is not JSON-serialisable")
