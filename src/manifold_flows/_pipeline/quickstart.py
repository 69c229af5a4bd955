"""`quickstart`: the whole eRSI pipeline in one call, into one folder.

Monte Carlo data (`generate_dataset`) -> flow-matching training of the torus EGNN
(`train_from_config`) -> samples with exact log q (`sample_to_file`) -> evaluation against the
Monte Carlo data (`evaluate_runs`), plus a picture of one generated configuration. Layout:

    <out>/quickstart.json      settings and stage times (a resumed call must match the settings)
    <out>/data/<system>_T<T>.npz (+ .extxyz, manifest)
    <out>/run/                 the training run (config.toml, checkpoint, metrics, manifest)
    <out>/samples/samples.npz  (+ .extxyz, manifest)
    <out>/report/              report.json, summary.md, PNG plots, configuration.png,
                               overview.png

Every stage uses its own resume mechanism: `resume=True` skips finished stages and continues an
interrupted one (Monte Carlo blocks, training checkpoints, sample chunks).
"""

import dataclasses
import json
import math
import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .._arguments import argument
from .._energy import ImageConventionWarning, get_system
from .._io import atomic_write_text, load_configurations
from .._mc.generate import checkpoint_dir_for, generate_dataset
from .._train.from_config import train_from_config
from .._train.run import CHECKPOINT
from . import plots as plot_figures
from .chunks import sample_paths
from .evaluate import REPORT, SUMMARY, add_plots, evaluate_runs
from .sample import _check_int, resolve_batching, sample_to_file
from .summary import format_number

STATE = "quickstart.json"
STAGES = ("data", "train", "sample", "report")
LABEL = "eRSI"
#: The eRSI model of the paper (examples/configs/ersi_ipl_n10.toml): torus EGNN of width 32
#: and depth 3 with attention, geodesic interpolant, Hungarian pairing within each species.
ERSI_MODEL = {"field": "torus_egnn", "width": 32, "depth": 3, "attention": True, "tanh_bound": True}
ERSI_TRAIN = {
    "lr": 1e-3,
    "clip": 5.0,
    "ema_decay": 0.999,
    "val_fraction": 0.1,
    "schedule": "constant",
    "dtype": "float32",
    "log_every": 50,
}
MAX_BATCH = 256
#: The checks of `likelihood_audit` that concern the trained model (the known-answer and
#: Hutchinson checks test the machinery, which the test suite covers).
AUDIT_CHECKS = ("on_manifold", "forward_reverse", "exact_divergence", "group_invariance")
CONFIGURATION_PNG = "configuration.png"
OVERVIEW_PNG = "overview.png"


@dataclasses.dataclass(frozen=True)
class QuickstartResult:
    """What `quickstart` returns.

    **Fields:** `out_dir`; `paths` (`data`, `run`, `samples`, `report`, `summary`,
    `configuration`, `overview`); `report` (the `evaluate_runs` report dict); `seconds` and
    `cpu_seconds` (wall-clock and CPU time of each stage in this call; a stage skipped on
    resume takes ~0); `settings` (the resolved settings, as written to `quickstart.json`).
    """

    out_dir: Path
    paths: dict[str, Path]
    report: dict[str, Any]
    seconds: dict[str, float]
    cpu_seconds: dict[str, float]
    settings: dict[str, Any]

    def summary_lines(self) -> list[str]:
        """The closing lines of a quickstart: where the report is and its key numbers."""
        report = self.report
        run, ref = report["runs"][LABEL], report["reference"]
        w, u, cv = run["weights"], run["u"], run["c_v"]

        def pm(value, error):
            if value is None:
                return "n/a"
            return f"{value:.5g} +- {error:.2g}" if error is not None else f"{value:.5g}"

        khat = format_number(w["khat"], 3)  # also "inf"/"-inf", as the JSON report holds them

        lines = [
            f"report: {self.paths['summary']} (plots in {self.paths['report']})",
            f"  ESS = {w['ess']:.1f} of R = {run['num_samples']} "
            f"(ESS/R = {w['ess_fraction']:.3g}), Pareto k-hat {khat} ({w['khat_status']})",
            f"  u = U/N:  raw {pm(u['raw'], u['raw_err'])}   reweighted "
            f"{pm(u['reweighted'], u['reweighted_err'])}   Monte Carlo "
            f"{pm(ref['u']['value'], ref['u']['error'])}",
            f"  c_v:      raw {pm(cv['raw'], cv['raw_err'])}   reweighted "
            f"{pm(cv['reweighted'], cv['reweighted_err'])}   Monte Carlo "
            f"{pm(ref['c_v']['value'], ref['c_v']['error'])}",
            f"  high-energy share: {100 * run['high_energy_fraction']:.1f} % of the raw samples "
            "above twice the largest Monte Carlo energy",
        ]
        if report.get("audit_passed") is not None:
            verdict = "passed" if report["audit_passed"] else "FAILED (see the report)"
            lines.append(f"  likelihood audit: {verdict}")
        times = ", ".join(
            f"{k} {v:.0f} s ({self.cpu_seconds.get(k, math.nan):.0f} s CPU)"
            for k, v in self.seconds.items()
        )
        lines.append(f"  stage times: {times}")
        return lines


def _layout(out_dir: Path, system: str, temperature: float) -> dict[str, Path]:
    data = out_dir / "data" / f"{system}_T{temperature:g}.npz"
    report = out_dir / "report"
    return {
        "data": data,
        "extxyz": data.with_suffix(".extxyz"),
        "run": out_dir / "run",
        "samples": out_dir / "samples" / "samples.npz",
        "report": report,
        "summary": report / SUMMARY,
        "configuration": report / CONFIGURATION_PNG,
        "overview": report / OVERVIEW_PNG,
    }


def _training_plan(mc_samples: int, val_fraction: float, steps: int) -> dict[str, int]:
    """Batch size, steps per epoch and epochs giving at least `steps` steps on the training
    split (the same split `fit` makes)."""
    from .._train import TrainConfig
    from .._train.fit import split_indices

    num_train = split_indices(mc_samples, TrainConfig(val_fraction=val_fraction))[0].size
    batch = min(MAX_BATCH, num_train)
    per_epoch = num_train // batch
    epochs = max(1, math.ceil(steps / per_epoch))
    return {
        "batch_size": batch,
        "steps_per_epoch": per_epoch,
        "epochs": epochs,
        "steps": epochs * per_epoch,
    }


def _prepare_folder(out_dir: Path, settings: dict[str, Any], resume: bool) -> None:
    state = out_dir / STATE
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsError(f"{argument('out_dir')} {str(out_dir)!r} is a file; choose a folder.")
    if state.is_file():
        if not resume:
            raise FileExistsError(
                f"{out_dir} already holds a quickstart; pass {argument('resume', True)} to "
                f"continue it, or choose another folder ({argument('out_dir')})."
            )
        try:
            saved = json.loads(state.read_text())["settings"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(
                f"cannot read {state} ({exc}); choose another folder ({argument('out_dir')}) "
                "to start over."
            ) from exc
        diff = sorted(k for k in set(saved) | set(settings) if saved.get(k) != settings.get(k))
        if diff:
            detail = "; ".join(
                f"{k}: {saved.get(k)!r} saved, {settings.get(k)!r} now" for k in diff
            )
            raise ValueError(
                f"cannot resume the quickstart in {out_dir}: settings differ ({detail}); resume "
                f"with the same options, or choose another folder ({argument('out_dir')}) to "
                "start over."
            )
    elif out_dir.is_dir() and any(out_dir.iterdir()):
        raise FileExistsError(
            f"{out_dir} exists and is not an (empty) quickstart folder; choose another folder "
            f"({argument('out_dir')})."
        )


class _StageClock:
    """Wall-clock and CPU seconds of each stage, written to `quickstart.json` as they finish
    (CPU seconds add up every thread of the process: on a busy machine they say what the
    stage would take alone)."""

    def __init__(self, out_dir: Path, settings: dict[str, Any]):
        self.path = out_dir / STATE
        self.settings = settings
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self._start = (0.0, 0.0)
        self.write()

    def start(self) -> None:
        self._start = (time.perf_counter(), time.process_time())

    def stop(self, stage: str) -> None:
        self.wall[stage] = time.perf_counter() - self._start[0]
        self.cpu[stage] = time.process_time() - self._start[1]
        self.write()

    def write(self) -> None:
        state = {"settings": self.settings, "seconds": self.wall, "cpu_seconds": self.cpu}
        atomic_write_text(self.path, json.dumps(state, indent=2) + "\n")


def _diameters(parameters: dict[str, Any], num_species: int) -> np.ndarray:
    """Particle diameters sigma_aa of each species (the scale of the pair potential)."""
    sigma = np.asarray(parameters.get("sigma", 1.0), dtype=np.float64)
    if sigma.ndim == 0:
        return np.full(num_species, float(sigma))
    return np.diag(sigma)[:num_species]


def quickstart(
    out_dir: str | os.PathLike = "mflows-quickstart",
    *,
    system: str = "ipl-n10",
    temperature: float | None = None,
    chains: int = 100,
    mc_samples: int = 10_000,
    sweeps_between: int = 300,
    equilibration: int = 3000,
    steps: int = 2000,
    num_samples: int = 500,
    chunk_size: int | None = None,
    batching: str | None = None,
    audit: bool = True,
    seed: int = 0,
    resume: bool = False,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    command: str | None = None,
) -> QuickstartResult:
    """Run the whole eRSI pipeline on a preset system, writing everything into one folder.

    1. **data**: `mc_samples` equilibrium configurations from `chains` Monte Carlo chains with
       swaps (`generate_dataset`), annealed from `10 T` during `equilibration` sweeps, one
       sample per chain every `sweeps_between` sweeps.
    2. **train**: flow matching with the eRSI model (torus EGNN, geodesic interpolant, Hungarian
       pairing within each species; `train_from_config`) for at least `steps` optimiser steps
       (whole epochs of batches of `min(256, training split)`).
    3. **sample**: `num_samples` samples with their exact log q, energy and log weight
       `log w = -U/T - log q` (`sample_to_file`, Dormand-Prince at rtol = atol = 1e-5, float64).
    4. **report**: ESS, ESS/R, Pareto k-hat, u and c_v raw and reweighted next to the Monte
       Carlo reference, the high-energy share, g(r) and energy plots (`evaluate_runs`, with the
       likelihood audit when `audit`), and `configuration.png` (the generated configuration
       with the largest weight) and `overview.png` (that configuration next to g(r)).

    **Arguments:**

    - `out_dir`: the output folder (created; must be new or empty unless `resume`).
    - `system`: a preset name (`list_systems()`).
    - `temperature`: the target temperature (default: the preset's).
    - `chains`, `mc_samples`: Monte Carlo chains and the total number of samples (a multiple
      of `chains`).
    - `sweeps_between`, `equilibration`: Monte Carlo sweeps between the samples of a chain,
      and before the first one.
    - `steps`: minimum number of training steps.
    - `num_samples`: generated samples R.
    - `chunk_size`, `batching`: the chunking of the sampler (see `sample_to_file`; default:
      the backend's `batching_defaults()`).
    - `audit`: run the likelihood audit on the trained flow (`AUDIT_CHECKS`: samples on the
      torus, forward against reverse log q, exact divergence against the Jacobian trace,
      invariance of log q under the symmetry group).
    - `seed`: seeds the data, the training and the sample stream.
    - `resume`: continue a quickstart in `out_dir` (with the same settings).
    - `progress`: progress bars and stage lines.
    - `log`: where the stage lines go (default `print` when `progress`, else nowhere).
    - `command`: the command line recorded in the manifests.

    **Returns:**

    A `QuickstartResult`.

    **Raises:**

    `ValueError` for a bad option or settings that differ from the folder's (before any
    compute), `FileExistsError` for a folder that already holds something else (or a finished
    quickstart without `resume`), and the errors of the stages.
    """
    # ---- every option is checked before any work
    with warnings.catch_warnings(record=True) as notes:
        # said at stage 1 (not before an error about another option)
        warnings.simplefilter("always", ImageConventionWarning)
        preset = get_system(system, temperature=temperature)  # names the presets if unknown
    temperature = float(preset.default_temperature if temperature is None else temperature)
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(
            f"{argument('temperature')} must be a positive number; got {temperature!r}."
        )
    chains = _check_int("chains", chains, 1)
    mc_samples = _check_int("mc_samples", mc_samples, 2)
    if mc_samples % chains:
        raise ValueError(
            f"{argument('mc_samples')} ({mc_samples}) must be a multiple of "
            f"{argument('chains')} ({chains}): every chain gives the same number of samples; "
            f"e.g. {argument('mc_samples', chains * max(1, mc_samples // chains))}."
        )
    sweeps_between = _check_int("sweeps_between", sweeps_between, 1)
    equilibration = _check_int("equilibration", equilibration, 0)
    steps = _check_int("steps", steps, 1)
    num_samples = _check_int("num_samples", num_samples, 2)
    chunk_size, batching = resolve_batching(chunk_size, batching)
    seed = _check_int("seed", seed, 0)
    import jax

    if not jax.config.jax_enable_x64:
        raise ValueError(
            "the quickstart computes energies and log q in float64: call "
            "jax.config.update('jax_enable_x64', True) at start-up."
        )
    plan = _training_plan(mc_samples, ERSI_TRAIN["val_fraction"], steps)
    out_dir = Path(out_dir)
    paths = _layout(out_dir, system, temperature)
    settings = {
        "system": system,
        "temperature": temperature,
        "chains": chains,
        "mc_samples": mc_samples,
        "sweeps_between": sweeps_between,
        "equilibration": equilibration,
        "steps": steps,
        "num_samples": num_samples,
        "chunk_size": chunk_size,
        "batching": batching,
        "audit": bool(audit),
        "seed": seed,
    }
    _prepare_folder(out_dir, settings, resume)
    say = log if log is not None else (print if progress else (lambda _: None))
    out_dir.mkdir(parents=True, exist_ok=True)
    clock = _StageClock(out_dir, settings)
    command = command or "manifold_flows.quickstart"

    # ---- 1. data
    clock.start()
    if paths["data"].is_file():
        say(f"[1/4] Monte Carlo data: {paths['data']} is there (resumed)")
    else:
        say(
            f"[1/4] Monte Carlo data: {system} at T = {temperature:g}, {chains} chains x "
            f"{mc_samples // chains} samples, {sweeps_between} sweeps apart ..."
        )
        for note in notes:
            say(f"      note: {' '.join(str(note.message).split())}")
        paths["data"].parent.mkdir(parents=True, exist_ok=True)
        generate_dataset(
            preset,
            paths["data"],
            key=seed,
            extxyz=paths["extxyz"],
            resume=checkpoint_dir_for(paths["data"]).exists(),
            progress=progress,
            temperature=temperature,
            num_chains=chains,
            samples_per_chain=mc_samples // chains,
            sweeps_between=sweeps_between,
            equilibration_sweeps=equilibration,
            anneal_from=10 * temperature if equilibration > 0 else None,
        )
    reference = load_configurations(paths["data"])
    diag = reference.metadata.get("diagnostics", {}).get("energy_per_particle", {})
    if diag:
        say(f"      u = U/N = {diag['mean']:.5f} +- {diag['error']:.5f} (Monte Carlo)")
    clock.stop("data")

    # ---- 2. training
    clock.start()
    config = {
        "run_dir": str(paths["run"]),
        "data": {"path": str(paths["data"]), "system": system, "temperature": temperature},
        "model": dict(ERSI_MODEL),
        "interpolant": {"name": "geodesic"},
        "coupling": {"name": "species_ot", "point_group": False},
        "train": {
            **ERSI_TRAIN,
            "batch_size": plan["batch_size"],
            "epochs": plan["epochs"],
            "seed": seed,
        },
    }
    say(
        f"[2/4] training eRSI (torus EGNN, geodesic interpolant, species OT pairing): "
        f"{plan['steps']} steps = {plan['epochs']} epochs x {plan['steps_per_epoch']} batches of "
        f"{plan['batch_size']} ..."
    )
    trained = train_from_config(
        config,
        resume=(paths["run"] / CHECKPOINT).is_file(),
        progress=progress,
        config_name="run",
        command=command,
    )
    if trained.val_loss is not None:
        say(f"      validation loss {trained.val_loss:.4f} (EMA weights)")
    clock.stop("train")

    # ---- 3. samples
    clock.start()
    if paths["samples"].is_file():
        say(f"[3/4] samples: {paths['samples']} is there (resumed)")
        samples = load_configurations(paths["samples"])
    else:
        say(
            f"[3/4] {num_samples} samples with exact log q (Dormand-Prince, rtol = atol = 1e-5, "
            f"float64; chunks of {chunk_size}, {batching}) ..."
        )
        paths["samples"].parent.mkdir(parents=True, exist_ok=True)
        samples = sample_to_file(
            paths["run"],
            num_samples=num_samples,
            out=paths["samples"],
            seed=seed,
            chunk_size=chunk_size,
            batching=batching,
            temperature=temperature,
            resume=sample_paths(paths["samples"])["parts"].is_dir(),
            progress=progress,
            command=command,
        )
    nfe = samples.metadata.get("nfe", {}).get("mean")
    if nfe is not None:
        say(f"      mean {nfe:.0f} field evaluations per sample")
    clock.stop("sample")

    # ---- 4. report
    clock.start()
    with_audit = " (with the likelihood audit)" if audit else ""
    say(f"[4/4] evaluating against the Monte Carlo data{with_audit} ...")
    report = evaluate_runs(
        {LABEL: paths["samples"]},
        reference=paths["data"],
        temperature=temperature,
        out_dir=paths["report"],
        audit_runs={LABEL: paths["run"]} if audit else None,
        audit_options={"num_points": 2, "checks": AUDIT_CHECKS},
        seed=seed,
        force=resume and (paths["report"] / REPORT).is_file(),
        command=command,
    )
    if samples.dim == 2:
        _draw_pictures(paths, samples, preset, report)
        pictures = {"configuration": CONFIGURATION_PNG, "overview": OVERVIEW_PNG}
        report = add_plots(paths["report"], report, pictures)
    else:
        say(f"      (no configuration picture: the system is {samples.dim}D)")
    clock.stop("report")
    return QuickstartResult(
        out_dir=out_dir,
        paths=paths,
        report=report,
        seconds=clock.wall,
        cpu_seconds=clock.cpu,
        settings=settings,
    )


def _draw_pictures(paths, samples, preset, report) -> None:
    """`configuration.png` (the generated configuration with the largest importance weight)
    and `overview.png` (it next to g(r) raw / reweighted / reference)."""
    log_w = np.asarray(samples.extra["log_w"], dtype=np.float64)
    index = int(np.argmax(np.where(np.isfinite(log_w), log_w, -np.inf)))
    u = float(samples.energy[index]) / samples.num_particles
    title = f"generated sample {index} (largest weight), u = {u:.4f}"
    picture = {
        "positions": samples.positions[index],
        "species": samples.species,
        "species_names": samples.species_names,
        "box": samples.box,
        "diameters": _diameters(preset.parameters, len(samples.species_names)),
        "title": title,
    }
    plot_figures.plot_configuration(paths["configuration"], **picture)
    run = report["runs"][LABEL]
    rdf = report["rdf"]
    plot_figures.plot_overview(
        paths["overview"],
        picture,
        np.asarray(rdf["r"]),
        rdf["pair_names"],
        np.asarray(rdf["reference"]),
        {
            LABEL: {
                "raw": np.asarray(run["rdf"]["raw"]),
                "reweighted": None
                if run["rdf"]["reweighted"] is None
                else np.asarray(run["rdf"]["reweighted"]),
                "ess": run["weights"]["ess"],
            }
        },
    )
