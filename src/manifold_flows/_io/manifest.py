"""Run manifests: what a run was made from (config, seeds, versions, data checksums, device)."""

import datetime
import json
import os
import platform
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from .files import atomic_write_text, sha256_file

_PACKAGES = ("manifold_flows", "jax", "jaxlib", "equinox", "diffrax", "optax", "numpy", "scipy")


def environment_info() -> dict[str, Any]:
    """Versions of the key packages, the JAX backend and devices, and the default precision."""
    import jax

    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": versions,
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "x64_enabled": bool(jax.config.jax_enable_x64),
    }


def write_manifest(
    run_dir: str | os.PathLike,
    *,
    command: str,
    config: dict[str, Any],
    seeds: dict[str, int] | None = None,
    data_files: list[str | os.PathLike] | None = None,
    precision: str | None = None,
    extra: dict[str, Any] | None = None,
    name: str = "manifest.json",
) -> Path:
    """Write `run_dir/<name>` (atomically) describing a run; returns its path."""
    files = {}
    for f in data_files or []:
        files[str(f)] = {"sha256": sha256_file(f), "bytes": Path(f).stat().st_size}
    manifest = {
        "command": command,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "config": config,
        "seeds": seeds or {},
        "data_files": files,
        "precision": precision,
        "environment": environment_info(),
        **(extra or {}),
    }
    return atomic_write_text(Path(run_dir) / name, json.dumps(manifest, indent=2, default=str))
