"""`mflows train`: the happy path on a tiny dataset with a shipped example config, resume, and
the bad-input paths (one clear line, non-zero exit, nothing trained)."""

import json
import sys
import tomllib
from pathlib import Path

import jax
import numpy as np
import pytest

import manifold_flows as mf
from cli._errors import run_guarded
from cli.main import app

CONFIGS = Path(__file__).resolve().parents[1] / "examples" / "configs"
L10 = 4.472136  # ipl-n10 box
SPECIES10 = np.array([0] * 5 + [1] * 5)
# Small enough to compile and train in seconds.
TINY = [
    "--set",
    "model.width=4",
    "--set",
    "model.depth=1",
    "--set",
    "train.batch_size=8",
    "--set",
    "train.log_every=2",
    "--no-progress",
]


def run_cli(args, capsys, monkeypatch):
    """Run `mflows ARGS` in-process through the same guard as the console script."""
    monkeypatch.setattr(sys, "argv", ["mflows", *map(str, args)])
    code = run_guarded(app)
    out = capsys.readouterr()
    return code, out.out, out.err


def ipl10_dataset(num=40, seed=0, **kwargs):
    rng = np.random.default_rng(seed)
    kwargs.setdefault("temperature", 0.1)
    kwargs.setdefault("system", "ipl-n10")
    return mf.Dataset(
        rng.uniform(0, L10, (num, 10, 2)), SPECIES10, ("A", "B"), np.full(2, L10), **kwargs
    )


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    return ipl10_dataset().save(tmp_path_factory.mktemp("data") / "ipl10.npz")


def test_train_happy_path_writes_a_complete_run_and_resumes(
    tmp_path, data_file, capsys, monkeypatch
):
    run_dir = tmp_path / "run"
    base = [
        "train",
        "--config",
        CONFIGS / "ersi_ipl_n10.toml",
        "--data",
        data_file,
        "--run-dir",
        run_dir,
        *TINY,
    ]
    code, out, err = run_cli([*base, "--epochs", "2"], capsys, monkeypatch)
    assert code == 0, err
    assert "validation loss" in out and str(run_dir) in out

    config = tomllib.loads((run_dir / "config.toml").read_text())  # resolved, re-runnable
    assert config["model"]["width"] == 4 and config["train"]["epochs"] == 2
    assert config["data"]["path"] == str(data_file) and config["model"]["field"] == "torus_egnn"
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["data_files"][str(data_file)]["sha256"] == mf.sha256_file(data_file)
    assert manifest["precision"] == "float32" and manifest["seeds"]["seed"] == 0
    assert "jax" in manifest["environment"]["packages"]

    run = mf.load_run(run_dir)  # what the sampling side calls
    assert isinstance(run.field, mf.TorusEGNN) and run.system == "ipl-n10"
    assert run.temperature == 0.1 and run.num_particles == 10
    steps_per_epoch = (40 - 4) // 8
    assert run.step == 2 * steps_per_epoch
    v = run.field(
        0.5, jax.numpy.asarray(ipl10_dataset(num=1).positions[0], dtype=run.dtype), run.species
    )
    assert v.shape == (10, 2) and bool(jax.numpy.all(jax.numpy.isfinite(v)))

    # a second run into the same directory must say --resume; --resume continues it
    code, _, err = run_cli([*base, "--epochs", "3"], capsys, monkeypatch)
    assert code == 2 and "--resume" in err and len(err.strip().splitlines()) == 1
    code, out, err = run_cli([*base, "--epochs", "3", "--resume"], capsys, monkeypatch)
    assert code == 0, err
    assert mf.load_run(run_dir).step == 3 * steps_per_epoch
    # resuming with other settings is refused before anything is overwritten
    saved = (run_dir / "config.toml").read_text()
    code, _, err = run_cli([*base, "--resume", "--set", "train.lr=0.01"], capsys, monkeypatch)
    assert code == 2 and "train.lr" in err and (run_dir / "config.toml").read_text() == saved

    # a warm start begins with the run's EMA field: its first validation loss (same split and
    # validation draws) is the run's last one
    from test_train import metrics_records

    def val_losses(path):
        return [r["val_loss"] for r in metrics_records(path) if "val_loss" in r]

    warm_dir = tmp_path / "warm"
    warm = [*base[: -len(TINY) - 2], "--run-dir", warm_dir, *TINY, "--epochs", "1"]
    code, _, err = run_cli(
        [*warm, "--set", f"train.init_from={tmp_path / 'none'}"], capsys, monkeypatch
    )
    assert code == 2 and "init_from" in err and len(err.strip().splitlines()) == 1
    assert not warm_dir.exists()
    code, _, err = run_cli([*warm, "--set", f"train.init_from={run_dir}"], capsys, monkeypatch)
    assert code == 0, err
    last, first = val_losses(run_dir)[-1], val_losses(warm_dir)[0]
    assert first == pytest.approx(last, rel=1e-6) and abs(val_losses(run_dir)[0] - last) > 1e-3


def _bad_npz(path: Path, positions: np.ndarray) -> Path:
    """A dataset file whose positions were replaced after writing (bypassing Dataset checks)."""
    good = ipl10_dataset(num=max(len(positions), 1)).save(path)
    with np.load(good) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["positions"] = positions
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)
    return path


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--set", "model.field=transformer"], "unknown vector field name 'transformer'"),
        (["--set", "interpolant.name=bridge"], "unknown interpolant name 'bridge'"),
        (["--set", "coupling.name=sinkhorn"], "unknown coupling name 'sinkhorn'"),
        (["--set", "train.learning_rate=0.1"], "unknown key 'train.learning_rate'"),
        (["--set", "train.batch_size=1000"], "batch_size 1000 is larger than the training split"),
        (["--set", "data.temperature=0.2"], "temperature 0.2 but the dataset"),
        (["--config", CONFIGS / "ersi_ipl_n44.toml"], "ipl-n44"),
        (["--data", "no/such/file.npz"], "not found"),
        (["--data", "NONFINITE"], "non-finite"),
        (["--data", "EMPTY"], "empty"),
    ],
)
def test_bad_input_is_one_line_and_no_compute(
    extra, message, tmp_path, data_file, capsys, monkeypatch
):
    replacements = {
        "NONFINITE": _bad_npz(
            tmp_path / "nan.npz",
            np.where(np.arange(20 * 10 * 2).reshape(20, 10, 2) == 7, np.nan, 1.0),
        ),
        "EMPTY": _bad_npz(tmp_path / "empty.npz", np.zeros((0, 10, 2))),
    }
    extra = [replacements.get(str(a), a) for a in extra]
    args = [
        "train",
        "--config",
        CONFIGS / "ersi_ipl_n10.toml",
        "--data",
        data_file,
        "--run-dir",
        tmp_path / "run",
        *TINY,
        *extra,
    ]
    code, _, err = run_cli(args, capsys, monkeypatch)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert message in lines[0], lines[0]
    assert not (tmp_path / "run").exists()  # nothing written, nothing trained


def test_bad_toml_and_missing_config(tmp_path, capsys, monkeypatch):
    bad = tmp_path / "bad.toml"
    bad.write_text("[train\nlr = 1")
    code, _, err = run_cli(["train", "--config", bad], capsys, monkeypatch)
    assert code == 2 and "not valid TOML" in err
    code, _, err = run_cli(["train", "--config", tmp_path / "none.toml"], capsys, monkeypatch)
    assert code == 2 and "config file not found" in err


def test_every_example_config_is_valid():
    from manifold_flows._train.from_config import _check_model_and_objective, check_config_keys

    files = sorted(CONFIGS.glob("*.toml"))
    assert len(files) == 17
    configs = {path: tomllib.loads(path.read_text()) for path in files}
    by_run_dir = {config["run_dir"]: config for config in configs.values()}
    for path, config in configs.items():
        check_config_keys(config)
        model = mf.ModelConfig.from_dict(config["model"])
        train = mf.TrainConfig.from_dict(config["train"])
        _check_model_and_objective(model, train, config)
        if train.init_from is not None:  # a later stage: it starts from a shipped config's run
            source = by_run_dir[train.init_from]
            assert mf.ModelConfig.from_dict(source["model"]) == model, path.name
            assert source["data"] == config["data"], path.name
        if model.is_coupling_flow:
            continue
        mf.build_interpolant(config["interpolant"]["name"], mf.FlatTorus(1.0, dim=2))
        mf.build_coupling(config["coupling"]["name"], mf.FlatTorus(1.0, dim=2))


@pytest.mark.slow
@pytest.mark.parametrize("method", ["efm", "rsi"])
def test_baseline_configs_run_end_to_end(method, tmp_path, data_file, capsys, monkeypatch):
    run_dir = tmp_path / method
    code, _, err = run_cli(
        [
            "train",
            "--config",
            CONFIGS / f"{method}_ipl_n10.toml",
            "--data",
            data_file,
            "--run-dir",
            run_dir,
            *TINY,
            "--epochs",
            "1",
        ],
        capsys,
        monkeypatch,
    )
    assert code == 0, err
    run = mf.load_run(run_dir)
    assert run.space.manifold == (mf.Euclidean(2) if method == "efm" else run.torus)


def test_kernel_config_trains_samples_and_passes_the_audit(
    tmp_path, data_file, capsys, monkeypatch
):
    # The kernel field through the same CLI as the EGNN: a run, samples with exact log q (its
    # closed-form divergence) and the likelihood audit, whose divergence check compares that
    # closed form with the materialised Jacobian trace of the trained field.
    run_dir = tmp_path / "kernel"
    code, _, err = run_cli(
        [
            "train",
            "--config",
            CONFIGS / "kernel_ipl_n10.toml",
            "--data",
            data_file,
            "--run-dir",
            run_dir,
            "--set",
            "model.num_kernels=6",
            *TINY,
            "--epochs",
            "1",
        ],
        capsys,
        monkeypatch,
    )
    assert code == 0, err
    run = mf.load_run(run_dir)
    assert isinstance(run.field, mf.KernelField) and run.field.num_kernels == 6
    flow = mf.flow_for_run(run)  # adaptive Dopri5 at 1e-5, float64: the sampling default
    assert isinstance(flow.divergence, mf.FieldDivergence)
    report = mf.likelihood_audit(flow, jax.random.key(0), run.species, num_points=2)
    assert report.passed, report.format()
    assert "exact_divergence" in {c.name for c in report.checks if c.passed}
