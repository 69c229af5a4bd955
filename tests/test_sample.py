"""`sample_to_file` and `mflows sample`: consistent files, chunked resume, clear errors.

The run under test is a tiny untrained torus EGNN (width 8, depth 1) on IPL N = 10 written as
a run directory (`tiny_run_dir`), so no training compute is spent; every sampling call in this
file and in test_evaluate.py uses one chunk shape and one solver configuration, so the flow is
compiled once per session.
"""

import functools
import json
import sys
import tempfile
import warnings
from pathlib import Path

import jax
import numpy as np
import pytest

import manifold_flows as mf
from manifold_flows._pipeline import sample as sample_module
from manifold_flows._train.checkpoint import save_checkpoint
from manifold_flows._train.run import (
    CHECKPOINT,
    CHECKPOINT_INFO,
    RUN_FORMAT,
    RUN_FORMAT_VERSION,
    RUN_INFO,
    describe_interpolant,
    flow_space_kind,
    write_json,
)

#: The one sampling configuration of the suite (one compilation).
R = 6
CHUNK = 4
# Two Euler steps: one field evaluation per step keeps the traced (and compiled) graph small;
# the sampling machinery under test does not depend on the solver.
SAMPLE_OPTIONS = dict(chunk_size=CHUNK, solver="euler", num_steps=2, progress=False)
TEMPERATURE = 0.1


def energies(system: mf.ParticleSystem, positions) -> np.ndarray:
    """U of each configuration, straight from the system's energy (jitted once per shape)."""
    fn = jax.jit(jax.vmap(lambda x: system.energy(x, system.species)))
    return np.asarray(fn(jax.numpy.asarray(positions)))


def ipl_system() -> mf.ParticleSystem:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mf.ImageConventionWarning)
        return mf.get_system("ipl-n10", images="minimum")


def write_untrained_run(run_dir: Path, *, field: str = "torus_egnn", seed: int = 0) -> Path:
    """A run directory holding a freshly initialised field, as `fit` lays it out."""
    from manifold_flows._interpolant import build_interpolant
    from manifold_flows._train.state import init_train_state, make_optimizer

    system = ipl_system()
    torus = system.torus
    model = mf.ModelConfig(field=field, width=8, depth=1)
    config = mf.TrainConfig(batch_size=8, epochs=1)
    total_steps = 1
    net = model.build(torus, system.num_particles, 2, key=jax.random.key(seed), dtype="float32")
    state = init_train_state(
        net, make_optimizer(config, total_steps), key=jax.random.key(1), dtype="float32"
    )
    interpolant = build_interpolant("linear" if field == "euclidean_egnn" else "geodesic", torus)
    info = {
        "format": RUN_FORMAT,
        "version": RUN_FORMAT_VERSION,
        "model": model.to_dict(),
        "field_class": type(net).__name__,
        "train": config.to_dict(),
        "interpolant": describe_interpolant(interpolant),
        "coupling": {"name": "species_ot"},
        "space": flow_space_kind(interpolant),
        "box": [float(v) for v in system.box],
        "num_particles": system.num_particles,
        "species": [int(s) for s in system.species],
        "species_names": list(system.species_names),
        "system": system.name,
        "temperature": TEMPERATURE,
        "steps_per_epoch": 1,
        "total_steps": total_steps,
    }
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_dir / RUN_INFO, info)
    save_checkpoint(run_dir / CHECKPOINT, state)
    write_json(run_dir / CHECKPOINT_INFO, {"step": 0, "epoch": 0})
    return run_dir


@functools.cache
def tiny_run_dir() -> Path:
    """One tiny run per test session (shared by test_sample.py and test_evaluate.py)."""
    return write_untrained_run(Path(tempfile.mkdtemp(prefix="mflows_tiny_run_")) / "run")


@functools.cache
def tiny_samples() -> tuple[Path, mf.Dataset]:
    """`R` samples of the tiny run written once per session: `(npz path, dataset)`."""
    out = Path(tempfile.mkdtemp(prefix="mflows_tiny_samples_")) / "samples.npz"
    dataset = mf.sample_to_file(tiny_run_dir(), num_samples=R, out=out, seed=3, **SAMPLE_OPTIONS)
    return out, dataset


def run_cli(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """Run `mflows ARGS` in-process the way the console script does (one-line errors)."""
    from cli._errors import run_guarded
    from cli.main import app

    monkeypatch.setattr(sys, "argv", ["mflows", *args])
    code = run_guarded(app)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# ---------------------------------------------------------------------------- files
def test_sample_files_are_consistent():
    out, ds = tiny_samples()
    system = ipl_system()
    # every output is there, the sidecar folder is gone
    assert out.is_file() and out.with_suffix(".extxyz").is_file()
    assert (out.parent / "samples.manifest.json").is_file()
    assert not (out.parent / "samples.npz.parts").exists()
    assert ds.num_samples == R and ds.temperature == TEMPERATURE
    # log w == -U/T - log q, exactly as stored
    np.testing.assert_array_equal(ds.extra["log_w"], -ds.energy / TEMPERATURE - ds.extra["log_q"])
    # U is the IPL energy (minimum image) of the stored, wrapped configurations
    np.testing.assert_allclose(ds.energy, energies(system, ds.positions), rtol=1e-12)
    assert np.all((ds.positions >= 0) & (ds.positions < ds.box))
    # every sample has its own key: no two samples (in or across chunks) coincide
    flat = ds.positions.reshape(R, -1)
    assert min(np.abs(flat[i] - flat[j]).max() for i in range(R) for j in range(i)) > 1e-3
    assert np.all(np.isfinite(ds.extra["log_q"]))
    # the binary file gives back the same dataset and records the settings
    back = mf.load_configurations(out)
    np.testing.assert_array_equal(back.positions, ds.positions)
    np.testing.assert_array_equal(back.extra["log_q"], ds.extra["log_q"])
    np.testing.assert_array_equal(back.energy, ds.energy)
    meta = back.metadata
    assert meta["seed"] == 3 and meta["num_samples"] == R and meta["chunk_size"] == CHUNK
    assert meta["solver"]["name"] == "euler" and meta["solver"]["num_steps"] == 2
    assert meta["solver"]["dtype"] == "float64" and meta["solver"]["divergence"] == "exact"
    assert meta["base_normalized"] is True and meta["euclidean_flow"] is False
    assert meta["energy"]["images"] == "minimum" and meta["energy"]["system"] == "ipl-n10"
    assert "minimum" in meta["energy"]["image_note"]
    assert meta["run"]["dir"] == str(tiny_run_dir().resolve()) and meta["run"]["step"] == 0
    assert meta["nfe"] == {**meta["nfe"], "min": 2, "max": 2, "mean": 2.0, "total": 2 * R}


def test_extxyz_is_readable_by_ase():
    ase_io = pytest.importorskip("ase.io")
    out, ds = tiny_samples()
    frames = ase_io.read(out.with_suffix(".extxyz"), index=":")
    assert len(frames) == R
    for atoms, x, u, lq, lw in zip(
        frames, ds.positions, ds.energy, ds.extra["log_q"], ds.extra["log_w"], strict=True
    ):
        np.testing.assert_allclose(atoms.positions[:, :2], x, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(atoms.get_potential_energy(), u, rtol=1e-12)
        np.testing.assert_allclose(atoms.info["log_q"], lq, rtol=1e-12)
        np.testing.assert_allclose(atoms.info["log_w"], lw, rtol=1e-12)
        assert list(atoms.arrays["type"]) == [ds.species_names[s] for s in ds.species]


def test_resume_gives_the_uninterrupted_samples(tmp_path, monkeypatch):
    _, full = tiny_samples()
    out = tmp_path / "resumed.npz"
    parts = tmp_path / "resumed.npz.parts"
    real_write = sample_module._write_chunk

    def write_then_stop(path, arrays):
        if path.name != "chunk_00000.npz":
            raise KeyboardInterrupt  # interrupted while the second chunk was being saved
        real_write(path, arrays)

    monkeypatch.setattr(sample_module, "_write_chunk", write_then_stop)
    with pytest.raises(KeyboardInterrupt):
        mf.sample_to_file(tiny_run_dir(), num_samples=R, out=out, seed=3, **SAMPLE_OPTIONS)
    # the finished chunk is kept, nothing final is half-written
    assert sorted(p.name for p in parts.iterdir()) == ["chunk_00000.npz", "state.json"]
    assert not out.exists() and not out.with_suffix(".extxyz").exists()
    monkeypatch.setattr(sample_module, "_write_chunk", real_write)

    # without resume (or force) the unfinished run is not silently discarded
    with pytest.raises(FileExistsError, match="resume"):
        mf.sample_to_file(tiny_run_dir(), num_samples=R, out=out, seed=3, **SAMPLE_OPTIONS)
    # other settings cannot resume it
    with pytest.raises(ValueError, match="seed"):
        mf.sample_to_file(
            tiny_run_dir(), num_samples=R, out=out, seed=4, resume=True, **SAMPLE_OPTIONS
        )

    calls = []
    real_draw = sample_module._draw

    def counting_draw(*args):
        calls.append(np.asarray(args[2]))
        return real_draw(*args)

    monkeypatch.setattr(sample_module, "_draw", counting_draw)
    resumed = mf.sample_to_file(
        tiny_run_dir(), num_samples=R, out=out, seed=3, resume=True, **SAMPLE_OPTIONS
    )
    # only the missing chunk was computed, and the result is the uninterrupted one
    assert len(calls) == 1 and calls[0][0] == CHUNK
    np.testing.assert_array_equal(resumed.positions, full.positions)
    np.testing.assert_array_equal(resumed.extra["log_q"], full.extra["log_q"])
    np.testing.assert_array_equal(resumed.energy, full.energy)
    assert not parts.exists()
    manifest = json.loads((tmp_path / "resumed.manifest.json").read_text())
    assert manifest["resumed"] is True and manifest["seeds"] == {"seed": 3}
    # the timing covers both calls: each did one chunk (its first), so both count
    timing = resumed.metadata["timing"]
    assert timing["samples_this_call"] == R - CHUNK and timing["samples_timed"] == R
    assert timing["seconds_all_calls"] > timing["seconds_this_call"] > 0
    assert timing["seconds_per_sample"] == pytest.approx(timing["seconds_all_calls"] / R)


def test_solver_failure_is_a_sampling_error_that_names_the_fix(tmp_path):
    out = tmp_path / "fail.npz"
    options = {**SAMPLE_OPTIONS, "solver": "dopri5", "num_steps": None, "max_steps": 2}
    with pytest.raises(mf.SamplingError, match=r"max_steps=2 .*raise max_steps") as info:
        mf.sample_to_file(tiny_run_dir(), num_samples=R, out=out, seed=3, **options)
    assert info.value.chunk == 0 and "nothing was kept" in str(info.value)
    assert "resume" not in str(info.value)
    assert not out.exists()  # nothing that looks complete
    # a fresh run that finished no chunk leaves no parts folder to block the next call
    assert not (tmp_path / "fail.npz.parts").exists()
    with pytest.raises(mf.SamplingError, match="nothing was kept"):
        mf.sample_to_file(tiny_run_dir(), num_samples=R, out=out, seed=3, **options)


def test_failure_after_a_finished_chunk_keeps_it_for_resume(tmp_path, monkeypatch):
    out = tmp_path / "late.npz"
    parts = tmp_path / "late.npz.parts"
    real_draw = sample_module._draw
    calls = []

    def fail_second(*args):
        calls.append(1)
        if len(calls) == 2:
            raise jax.errors.JaxRuntimeError("INTERNAL: planted failure of the second chunk")
        return real_draw(*args)

    monkeypatch.setattr(sample_module, "_draw", fail_second)
    with pytest.raises(mf.SamplingError, match="resume") as info:
        mf.sample_to_file(tiny_run_dir(), num_samples=R, out=out, seed=3, **SAMPLE_OPTIONS)
    assert info.value.chunk == 1 and "1 finished chunk(s) are kept" in str(info.value)
    assert sorted(p.name for p in parts.iterdir()) == ["chunk_00000.npz", "state.json"]
    assert not out.exists()


def test_wrapping_of_points_outside_the_box(tmp_path, monkeypatch):
    """A flow whose end points leave the box (eFM) has its samples wrapped onto the torus, the
    energy evaluated there, and its log q kept as computed (the Euclidean density)."""
    run_dir = write_untrained_run(tmp_path / "efm", field="euclidean_egnn")
    run = mf.load_run(run_dir)
    flow = mf.flow_for_run(run)
    assert isinstance(flow.base, mf.BoxUniformBase) and flow.normalized
    system = ipl_system()
    box = system.box
    rng = np.random.default_rng(0)
    inside = rng.uniform(0, 1, (3, 10, 2)) * box
    shifts = np.array([[0.0, 0.0], [1.0, -2.0], [-1.0, 0.0]])[:, None, :] * box
    outside = inside + shifts  # sample 0 stays inside, 1 and 2 leave the box
    log_q = np.array([-1.0, -2.0, -3.0])

    def fake_draw(flow, root, indices, species, batching="sequential"):
        c = indices.shape[0]
        pad = np.zeros((c, 10, 2))
        pad[:3] = outside
        lq = np.zeros(c)
        lq[:3] = log_q
        ones = np.ones(c, dtype=np.int32)
        return pad, lq, ones, ones, 0 * ones, 0 * ones  # ..., status: all solves ok

    monkeypatch.setattr(sample_module, "_draw", fake_draw)
    ds = mf.sample_to_file(run, num_samples=3, out=tmp_path / "efm.npz", **SAMPLE_OPTIONS)
    np.testing.assert_allclose(ds.positions, inside, atol=1e-12)
    np.testing.assert_array_equal(ds.extra["log_q"], log_q)
    np.testing.assert_allclose(ds.energy, energies(system, inside), rtol=1e-12)
    meta = ds.metadata
    assert meta["euclidean_flow"] is True and meta["num_samples_wrapped"] == 2
    assert "ignores periodic images" in meta["density"]["log_q"]
    assert meta["density"]["base"] == "BoxUniformBase"


# ---------------------------------------------------------------------------- errors
def test_library_errors_before_any_compute(tmp_path, monkeypatch):
    def no_draw(*args):
        raise AssertionError("sampling started although the input was bad")

    monkeypatch.setattr(sample_module, "_draw", no_draw)
    run = tiny_run_dir()
    out = tmp_path / "s.npz"
    with pytest.raises(ValueError, match="num_samples"):
        mf.sample_to_file(run, num_samples=0, out=out, **SAMPLE_OPTIONS)
    with pytest.raises(ValueError, match=r"\.npz"):
        mf.sample_to_file(run, num_samples=2, out=tmp_path / "s.xyz", **SAMPLE_OPTIONS)
    (tmp_path / "empty_run").mkdir()
    (tmp_path / "empty_run" / RUN_INFO).write_text((run / RUN_INFO).read_text())
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        mf.sample_to_file(tmp_path / "empty_run", num_samples=2, out=out, **SAMPLE_OPTIONS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mf.ImageConventionWarning)
        other = mf.get_system("ipl-n44")
    with pytest.raises(ValueError, match="box"):
        mf.sample_to_file(run, num_samples=2, out=out, system=other, **SAMPLE_OPTIONS)
    out.write_bytes(b"old")
    with pytest.raises(FileExistsError, match="force"):
        mf.sample_to_file(run, num_samples=2, out=out, **SAMPLE_OPTIONS)
    assert out.read_bytes() == b"old"
    assert not (tmp_path / "s.npz.parts").exists()


def test_resolve_system_names():
    box = ipl_system().box
    species = ipl_system().species
    preset, note = mf.resolve_system("ipl-n10", box=box, species=species)
    assert preset.name == "ipl-n10" and "images='minimum' is in force" in note
    # the model name of the reference data gives the same energy
    bhhp, _ = mf.resolve_system("BHHP", box=box, species=species)
    x = np.random.default_rng(1).uniform(0, 1, (3, 10, 2)) * box
    np.testing.assert_allclose(energies(bhhp, x), energies(preset, x), rtol=1e-12)
    allimg, _ = mf.resolve_system("BHHP", box=box, species=species, images="all")
    assert allimg.images == "all"
    with pytest.raises(ValueError, match="cannot tell which energy"):
        mf.resolve_system("mystery", box=box, species=species)
    with pytest.raises(ValueError, match="composition"):
        mf.resolve_system("ipl-n10", box=box, species=np.repeat([0, 1], [4, 6]))


# ---------------------------------------------------------------------------- CLI
def test_cli_sample_happy_path(tmp_path, monkeypatch, capsys):
    _, full = tiny_samples()
    out = tmp_path / "cli.npz"
    code, stdout, stderr = run_cli(
        monkeypatch, capsys,
        "sample", "--run", str(tiny_run_dir()), "--num-samples", str(R), "--out", str(out),
        "--seed", "3", "--chunk-size", str(CHUNK), "--solver", "euler", "--steps", "2",
        "--precision", "64", "--no-progress",
    )  # fmt: skip
    assert code == 0, stderr
    assert f"wrote {R} samples" in stdout and "ESS" in stdout
    # the run's preset (ipl-n10) in its own convention: said in a few words, no warning
    assert "energies with images=minimum" in stdout and "image convention" not in stderr
    ds = mf.load_configurations(out)
    np.testing.assert_array_equal(ds.positions, full.positions)
    assert out.with_suffix(".extxyz").is_file()
    manifest = json.loads((tmp_path / "cli.manifest.json").read_text())
    assert manifest["command"].startswith("mflows sample") and manifest["precision"] == "float64"
    assert str(out) in manifest["data_files"]


def test_cli_sample_batching_vmap_gives_the_same_samples(tmp_path, monkeypatch, capsys):
    _, full = tiny_samples()
    out = tmp_path / "vmap.npz"
    code, _, stderr = run_cli(
        monkeypatch, capsys,
        "sample", "--run", str(tiny_run_dir()), "--num-samples", str(R), "--out", str(out),
        "--seed", "3", "--chunk-size", str(CHUNK), "--solver", "euler", "--steps", "2",
        "--precision", "64", "--no-progress", "--no-extxyz", "--batching", "vmap",
    )  # fmt: skip
    assert code == 0, stderr
    ds = mf.load_configurations(out)
    assert ds.metadata["batching"] == "vmap"
    np.testing.assert_allclose(ds.positions, full.positions, rtol=0, atol=1e-12)
    np.testing.assert_allclose(ds.extra["log_q"], full.extra["log_q"], rtol=1e-12, atol=1e-10)


@pytest.mark.parametrize(
    "case, expected",
    [
        ("zero", "num-samples must be a positive integer"),
        ("no_checkpoint", "no checkpoint"),
        ("no_run", "does not exist"),
        ("exists", "already exists"),
        ("bad_solver", "unknown solver"),
    ],
)
def test_cli_sample_errors(case, expected, tmp_path, monkeypatch, capsys):
    run = str(tiny_run_dir())
    out = tmp_path / "s.npz"
    args = ["sample", "--run", run, "--num-samples", "2", "--out", str(out), "--no-progress"]
    if case == "zero":
        args[4] = "0"
    elif case == "no_checkpoint":
        (tmp_path / "r").mkdir()
        (tmp_path / "r" / RUN_INFO).write_text((Path(run) / RUN_INFO).read_text())
        args[2] = str(tmp_path / "r")
    elif case == "no_run":
        args[2] = str(tmp_path / "missing")
    elif case == "exists":
        out.write_bytes(b"x")
    elif case == "bad_solver":
        args += ["--solver", "rk99"]
    code, _, stderr = run_cli(monkeypatch, capsys, *args)
    assert code == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mflows: error:") and expected in lines[0]
    assert "Traceback" not in stderr
    assert not (tmp_path / "s.npz.parts").exists()
    if case != "exists":
        assert not out.exists()


@pytest.mark.slow
def test_sample_from_a_trained_run(tmp_path):
    """End to end with real training (slow): fit a few steps, sample, check the identities."""
    path = Path(__file__).resolve().parents[2] / "shared" / "data" / "ipl_bhhp_N10_T0.1.xyz"
    if not path.is_file():
        pytest.skip(f"reference data not found at {path}")
    data = mf.load_configurations(path).subset(slice(0, 20))
    torus = mf.FlatTorus(tuple(data.box))
    from manifold_flows._coupling import build_coupling
    from manifold_flows._interpolant import build_interpolant

    mf.fit(
        mf.ModelConfig(width=8, depth=1),
        data,
        interpolant=build_interpolant("geodesic", torus),
        coupling=build_coupling("species_ot", torus),
        config=mf.TrainConfig(batch_size=8, epochs=1),
        run_dir=tmp_path / "run",
        progress=False,
    )
    ds = mf.sample_to_file(
        tmp_path / "run", num_samples=R, out=tmp_path / "s.npz", **SAMPLE_OPTIONS
    )
    assert ds.system == "BHHP" and ds.species_names == data.species_names
    np.testing.assert_array_equal(ds.extra["log_w"], -ds.energy / 0.1 - ds.extra["log_q"])
    # the reference frames' energies are reproduced by the energy the samples used
    system, _ = mf.resolve_system("BHHP", box=data.box, species=data.species)
    # the files store u to ~1e-6 per particle
    np.testing.assert_allclose(energies(system, data.positions), data.energy, atol=1e-5 * 10)
