"""PNG figures of an evaluation: g_ab(r), energy histograms, ESS against R, weight tails.

Figures are drawn on `matplotlib.figure.Figure` with the Agg canvas directly (no pyplot, so
no global backend state is touched) and saved atomically.
"""

import io
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._io import atomic_write_bytes

#: One colour per run (colour-blind-safe Okabe-Ito palette), the reference in black.
COLORS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442")
REFERENCE_COLOR = "black"


MARKERS = ("o", "s", "^", "D", "v", "P", "X")
#: Reweighted curves of runs with a smaller ESS are left out of g(r) (a handful of samples
#: gives spikes that hide the other curves); the legend says so.
MIN_ESS_TO_DRAW = 10.0


def run_color(index: int) -> str:
    return COLORS[index % len(COLORS)]


def run_marker(index: int) -> str:
    return MARKERS[index % len(MARKERS)]


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: str | os.PathLike) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return atomic_write_bytes(path, buffer.getvalue())


def _grid(count: int, max_cols: int = 3) -> tuple[int, int]:
    cols = min(count, max_cols)
    return math.ceil(count / cols), cols


def plot_rdf(
    path: str | os.PathLike,
    r: np.ndarray,
    pair_names: Sequence[str],
    reference: np.ndarray,
    runs: Mapping[str, dict[str, Any]],
) -> Path:
    """`g_ab(r)`, one panel per species pair: reference (black), each run raw (dashed) and
    reweighted (solid). `runs[label]` holds `"raw"` and `"reweighted"` (or `None`) arrays
    `(num_pairs, num_bins)`, and `"ess"`: reweighted curves of runs with an ESS below
    `MIN_ESS_TO_DRAW` are listed in the legend but not drawn."""
    rows, cols = _grid(len(pair_names))
    fig = _figure(4.2 * cols, 3.4 * rows + 0.25 * (2 + len(runs)))
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for k, name in enumerate(pair_names):
        _draw_rdf_panel(axes[k], r, name, reference[k], {a: _pair(d, k) for a, d in runs.items()})
    for ax in axes[len(pair_names) :]:
        ax.set_visible(False)
    axes[0].set_ylabel("g(r)  (ideal gas = 1)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 4), fontsize=8)
    return _save(fig, path)


def _pair(data: dict[str, Any], k: int) -> dict[str, Any]:
    """The curves of species pair `k` of one run's g(r) record."""
    reweighted = data.get("reweighted")
    return {
        "raw": data["raw"][k],
        "reweighted": None if reweighted is None else reweighted[k],
        "ess": data.get("ess"),
    }


def _draw_rdf_panel(ax, r, name: str, reference, runs: Mapping[str, dict[str, Any]]) -> None:
    """One g_ab(r) panel: reference (black), each run raw (dashed) and reweighted (solid;
    listed but not drawn below `MIN_ESS_TO_DRAW`)."""
    ax.plot(r, reference, color=REFERENCE_COLOR, lw=2.2, label="reference (MC)")
    for i, (label, data) in enumerate(runs.items()):
        color = run_color(i)
        ax.plot(r, data["raw"], color=color, lw=1.2, ls="--", label=f"{label} raw")
        ess = data.get("ess")
        if data.get("reweighted") is None:
            continue
        if ess is not None and ess < MIN_ESS_TO_DRAW:
            # an empty line keeps the legend entry that says why the curve is missing
            ax.plot([], [], color=color, lw=1.6, alpha=0.3,
                    label=f"{label} reweighted: not drawn (ESS {ess:.1f})")  # fmt: skip
            continue
        ax.plot(r, data["reweighted"], color=color, lw=1.6, label=f"{label} reweighted")
    ax.axhline(1.0, color="0.7", lw=0.8, zorder=0)
    ax.set_title(f"$g_{{{name}}}(r)$")
    ax.set_xlabel("r")
    ax.set_xlim(r[0] - 0.5 * (r[1] - r[0]), r[-1] + 0.5 * (r[1] - r[0]))
    ax.set_ylim(bottom=0)


def _draw_configuration(ax, configuration: Mapping[str, Any]) -> None:
    """Particles of one 2D configuration in their periodic box: a disc of the species'
    diameter per particle, coloured by species, with the periodic copies of discs that cross
    an edge so the picture tiles the plane."""
    from matplotlib.patches import Circle, Rectangle

    positions = np.asarray(configuration["positions"], dtype=np.float64)
    species = np.asarray(configuration["species"])
    box = np.asarray(configuration["box"], dtype=np.float64)
    diameters = np.asarray(configuration["diameters"], dtype=np.float64)
    names = configuration["species_names"]
    lx, ly = float(box[0]), float(box[1])
    frame = Rectangle((0, 0), lx, ly, fill=False, edgecolor="black", lw=1.2)
    ax.add_patch(frame)
    shifts = [(a * lx, b * ly) for a in (-1, 0, 1) for b in (-1, 0, 1)]
    for s, name in enumerate(names):
        color = run_color(s)
        radius = 0.5 * float(diameters[s])
        for x, y in positions[species == s]:
            for dx, dy in shifts:
                cx, cy = x + dx, y + dy
                if -radius < cx < lx + radius and -radius < cy < ly + radius:
                    disc = Circle((cx, cy), radius, facecolor=color, edgecolor="black", lw=0.6,
                                  alpha=0.85)  # fmt: skip
                    ax.add_patch(disc)
                    disc.set_clip_path(frame)  # the box is one tile of the periodic plane
        ax.plot([], [], "o", color=color, ms=8, label=f"{name} (diameter {2 * radius:g})")
    pad = 0.03 * max(lx, ly)
    ax.set_xlim(-pad, lx + pad)
    ax.set_ylim(-pad, ly + pad)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(configuration.get("title", ""), fontsize=9)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=len(names),
              frameon=False)  # fmt: skip


def _check_2d(configuration: Mapping[str, Any]) -> None:
    dim = np.asarray(configuration["positions"]).shape[-1]
    if dim != 2:
        raise ValueError(f"a configuration picture needs d = 2 coordinates; got d = {dim}.")


def plot_configuration(path: str | os.PathLike, **configuration: Any) -> Path:
    """One 2D configuration in its periodic box (`positions (n, 2)`, `species (n,)`,
    `species_names`, `box`, `diameters` per species, `title`); see `_draw_configuration`."""
    _check_2d(configuration)
    fig = _figure(4.6, 4.6)
    _draw_configuration(fig.subplots(), configuration)
    return _save(fig, path)


def plot_overview(
    path: str | os.PathLike,
    configuration: Mapping[str, Any],
    r: np.ndarray,
    pair_names: Sequence[str],
    reference: np.ndarray,
    runs: Mapping[str, dict[str, Any]],
) -> Path:
    """A configuration (as `plot_configuration`) next to the g_ab(r) panels of `plot_rdf`,
    in one 2 x 2 (or wider) grid: the picture of a run at a glance."""
    _check_2d(configuration)
    panels = 1 + len(pair_names)
    rows, cols = _grid(panels, max_cols=2 if panels <= 4 else 3)
    fig = _figure(4.0 * cols, 3.6 * rows + 0.3)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    _draw_configuration(axes[0], configuration)
    for k, name in enumerate(pair_names):
        _draw_rdf_panel(
            axes[k + 1], r, name, reference[k], {a: _pair(d, k) for a, d in runs.items()}
        )
    for ax in axes[panels:]:
        ax.set_visible(False)
    axes[1].set_ylabel("g(r)  (ideal gas = 1)")
    handles, labels = axes[1].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 4), fontsize=8)
    return _save(fig, path)


def plot_energy_histograms(
    path: str | os.PathLike,
    reference_edges: np.ndarray,
    reference_density: np.ndarray,
    runs: Mapping[str, dict[str, Any]],
) -> Path:
    """Per-particle energy histograms: one panel per run with the reference (grey fill), the
    raw samples and the reweighted samples. `runs[label]` holds `"density"`,
    `"density_reweighted"` (or `None`), `"num_above"`, `"num_below"`, `"num_samples"`."""
    rows, cols = _grid(len(runs))
    fig = _figure(4.4 * cols, 3.3 * rows)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False, sharex=True)).ravel()
    centers = 0.5 * (reference_edges[1:] + reference_edges[:-1])
    for i, (label, data) in enumerate(runs.items()):
        ax = axes[i]
        color = run_color(i)
        ax.fill_between(
            centers, reference_density, step="mid", color="0.75", label="reference (MC)"
        )
        ax.step(centers, data["density"], where="mid", color=color, ls="--", lw=1.3, label="raw")
        if data.get("density_reweighted") is not None:
            ax.step(
                centers,
                data["density_reweighted"],
                where="mid",
                color=color,
                lw=1.8,
                label="reweighted",
            )
        outside = data["num_above"] + data["num_below"]
        share = outside / max(data["num_samples"], 1)
        ax.set_title(f"{label}: {100 * share:.1f}% of raw samples off the axis", fontsize=9)
        ax.set_xlabel("u = U / N")
        ax.legend(fontsize=7)
    for ax in axes[len(runs) :]:
        ax.set_visible(False)
    axes[0].set_ylabel("density")
    return _save(fig, path)


def plot_ess(path: str | os.PathLike, runs: Mapping[str, dict[str, Any]]) -> Path:
    """ESS against the number of samples R (ESS of the first R samples), and ESS/R, log-log,
    with the degenerate (ESS = 1, ESS/R = 1/R) and perfect (ESS = R) lines. `runs[label]`
    holds `"R"` and `"ess"` sequences."""
    fig = _figure(9.0, 3.6)
    ax_ess, ax_frac = fig.subplots(1, 2)
    r_max = max(max(d["R"]) for d in runs.values())
    grid = np.geomspace(1, r_max, 100)
    for ax, perfect, degenerate in (
        (ax_ess, grid, np.ones_like(grid)),
        (ax_frac, np.ones_like(grid), 1.0 / grid),
    ):
        ax.plot(grid, perfect, color="0.6", ls=":", lw=1.2, label="perfect (ESS = R)")
        ax.plot(grid, degenerate, color="0.3", ls="--", lw=1.2, label="degenerate (ESS = 1, 1/R)")
    for i, (label, data) in enumerate(runs.items()):
        R = np.asarray(data["R"], dtype=float)
        ess = np.asarray(data["ess"], dtype=float)
        style = dict(color=run_color(i), marker=run_marker(i), ms=4 + 1.5 * i, mfc="none", lw=1.3)
        ax_ess.plot(R, np.maximum(ess, 1e-300), label=label, **style)
        ax_frac.plot(R, np.maximum(ess / R, 1e-300), label=label, **style)
    for ax, ylabel in ((ax_ess, "ESS"), (ax_frac, "ESS / R")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("R (first R samples)")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="major", color="0.9")
    ax_frac.set_ylim(top=1.5)
    ax_ess.legend(fontsize=7)
    return _save(fig, path)


def plot_weight_tail(path: str | os.PathLike, runs: Mapping[str, dict[str, Any]]) -> Path:
    """Sorted importance weights times R (`R w`, so 1 means every sample counts equally)
    against the rank divided by R, log-log: a flat curve at 1 is a perfect sampler, a steep
    drop means a few samples carry all the weight. Weights below `1e-6 / R` are cut off the
    axis. `runs[label]` holds `"weights"` (normalised) and `"khat"`, `"khat_status"`, `"ess"`."""
    fig = _figure(6.2, 4.0)
    ax = fig.subplots()
    top = 1.0
    for i, (label, data) in enumerate(runs.items()):
        w = np.sort(np.asarray(data["weights"], dtype=float))[::-1]
        size = w.size
        scaled = w * size
        shown = scaled > 1e-6
        khat = data.get("khat")
        khat_text = "n/a" if khat is None or not np.isfinite(khat) else f"{khat:.2f}"
        ess = data.get("ess")
        ess_text = "" if ess is None else f", ESS {ess:.1f}"
        ax.plot(
            (np.arange(1, size + 1) / size)[shown],
            scaled[shown],
            color=run_color(i),
            marker=run_marker(i) if np.count_nonzero(shown) < 20 else None,
            mfc="none",
            lw=1.6,
            label=f"{label} (R {size}{ess_text}, k-hat {khat_text} {data.get('khat_status', '')})",
        )
        top = max(top, float(scaled[0]))
    ax.axhline(1.0, color="0.5", ls=":", lw=1.0, label="equal weights (R w = 1)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_ylim(1e-6, 3 * top)
    ax.set_xlabel("rank / R  (largest weight first)")
    ax.set_ylabel("R x normalised weight")
    ax.set_title("importance-weight tail", fontsize=10)
    ax.legend(fontsize=7, loc="lower left")
    return _save(fig, path)
