"""`generate_dataset` and `mflows generate`: complete outputs, resume without loss, one-line
errors. Uses the same small system and run shape as tests/test_mc.py (one compilation)."""

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

import manifold_flows as mf
from manifold_flows import checkpoint_dir_for, generate_dataset, make_system


def small_system():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mf.ImageConventionWarning)
        return make_system("ka3", num_particles=12, composition=[4, 4, 4], density=0.8)


RUN = dict(num_chains=4, sweeps_between=5, samples_per_block=2, progress=False)
SMALL_CLI = [
    "generate",
    "--model",
    "ka3",
    "--num-particles",
    "12",
    "--composition",
    "4:4:4",
    "--density",
    "0.8",
    "--chains",
    "4",
    "--sweeps-between",
    "5",
    "--samples-per-block",
    "2",
    "--no-progress",
]


def cli_app() -> typer.Typer:
    """The real `mflows` app; while another command's module is still missing from the tree
    (cli/main.py imports it unconditionally), an app with just this command."""
    try:
        from cli.main import app
    except ImportError as exc:
        if "_generate" in str(exc):
            raise
        from cli import _generate

        app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
        app.callback()(lambda: None)
        _generate.register(app)
    return app


def test_generate_dataset_writes_complete_files(tmp_path):
    out = tmp_path / "data" / "ka.npz"
    xyz = tmp_path / "data" / "ka.extxyz"
    opts = dict(RUN, temperature=1.0, samples_per_chain=4, equilibration_sweeps=10)
    result = generate_dataset(small_system(), out, key=0, extxyz=xyz, **opts)
    loaded = mf.Dataset.load(out)
    np.testing.assert_array_equal(loaded.positions, result.dataset.positions)
    np.testing.assert_array_equal(loaded.energy, result.dataset.energy)
    assert loaded.metadata["mc"]["seed"] == 0
    assert not checkpoint_dir_for(out).exists()  # cleaned up after success
    assert not list(out.parent.glob(".*partial"))

    import ase.io

    frames = ase.io.read(xyz, index=":")
    assert len(frames) == loaded.num_samples == 16
    np.testing.assert_allclose([f.get_potential_energy() for f in frames], loaded.energy, rtol=1e-9)

    with pytest.raises(FileExistsError, match="force"):
        generate_dataset(small_system(), out, key=0, **opts)
    with pytest.raises(ValueError, match=r"\.npz"):
        generate_dataset(small_system(), tmp_path / "x.h5", key=0, **opts)


def test_interrupted_generate_resumes_without_loss(tmp_path):
    opts = dict(RUN, temperature=1.0, samples_per_chain=6, equilibration_sweeps=10)
    reference = generate_dataset(small_system(), tmp_path / "ref.npz", key=9, **opts)

    class Stop(Exception):
        pass

    def stop(info):
        if info.index == 2:  # eq: 2 calls = 1 block; stop after the 2nd production block
            raise Stop

    out = tmp_path / "run.npz"
    with pytest.raises(Stop):
        generate_dataset(small_system(), out, key=9, on_block=stop, **opts)
    assert not out.exists()  # no partial output that looks complete
    assert checkpoint_dir_for(out).is_dir()
    with pytest.raises(FileExistsError, match="resume"):
        generate_dataset(small_system(), out, key=9, **opts)
    resumed = generate_dataset(small_system(), out, key=9, resume=True, **opts)
    np.testing.assert_array_equal(resumed.dataset.positions, reference.dataset.positions)
    np.testing.assert_array_equal(mf.Dataset.load(out).energy, reference.dataset.energy)
    assert not checkpoint_dir_for(out).exists()


def test_cli_generate_with_config_file_and_overrides(tmp_path):
    config = tmp_path / "gen.toml"
    config.write_text(
        "temperature = 3.0\nsamples-per-chain = 4\nequilibration = 10\nseed = 5\n"
        f'out = "{tmp_path / "ignored.npz"}"\n'
    )
    out = tmp_path / "ka.npz"
    args = [*SMALL_CLI, "--config", str(config), "--temperature", "1.5", "--out", str(out)]
    result = CliRunner().invoke(cli_app(), args)
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output and "u = U/N" in result.output
    assert "energies with images=minimum" in result.output
    ds = mf.Dataset.load(out)
    assert ds.temperature == 1.5  # the command line overrides the file
    assert ds.num_samples == 16  # 4 chains x 4 samples from the file
    assert ds.metadata["mc"]["seed"] == 5
    assert not (tmp_path / "ignored.npz").exists()
    manifest = json.loads((tmp_path / "ka.manifest.json").read_text())
    assert manifest["seeds"] == {"seed": 5}
    assert str(out) in manifest["data_files"]
    assert manifest["config"]["options"]["temperature"] == 1.5


def test_cli_generate_in_float32(tmp_path):
    out = tmp_path / "ka32.npz"
    args = [*SMALL_CLI, "--samples-per-chain", "2", "--equilibration", "10", "--out", str(out)]
    result = CliRunner().invoke(cli_app(), [*args, "--precision", "float32"])
    assert result.exit_code == 0, result.output
    ds = mf.Dataset.load(out)
    assert ds.metadata["mc"]["precision"] == "float32"
    manifest = json.loads((tmp_path / "ka32.manifest.json").read_text())
    assert manifest["precision"] == "float32"


ERROR_CASES = {
    "unknown system": (["generate", "--system", "ka9-n44"], "unknown system"),
    "non-positive temperature": (
        ["generate", "--system", "ka3-n44", "--temperature", "0"],
        "temperature",
    ),
    "composition mismatch": (
        [*SMALL_CLI[:6], "4:4:3", *SMALL_CLI[7:]],
        "sums to 11",
    ),
    "preset and custom options": (
        ["generate", "--system", "ka3-n44", "--num-particles", "9"],
        "preset",
    ),
    "swap on a system without swaps": (
        [
            "generate",
            "--model",
            "ka2",
            "--num-particles",
            "10",
            "--composition",
            "5:5",
            "--p-swap",
            "0.2",
        ],
        "no swap pairs",
    ),
    "bad sweeps": ([*SMALL_CLI, "--sweeps-between", "0"], "--sweeps-between must be"),
    "unknown precision": ([*SMALL_CLI, "--precision", "float16"], "--precision"),
}


@pytest.mark.parametrize("case", sorted(ERROR_CASES))
def test_cli_errors_are_one_line(case, tmp_path, monkeypatch, capsys):
    from cli._errors import run_guarded

    args, expected = ERROR_CASES[case]
    out = tmp_path / "out.npz"
    monkeypatch.setattr(sys, "argv", ["mflows", *args, "--out", str(out)])
    code = run_guarded(cli_app())
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("mflows: error:"), err
    assert expected in err[0]
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_cli_refuses_to_overwrite_and_bad_config(tmp_path, monkeypatch, capsys):
    from cli._errors import run_guarded

    out = tmp_path / "out.npz"
    out.write_bytes(b"old")
    monkeypatch.setattr(sys, "argv", ["mflows", *SMALL_CLI, "--out", str(out)])
    assert run_guarded(cli_app()) == 2
    assert "--force" in capsys.readouterr().err
    assert out.read_bytes() == b"old"

    bad = tmp_path / "bad.toml"
    bad.write_text("temprature = 1.0\n")
    monkeypatch.setattr(
        sys, "argv", ["mflows", *SMALL_CLI, "--config", str(bad), "--out", str(tmp_path / "n.npz")]
    )
    assert run_guarded(cli_app()) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown key 'temprature'" in err[0]

    monkeypatch.setattr(sys, "argv", ["mflows", *SMALL_CLI])
    assert run_guarded(cli_app()) == 2
    assert "--out" in capsys.readouterr().err


def test_console_script_reports_one_line(tmp_path):
    exe = Path(sys.executable).with_name("mflows")
    if not exe.exists():
        pytest.skip(f"console script not installed next to {sys.executable}")
    out = tmp_path / "x.npz"
    proc = subprocess.run(
        [str(exe), "generate", "--system", "nope", "--out", str(out)],
        capture_output=True,
        text=True,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
        timeout=300,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "unknown system 'nope'" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr and not out.exists()
