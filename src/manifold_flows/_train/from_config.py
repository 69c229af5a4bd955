"""Training from a configuration mapping (the TOML files of `mflows train`).

A configuration has a top-level `run_dir` and the tables `[data]` (`path`, or `system` and
`temperature` to find `data/<system>_T<temperature>.npz`), `[model]` (`ModelConfig`),
`[interpolant]` (`name`, `gamma_scale`, `gamma_schedule`), `[coupling]` (`name`,
`point_group`, `metric`) and `[train]` (`TrainConfig`). Everything is validated, and the data
checked against the configuration, before any training compute is spent.
"""

import dataclasses
import json
import math
import tomllib
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from .._arguments import argument
from .._coupling import AbstractCoupling, build_coupling
from .._interpolant import GAMMA_SCHEDULES, AbstractInterpolant, build_interpolant
from .._io import Dataset, write_manifest
from .._manifold import Euclidean, FlatTorus
from .config import ModelConfig, TrainConfig
from .fit import TrainResult, fit, split_indices
from .run import CONFIG

#: Allowed keys of each table (top-level scalars are listed under "").
CONFIG_KEYS: dict[str, tuple[str, ...]] = {
    "": ("run_dir",),
    "data": ("path", "system", "temperature", "format"),
    "model": tuple(f.name for f in dataclasses.fields(ModelConfig)),
    "interpolant": ("name", "gamma_scale", "gamma_schedule"),
    "coupling": ("name", "point_group", "metric"),
    "train": tuple(f.name for f in dataclasses.fields(TrainConfig)),
}
COUPLING_METRICS = ("auto", "torus", "euclidean")


def default_data_path(system: str, temperature: float) -> Path:
    """Where a dataset for `system` at `temperature` is looked for: `data/<system>_T<T>.npz`."""
    return Path("data") / f"{system}_T{float(temperature):g}.npz"


# ------------------------------------------------------------------------------ parsing
def read_config(path) -> dict[str, Any]:
    """Read a TOML training configuration."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path} is not valid TOML: {exc}") from exc


def _parse_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text  # a bare word: keep it as a string (e.g. name=geodesic)


def apply_overrides(config: dict[str, Any], assignments: list[str]) -> dict[str, Any]:
    """Apply `section.key=value` assignments (values parsed as TOML, else taken as strings);
    `run_dir=...` sets the top-level key. Returns a new mapping."""
    config = {k: dict(v) if isinstance(v, dict) else v for k, v in config.items()}
    for item in assignments:
        if "=" not in item:
            raise ValueError(f"--set expects section.key=value (e.g. train.lr=3e-4); got {item!r}.")
        target, text = item.split("=", 1)
        target = target.strip()
        section, _, key = target.rpartition(".")
        if section not in CONFIG_KEYS or key not in CONFIG_KEYS[section]:
            valid = sorted(f"{s}.{k}" if s else k for s, ks in CONFIG_KEYS.items() for k in ks)
            raise ValueError(f"--set: unknown key {target!r}; valid keys: {', '.join(valid)}.")
        if section:
            config.setdefault(section, {})[key] = _parse_value(text.strip())
        else:
            config[key] = _parse_value(text.strip())
    return config


def check_config_keys(config: dict[str, Any]) -> None:
    """Unknown tables or keys raise `ValueError` naming them and the valid ones."""
    for key, value in config.items():
        if isinstance(value, dict):
            if key not in CONFIG_KEYS or key == "":
                raise ValueError(
                    f"unknown config table [{key}]; valid tables: "
                    f"{', '.join(f'[{s}]' for s in CONFIG_KEYS if s)}."
                )
            bad = sorted(set(value) - set(CONFIG_KEYS[key]))
            if bad:
                raise ValueError(
                    f"unknown key(s) {', '.join(bad)} in [{key}]; valid keys: "
                    f"{', '.join(CONFIG_KEYS[key])}."
                )
        elif key not in CONFIG_KEYS[""]:
            raise ValueError(
                f"unknown top-level config key {key!r}; valid: {', '.join(CONFIG_KEYS[''])} and "
                "the tables [data], [model], [interpolant], [coupling], [train]."
            )


def dump_toml(config: dict[str, Any]) -> str:
    """Write a configuration mapping (scalars, lists, one level of tables) as TOML."""

    def value(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, np.integer)):
            return str(int(v))
        if isinstance(v, (float, np.floating)):
            v = float(v)
            if math.isnan(v):
                return "nan"
            if math.isinf(v):
                return "inf" if v > 0 else "-inf"
            return repr(v)
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(value(x) for x in v) + "]"
        raise TypeError(f"cannot write {type(v).__name__} to TOML")

    lines = [
        f"{k} = {value(v)}" for k, v in config.items() if not isinstance(v, dict) and v is not None
    ]
    for section, table in config.items():
        if isinstance(table, dict):
            lines.append("")
            lines.append(f"[{section}]")
            lines.extend(f"{k} = {value(v)}" for k, v in table.items() if v is not None)
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------ resolution
@dataclasses.dataclass(frozen=True)
class RunSetup:
    """A validated training setup: the objects `fit` needs and the resolved configuration."""

    config: dict[str, Any]
    dataset: Dataset
    data_path: Path
    model: ModelConfig
    interpolant: AbstractInterpolant | None
    coupling: AbstractCoupling | None
    train: TrainConfig
    run_dir: Path


def _check_against_system(dataset: Dataset, system: str, data_path: Path) -> None:
    from .._energy.presets import get_system, list_systems

    if system not in list_systems():
        raise ValueError(
            f"[data] system {system!r} is not a known preset; choose one of "
            f"{', '.join(list_systems())}, or drop it and give [data] path only."
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the image-convention notice is about the energy
        preset = get_system(system)
    where = f"the config says system {system!r}"
    if dataset.system in list_systems() and dataset.system != system:
        raise ValueError(f"{where} but the dataset {data_path} is for {dataset.system!r}.")
    if dataset.num_particles != preset.num_particles or dataset.dim != preset.dim:
        raise ValueError(
            f"{where} (N={preset.num_particles}, d={preset.dim}) but the dataset {data_path} has "
            f"N={dataset.num_particles}, d={dataset.dim}."
        )
    if not np.array_equal(np.bincount(dataset.species), np.bincount(preset.species)):
        raise ValueError(
            f"{where} (composition {preset.composition}) but the dataset {data_path} has "
            f"composition {dataset.composition}."
        )
    if not np.allclose(dataset.box, preset.box, rtol=1e-5):
        raise ValueError(
            f"{where} (box {preset.box.tolist()}) but the dataset {data_path} has box "
            f"{dataset.box.tolist()}."
        )


def setup_run(
    config: dict[str, Any],
    *,
    run_dir=None,
    data=None,
    config_name: str = "run",
    resume: bool = False,
) -> RunSetup:
    """Validate a configuration, read and check its dataset, and build the strategy objects.

    **Arguments:**

    - `config`: the configuration mapping (see the module docstring).
    - `run_dir`, `data`: override `run_dir` and `[data] path`.
    - `config_name`: used for the default run directory `runs/<config_name>`.
    - `resume`: the run continues from its own checkpoint, so `[train] init_from` is not read
      (the run it started from may be gone).

    **Returns:**

    A `RunSetup`. Every inconsistency (unknown names or keys, missing or empty data, data not
    matching `[data] system`/`temperature`, batch larger than the training split) raises a
    `ValueError`/`FileNotFoundError` here, before any training compute.
    """
    check_config_keys(config)
    config = {k: dict(v) if isinstance(v, dict) else v for k, v in config.items()}
    data_cfg = config.setdefault("data", {})
    if data is not None:
        data_cfg["path"] = str(data)
    if run_dir is not None:
        config["run_dir"] = str(run_dir)
    config.setdefault("run_dir", str(Path("runs") / config_name))

    model = ModelConfig.from_dict(config.get("model", {}))
    train = TrainConfig.from_dict(config.get("train", {}))
    _check_model_and_objective(model, train, config)
    interp_cfg = {"name": "geodesic", **config.get("interpolant", {})}
    coup_cfg = {
        "name": "species_ot",
        "point_group": False,
        "metric": "auto",
        **config.get("coupling", {}),
    }
    if interp_cfg.get("gamma_schedule", "sqrt") not in GAMMA_SCHEDULES:
        raise ValueError(
            f"[interpolant] gamma_schedule must be one of {', '.join(GAMMA_SCHEDULES)}; got "
            f"{interp_cfg['gamma_schedule']!r}."
        )
    if coup_cfg["metric"] not in COUPLING_METRICS:
        raise ValueError(
            f"[coupling] metric must be one of {', '.join(COUPLING_METRICS)}; got "
            f"{coup_cfg['metric']!r}."
        )
    # names are checked before the data is read
    build_interpolant(interp_cfg["name"], FlatTorus(1.0, dim=1))
    build_coupling(coup_cfg["name"], FlatTorus(1.0, dim=1), point_group=False)

    # ---- the data
    system = data_cfg.get("system")
    temperature = data_cfg.get("temperature")
    if "path" in data_cfg:
        data_path = Path(str(data_cfg["path"]))
    elif system is not None and temperature is not None:
        data_path = default_data_path(system, temperature)
        if not data_path.is_file():
            raise FileNotFoundError(
                f"no dataset for system {system!r} at T={temperature:g}: {data_path} does not "
                f"exist; make it with `mflows generate --system {system} --temperature "
                f"{temperature:g} --out {data_path}` or set [data] path (or --data)."
            )
        data_cfg["path"] = str(data_path)
    else:
        raise ValueError(
            "the config names no data: set [data] path (or pass --data PATH), or [data] system "
            "and temperature to use data/<system>_T<temperature>.npz."
        )
    if not data_path.is_file():
        raise FileNotFoundError(f"dataset file not found: {data_path}")
    from .._io import load_configurations

    dataset = load_configurations(data_path, format=data_cfg.get("format"))
    if dataset.num_samples == 0:
        raise ValueError(f"the dataset {data_path} is empty (0 configurations).")
    if not np.all(np.isfinite(dataset.positions)):
        raise ValueError(f"the dataset {data_path} has non-finite coordinates.")
    if system is not None:
        _check_against_system(dataset, str(system), data_path)
    if temperature is not None:
        t = float(temperature)
        if dataset.temperature is not None and not math.isclose(
            dataset.temperature, t, rel_tol=1e-6
        ):
            raise ValueError(
                f"the config says temperature {t:g} but the dataset {data_path} was made at "
                f"T={dataset.temperature:g}."
            )
    train_idx, _ = split_indices(dataset.num_samples, train)
    if train.batch_size > train_idx.size:
        raise ValueError(
            f"[train] batch_size {train.batch_size} is larger than the training split "
            f"({train_idx.size} of the {dataset.num_samples} samples in {data_path}); lower "
            "batch_size or use more data."
        )
    if model.field == "mlp" and not train.augment:
        warnings.warn(
            "the 'mlp' field is not equivariant; set [train] augment = true to train it with "
            "random symmetry augmentation (the RSI baseline).",
            stacklevel=2,
        )

    if train.init_from is not None and not resume:
        from .warm_start import check_init_from

        check_init_from(train.init_from, model)  # refused here, before training
    interpolant = coupling = None
    strategies = {}
    if model.is_coupling_flow:
        if train.objective in ("energy", "mixed"):
            _energy_system(data_cfg, dataset, data_path)  # refused here, before training
    else:
        torus = FlatTorus(tuple(float(v) for v in dataset.box))
        interpolant = build_interpolant(
            interp_cfg["name"],
            torus,
            gamma_scale=float(interp_cfg.get("gamma_scale", 0.1)),
            gamma_schedule=interp_cfg.get("gamma_schedule", "sqrt"),
        )
        metric = coup_cfg["metric"]
        if metric == "auto":
            metric = "euclidean" if interp_cfg["name"] == "linear" else "torus"
        manifold = Euclidean(dataset.dim) if metric == "euclidean" else torus
        point_group = bool(coup_cfg["point_group"])
        coupling = build_coupling(coup_cfg["name"], manifold, point_group=point_group)
        strategies = {"interpolant": interp_cfg, "coupling": coup_cfg}
    resolved = {
        "run_dir": config["run_dir"],
        "data": data_cfg,
        "model": model.to_dict(),
        **strategies,
        "train": train.to_dict(),
    }
    return RunSetup(
        config=resolved,
        dataset=dataset,
        data_path=data_path,
        model=model,
        interpolant=interpolant,
        coupling=coupling,
        train=train,
        run_dir=Path(config["run_dir"]),
    )


def _check_model_and_objective(model: ModelConfig, train: TrainConfig, config) -> None:
    """A coupling flow trains by a likelihood objective, a vector field by flow matching."""
    if model.is_coupling_flow and not train.likelihood_objective:
        raise ValueError(
            "[model] flow = 'augmented_coupling' trains by its likelihood: set [train] objective "
            "to 'ml' (data), 'energy' (the Boltzmann distribution) or 'mixed'."
        )
    if train.likelihood_objective and not model.is_coupling_flow:
        raise ValueError(
            f"[train] objective = {train.objective!r} needs a flow with a one-pass likelihood: "
            "set [model] flow = 'augmented_coupling' (a vector field trains with objective "
            "'flow_matching')."
        )
    if model.is_coupling_flow:
        extra = [f"[{t}]" for t in ("interpolant", "coupling") if t in config]
        if extra:
            raise ValueError(
                f"{' and '.join(extra)} mean nothing to [model] flow = 'augmented_coupling' "
                "(no interpolant, no pairing of data with base points): remove them."
            )


def _energy_system(data_cfg: dict[str, Any], dataset: Dataset, data_path: Path):
    """The preset whose energy the energy objective uses: `[data] system`, else the dataset's
    own system when it is a preset."""
    from .._energy.presets import get_system, list_systems

    name = data_cfg.get("system") or dataset.system
    if name not in list_systems():
        raise ValueError(
            f"the energy objective needs the system's energy: set [data] system to a preset "
            f"({', '.join(list_systems())}); the dataset {data_path} names "
            f"{dataset.system or 'no system'!r}."
        )
    temperature = data_cfg.get("temperature", dataset.temperature)
    if temperature is None:
        raise ValueError(
            f"the energy objective needs a temperature: set [data] temperature (the dataset "
            f"{data_path} records none)."
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the image-convention notice names the preset's own
        return get_system(str(name), temperature=float(temperature)), float(temperature)


#: What may change when a run is resumed (everything else must match the saved config).
_RESUME_FREE = {
    ("", "run_dir"),
    ("data", "path"),
    ("train", "epochs"),
    ("train", "log_every"),
    ("train", "checkpoint_every"),
}


def _check_same_config(saved: dict[str, Any], new: dict[str, Any], run_dir: Path) -> None:
    """Refuse (before anything is written) to resume a run with a different configuration."""

    def flat(config):
        out = {}
        for key, value in config.items():
            if isinstance(value, dict):
                out.update({(key, k): v for k, v in value.items()})
            else:
                out[("", key)] = value
        return out

    old, now = flat(saved), flat(new)
    diff = sorted(
        ".".join(k for k in key if k)
        for key in set(old) | set(now)
        if key not in _RESUME_FREE and old.get(key) != now.get(key)
    )
    if diff:
        raise ValueError(
            f"cannot resume the run in {run_dir} with a different configuration ({', '.join(diff)} "
            "changed); only train.epochs, train.log_every and train.checkpoint_every may change."
        )


def train_from_config(
    config: dict[str, Any],
    *,
    run_dir=None,
    data=None,
    resume: bool = False,
    progress: bool = True,
    config_name: str = "run",
    command: str = "train_from_config",
    parallel=None,
) -> TrainResult:
    """Validate `config` (`setup_run`), write the resolved `config.toml` and a manifest
    (versions, seeds, data checksum, device, precision) to the run directory, and train
    (`fit`, on the devices of `parallel`, an `AbstractParallelism`; default one device; in a
    multi-process run only process 0 writes files). Returns the `TrainResult`."""
    setup = setup_run(config, run_dir=run_dir, data=data, config_name=config_name, resume=resume)
    if setup.train.dtype == "float64":
        import jax

        jax.config.update("jax_enable_x64", True)
    run_dir = setup.run_dir
    from .._io.files import check_writable
    from .run import CHECKPOINT

    check_writable(run_dir / CONFIG, what="the run")
    if (run_dir / CHECKPOINT).is_file() and not resume:
        raise FileExistsError(
            f"{run_dir} already holds a training run; pass {argument('resume', True)} to "
            f"continue it or choose another {argument('run_dir')}."
        )
    if resume and not (run_dir / CHECKPOINT).is_file():
        # resuming nothing would start from step 0 and rewrite the run's metrics
        raise FileNotFoundError(
            f"cannot resume: {run_dir} holds no checkpoint ({CHECKPOINT}), so there is no run "
            f"to continue; leave out {argument('resume', True)} to start a new run there."
        )
    if resume and (run_dir / CHECKPOINT).is_file() and (run_dir / CONFIG).is_file():
        _check_same_config(read_config(run_dir / CONFIG), setup.config, run_dir)
    from .._io import atomic_write_text
    from .._parallel import is_main_process

    if is_main_process():
        import jax

        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / CONFIG, dump_toml(setup.config))
        devices = 1 if parallel is None else parallel.num_devices
        write_manifest(
            run_dir,
            command=command,
            config=setup.config,
            seeds={"seed": setup.train.seed, "split_seed": setup.train.split_seed},
            data_files=[setup.data_path],
            precision=setup.train.dtype,
            extra={
                "resumed": bool(resume),
                "devices": devices,
                "processes": jax.process_count(),
            },
        )
    if setup.model.is_coupling_flow:
        from .fit_likelihood import fit_likelihood

        if parallel is not None and parallel.num_devices > 1:
            raise ValueError(
                "the augmented coupling flow trains on one device; leave out --devices (or "
                "parallel=...)."
            )
        system = temperature = None
        needs_energy = setup.train.objective in ("energy", "mixed")
        if needs_energy or setup.train.val_num_samples:  # maximum likelihood: for the val ESS
            try:
                system, temperature = _energy_system(
                    setup.config["data"], setup.dataset, setup.data_path
                )
            except ValueError:
                if needs_energy:
                    raise
        return fit_likelihood(
            setup.model,
            setup.dataset,
            config=setup.train,
            system=system,
            temperature=temperature,
            run_dir=run_dir,
            resume=resume,
            progress=progress,
        )
    return fit(
        setup.model,
        setup.dataset,
        interpolant=setup.interpolant,
        coupling=setup.coupling,
        config=setup.train,
        run_dir=run_dir,
        resume=resume,
        progress=progress,
        parallel=parallel,
    )
