"""`evaluate_runs`: compare generated samples of several runs with Monte Carlo reference data.

For every run: importance weights at the target temperature (ESS, ESS/R, Pareto k-hat,
non-finite weights, log Z where the base is normalised), u and c_v raw and reweighted with
bootstrap error bars, the high-energy share, ESS as a function of the number of samples,
g_ab(r) and energy histograms; the reference's own u and c_v. Written as `report.json`, a
markdown table `summary.md` and PNG plots, with a manifest.
"""

import datetime
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .._analysis import (
    energy_histogram,
    energy_per_particle,
    free_energy,
    high_energy_fraction,
    high_energy_threshold,
    radial_distribution,
    reweight,
    specific_heat,
)
from .._arguments import argument
from .._io import Dataset, atomic_write_text, load_configurations, write_manifest
from .._io.files import check_writable
from .._train import TrainedRun, load_run
from . import plots as plot_figures
from .draw import system_energies
from .sample import ENERGY_CONVENTION
from .summary import format_summary
from .system import resolve_system, same_box, same_temperature

REPORT = "report.json"
SUMMARY = "summary.md"
MANIFEST = "evaluate.manifest.json"
PLOTS = {
    "rdf": "rdf.png",
    "energy": "energy_histograms.png",
    "ess": "ess_vs_r.png",
    "weights": "weight_tail.png",
}
#: Below this ESS a reweighted estimate is not compared with the reference (too few
#: effective samples for its error bar to mean much).
MIN_ESS_FOR_AGREEMENT = 100.0
#: |reweighted - reference| / combined error below which the two are said to agree.
AGREEMENT_Z = 2.0
#: Reference frames used to check that samples and reference share one energy function.
_ENERGY_CHECK_FRAMES = 64


# ---------------------------------------------------------------------------- helpers
def _write_report(out_dir: Path, report: dict[str, Any]) -> dict[str, Any]:
    atomic_write_text(out_dir / SUMMARY, format_summary(report))
    atomic_write_text(out_dir / REPORT, json.dumps(report, indent=2))
    return report


def add_plots(
    out_dir: str | os.PathLike, report: dict[str, Any], plots: Mapping[str, str]
) -> dict[str, Any]:
    """Record plots drawn into an evaluation's folder after `evaluate_runs` (`{name: file
    name}`, e.g. the quickstart's pictures) in its `report.json` and `summary.md`, so that
    they list every plot written. Returns the updated report."""
    report = {**report, "plots": {**report.get("plots", {}), **plots}}
    return _write_report(Path(out_dir), report)


def _load(value: Any, what: str) -> tuple[Dataset, str]:
    if isinstance(value, Dataset):
        return value, "<Dataset>"
    if isinstance(value, (str, os.PathLike)):
        return load_configurations(value), str(value)
    raise TypeError(f"{what} must be a file path or a Dataset; got {type(value).__name__}.")


def _composition_text(ds: Dataset) -> str:
    return str(np.bincount(ds.species).tolist())


def _check_samples(label: str, ds: Dataset, source: str, ref: Dataset) -> None:
    where = f"samples {label!r} ({source})"
    if ds.energy is None:
        raise ValueError(
            f"{where} carry no energies; evaluate files written by `mflows sample` "
            "(sample_to_file), which store U, log q and log w."
        )
    if "log_q" not in ds.extra:
        raise ValueError(
            f"{where} carry no log q (extra['log_q']); evaluate files written by `mflows "
            "sample` (sample_to_file)."
        )
    if ds.dim != ref.dim or not same_box(ds.box, ref.box):
        raise ValueError(
            f"{where} have box {ds.box.tolist()} but the reference has box {ref.box.tolist()}; "
            "compare samples of the same system."
        )
    if ds.num_particles != ref.num_particles or not np.array_equal(ds.species, ref.species):
        raise ValueError(
            f"{where} have species composition {_composition_text(ds)} but the reference has "
            f"{_composition_text(ref)}; compare samples of the same system."
        )


def _check_energy_convention(
    label: str, ds: Dataset, ref: Dataset, checked: dict[tuple, dict[str, Any]]
) -> dict[str, Any]:
    """Recompute the energies of a few reference frames with the samples' energy function;
    they must reproduce the reference's energies (same Hamiltonian, same image convention)."""
    info = ds.metadata.get("energy") if isinstance(ds.metadata, dict) else None
    if not isinstance(info, dict) or not info.get("system"):
        return {"checked": False, "note": "the samples do not record their energy function"}
    name, images = str(info["system"]), str(info.get("images", "minimum"))
    key = (name, images)
    if key not in checked:
        try:
            system, _ = resolve_system(name, box=ref.box, species=ref.species, images=images)
        except ValueError as exc:
            checked[key] = {"checked": False, "note": f"cannot rebuild the energy: {exc}"}
        else:
            m = min(ref.num_samples, _ENERGY_CHECK_FRAMES)
            mine = system_energies(system, ref.positions[:m], ref.species, block=m)
            theirs = ref.energy[:m]
            diff = np.abs(mine - theirs)
            # Files store energies to ~1e-6 per particle (e.g. the atooms headers): allow that
            # plus a relative 1e-6, frame by frame.
            bound = 1e-6 * np.abs(theirs) + 1e-5 * ref.num_particles
            checked[key] = {
                "checked": True,
                "system": name,
                "images": images,
                "frames": m,
                "max_abs_diff": float(np.max(diff)),
                "tolerance": "1e-6 |U| + 1e-5 N per frame",
                "passed": bool(np.all(diff <= bound)),
            }
    result = checked[key]
    if result.get("checked") and not result["passed"]:
        raise ValueError(
            f"the energy function of samples {label!r} (system {name!r}, images={images!r}) "
            f"does not reproduce the reference energies (max |dU| = {result['max_abs_diff']:.3g} "
            f"on {result['frames']} frames): the two use different Hamiltonians or image "
            "conventions; resample with the reference's convention (--images)."
        )
    return result


def _ess_curve(energy: np.ndarray, log_q: np.ndarray, temperature: float, points: int = 24):
    num = energy.shape[0]
    low = min(10, num)
    sizes = np.unique(np.round(np.geomspace(low, num, points)).astype(int))
    ess = [reweight(energy[:r], log_q[:r], temperature, base_normalized=False).ess for r in sizes]
    return [int(r) for r in sizes], [float(e) for e in ess]


def _summary_dict(summary) -> dict[str, Any]:
    out = summary.as_dict()
    out["confidence"] = summary.confidence
    return out


def _agreement(run_u: dict[str, Any], ref_u: dict[str, Any], ess: float) -> dict[str, Any]:
    value, err = run_u.get("reweighted"), run_u.get("reweighted_err")
    ref_value, ref_err = ref_u["value"], ref_u["error"]
    if value is None or err is None or not np.isfinite(err):
        return {"tested": False, "note": "no reweighted estimate"}
    combined = math.hypot(err, ref_err)
    z = abs(value - ref_value) / combined if combined > 0 else math.inf
    out = {
        "difference": value - ref_value,
        "combined_error": combined,
        "z": z,
        "agrees": bool(z <= AGREEMENT_Z),
        "criterion": f"|u_reweighted - u_reference| <= {AGREEMENT_Z:g} x combined standard error",
        "tested": bool(ess > MIN_ESS_FOR_AGREEMENT),
    }
    if not out["tested"]:
        out["note"] = (
            f"ESS {ess:.1f} <= {MIN_ESS_FOR_AGREEMENT:g}: the reweighted error bar is not "
            "trustworthy, so agreement is not claimed either way"
        )
    return out


def _free_energy(energy, log_q, temperature, num_particles, normalized, num_bootstrap, seed):
    """F / N with its bootstrap error, and beta F / N, for samples whose log q is normalised
    (`free_energy`); otherwise why the free energy is not identified."""
    if not normalized:
        why = (
            "log q is not a normalised density (base_normalized false)"
            if normalized is False
            else "the samples' metadata does not say whether log q is normalised"
        )
        return {"identified": False, "note": f"not identified: {why}"}
    try:
        result = free_energy(
            energy,
            log_q,
            temperature,
            num_particles=num_particles,
            num_bootstrap=num_bootstrap,
            seed=seed,
        )
    except ValueError as exc:  # broken samples (NaN energy or log q): say so, go on
        return {"identified": False, "note": f"not computed: {exc}"}
    return {"identified": True, **result.as_dict()}


def _reference_chains(ref: Dataset) -> np.ndarray | None:
    """The chain of each reference sample when the data record two or more chains (Monte
    Carlo data from `mflows generate`): the independent units of its error bars."""
    chains = ref.extra.get("chain")
    return chains if chains is not None and np.unique(chains).size >= 2 else None


def _reference_u(ref: Dataset, num_bootstrap: int, seed: int):
    n = ref.num_particles
    plain = energy_per_particle(ref.energy, n, num_bootstrap=num_bootstrap, seed=seed)
    chains = _reference_chains(ref)
    if chains is not None:
        u = energy_per_particle(ref.energy, n, chains=chains)
        return {
            "value": u.raw,
            "error": u.raw_err,
            "error_method": f"standard error over the {u.num_chains} Monte Carlo chains",
            "naive_error": plain.raw_err,
        }
    diag = ref.metadata.get("diagnostics", {}) if isinstance(ref.metadata, dict) else {}
    mc = diag.get("energy_per_particle") if isinstance(diag, dict) else None
    if (
        isinstance(mc, dict)
        and mc.get("error") is not None
        and np.isfinite(mc.get("error"))
        and math.isclose(float(mc.get("mean", math.nan)), plain.raw, rel_tol=1e-9, abs_tol=1e-12)
    ):
        return {
            "value": plain.raw,
            "error": float(mc["error"]),
            "error_method": f"Monte Carlo metadata: {mc.get('method', 'chain means')}",
            "naive_error": plain.raw_err,
        }
    return {
        "value": plain.raw,
        "error": plain.raw_err,
        "error_method": (
            "naive standard error std/sqrt(M): assumes independent samples (the reference "
            "records no Monte Carlo error estimate); correlated samples make it too small"
        ),
        "naive_error": plain.raw_err,
    }


def _jsonable(obj: Any) -> Any:
    """Plain JSON types; NaN becomes null and +-inf the strings "inf"/"-inf"."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        if math.isnan(v):
            return None
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return v
    if obj is None or isinstance(obj, str):
        return obj
    return str(obj)


def _pair_names(ds: Dataset, pairs) -> list[str]:
    names = ds.species_names
    return [f"{names[a]}{names[b]}" for a, b in pairs]


# ---------------------------------------------------------------------------- audit
def _audit(label, run_value, sample_meta, seed, options):
    from .._field import TorusEGNN
    from .._flow import likelihood_audit
    from .._group import full_symmetry_group
    from .flow import flow_for_run, is_coupling_flow, is_euclidean

    run = run_value if isinstance(run_value, TrainedRun) else load_run(run_value)
    if is_coupling_flow(run):
        return _audit_coupling_flow(run, sample_meta, seed, options)
    solver = (sample_meta or {}).get("solver", {}) if isinstance(sample_meta, dict) else {}
    flow = flow_for_run(
        run,
        solver=solver.get("name", "dopri5"),
        rtol=solver.get("rtol", 1e-5),
        atol=solver.get("atol", 1e-5),
        num_steps=solver.get("num_steps"),
        dtype=solver.get("dtype", "float64"),
    )
    group, note = None, ""
    if isinstance(run.field, TorusEGNN) and not is_euclidean(run):
        group = full_symmetry_group(run.torus, run.species)
    else:
        note = (
            f"group invariance not checked: the field ({type(run.field).__name__}) is not "
            "built to be equivariant under the full symmetry group of the box"
        )
    import jax

    report = likelihood_audit(flow, jax.random.key(seed), run.species, group=group, **options)
    out = report.to_dict()
    out["run_dir"] = str(run.run_dir)
    out["run_step"] = int(run.step)
    out["note"] = note
    out["table"] = report.format()
    return out


def _audit_coupling_flow(run, sample_meta, seed, options):
    """The audit of an augmented coupling flow (`coupling_flow_audit`), in the precision its
    samples were drawn in."""
    import jax

    from .._flow.augmented.audit import coupling_flow_audit
    from .._group import full_symmetry_group
    from .flow import flow_for_run

    dtype = "float64"
    if isinstance(sample_meta, dict):
        dtype = (sample_meta.get("solver") or {}).get("dtype", dtype)
    flow = flow_for_run(run, dtype=dtype)
    group = full_symmetry_group(run.torus, run.species)
    num_points = int(options.get("num_points", 3))
    report = coupling_flow_audit(
        flow, jax.random.key(seed), run.species, group=group, num_points=num_points
    )
    out = report.to_dict()
    out.update(run_dir=str(run.run_dir), run_step=int(run.step), note="", table=report.format())
    return out


# ---------------------------------------------------------------------------- entry point
def evaluate_runs(
    samples: Mapping[str, str | os.PathLike | Dataset],
    *,
    reference: str | os.PathLike | Dataset,
    temperature: float | None = None,
    out_dir: str | os.PathLike,
    audit_runs: Mapping[str, str | os.PathLike | TrainedRun] | None = None,
    audit_options: Mapping[str, Any] | None = None,
    num_bootstrap: int = 1000,
    seed: int = 0,
    rdf_bins: int = 60,
    energy_bins: int = 40,
    plots: bool = True,
    force: bool = False,
    command: str | None = None,
) -> dict[str, Any]:
    """Evaluate generated samples of one or more runs against Monte Carlo reference data.

    Weights are recomputed at the target temperature `T`: `log w = -U/T - log q` (so samples
    drawn for another temperature are reweighted to `T`). For each run the report holds:
    `R`, the weight diagnostics (`reweight`: ESS, ESS/R, k-hat and its status, number of
    non-finite weights, log Z and its error when the base is normalised), the free energy
    (`free_energy`: F / N and beta F / N with bootstrap errors, when the samples' metadata says
    log q is normalised; "not identified" otherwise), `u` and `c_v` raw
    and reweighted with bootstrap errors (`energy_per_particle`, `specific_heat`), the share
    of samples above twice the largest reference energy (`high_energy_fraction`), the ESS of
    the first R' samples for log-spaced R', and whether the reweighted u agrees with the
    reference within error bars (only claimed when ESS > 100). The reference's own u and c_v
    are reported too, with errors that take its Monte Carlo chains as the independent units
    when the data record them (`extra["chain"]`: the standard error over chains, the
    bootstrap over whole chains); otherwise u's error comes from the Monte Carlo metadata
    when present, else (like c_v's) it assumes independent samples, and the report says so.

    Files written to `out_dir` (each atomically; inputs are all checked before anything is
    computed or written): `report.json`, `summary.md`, `rdf.png` (g_ab(r) raw / reweighted /
    reference), `energy_histograms.png`, `ess_vs_r.png`, `weight_tail.png`, and
    `evaluate.manifest.json`.

    **Arguments:**

    - `samples`: `{label: path or Dataset}` of sample files written by `sample_to_file`.
    - `reference`: the reference data (path or `Dataset`) with energies.
    - `temperature`: the target `T`; default the reference's. If both are known they must
      agree.
    - `out_dir`: the output folder.
    - `audit_runs`: `{label: run directory or TrainedRun}`: run `likelihood_audit` on each
      run's flow (with the solver settings of the samples of the same label, if any) and put
      the checks in the report (`report["audit_passed"]`).
    - `audit_options`: keyword arguments for `likelihood_audit` (e.g. `num_points`).
    - `num_bootstrap`, `seed`: bootstrap resamples and seed (reports are reproducible).
    - `rdf_bins`, `energy_bins`: bins of g(r) and of the energy histograms.
    - `plots`: draw the PNG plots (`False`: report and summary only).
    - `force`: overwrite an existing report in `out_dir`.
    - `command`: the command line recorded in the manifest.

    **Returns:**

    The report as a dict (what `report.json` holds).
    """
    # ---- inputs, all checked before any work
    if not isinstance(samples, Mapping) or not samples:
        raise ValueError("samples must be a non-empty mapping {label: sample file or Dataset}.")
    for label in samples:
        if not isinstance(label, str) or not label.strip():
            raise ValueError(f"sample labels must be non-empty strings; got {label!r}.")
    out_dir = Path(out_dir)
    check_writable(out_dir / REPORT, what="the report")
    if (out_dir / REPORT).exists() and not force:
        raise FileExistsError(
            f"{out_dir / REPORT} already exists; pass {argument('force', True)} to overwrite the "
            "evaluation, or choose another output folder."
        )
    ref, ref_source = _load(reference, "reference")
    if ref.energy is None:
        raise ValueError(
            f"the reference {ref_source} carries no energies; use Monte Carlo data with "
            "per-sample energies (e.g. from `mflows generate`)."
        )
    if temperature is None:
        if ref.temperature is None:
            raise ValueError(
                f"neither the reference {ref_source} nor the call gives a temperature; pass "
                f"it ({argument('temperature')})."
            )
        temperature = ref.temperature
    temperature = float(temperature)
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"{argument('temperature')} must be positive; got {temperature}.")
    if ref.temperature is not None and not same_temperature(ref.temperature, temperature):
        raise ValueError(
            f"the reference {ref_source} was sampled at T={ref.temperature:g} but "
            f"{argument('temperature', temperature)} was asked; pass reference data at "
            f"T={temperature:g}."
        )
    datasets: dict[str, tuple[Dataset, str]] = {}
    for label, value in samples.items():
        ds, source = _load(value, f"samples {label!r}")
        _check_samples(label, ds, source, ref)
        datasets[label] = (ds, source)
    audit_runs = dict(audit_runs or {})
    for label, value in audit_runs.items():
        if not isinstance(value, (TrainedRun, str, os.PathLike)):
            raise TypeError(f"audit run {label!r} must be a run directory or a TrainedRun.")
    for name, value in (
        ("num_bootstrap", num_bootstrap),
        ("rdf_bins", rdf_bins),
        ("energy_bins", energy_bins),
    ):
        if isinstance(value, bool) or int(value) != value or value < 2:
            raise ValueError(f"{name} must be an integer >= 2; got {value!r}.")
    energy_checks: dict[tuple, dict[str, Any]] = {}
    conventions = {
        label: _check_energy_convention(label, ds, ref, energy_checks)
        for label, (ds, _) in datasets.items()
    }

    # ---- reference
    n = ref.num_particles
    ref_u = _reference_u(ref, num_bootstrap, seed)
    ref_cv = specific_heat(
        ref.energy,
        n,
        temperature,
        chains=_reference_chains(ref),
        num_bootstrap=num_bootstrap,
        seed=seed,
    )
    threshold = high_energy_threshold(ref.energy)
    ref_rdf = radial_distribution(ref.positions, ref.species, ref.box, num_bins=rdf_bins)
    ref_hist = energy_histogram(ref.energy, ref.energy, num_particles=n, bins=energy_bins)
    hist_range = (float(ref_hist.edges[0]), float(ref_hist.edges[-1]))
    report: dict[str, Any] = {
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "temperature": temperature,
        "energy_convention": ENERGY_CONVENTION,
        "settings": {
            "num_bootstrap": int(num_bootstrap),
            "seed": int(seed),
            "rdf_bins": int(rdf_bins),
            "energy_bins": int(energy_bins),
            "agreement": {"min_ess": MIN_ESS_FOR_AGREEMENT, "z": AGREEMENT_Z},
        },
        "reference": {
            "source": ref_source,
            "system": ref.system,
            "num_samples": ref.num_samples,
            "num_particles": n,
            "temperature": ref.temperature,
            "u": ref_u,
            "c_v": {
                "value": ref_cv.raw,
                "error": ref_cv.raw_err,
                "error_method": (
                    f"bootstrap over the {ref_cv.num_chains} Monte Carlo chains"
                    if ref_cv.num_chains
                    else "bootstrap over reference samples: assumes independent samples "
                    "(correlated Monte Carlo samples make it too small)"
                ),
            },
            "max_energy": float(np.max(ref.energy[np.isfinite(ref.energy)])),
            "high_energy_threshold": threshold,
            "high_energy_fraction": high_energy_fraction(ref.energy, ref.energy),
        },
        "runs": {},
    }

    rdf_runs, hist_runs, ess_runs, weight_runs = {}, {}, {}, {}
    for label, (ds, source) in datasets.items():
        energy = ds.energy
        log_q = np.asarray(ds.extra["log_q"], dtype=np.float64)
        meta = ds.metadata if isinstance(ds.metadata, dict) else {}
        normalized = meta.get("base_normalized")
        weights = reweight(energy, log_q, temperature, base_normalized=bool(normalized))
        usable = weights.num_nonfinite < weights.num_samples
        log_w = weights if usable else None
        u = energy_per_particle(energy, n, log_w, num_bootstrap=num_bootstrap, seed=seed)
        cv = specific_heat(energy, n, temperature, log_w, num_bootstrap=num_bootstrap, seed=seed)
        sizes, ess = _ess_curve(energy, log_q, temperature)
        rdf = radial_distribution(
            ds.positions, ds.species, ds.box, num_bins=rdf_bins, log_weights=log_w
        )
        hist = energy_histogram(
            energy,
            ref.energy,
            log_weights=log_w,
            num_particles=n,
            bins=energy_bins,
            range=hist_range,
        )
        weight_info = weights.as_dict()
        if normalized is None:
            weight_info["log_z_note"] = (
                "the samples' metadata does not say whether log q is normalised, so log Z is "
                "not reported"
            )
        u_dict = _summary_dict(u)
        notes = []
        if not usable:
            notes.append("every log weight is non-finite: no reweighted estimate exists")
        if ds.temperature is not None and not same_temperature(ds.temperature, temperature):
            notes.append(
                f"samples were written for T={ds.temperature:g}; their weights were recomputed "
                f"at T={temperature:g}"
            )
        if usable and weights.max_weight > 0.5:
            notes.append(
                f"degenerate weights: one sample carries {100 * weights.max_weight:.0f}% of the "
                "weight, so reweighted values, their error bars and k-hat say little"
            )
        if cv.reweighted is not None and cv.reweighted < 0:
            notes.append(
                "the reweighted c_v is negative: rounding error (the energies span many orders "
                "of magnitude), not a physical value"
            )
        if meta.get("euclidean_flow"):
            notes.append(
                "Euclidean flow (eFM): log q is the density of the unwrapped point in R^(n d) "
                "and ignores periodic images"
            )
        report["runs"][label] = {
            "source": source,
            "num_samples": ds.num_samples,
            "weights": weight_info,
            "u": u_dict,
            "c_v": _summary_dict(cv),
            "high_energy_fraction": high_energy_fraction(energy, ref.energy),
            "ess_curve": {"R": sizes, "ess": ess},
            "agreement_u": _agreement(u_dict, ref_u, weights.ess),
            "free_energy": _free_energy(
                energy, log_q, temperature, n, normalized, num_bootstrap, seed
            ),
            "energy_histogram": {
                "num_below": hist.num_below,
                "num_above": hist.num_above,
                "num_nonfinite": hist.num_nonfinite,
            },
            "rdf": {
                "raw": rdf.g,
                "reweighted": rdf.g_reweighted,
                "max_abs_diff_raw": float(np.max(np.abs(rdf.g - ref_rdf.g))),
                "max_abs_diff_reweighted": None
                if rdf.g_reweighted is None
                else float(np.max(np.abs(rdf.g_reweighted - ref_rdf.g))),
            },
            "energy_convention_check": conventions[label],
            "sampling": {
                k: meta.get(k)
                for k in ("run", "seed", "solver", "nfe", "density", "base_normalized")
                if k in meta
            },
            "notes": notes,
        }
        rdf_runs[label] = {"raw": rdf.g, "reweighted": rdf.g_reweighted, "ess": weights.ess}
        hist_runs[label] = {
            "density": hist.density,
            "density_reweighted": hist.density_reweighted,
            "num_above": hist.num_above + hist.num_nonfinite,
            "num_below": hist.num_below,
            "num_samples": ds.num_samples,
        }
        ess_runs[label] = {"R": sizes, "ess": ess}
        weight_runs[label] = {
            "weights": weights.weights,
            "ess": weights.ess,
            "khat": weights.khat,
            "khat_status": weights.khat_status,
        }
    report["rdf"] = {
        "r": ref_rdf.r,
        "pairs": [list(p) for p in ref_rdf.pairs],
        "pair_names": _pair_names(ref, ref_rdf.pairs),
        "normalization": ref_rdf.normalization,
        "reference": ref_rdf.g,
    }

    # ---- audits
    if audit_runs:
        report["audits"] = {}
        for label, value in audit_runs.items():
            sample_meta = datasets[label][0].metadata if label in datasets else None
            report["audits"][label] = _audit(
                label, value, sample_meta, seed, dict(audit_options or {})
            )
        report["audit_passed"] = all(a["passed"] for a in report["audits"].values())
    else:
        report["audit_passed"] = None

    # ---- files
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    if plots:
        written = [
            plot_figures.plot_rdf(
                out_dir / PLOTS["rdf"], ref_rdf.r, report["rdf"]["pair_names"], ref_rdf.g, rdf_runs
            ),
            plot_figures.plot_energy_histograms(
                out_dir / PLOTS["energy"], ref_hist.edges, ref_hist.reference_density, hist_runs
            ),
            plot_figures.plot_ess(out_dir / PLOTS["ess"], ess_runs),
            plot_figures.plot_weight_tail(out_dir / PLOTS["weights"], weight_runs),
        ]
    report["plots"] = dict(PLOTS) if plots else {}
    report = _write_report(out_dir, _jsonable(report))
    data_files = [Path(s) for _, s in datasets.values() if s != "<Dataset>"]
    if ref_source != "<Dataset>":
        data_files.append(Path(ref_source))
    write_manifest(
        out_dir,
        name=MANIFEST,
        command=command or "manifold_flows.evaluate_runs",
        config={
            "samples": {k: s for k, (_, s) in datasets.items()},
            "reference": ref_source,
            "temperature": temperature,
            "audit_runs": {k: str(getattr(v, "run_dir", v)) for k, v in audit_runs.items()},
            **report["settings"],
        },
        seeds={"seed": int(seed)},
        data_files=data_files,
        extra={"outputs": [str(p) for p in [*written, out_dir / SUMMARY, out_dir / REPORT]]},
    )
    return report
