from .dataset import Dataset as Dataset
from .files import (
    atomic_write_bytes as atomic_write_bytes,
    atomic_write_text as atomic_write_text,
    sha256_file as sha256_file,
)
from .manifest import environment_info as environment_info, write_manifest as write_manifest

__all__ = [
    "Dataset",
    "atomic_write_bytes",
    "atomic_write_text",
    "environment_info",
    "sha256_file",
    "write_manifest",
]
