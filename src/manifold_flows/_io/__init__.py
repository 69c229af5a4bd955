from .dataset import Dataset as Dataset
from .extxyz import read_extxyz as read_extxyz, write_extxyz as write_extxyz
from .files import (
    atomic_write_bytes as atomic_write_bytes,
    atomic_write_text as atomic_write_text,
    sha256_file as sha256_file,
)
from .lammps import read_lammps_dump as read_lammps_dump
from .load import (
    load_configurations as load_configurations,
    save_configurations as save_configurations,
)
from .manifest import environment_info as environment_info, write_manifest as write_manifest
from .xyz import read_xyz as read_xyz

__all__ = [
    "Dataset",
    "atomic_write_bytes",
    "atomic_write_text",
    "environment_info",
    "load_configurations",
    "read_extxyz",
    "read_lammps_dump",
    "read_xyz",
    "save_configurations",
    "sha256_file",
    "write_extxyz",
    "write_manifest",
]
