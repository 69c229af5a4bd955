"""`mflows quickstart`: the whole pipeline end to end with tiny settings, resume, bad options,
and the two batchings of the sampler agreeing.

One tiny quickstart (32 Monte Carlo samples, 2 training steps, 4 generated samples, no audit)
runs once per module; the other tests read its folder or rerun it.
"""

import contextlib
import io
import json
import math
import sys

import numpy as np
import pytest

import manifold_flows as mf
from manifold_flows.testing import tolerance

R = 4
TINY = (
    "--chains", "4", "--mc-samples", "32", "--sweeps-between", "5", "--equilibration", "20",
    "--steps", "2", "--samples", str(R), "--chunk-size", "4", "--no-audit", "--no-progress",
    "--seed", "1",
)  # fmt: skip


def run_cli(*args: str) -> tuple[int, str, str]:
    """Run `mflows ARGS` in-process the way the console script does (one-line errors)."""
    from cli._errors import run_guarded
    from cli.main import app

    out, err = io.StringIO(), io.StringIO()
    argv = sys.argv
    sys.argv = ["mflows", *args]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = run_guarded(app)
    finally:
        sys.argv = argv
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("quickstart") / "qs"
    code, stdout, stderr = run_cli("quickstart", "--out", str(folder), *TINY)
    return {"code": code, "out": stdout, "err": stderr, "folder": folder}


def _finite(value) -> bool:
    return value is not None and math.isfinite(float(value))


def test_quickstart_writes_a_complete_report(tiny):
    assert tiny["code"] == 0, tiny["err"]
    folder = tiny["folder"]
    for stage in ("[1/4]", "[2/4]", "[3/4]", "[4/4]"):
        assert stage in tiny["out"]
    assert f"report: {folder / 'report' / 'summary.md'}" in tiny["out"]
    # the layout: one folder with data/, run/, samples/, report/
    data = folder / "data" / "ipl-n10_T0.1.npz"
    assert data.is_file() and data.with_suffix(".extxyz").is_file()
    assert (folder / "run" / "config.toml").is_file()
    samples = mf.load_configurations(folder / "samples" / "samples.npz")
    assert samples.num_samples == R and np.all(np.isfinite(samples.extra["log_q"]))
    report_dir = folder / "report"
    for png in ("rdf.png", "energy_histograms.png", "configuration.png", "overview.png"):
        content = (report_dir / png).read_bytes()
        assert content.startswith(b"\x89PNG") and len(content) > 1000, png
    # the numbers that must be finite are finite, and ESS lies in [1, R]
    report = json.loads((report_dir / "report.json").read_text())
    run = report["runs"]["eRSI"]
    assert run["num_samples"] == R
    assert 1.0 - 1e-9 <= run["weights"]["ess"] <= R + 1e-9
    assert _finite(run["u"]["raw"]) and _finite(run["u"]["reweighted"])
    assert _finite(report["reference"]["u"]["value"]) and _finite(
        report["reference"]["c_v"]["value"]
    )
    assert 0.0 <= run["high_energy_fraction"] <= 1.0
    assert report["reference"]["num_samples"] == 32
    summary = (report_dir / "summary.md").read_text()
    assert "| eRSI | 4 |" in summary and "reference (MC)" in summary and "high-E share" in summary
    # the "Plots:" line lists every plot written (the pictures are drawn after the report)
    plots_line = next(line for line in summary.splitlines() if line.startswith("Plots:"))
    written = sorted(p.name for p in report_dir.glob("*.png"))
    assert len(written) == 6 and all(f"`{name}`" in plots_line for name in written), plots_line
    assert sorted(report["plots"].values()) == written
    # no image-convention warning for the preset's own convention (issue 16, item 13)
    assert "image convention" not in tiny["err"]
    # the closing lines repeat the key numbers
    assert f"ESS = {run['weights']['ess']:.1f} of R = {R}" in tiny["out"]
    assert "Monte Carlo" in tiny["out"] and "stage times" in tiny["out"]
    state = json.loads((folder / "quickstart.json").read_text())
    assert set(state["seconds"]) == {"data", "train", "sample", "report"}
    assert state["settings"]["num_samples"] == R and state["settings"]["steps"] == 2


def test_resume_skips_finished_stages(tiny):
    folder = tiny["folder"]
    data = folder / "data" / "ipl-n10_T0.1.npz"
    samples = folder / "samples" / "samples.npz"
    stamps = (data.stat().st_mtime_ns, samples.stat().st_mtime_ns)
    code, stdout, stderr = run_cli("quickstart", "--out", str(folder), *TINY, "--resume")
    assert code == 0, stderr
    assert "Monte Carlo data: " in stdout and f"{data} is there (resumed)" in stdout
    assert f"{samples} is there (resumed)" in stdout
    assert (data.stat().st_mtime_ns, samples.stat().st_mtime_ns) == stamps
    assert (folder / "report" / "report.json").is_file()


@pytest.mark.parametrize(
    "extra, expected",
    [
        ((), "already holds a quickstart"),
        (("--resume", "--steps", "3"), "settings differ (steps: 2 saved, 3 now)"),
    ],
)
def test_existing_folder_needs_resume_and_the_same_settings(tiny, extra, expected):
    args = list(TINY)
    if "--steps" in extra:
        args[args.index("--steps") + 1] = "3"
        extra = ("--resume",)
    code, _, stderr = run_cli("quickstart", "--out", str(tiny["folder"]), *args, *extra)
    assert code == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mflows: error:") and expected in lines[0]


@pytest.mark.parametrize(
    "args, expected",
    [
        (("--chains", "0"), "--chains must be an integer >= 1"),
        (
            ("--chains", "3", "--mc-samples", "32"),
            "--mc-samples (32) must be a multiple of --chains (3)",
        ),
        (("--system", "ipl-n11"), "unknown system 'ipl-n11'; choose one of ipl-3d-n200"),
        (("--batching", "parallel"), "batching must be one of sequential, vmap"),
        (("--temperature", "-1"), "temperature"),
        (("--samples", "1"), "--samples must be an integer >= 2"),
        (("--steps", "0"), "--steps must be an integer >= 1"),
        (("--out", "{file}"), "is a file"),
        (("--out", "{busy}"), "is not an (empty) quickstart folder"),
    ],
)
def test_bad_options_give_one_line_and_exit_2(tmp_path, args, expected):
    (tmp_path / "file").write_text("x")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    args = [a.format(file=tmp_path / "file", busy=tmp_path / "busy") for a in args]
    if "--out" not in args:
        args += ["--out", str(tmp_path / "qs")]
    code, stdout, stderr = run_cli("quickstart", "--no-progress", *args)
    assert code == 2, stdout + stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mflows: error:"), stderr
    assert expected in lines[0]
    assert not (tmp_path / "qs").exists()  # nothing was started
    assert sorted(p.name for p in (tmp_path / "busy").iterdir()) == ["notes.txt"]


def test_vmapped_chunks_give_the_sequential_samples(tiny):
    """The lock-step (vmap) batching of a chunk changes samples only by solver round-off."""
    folder = tiny["folder"]
    sequential = mf.load_configurations(folder / "samples" / "samples.npz")
    assert sequential.metadata["batching"] == "sequential"
    vmapped = mf.sample_to_file(
        folder / "run",
        num_samples=R,
        out=folder.parent / "vmap.npz",
        seed=1,
        chunk_size=4,
        batching="vmap",
        progress=False,
    )
    assert vmapped.metadata["batching"] == "vmap"
    # Batched and unbatched matrix products round differently and the adaptive solver's step
    # acceptance feeds rounding back into the trajectory: allow 1e4 x the float64 tolerance.
    rtol, atol = (1e4 * t for t in tolerance("float64"))
    np.testing.assert_allclose(vmapped.positions, sequential.positions, rtol=rtol, atol=atol)
    np.testing.assert_allclose(
        vmapped.extra["log_q"], sequential.extra["log_q"], rtol=rtol, atol=atol
    )


def test_cli_defaults_are_the_library_defaults():
    # `mflows quickstart` and `mf.quickstart` must run the same thing when given no options
    import inspect

    from cli.main import app

    command = next(c for c in app.registered_commands if c.callback.__name__ == "quickstart")
    cli = {k: p.default for k, p in inspect.signature(command.callback).parameters.items()}
    lib = {k: p.default for k, p in inspect.signature(mf.quickstart).parameters.items()}
    cli["out_dir"], cli["num_samples"] = str(cli.pop("out")), cli.pop("samples")
    shared = set(cli) & set(lib)
    assert len(shared) >= 14, sorted(shared)
    assert {k: cli[k] for k in shared} == {k: lib[k] for k in shared}
