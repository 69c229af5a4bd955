"""The run directory: what `fit` writes, and `load_run`, which reads a trained model back.

Layout of a run directory (all files written atomically):

- `run.json`: what is needed to rebuild the model and interpret its samples: the model spec
  (`ModelConfig`), the space (`"torus"` or `"euclidean"`, box, number of particles), the
  species vector and names, system name, temperature, the `TrainConfig`, the interpolant and
  coupling, and a fingerprint of the training data.
- `checkpoint.eqx`: the latest `TrainState` (`eqx.tree_serialise_leaves`): raw and EMA
  weights, optimiser state, step, PRNG key; followed by the metrics window (the steps since
  the last metrics record), so a resumed run writes the records of an uninterrupted one.
- `checkpoint.json`: step, epoch and validation loss of that checkpoint.
- `metrics.jsonl`: one JSON object per logged step (step, epoch, loss, val_loss, lr,
  grad_norm, steps_per_s). A record is written before the checkpoint of its step.
- written by `mflows train` only: `config.toml` (the resolved configuration; rerun it with
  `mflows train --config`), `manifest.json` (versions, seeds, data checksum, device,
  precision).
"""

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .._interpolant import (
    AbstractInterpolant,
    GeodesicInterpolant,
    LinearInterpolant,
    StochasticInterpolant,
    build_interpolant,
)
from .._io import atomic_write_text
from .._manifold import AbstractManifold, Euclidean, FlatTorus, ParticleSpace
from .checkpoint import load_checkpoint
from .config import ModelConfig, TrainConfig
from .state import TrainState, init_train_state, make_optimizer

RUN_INFO = "run.json"
CHECKPOINT = "checkpoint.eqx"
CHECKPOINT_INFO = "checkpoint.json"
METRICS = "metrics.jsonl"
CONFIG = "config.toml"
MANIFEST = "manifest.json"

RUN_FORMAT = "manifold_flows.run"
RUN_FORMAT_VERSION = 1


def describe_interpolant(interpolant: AbstractInterpolant) -> dict[str, Any]:
    """A JSON description of an interpolant (`name` is `None` for user-defined ones)."""
    if isinstance(interpolant, StochasticInterpolant):
        return {
            "name": "stochastic",
            "gamma_scale": interpolant.scale,
            "gamma_schedule": interpolant.schedule,
        }
    if isinstance(interpolant, GeodesicInterpolant):
        return {"name": "geodesic"}
    if isinstance(interpolant, LinearInterpolant):
        return {"name": "linear"}
    return {"name": None, "class": type(interpolant).__name__}


def flow_space_kind(interpolant: AbstractInterpolant) -> str:
    """`"torus"` when the interpolant moves particles on the torus, `"euclidean"` for the
    linear interpolant (the flow then lives in R^{n d}), else the manifold's class name."""
    if isinstance(interpolant, LinearInterpolant):
        return "euclidean"
    manifold = getattr(interpolant, "manifold", None)
    if isinstance(manifold, FlatTorus):
        return "torus"
    return type(manifold).__name__ if manifold is not None else type(interpolant).__name__


def data_fingerprint(positions: np.ndarray, species: np.ndarray, box: np.ndarray) -> str:
    """SHA-256 of the data arrays (used to refuse resuming a run on different data)."""
    import hashlib

    h = hashlib.sha256()
    for a in (positions, species, box):
        a = np.ascontiguousarray(a)
        h.update(str((a.dtype.str, a.shape)).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default))


def _json_default(obj):
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON-serialisable: {type(obj).__name__}")


def read_run_info(run_dir: str | os.PathLike) -> dict[str, Any]:
    """Read `run_dir/run.json`, with errors that say how to make one."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(
            f"run directory {run_dir} does not exist; create it by training, e.g. `mflows train "
            f"--config run.toml --run-dir {run_dir}` or manifold_flows.fit(..., run_dir=...)."
        )
    path = run_dir / RUN_INFO
    if not path.is_file():
        raise FileNotFoundError(
            f"{run_dir} is not a training run directory (no {RUN_INFO}); create one with "
            f"`mflows train --config run.toml --run-dir {run_dir}`."
        )
    try:
        info = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read {path}: {exc}") from exc
    if info.get("format") != RUN_FORMAT:
        raise ValueError(f"{path} is not a manifold_flows run description.")
    if int(info.get("version", 0)) > RUN_FORMAT_VERSION:
        raise ValueError(
            f"{path} was written by a newer manifold_flows (run format version "
            f"{info['version']}); upgrade the package to read it."
        )
    return info


def space_from_info(info: dict[str, Any]) -> tuple[ParticleSpace, FlatTorus]:
    """`(space the flow lives in, torus of the box)` described by a run's `run.json`."""
    box = [float(v) for v in info["box"]]
    torus = FlatTorus(box)
    n = int(info["num_particles"])
    kind = info["space"]
    if kind == "torus":
        return ParticleSpace(torus, n), torus
    if kind == "euclidean":
        return ParticleSpace(Euclidean(len(box)), n), torus
    raise ValueError(
        f"the run's flow space {kind!r} is not one load_run can rebuild (torus, euclidean)."
    )


@dataclasses.dataclass(frozen=True)
class TrainedRun:
    """A trained model read back from a run directory (`load_run`).

    **Fields:**

    - `field`: the vector field with the EMA weights (use this one for sampling).
    - `raw_field`: the same field with the raw (last optimiser step) weights.
    - `space`: the space the flow lives in, a `ParticleSpace` over `FlatTorus(box)` (eRSI,
      RSI) or over `Euclidean(d)` (eFM).
    - `torus`: the periodic box of the data. The base distribution of every run is uniform
      on `ParticleSpace(torus, n)` (`log p0 = -n log|box|`); samples of a Euclidean flow are
      wrapped onto `torus` at the end.
    - `species`: int32 species vector `(n,)`, passed to the field as `args`.
    - `species_names`, `system`, `temperature`: of the training data (`temperature` may be
      `None`, `system` `""`).
    - `config`: the `TrainConfig`; `model`: the `ModelConfig` (or `None` for a field passed
      by the user); `interpolant`: rebuilt from the run (or `None` if user-defined).
    - `step`, `epoch`: where the checkpoint was taken; `run_dir`; `info`: the raw `run.json`.
    """

    field: Any
    raw_field: Any
    space: AbstractManifold
    torus: FlatTorus
    species: jax.Array
    species_names: tuple[str, ...]
    system: str
    temperature: float | None
    config: TrainConfig
    model: ModelConfig | None
    interpolant: AbstractInterpolant | None
    step: int
    epoch: int
    run_dir: Path
    info: dict[str, Any]

    @property
    def num_particles(self) -> int:
        return int(self.species.shape[0])

    @property
    def dtype(self):
        return jnp.dtype(self.config.dtype)


def _state_skeleton(info: dict[str, Any], field) -> TrainState:
    config = TrainConfig.from_dict(info["train"])
    optimizer = make_optimizer(config, int(info["total_steps"]))
    return init_train_state(field, optimizer, key=jax.random.key(0), dtype=config.dtype)


def load_run(run_dir: str | os.PathLike, *, like=None) -> TrainedRun:
    """Read a trained model from a run directory written by `fit` / `mflows train`.

    **Arguments:**

    - `run_dir`: the run directory.
    - `like`: a field with the run's structure, needed only when the run was trained on a
      field passed to `fit` as a module (not a `ModelConfig`), since then the run cannot
      rebuild it.

    **Returns:**

    A `TrainedRun` (EMA and raw fields, space, torus, species, system, temperature, config).

    **Raises:**

    `FileNotFoundError` naming the directory and how to create it when it is missing or has no
    checkpoint yet; `ValueError` when the files do not match (other model, damaged file).
    """
    run_dir = Path(run_dir)
    info = read_run_info(run_dir)
    ckpt = run_dir / CHECKPOINT
    if not ckpt.is_file():
        raise FileNotFoundError(
            f"run directory {run_dir} has no checkpoint ({CHECKPOINT}) yet: training has not "
            "reached its first checkpoint (end of the first epoch). Train it with `mflows train "
            f"--config run.toml --run-dir {run_dir}` (add --resume to continue)."
        )
    config = TrainConfig.from_dict(info["train"])
    if config.dtype == "float64" and not jax.config.jax_enable_x64:
        raise ValueError(
            f"the run in {run_dir} was trained in float64; enable it first with "
            "jax.config.update('jax_enable_x64', True)."
        )
    space, torus = space_from_info(info)
    species = jnp.asarray(np.asarray(info["species"], dtype=np.int32))
    model = ModelConfig.from_dict(info["model"]) if info.get("model") else None
    if like is None:
        if model is None:
            raise ValueError(
                f"the run in {run_dir} trained a user-built field ({info.get('field_class')}); "
                "pass a field of the same structure as load_run(run_dir, like=field)."
            )
        like = model.build(
            torus,
            len(info["species"]),
            len(info["species_names"]),
            key=jax.random.key(0),
        )
    state = load_checkpoint(ckpt, _state_skeleton(info, like))
    ckpt_info = {}
    if (run_dir / CHECKPOINT_INFO).is_file():
        try:
            ckpt_info = json.loads((run_dir / CHECKPOINT_INFO).read_text())
        except (OSError, json.JSONDecodeError):
            ckpt_info = {}
    step = int(state.step)
    spe = max(1, int(info.get("steps_per_epoch", 1)))
    interp_info = info.get("interpolant") or {}
    interpolant = None
    if interp_info.get("name"):
        interpolant = build_interpolant(
            interp_info["name"],
            torus,
            gamma_scale=interp_info.get("gamma_scale", 0.1),
            gamma_schedule=interp_info.get("gamma_schedule", "sqrt"),
        )
    return TrainedRun(
        field=state.ema_params,
        raw_field=state.params,
        space=space,
        torus=torus,
        species=species,
        species_names=tuple(info["species_names"]),
        system=str(info.get("system") or ""),
        temperature=info.get("temperature"),
        config=config,
        model=model,
        interpolant=interpolant,
        step=step,
        epoch=int(ckpt_info.get("epoch", step // spe)),
        run_dir=run_dir,
        info=info,
    )
