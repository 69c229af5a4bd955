"""`mflows doctor`: reports the JAX set-up, runs the laws, exits 0 when they hold and 1 when
one fails (each law on its own line, PASS or FAIL)."""

import jax
import pytest
from typer.testing import CliRunner

from cli.main import app
from manifold_flows import FlatTorus, Sphere
from manifold_flows.testing import _doctor, run_doctor


@pytest.fixture
def small_doctor(monkeypatch):
    """Keep the doctor fast in the test suite: one cheap manifold, one cheap group action
    (compilation dominates; the full registry runs in `mflows doctor` itself)."""
    monkeypatch.setattr(_doctor, "_QUICK_MANIFOLDS", ("euclidean_2d",))
    monkeypatch.setattr(_doctor, "_QUICK_ACTIONS", ("translation_1d",))


def test_doctor_passes_and_prints_the_setup(small_doctor):
    result = CliRunner().invoke(app, ["doctor", "--quick", "--precision", "both"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert f"JAX {jax.__version__}" in out and f"backend: {jax.default_backend()}" in out
    assert "devices:" in out and "default precision: float" in out
    assert "float32" in out and "float64" in out
    assert "manifold: euclidean_2d" in out and "group action: translation_1d" in out
    for law in ("exp_log_round_trip", "triangle_inequality", "random_uniform_raises", "identity"):
        line = next(line for line in out.splitlines() if f" {law} " in line)
        assert line.count("PASS") == 2, line  # float32 and float64
    assert "FAIL" not in out
    assert "all" in out and "checks passed" in out


def test_doctor_fails_with_exit_code_1_when_a_law_breaks(small_doctor, monkeypatch):
    def broken_log(self, x, y):  # the torus log without the round
        return y - x

    monkeypatch.setattr(FlatTorus, "log", broken_log)
    # Box lengths used nowhere else, so no compiled graph of the correct torus is reused.
    monkeypatch.setattr(
        _doctor, "manifold_registry", lambda: {"torus_2d_rectangle": FlatTorus((2.5, 4.25))}
    )
    monkeypatch.setattr(_doctor, "_QUICK_MANIFOLDS", ("torus_2d_rectangle",))
    monkeypatch.setattr(_doctor, "_group_kit", lambda: (None, "group-action laws skipped."))
    result = CliRunner().invoke(app, ["doctor", "--quick", "--precision", "64"])
    assert result.exit_code == 1, result.output
    assert "FAIL manifold torus_2d_rectangle log_brute_force (float64, cpu:0)" in result.output
    assert "note: group-action laws skipped." in result.output


def test_doctor_reports_a_crash_as_a_failed_check(monkeypatch):
    def crash(self, x, v):
        raise RuntimeError("exp exploded at [0, 2)")

    monkeypatch.setattr(Sphere, "exp", crash)
    monkeypatch.setattr(_doctor, "manifold_registry", lambda: {"sphere_2": Sphere(2)})
    monkeypatch.setattr(_doctor, "_group_kit", lambda: (None, "skipped"))
    report = run_doctor(precisions=("float64",), quick=True)
    assert not report.passed
    (check,) = report.checks
    assert check.law.name == "runs" and "exp exploded" in check.note
    # The CLI prints it (brackets and all) on one FAIL line and exits 1, without a traceback.
    result = CliRunner().invoke(app, ["doctor", "--quick", "--precision", "64"])
    assert result.exit_code == 1
    assert "FAIL manifold sphere_2 runs (float64, cpu:0): RuntimeError: exp exploded at [0, 2)" in (
        result.output
    )
    assert "Traceback" not in result.output


def test_a_doctor_that_checked_nothing_does_not_pass(monkeypatch):
    monkeypatch.setattr(_doctor, "manifold_registry", dict)
    monkeypatch.setattr(_doctor, "_group_kit", lambda: (None, "skipped"))
    assert not run_doctor(precisions=("float64",)).passed


def test_doctor_rejects_bad_options():
    result = CliRunner().invoke(app, ["doctor", "--precision", "16"])
    assert result.exit_code != 0
    with pytest.raises(ValueError, match=r"precisions must be"):
        run_doctor(precisions=("float16",))


def test_doctor_reports_a_backend_that_does_not_start(monkeypatch, capsys):
    # JAX_PLATFORMS naming a platform this installation lacks makes jax.devices() fail (an
    # AssertionError deep in JAX): the doctor says so, the CLI exits 1 with no traceback.
    def no_backend():
        raise AssertionError()

    monkeypatch.setenv("JAX_PLATFORMS", "cuda")
    monkeypatch.setattr(_doctor.jax, "devices", no_backend)
    report = run_doctor(precisions=("float64",), quick=True)
    assert not report.passed and report.checks == () and report.backend == "none"
    (note,) = report.notes
    assert "could not start a backend" in note and "JAX_PLATFORMS='cuda'" in note
    from cli._errors import run_guarded

    monkeypatch.setattr("sys.argv", ["mflows", "doctor", "--quick", "--precision", "64"])
    assert run_guarded(app) == 1  # typer.Exit(1) was once turned into exit 0
    out = capsys.readouterr()
    assert "FAIL: no checks ran." in out.out and "JAX_PLATFORMS='cuda'" in out.out
    assert "Traceback" not in out.out + out.err and out.err == ""


def test_doctor_with_jax_platforms_naming_an_absent_backend(tmp_path):
    # The real thing, in a fresh process: JAX_PLATFORMS must be read at JAX's start-up.
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root), "JAX_PLATFORMS": "nosuch"}
    script = "import sys; from cli.main import main; sys.argv = ['mflows', *sys.argv[1:]]; main()"
    done = subprocess.run(
        [sys.executable, "-c", script, "doctor", "--quick", "--precision", "64"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "could not start a backend" in done.stdout and "JAX_PLATFORMS='nosuch'" in done.stdout
    assert "FAIL: no checks ran." in done.stdout
    assert "Traceback" not in done.stdout + done.stderr
