"""A catalogue of bad input: every mistake ends in one clear line, the documented exit code
(2, docs/cli.md) and no damage.

Each case runs in a fresh folder holding the same small files (a good dataset, damaged ones,
existing outputs, a run folder without a checkpoint, ...), as the working directory. A CLI
case runs `mflows ARGS` in-process through the console script's guard (`run_guarded`) and
checks: exit code 2, exactly one non-empty line on stderr naming the problem, no traceback,
every file of the folder byte-identical afterwards and nothing new in it. A Python case calls a
public entry point and checks that it raises a clear one-line error, with the same "no damage"
check. A few cases run the real console script in a subprocess where that matters (`click`
not installed).
"""

import dataclasses
import os
import shutil
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import manifold_flows as mf
from cli._errors import run_guarded
from cli.main import app

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "examples" / "configs" / "ersi_ipl_n10.toml"
L10 = 4.472136  # ipl-n10 box side
SPECIES10 = np.array([0] * 5 + [1] * 5)
USAGE = 2  # the documented exit code of a mistake


# ---------------------------------------------------------------------------- the folder
def _dataset(num: int = 24, *, energy: bool = True, log_q: bool = False) -> mf.Dataset:
    rng = np.random.default_rng(0)
    extra = {"log_q": rng.normal(size=num)} if log_q else {}
    return mf.Dataset(
        rng.uniform(0, L10, (num, 10, 2)),
        SPECIES10,
        ("A", "B"),
        np.full(2, L10),
        temperature=0.1,
        system="ipl-n10",
        energy=rng.normal(size=num) if energy else None,
        extra=extra,
    )


def _make_folder(folder: Path) -> None:
    """The files every case starts from (all small)."""
    data = _dataset().save(folder / "data.npz")
    _dataset(energy=False).save(folder / "noenergy.npz")
    _dataset(log_q=True).save(folder / "samples.npz")
    raw = data.read_bytes()
    (folder / "empty.npz").write_bytes(b"")
    (folder / "trunc.npz").write_bytes(raw[: len(raw) // 2])
    flipped = bytearray(raw)
    flipped[len(raw) // 3] ^= 0xFF
    (folder / "flip.npz").write_bytes(bytes(flipped))
    (folder / "text.npz").write_text("positions 1 2 3\nnot an archive\n")
    np.save(folder / "array.npy", np.zeros(3))
    (folder / "array.npy").rename(folder / "npy.npz")
    np.savez(folder / "noheader.npz", positions=np.zeros((1, 10, 2)))
    with np.load(data) as z:
        arrays = dict(z)
    arrays["positions"] = arrays["positions"] * 3.0  # a box that does not fit the coordinates
    np.savez(folder / "outside.npz", **arrays)
    shutil.copy(data, folder / "existing.npz")
    (folder / "existing.extxyz").write_text("a user's file\n")
    (folder / "b.extxyz").write_text("another user's file\n")
    (folder / "folder.npz").mkdir()
    (folder / "data.txt").write_text("1 2 3\n")
    shutil.copy(CONFIG, folder / "cfg.toml")
    (folder / "bad.toml").write_text("run_dir = [unclosed\n")
    (folder / "unknown.toml").write_text("temprature = 1.0\n")
    run = folder / "run"  # a run folder whose training never wrote a checkpoint
    run.mkdir()
    shutil.copy(CONFIG, run / "config.toml")
    report = folder / "report"
    report.mkdir()
    (report / "report.json").write_text("{}\n")


def _snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every path under `folder` with its bytes (None for a folder)."""
    out: dict[str, bytes | None] = {}
    for path in sorted(folder.rglob("*")):
        rel = str(path.relative_to(folder))
        out[rel] = None if path.is_dir() else path.read_bytes()
    return out


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("template")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _make_folder(folder)
    return folder


@pytest.fixture
def folder(template, tmp_path, monkeypatch) -> Path:
    case = tmp_path / "case"
    shutil.copytree(template, case)
    monkeypatch.chdir(case)
    return case


# ---------------------------------------------------------------------------- CLI cases
@dataclasses.dataclass(frozen=True)
class Cli:
    args: tuple[str, ...]
    expect: str | None = None  # a piece of the error line (case-sensitive), when it matters


GEN = (
    "generate",
    "--system",
    "ipl-n10",
    "--chains",
    "2",
    "--samples-per-chain",
    "2",
    "--sweeps-between",
    "1",
    "--equilibration",
    "0",
    "--no-progress",
)
GEN_OUT = (*GEN, "--out", "new.npz")
CUSTOM = ("generate", "--model", "ipl", "--num-particles", "10", "--out", "new.npz")
TRAIN = (
    "train",
    "--config",
    "cfg.toml",
    "--data",
    "data.npz",
    "--run-dir",
    "newrun",
    "--set",
    "train.batch_size=8",
    "--no-progress",
)
SAMPLE = ("sample", "--run", "run", "-R", "4", "--out", "s.npz", "--no-progress")
EVAL = ("evaluate", "-s", "samples.npz", "-r", "data.npz", "-o", "rep", "--no-plots")
QUICK = ("quickstart", "--out", "qs", "--no-progress")

CLI_CASES: dict[str, Cli] = {
    # ---- issue 16, item 1: usage errors (Typer's own exceptions), exit 2 with one line
    "generate chains abc": Cli(
        ("generate", "--system", "ipl-n10", "--chains", "abc", "--out", "x.npz"), "'--chains'"
    ),
    "generate unknown option": Cli(("generate", "--bogus", "3"), "--bogus"),
    "sample without out": Cli(("sample", "--run", "run", "-R", "4"), "'--out'"),
    "sample without anything": Cli(("sample",), "Missing option"),
    "sample precision 16": Cli((*SAMPLE, "--precision", "16"), "'--precision'"),
    "sample batching foo": Cli((*SAMPLE, "--batching", "foo"), "'--batching'"),
    "doctor precision 16": Cli(("doctor", "--precision", "16"), "'--precision'"),
    "doctor extra argument": Cli(("doctor", "extra"), "extra"),
    "doctor unknown option": Cli(("doctor", "--bogus"), "--bogus"),
    "doctor option without value": Cli(("doctor", "--precision"), "--precision"),
    "unknown command": Cli(("nosuch",), "nosuch"),
    "unknown top-level option": Cli(("--bogus",), "--bogus"),
    "generate extra argument": Cli((*GEN_OUT, "extra"), "extra"),
    "generate temperature abc": Cli((*GEN_OUT, "--temperature", "abc"), "'--temperature'"),
    "generate seed abc": Cli((*GEN_OUT, "--seed", "abc"), "'--seed'"),
    "generate out without value": Cli((*GEN, "--out"), "--out"),
    "train without config": Cli(("train", "--data", "data.npz"), "'--config'"),
    "train epochs abc": Cli((*TRAIN, "--epochs", "abc"), "'--epochs'"),
    "train unknown option": Cli((*TRAIN, "--bogus"), "--bogus"),
    "train extra argument": Cli((*TRAIN, "extra"), "extra"),
    "sample R abc": Cli((*SAMPLE, "-R", "abc"), "'-R'"),
    "sample rtol abc": Cli((*SAMPLE, "--rtol", "abc"), "'--rtol'"),
    "sample unknown option": Cli((*SAMPLE, "--bogus"), "--bogus"),
    "sample extra argument": Cli((*SAMPLE, "extra"), "extra"),
    "evaluate without reference": Cli(("evaluate", "-s", "samples.npz", "-o", "rep"), "'-r'"),
    "evaluate bootstrap abc": Cli((*EVAL, "--bootstrap", "abc"), "'--bootstrap'"),
    "evaluate temperature abc": Cli((*EVAL, "-T", "abc"), "'-T'"),
    "evaluate unknown option": Cli((*EVAL, "--bogus"), "--bogus"),
    "quickstart chains abc": Cli((*QUICK, "--chains", "abc"), "'--chains'"),
    "quickstart unknown option": Cli((*QUICK, "--bogus"), "--bogus"),
    "quickstart extra argument": Cli((*QUICK, "extra"), "extra"),
    # ---- generate: values, systems, files
    "generate without out": Cli(GEN, "--out"),
    "generate unknown system": Cli(("generate", "--system", "ipl-n11", "--out", "x.npz"), "ipl"),
    "generate chains 0": Cli((*GEN_OUT, "--chains", "0"), "--chains must be"),
    "generate chains negative": Cli((*GEN_OUT, "--chains", "-3"), "--chains must be"),
    "generate samples per chain 0": Cli(
        (*GEN_OUT, "--samples-per-chain", "0"), "--samples-per-chain must be"
    ),
    "generate sweeps between 0": Cli(
        (*GEN_OUT, "--sweeps-between", "0"), "--sweeps-between must be"
    ),
    "generate equilibration negative": Cli(
        (*GEN_OUT, "--equilibration", "-1"), "--equilibration must be"
    ),
    "generate samples per block 0": Cli(
        (*GEN_OUT, "--samples-per-block", "0"), "--samples-per-block must be"
    ),
    "generate temperature 0": Cli((*GEN_OUT, "--temperature", "0"), "temperature"),
    "generate temperature negative": Cli((*GEN_OUT, "--temperature", "-1"), "temperature"),
    "generate temperature nan": Cli((*GEN_OUT, "--temperature", "nan"), "temperature"),
    "generate p-swap above 1": Cli((*GEN_OUT, "--p-swap", "1.5"), "--p-swap must be"),
    "generate p-swap negative": Cli((*GEN_OUT, "--p-swap", "-0.1"), "--p-swap must be"),
    "generate target band reversed": Cli(
        (*GEN_OUT, "--target-acceptance", "0.9:0.1"), "--target-acceptance must"
    ),
    "generate target not a number": Cli(
        (*GEN_OUT, "--target-acceptance", "abc"), "--target-acceptance"
    ),
    "generate target above 1": Cli(
        (*GEN_OUT, "--target-acceptance", "1.5"), "--target-acceptance must"
    ),
    "generate target three values": Cli(
        (*GEN_OUT, "--target-acceptance", "0.1:0.2:0.3"), "--target-acceptance '0.1:0.2:0.3'"
    ),
    "generate step size 0": Cli((*GEN_OUT, "--step-size", "0"), "--step-size must be"),
    "generate step size negative": Cli((*GEN_OUT, "--step-size", "-1"), "--step-size must be"),
    "generate anneal from 0": Cli((*GEN_OUT, "--anneal-from", "0"), "--anneal-from must be"),
    "generate anneal schedule": Cli(
        (*GEN_OUT, "--anneal-schedule", "cubic"), "--anneal-schedule must be"
    ),
    "generate precision float16": Cli((*GEN_OUT, "--precision", "float16"), "--precision"),
    "generate images nearest": Cli((*GEN_OUT, "--images", "nearest"), "images"),
    "generate out not npz": Cli((*GEN, "--out", "x.txt"), ".npz"),
    "generate out exists": Cli((*GEN, "--out", "existing.npz"), "--force"),
    "generate out under a file": Cli((*GEN, "--out", "data.npz/x.npz"), "is a file"),
    "generate out in proc": Cli((*GEN, "--out", "/proc/x.npz"), "/proc"),
    "generate out deep under a file": Cli((*GEN, "--out", "data.npz/a/b/x.npz"), "is a file"),
    "generate out is a folder": Cli((*GEN, "--out", "folder.npz"), "folder.npz: it is a folder"),
    "sample out is a folder": Cli((*SAMPLE, "--out", "folder.npz"), "folder.npz: it is a folder"),
    "generate extxyz exists": Cli(
        (*GEN_OUT, "--extxyz", "existing.extxyz"), "existing.extxyz already exists"
    ),
    "generate extxyz bad suffix": Cli((*GEN_OUT, "--extxyz", "x.txt"), ".extxyz"),
    "generate extxyz under a file": Cli((*GEN_OUT, "--extxyz", "data.npz/x.extxyz"), "is a file"),
    "generate extxyz in proc": Cli((*GEN_OUT, "--extxyz", "/proc/x.extxyz"), "/proc"),
    "generate absurd size": Cli(
        (*GEN_OUT, "--chains", "100000000", "--samples-per-chain", "1000000"), "GiB"
    ),
    "generate absurd chains": Cli((*GEN_OUT, "--chains", "100000000000"), "GiB"),
    "generate preset with num particles": Cli((*GEN_OUT, "--num-particles", "9"), "preset"),
    "generate preset with dim": Cli((*GEN_OUT, "--dim", "3"), "preset"),
    "generate neither system nor model": Cli(("generate", "--out", "x.npz"), "--system"),
    "generate model without composition": Cli(CUSTOM, "--composition"),
    "generate unknown model": Cli(
        (
            "generate",
            "--model",
            "nosuch",
            "--num-particles",
            "4",
            "--composition",
            "2:2",
            "-o",
            "x.npz",
        ),
        "model",
    ),
    "generate composition sum": Cli((*CUSTOM, "--composition", "5:4"), "10"),
    "generate composition letters": Cli((*CUSTOM, "--composition", "a:b"), "--composition"),
    "generate composition negative": Cli((*CUSTOM, "--composition", "11:-1"), None),
    "generate density negative": Cli((*CUSTOM, "--composition", "5:5", "--density", "-1"), None),
    "generate box zero": Cli((*CUSTOM, "--composition", "5:5", "--box", "0"), None),
    "generate num particles 0": Cli(
        (
            "generate",
            "--model",
            "ipl",
            "--num-particles",
            "0",
            "--composition",
            "0:0",
            "-o",
            "x.npz",
        ),
        None,
    ),
    "generate no swap pairs": Cli(
        (*CUSTOM[:2], "ka2", *CUSTOM[3:], "--composition", "5:5", "--p-swap", "0.2"),
        "--p-swap",
    ),
    "generate config missing": Cli((*GEN_OUT, "--config", "missing.toml"), "missing.toml"),
    "generate config unparsable": Cli((*GEN_OUT, "--config", "bad.toml"), "bad.toml"),
    "generate config unknown key": Cli((*GEN_OUT, "--config", "unknown.toml"), "temprature"),
    "generate resume over finished output": Cli((*GEN, "--out", "existing.npz", "--resume"), None),
    # ---- train: damaged data (item 3), unwritable run folders (item 2), resume (item 6)
    "train config missing": Cli(("train", "--config", "missing.toml"), "missing.toml"),
    "train config unparsable": Cli(("train", "--config", "bad.toml"), "bad.toml"),
    "train config unknown key": Cli(("train", "--config", "unknown.toml"), "temprature"),
    "train data empty": Cli((*TRAIN, "--data", "empty.npz"), "empty"),
    "train data truncated": Cli((*TRAIN, "--data", "trunc.npz"), "truncated or damaged"),
    "train data bit flipped": Cli((*TRAIN, "--data", "flip.npz"), "truncated or damaged"),
    "train data is text": Cli((*TRAIN, "--data", "text.npz"), "not a .npz archive"),
    "train data is npy": Cli((*TRAIN, "--data", "npy.npz"), "not a .npz archive"),
    "train data without header": Cli((*TRAIN, "--data", "noheader.npz"), "no header"),
    "train data outside the box": Cli((*TRAIN, "--data", "outside.npz"), "outside the box"),
    "train data missing": Cli((*TRAIN, "--data", "missing.npz"), "missing.npz"),
    "train data unknown format": Cli((*TRAIN, "--data", "data.txt"), ".txt"),
    "train data is a folder": Cli((*TRAIN, "--data", "folder.npz"), "folder.npz"),
    "train run dir under a file": Cli((*TRAIN, "--run-dir", "data.npz/run"), "is a file"),
    "train run dir in proc": Cli((*TRAIN, "--run-dir", "/proc/run"), "/proc"),
    "train resume without checkpoint": Cli(
        (*TRAIN, "--run-dir", "run", "--resume"), "holds no checkpoint"
    ),
    "train resume new folder": Cli((*TRAIN, "--resume"), "--resume"),
    "train set without equals": Cli((*TRAIN, "--set", "nonsense"), "nonsense"),
    "train set unknown key": Cli((*TRAIN, "--set", "model.nosuch=1"), "nosuch"),
    "train set unknown section": Cli((*TRAIN, "--set", "nosuch.width=1"), "nosuch"),
    "train batch size 0": Cli((*TRAIN, "--set", "train.batch_size=0"), "batch_size"),
    "train batch larger than data": Cli((*TRAIN, "--set", "train.batch_size=100000"), "batch"),
    "train epochs 0": Cli((*TRAIN, "--epochs", "0"), "epochs"),
    "train lr negative": Cli((*TRAIN, "--set", "train.lr=-1.0"), "lr"),
    "train unknown field": Cli((*TRAIN, "--set", "model.field=nosuch"), "nosuch"),
    "train unknown interpolant": Cli((*TRAIN, "--set", "interpolant.name=nosuch"), "nosuch"),
    "train unknown coupling": Cli((*TRAIN, "--set", "coupling.name=nosuch"), "nosuch"),
    "train unknown dtype": Cli((*TRAIN, "--set", "train.dtype=float16"), "float16"),
    "train devices 0": Cli((*TRAIN, "--devices", "0"), "devices must be"),
    "train devices abc": Cli((*TRAIN, "--devices", "abc"), "devices must be"),
    "train coordinator without distributed": Cli(
        (*TRAIN, "--coordinator-address", "localhost:1"), "--distributed"
    ),
    "train data of another system": Cli((*TRAIN, "--set", "data.system=ka3-n44"), None),
    "train data at another temperature": Cli((*TRAIN, "--set", "data.temperature=0.5"), "0.5"),
    # ---- sample: outputs checked before the model is loaded (items 2 and 4)
    "sample R 0": Cli((*SAMPLE, "-R", "0"), "--num-samples"),
    "sample R negative": Cli((*SAMPLE, "-R", "-5"), "--num-samples"),
    "sample chunk size 0": Cli((*SAMPLE, "--chunk-size", "0"), "--chunk-size"),
    "sample seed negative": Cli((*SAMPLE, "--seed", "-1"), "--seed"),
    "sample out not npz": Cli((*SAMPLE, "--out", "s.txt"), ".npz"),
    "sample out under a file": Cli((*SAMPLE, "--out", "data.npz/s.npz"), "is a file"),
    "sample out in proc": Cli((*SAMPLE, "--out", "/proc/s.npz"), "/proc"),
    "sample extxyz copy exists": Cli((*SAMPLE, "--out", "b.npz"), "b.extxyz already exists"),
    "sample extxyz copy exists on resume": Cli(
        (*SAMPLE, "--out", "b.npz", "--resume"), "b.extxyz already exists"
    ),
    "sample run missing": Cli((*SAMPLE, "--run", "norun"), "norun"),
    "sample run is a file": Cli((*SAMPLE, "--run", "data.npz"), "data.npz"),
    "sample run without checkpoint": Cli(SAMPLE, "run"),
    "sample out exists": Cli((*SAMPLE, "--out", "existing.npz"), None),
    "sample devices too many": Cli((*SAMPLE, "--devices", "64"), "--devices"),
    "sample devices abc": Cli((*SAMPLE, "--devices", "abc"), "--devices"),
    "sample process id without distributed": Cli((*SAMPLE, "--process-id", "0"), "--distributed"),
    # ---- evaluate: damaged files (item 3), unwritable outputs (item 2)
    "evaluate samples empty": Cli((*EVAL, "-s", "empty.npz"), "empty"),
    "evaluate samples truncated": Cli((*EVAL, "-s", "trunc.npz"), "truncated or damaged"),
    "evaluate samples bit flipped": Cli((*EVAL, "-s", "flip.npz"), "truncated or damaged"),
    "evaluate samples text": Cli((*EVAL, "-s", "text.npz"), "not a .npz archive"),
    "evaluate samples missing": Cli((*EVAL, "-s", "missing.npz"), "missing.npz"),
    "evaluate samples without log q": Cli((*EVAL, "-s", "data.npz"), "log q"),
    "evaluate samples without energy": Cli((*EVAL, "-s", "noenergy.npz"), "energies"),
    "evaluate samples unknown format": Cli((*EVAL, "-s", "data.txt"), ".txt"),
    "evaluate reference empty": Cli((*EVAL, "-r", "empty.npz"), "empty"),
    "evaluate reference truncated": Cli((*EVAL, "-r", "trunc.npz"), "truncated or damaged"),
    "evaluate reference text": Cli((*EVAL, "-r", "text.npz"), "not a .npz archive"),
    "evaluate reference without header": Cli((*EVAL, "-r", "noheader.npz"), "no header"),
    "evaluate reference outside the box": Cli((*EVAL, "-r", "outside.npz"), "outside the box"),
    "evaluate reference without energy": Cli((*EVAL, "-r", "noenergy.npz"), "energies"),
    "evaluate reference missing": Cli((*EVAL, "-r", "missing.npz"), "missing.npz"),
    "evaluate out under a file": Cli((*EVAL, "-o", "data.npz/rep"), "is a file"),
    "evaluate out in proc": Cli((*EVAL, "-o", "/proc/rep"), "/proc"),
    "evaluate report exists": Cli((*EVAL, "-o", "report"), "--force"),
    "evaluate empty label": Cli((*EVAL, "-s", "=samples.npz"), "label"),
    "evaluate label twice": Cli(
        ("evaluate", "-s", "a=samples.npz", "-s", "a=samples.npz", "-r", "data.npz", "-o", "rep"),
        "twice",
    ),
    "evaluate wrong temperature": Cli((*EVAL, "-T", "0.5"), None),
    "evaluate temperature 0": Cli((*EVAL, "-T", "0"), None),
    "evaluate bootstrap 0": Cli((*EVAL, "--bootstrap", "0"), None),
    # ---- quickstart: everything checked before any work
    "quickstart unknown system": Cli((*QUICK, "--system", "nosuch"), "nosuch"),
    "quickstart chains 0": Cli((*QUICK, "--chains", "0"), "--chains must be"),
    "quickstart samples not a multiple": Cli(
        (*QUICK, "--mc-samples", "7"), "--mc-samples (7) must be a multiple of --chains"
    ),
    "quickstart steps 0": Cli((*QUICK, "--steps", "0"), "--steps must be"),
    "quickstart samples 0": Cli((*QUICK, "--samples", "0"), "--samples must be"),
    "quickstart batching foo": Cli((*QUICK, "--batching", "foo"), "foo"),
    "quickstart temperature negative": Cli((*QUICK, "--temperature", "-1"), "temperature"),
    "quickstart chunk size 0": Cli((*QUICK, "--chunk-size", "0"), "--chunk-size"),
    "quickstart sweeps 0": Cli((*QUICK, "--sweeps-between", "0"), "--sweeps-between must be"),
    "quickstart equilibration negative": Cli(
        (*QUICK, "--equilibration", "-1"), "--equilibration must be"
    ),
    "quickstart out under a file": Cli(("quickstart", "--out", "data.npz/qs"), "data.npz"),
    "quickstart out in proc": Cli(("quickstart", "--out", "/proc/qs"), "/proc"),
    "quickstart out is a file": Cli(("quickstart", "--out", "data.npz"), "--out 'data.npz'"),
    "quickstart out is a busy folder": Cli(("quickstart", "--out", "report"), "report"),
}


@pytest.mark.parametrize("name", sorted(CLI_CASES))
def test_cli_bad_input(name, folder, capsys, monkeypatch):
    case = CLI_CASES[name]
    before = _snapshot(folder)
    monkeypatch.setattr(sys, "argv", ["mflows", *case.args])
    code = run_guarded(app)
    out = capsys.readouterr()
    lines = [line for line in out.err.splitlines() if line.strip()]
    assert "Traceback" not in out.err + out.out
    assert code == USAGE, (code, out.err)
    assert len(lines) == 1, out.err
    assert lines[0].startswith("mflows: error: "), lines[0]
    if case.expect is not None:
        assert case.expect in lines[0], lines[0]
    assert _snapshot(folder) == before  # nothing changed, nothing half-written left


# ---------------------------------------------------------------------------- Python cases
@dataclasses.dataclass(frozen=True)
class Py:
    call: Callable[[], Any]
    errors: tuple[type[BaseException], ...]
    expect: str | None = None


def _ipl10():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mf.ImageConventionWarning)
        return mf.get_system("ipl-n10")


def _generate(out="new.npz", **options):
    small = dict(num_chains=2, samples_per_chain=2, sweeps_between=1, equilibration_sweeps=0)
    return mf.generate_dataset(_ipl10(), out, key=0, progress=False, **{**small, **options})


def _sample(**options):
    kwargs = dict(num_samples=4, out="s.npz", progress=False)
    return mf.sample_to_file("run", **{**kwargs, **options})


def _evaluate(**options):
    kwargs = dict(samples={"a": "samples.npz"}, reference="data.npz", out_dir="rep", plots=False)
    return mf.evaluate_runs(**{**kwargs, **options})


def _train(**options):
    from manifold_flows._train.from_config import read_config

    raw = read_config(Path("cfg.toml"))
    raw["train"]["batch_size"] = 8
    kwargs = dict(run_dir="newrun", data="data.npz", progress=False)
    return mf.train_from_config(raw, **{**kwargs, **options})


def _dataset_with(**changes):
    fields = dict(
        positions=np.zeros((2, 10, 2)),
        species=SPECIES10,
        species_names=("A", "B"),
        box=np.full(2, L10),
    )
    return mf.Dataset(**{**fields, **changes})


BAD_FILE = (ValueError,)
MISSING = (FileNotFoundError,)
CANNOT_WRITE = (NotADirectoryError, PermissionError)
PY_CASES: dict[str, Py] = {
    # ---- load_configurations: damaged files (item 3) and positions outside the box (item 6)
    "load empty": Py(lambda: mf.load_configurations("empty.npz"), BAD_FILE, "empty"),
    "load truncated": Py(lambda: mf.load_configurations("trunc.npz"), BAD_FILE, "truncated"),
    "load bit flipped": Py(lambda: mf.load_configurations("flip.npz"), BAD_FILE, "damaged"),
    "load text as npz": Py(lambda: mf.load_configurations("text.npz"), BAD_FILE, "not a .npz"),
    "load npy as npz": Py(lambda: mf.load_configurations("npy.npz"), BAD_FILE, "not a .npz"),
    "load without header": Py(lambda: mf.load_configurations("noheader.npz"), BAD_FILE, "header"),
    "load outside the box": Py(lambda: mf.load_configurations("outside.npz"), BAD_FILE, "outside"),
    "load missing": Py(lambda: mf.load_configurations("missing.npz"), MISSING, "missing.npz"),
    "load folder": Py(lambda: mf.load_configurations("folder.npz"), BAD_FILE, "folder"),
    "load unknown extension": Py(lambda: mf.load_configurations("data.txt"), BAD_FILE, ".txt"),
    "load unknown format": Py(
        lambda: mf.load_configurations("data.npz", format="nosuch"), BAD_FILE, "format="
    ),
    "load text as npz format": Py(
        lambda: mf.load_configurations("data.txt", format="npz"), BAD_FILE, "not a .npz"
    ),
    "dataset load empty": Py(lambda: mf.Dataset.load("empty.npz"), BAD_FILE, "empty"),
    "dataset load truncated": Py(lambda: mf.Dataset.load("trunc.npz"), BAD_FILE, "truncated"),
    "dataset positions rank": Py(
        lambda: _dataset_with(positions=np.zeros((10, 2))), BAD_FILE, "positions"
    ),
    "dataset box negative": Py(lambda: _dataset_with(box=np.array([-1.0, 1.0])), BAD_FILE, "box"),
    "dataset species unsorted": Py(
        lambda: _dataset_with(species=SPECIES10[::-1]), BAD_FILE, "sorted"
    ),
    "dataset positions nan": Py(
        lambda: _dataset_with(positions=np.full((2, 10, 2), np.nan)), BAD_FILE, "non-finite"
    ),
    # ---- generate_dataset: checks up front, Python names in the messages (item 13)
    "generate out not npz": Py(lambda: _generate("x.txt"), BAD_FILE, ".npz"),
    "generate out exists": Py(lambda: _generate("existing.npz"), (FileExistsError,), "force=True"),
    "generate out under a file": Py(lambda: _generate("data.npz/x.npz"), CANNOT_WRITE, "a file"),
    "generate out in proc": Py(lambda: _generate("/proc/x.npz"), CANNOT_WRITE, "/proc"),
    "generate extxyz exists": Py(
        lambda: _generate(extxyz="existing.extxyz"), (FileExistsError,), "force=True"
    ),
    "generate chains 0": Py(lambda: _generate(num_chains=0), BAD_FILE, "num_chains must be"),
    "generate absurd size": Py(
        lambda: _generate(num_chains=10**8, samples_per_chain=10**6), BAD_FILE, "num_chains"
    ),
    "generate p swap": Py(lambda: _generate(p_swap=2.0), BAD_FILE, "p_swap must be"),
    "generate precision": Py(lambda: _generate(precision="float16"), BAD_FILE, "precision"),
    "generate unknown option": Py(lambda: _generate(num_chain=3), (TypeError,), "num_chain"),
    # ---- sample_to_file: outputs checked before the run is loaded
    "sample R 0": Py(lambda: _sample(num_samples=0), BAD_FILE, "num_samples must be"),
    "sample chunk 0": Py(lambda: _sample(chunk_size=0), BAD_FILE, "chunk_size must be"),
    "sample seed negative": Py(lambda: _sample(seed=-1), BAD_FILE, "seed must be"),
    "sample batching": Py(lambda: _sample(batching="foo"), BAD_FILE, "batching"),
    "sample dtype": Py(lambda: _sample(dtype="float16"), BAD_FILE, "dtype"),
    "sample out not npz": Py(lambda: _sample(out="s.txt"), BAD_FILE, ".npz"),
    "sample out under a file": Py(lambda: _sample(out="data.npz/s.npz"), CANNOT_WRITE, "a file"),
    "sample out in proc": Py(lambda: _sample(out="/proc/s.npz"), CANNOT_WRITE, "/proc"),
    "sample extxyz exists": Py(lambda: _sample(out="b.npz"), (FileExistsError,), "force=True"),
    "sample run without checkpoint": Py(_sample, (FileNotFoundError, ValueError), "run"),
    # ---- evaluate_runs
    "evaluate no samples": Py(lambda: _evaluate(samples={}), BAD_FILE, "samples"),
    "evaluate samples damaged": Py(
        lambda: _evaluate(samples={"a": "flip.npz"}), BAD_FILE, "damaged"
    ),
    "evaluate reference empty": Py(lambda: _evaluate(reference="empty.npz"), BAD_FILE, "empty"),
    "evaluate reference folder": Py(lambda: _evaluate(reference="folder.npz"), BAD_FILE, "folder"),
    "evaluate out under a file": Py(
        lambda: _evaluate(out_dir="data.npz/rep"), CANNOT_WRITE, "a file"
    ),
    "evaluate report exists": Py(
        lambda: _evaluate(out_dir="report"), (FileExistsError,), "force=True"
    ),
    # ---- train_from_config
    "train resume without checkpoint": Py(
        lambda: _train(run_dir="run", resume=True), (FileNotFoundError,), "resume=True"
    ),
    "train data truncated": Py(lambda: _train(data="trunc.npz"), BAD_FILE, "truncated"),
    "train run dir under a file": Py(
        lambda: _train(run_dir="data.npz/run"), CANNOT_WRITE, "a file"
    ),
}


@pytest.mark.parametrize("name", sorted(PY_CASES))
def test_python_bad_input(name, folder):
    case = PY_CASES[name]
    before = _snapshot(folder)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mf.ImageConventionWarning)
        with pytest.raises(case.errors) as info:
            case.call()
    message = str(info.value)
    assert message.strip() and "\n" not in message.strip(), message
    if case.expect is not None:
        assert case.expect in message, message
    assert _snapshot(folder) == before


def test_catalogue_size():
    assert len(CLI_CASES) + len(PY_CASES) >= 150


# ---------------------------------------------------------------------------- subprocesses
_NO_CLICK = (
    "import sys; sys.modules['click'] = None  # as if click were not installed\n"
    "from cli.main import main\n"
    "sys.argv = ['mflows', *sys.argv[1:]]\n"
    "main()\n"
)


@pytest.mark.parametrize(
    "args",
    [
        ["generate", "--system", "ipl-n10", "--chains", "abc", "--out", "x.npz"],
        ["doctor", "extra"],
    ],
)
def test_usage_errors_need_no_click(args, tmp_path):
    """Typer vendors its own click; `cli/` must not import `click` (which a user may lack)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"}
    done = subprocess.run(
        [sys.executable, "-c", _NO_CLICK, *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == USAGE, done.stderr
    assert len(lines) == 1 and lines[0].startswith("mflows: error: "), done.stderr
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------- with a real run
@pytest.mark.parametrize(
    "args, expect",
    [
        (["-R", "1000000000"], "GiB"),  # item 5: refused before anything is allocated
        (["--chunk-size", "1000000000"], "lower --chunk-size"),
        (["--out", "data.npz/s.npz"], "is a file"),
        (["--out", "b.npz"], "b.extxyz already exists"),  # item 4
        (["--out", "existing.npz"], "--force"),
        (["--temperature", "0"], "temperature"),
        (["--images", "nearest"], "images"),
    ],
)
def test_sample_bad_input_with_a_real_run(args, expect, folder, capsys, monkeypatch):
    from test_sample import tiny_run_dir

    run = str(tiny_run_dir())
    before = _snapshot(folder)
    argv = ["mflows", "sample", "--run", run, "-R", "4", "--out", "s.npz", "--no-progress"]
    monkeypatch.setattr(sys, "argv", [*argv, *args])
    code = run_guarded(app)
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == USAGE and len(err) == 1 and expect in err[0], err
    assert _snapshot(folder) == before  # no .parts folder, no half-written file


def test_sample_to_file_refuses_an_absurd_size_up_front(folder):
    from test_sample import tiny_run_dir

    with pytest.raises(ValueError, match=r"lower num_samples"):
        mf.sample_to_file(tiny_run_dir(), num_samples=10**12, out="s.npz", progress=False)
    assert not Path("s.npz.parts").exists()


def test_a_generate_run_that_fails_before_its_first_block_leaves_no_checkpoint(folder):
    # The start overlaps (two particles at one point): run_monte_carlo refuses after the
    # checkpoint folder was begun. A partial .checkpoint would block the next run until --force.
    system = _ipl10()
    start = np.zeros((system.num_particles, 2))
    before = _snapshot(folder)
    with pytest.raises(ValueError, match="overlap"):
        _generate(initial_positions=start)
    assert _snapshot(folder) == before
    assert not Path("new.npz.checkpoint").exists()


@pytest.mark.parametrize(
    "args",
    [
        (*GEN, "--out", "ro/x.npz"),
        (*GEN_OUT, "--extxyz", "ro/x.extxyz"),
        (*TRAIN, "--run-dir", "ro/run"),
        (*SAMPLE, "--out", "ro/s.npz"),
        (*EVAL, "-o", "ro/rep"),
    ],
)
def test_read_only_folder(args, folder, capsys, monkeypatch):
    # Tests run as root, whom chmod does not stop: the folder is made read-only for the check
    # (os.access) instead.
    (folder / "ro").mkdir()
    real_access = os.access

    def access(path, mode, **kwargs):
        if Path(path).resolve() == (folder / "ro").resolve() and mode & os.W_OK:
            return False
        return real_access(path, mode, **kwargs)

    monkeypatch.setattr(os, "access", access)
    before = _snapshot(folder)
    monkeypatch.setattr(sys, "argv", ["mflows", *args])
    code = run_guarded(app)
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == USAGE and len(err) == 1, err
    assert "no permission to write in" in err[0] and "ro" in err[0], err
    assert _snapshot(folder) == before


def test_an_interrupted_command_exits_130_with_one_line(folder, capsys, monkeypatch):
    # Outside standalone mode Typer turns Ctrl-C inside a command into Exit(130) and returns
    # the code: the guard must pass it on (it once exited 0) and say what was kept.
    import manifold_flows.testing

    def interrupted(**kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(manifold_flows.testing, "run_doctor", interrupted)
    monkeypatch.setattr(sys, "argv", ["mflows", "doctor", "--quick"])
    assert run_guarded(app) == 130
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "interrupted" in err[0], err
