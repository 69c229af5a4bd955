"""`evaluate_runs` and `mflows evaluate`: the report equals direct calls to the analysis
functions, the files are written, bad input fails early with one clear line, and the
likelihood audit is wired into the report and the exit code."""

import functools
import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
from test_sample import TEMPERATURE, ipl_system, run_cli, tiny_run_dir, tiny_samples

import manifold_flows as mf
from manifold_flows._pipeline import evaluate as evaluate_module

BOOTSTRAP = 200
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def make_reference(
    path: Path | None = None, *, temperature: float = TEMPERATURE, images: str = "minimum"
) -> mf.Dataset:
    """40 configurations with their IPL energies (a stand-in for Monte Carlo data): jittered
    lattices without overlaps, so that energies are of order one per particle."""
    system = ipl_system()
    rng = np.random.default_rng(7)
    sites = (np.stack(np.meshgrid(np.arange(4), np.arange(3)), -1).reshape(-1, 2) + 0.5) / [4, 3]
    lattice = sites[rng.permutation(12)[:10]] * system.box
    positions = lattice + 0.08 * rng.standard_normal((40, 10, 2))
    energy_system = system
    if images != "minimum":
        energy_system, _ = mf.resolve_system("ipl-n10", box=system.box, species=system.species,
                                             images=images)  # fmt: skip
    energy = mf.system_energies(energy_system, positions, system.species, block=40)
    ds = mf.Dataset(
        positions,
        system.species,
        system.species_names,
        system.box,
        temperature=temperature,
        system=system.name,
        energy=energy,
    )
    if path is not None:
        ds.save(path)
    return ds


def perturbed_samples() -> mf.Dataset:
    """The tiny run's samples with another log q: a second, different 'run'."""
    _, ds = tiny_samples()
    log_q = ds.extra["log_q"] + np.linspace(-3.0, 3.0, ds.num_samples)
    return ds.replace(extra={"log_q": log_q, "log_w": -ds.energy / TEMPERATURE - log_q})


@functools.cache
def evaluation() -> tuple[Path, dict]:
    out_dir = Path(tempfile.mkdtemp(prefix="mflows_eval_")) / "report"
    ref_path = out_dir.parent / "reference.npz"
    make_reference(ref_path)
    sample_path, _ = tiny_samples()
    report = mf.evaluate_runs(
        {"eRSI": sample_path, "other": perturbed_samples()},
        reference=ref_path,
        out_dir=out_dir,
        num_bootstrap=BOOTSTRAP,
        seed=5,
        rdf_bins=20,
        energy_bins=15,
    )
    return out_dir, report


def test_evaluate_writes_report_summary_and_plots():
    out_dir, report = evaluation()
    on_disk = json.loads((out_dir / "report.json").read_text())
    assert on_disk == report
    for name in ("rdf.png", "energy_histograms.png", "ess_vs_r.png", "weight_tail.png"):
        assert (out_dir / name).read_bytes()[:8] == PNG_MAGIC
    summary = (out_dir / "summary.md").read_text()
    assert "| eRSI |" in summary and "| other |" in summary and "reference (MC)" in summary
    manifest = json.loads((out_dir / "evaluate.manifest.json").read_text())
    assert manifest["seeds"] == {"seed": 5} and set(manifest["config"]["samples"]) == {
        "eRSI",
        "other",
    }
    assert report["audit_passed"] is None and report["temperature"] == TEMPERATURE


@pytest.mark.parametrize("label", ["eRSI", "other"])
def test_report_numbers_equal_direct_analysis_calls(label):
    _, report = evaluation()
    ds = tiny_samples()[1] if label == "eRSI" else perturbed_samples()
    ref = make_reference()
    n, T = ds.num_particles, TEMPERATURE
    run = report["runs"][label]
    weights = mf.reweight(ds.energy, ds.extra["log_q"], T, base_normalized=True)
    assert run["num_samples"] == ds.num_samples
    assert run["weights"]["ess"] == pytest.approx(weights.ess, rel=1e-12)
    assert run["weights"]["ess_fraction"] == pytest.approx(weights.ess_fraction, rel=1e-12)
    assert run["weights"]["num_nonfinite"] == weights.num_nonfinite
    assert run["weights"]["log_z"] == pytest.approx(weights.log_z, rel=1e-12)
    assert run["weights"]["khat_status"] == weights.khat_status
    u = mf.energy_per_particle(ds.energy, n, weights, num_bootstrap=BOOTSTRAP, seed=5)
    for key in ("raw", "raw_err", "reweighted", "reweighted_err"):
        assert run["u"][key] == pytest.approx(getattr(u, key), rel=1e-12), key
    cv = mf.specific_heat(ds.energy, n, T, weights, num_bootstrap=BOOTSTRAP, seed=5)
    for key in ("raw", "reweighted", "reweighted_err"):
        assert run["c_v"][key] == pytest.approx(getattr(cv, key), rel=1e-12), key
    assert run["high_energy_fraction"] == mf.high_energy_fraction(ds.energy, ref.energy)
    rdf = mf.radial_distribution(ds.positions, ds.species, ds.box, num_bins=20, log_weights=weights)
    np.testing.assert_allclose(run["rdf"]["raw"], rdf.g, rtol=1e-12)
    np.testing.assert_allclose(run["rdf"]["reweighted"], rdf.g_reweighted, rtol=1e-12)
    # ESS against R: the last point is every sample; each point is the ESS of a prefix
    curve = run["ess_curve"]
    assert curve["R"][-1] == ds.num_samples
    for r, ess in zip(curve["R"], curve["ess"], strict=True):
        expected = mf.reweight(ds.energy[:r], ds.extra["log_q"][:r], T).ess
        assert ess == pytest.approx(expected, rel=1e-12)
    assert run["agreement_u"]["tested"] is (weights.ess > 100)


@pytest.mark.parametrize("label", ["eRSI", "other"])
def test_report_free_energy_equals_a_direct_call(label):
    """The report's free energy per particle (bootstrap error) and beta F / N are those of
    `free_energy` with the report's bootstrap settings, and summary.md prints them."""
    out_dir, report = evaluation()
    ds = tiny_samples()[1] if label == "eRSI" else perturbed_samples()
    assert ds.metadata["base_normalized"] is True
    n = ds.num_particles
    fe = mf.free_energy(
        ds.energy, ds.extra["log_q"], TEMPERATURE, num_particles=n, num_bootstrap=BOOTSTRAP, seed=5
    )
    got = report["runs"][label]["free_energy"]
    assert got["identified"] is True
    for key in (
        "free_energy_per_particle",
        "free_energy_per_particle_err",
        "beta_free_energy_per_particle",
        "beta_free_energy_per_particle_err",
        "free_energy",
        "free_energy_delta_err",
    ):
        assert got[key] == pytest.approx(getattr(fe, key), rel=1e-12), key
    assert got["beta_free_energy_per_particle"] == pytest.approx(
        -report["runs"][label]["weights"]["log_z"] / ds.num_particles, rel=1e-12
    )
    summary = (out_dir / "summary.md").read_text()
    f_n = mf.format_value_error(fe.free_energy_per_particle, fe.free_energy_per_particle_err)
    assert f"- {label}: F/N = {f_n}, beta F/N = " in summary


def test_free_energy_not_identified_without_a_normalised_log_q(tmp_path):
    _, ds = tiny_samples()
    report = mf.evaluate_runs(
        {
            "unnormalised": ds.replace(metadata={**ds.metadata, "base_normalized": False}),
            "unknown": ds.replace(metadata={}),
        },
        reference=make_reference(),
        out_dir=tmp_path,
        num_bootstrap=50,
        plots=False,
    )
    for label, why in (("unnormalised", "not a normalised density"), ("unknown", "does not say")):
        fe = report["runs"][label]["free_energy"]
        assert fe["identified"] is False and why in fe["note"] and "not identified" in fe["note"]
        assert f"- {label}: not identified" in (tmp_path / "summary.md").read_text()


def test_ess_against_r_uses_prefixes(tmp_path):
    """The ESS curve holds the ESS of the first R' samples for log-spaced R' up to R."""
    ref = make_reference()
    rng = np.random.default_rng(11)
    r = 80
    positions = ref.positions[rng.integers(0, ref.num_samples, r)]
    energy = mf.system_energies(ipl_system(), positions, ref.species, block=40)
    log_q = -energy / TEMPERATURE + rng.normal(0.0, 1.5, r)  # a decent, imperfect sampler
    samples = ref.replace(positions=positions, energy=energy, extra={"log_q": log_q})
    report = mf.evaluate_runs(
        {"synthetic": samples}, reference=ref, out_dir=tmp_path, num_bootstrap=50, plots=False
    )
    curve = report["runs"]["synthetic"]["ess_curve"]
    sizes = np.asarray(curve["R"])
    assert sizes[0] == 10 and sizes[-1] == r and np.all(np.diff(sizes) > 0)
    assert np.all(np.diff(np.log(sizes)) < 0.3)  # log-spaced, no large gaps
    for size, ess in zip(sizes, curve["ess"], strict=True):
        assert ess == pytest.approx(mf.reweight(energy[:size], log_q[:size], TEMPERATURE).ess)
    assert report["runs"]["synthetic"]["weights"]["ess"] == pytest.approx(curve["ess"][-1])


def test_reference_numbers_equal_direct_calls():
    _, report = evaluation()
    ref = make_reference()
    u = mf.energy_per_particle(ref.energy, ref.num_particles, num_bootstrap=BOOTSTRAP, seed=5)
    cv = mf.specific_heat(ref.energy, ref.num_particles, TEMPERATURE, num_bootstrap=BOOTSTRAP,
                          seed=5)  # fmt: skip
    got = report["reference"]
    assert got["u"]["value"] == pytest.approx(u.raw, rel=1e-12)
    assert got["u"]["error"] == pytest.approx(u.raw_err, rel=1e-12)
    assert "naive" in got["u"]["error_method"]  # no Monte Carlo metadata in this reference
    assert got["c_v"]["value"] == pytest.approx(cv.raw, rel=1e-12)
    assert got["c_v"]["error"] == pytest.approx(cv.raw_err, rel=1e-12)
    assert got["high_energy_threshold"] == mf.high_energy_threshold(ref.energy)
    rdf = mf.radial_distribution(ref.positions, ref.species, ref.box, num_bins=20)
    np.testing.assert_allclose(report["rdf"]["reference"], rdf.g, rtol=1e-12)
    assert report["rdf"]["pair_names"] == ["AA", "AB", "BB"]


def test_reference_error_from_monte_carlo_metadata(tmp_path):
    """With Monte Carlo diagnostics the reference's u error is the chain-based one."""
    ref = make_reference()
    u = float(np.mean(ref.energy) / ref.num_particles)
    meta = {"diagnostics": {"energy_per_particle": {"mean": u, "error": 0.0123, "method": "m"}}}
    sample_path, _ = tiny_samples()
    report = mf.evaluate_runs(
        {"a": sample_path},
        reference=ref.replace(metadata=meta),
        out_dir=tmp_path,
        num_bootstrap=BOOTSTRAP,
        rdf_bins=20,
        energy_bins=15,
        plots=False,
    )
    assert not list(tmp_path.glob("*.png")) and report["plots"] == {}
    assert report["reference"]["u"]["error"] == 0.0123
    assert "Monte Carlo metadata" in report["reference"]["u"]["error_method"]


def test_reference_errors_take_the_monte_carlo_chains_as_units(tmp_path):
    """Monte Carlo data record the chain of each sample: u and c_v of the reference get their
    errors from the chains (samples of a chain are correlated), not from the samples."""
    ref = make_reference()
    chains = np.repeat(np.arange(4), 10)
    sample_path, _ = tiny_samples()
    report = mf.evaluate_runs(
        {"a": sample_path},
        reference=ref.replace(extra={"chain": chains}),
        out_dir=tmp_path,
        num_bootstrap=BOOTSTRAP,
        seed=5,
        rdf_bins=20,
        energy_bins=15,
        plots=False,
    )
    n = ref.num_particles
    u = mf.energy_per_particle(ref.energy, n, chains=chains)
    cv = mf.specific_heat(ref.energy, n, TEMPERATURE, chains=chains, num_bootstrap=BOOTSTRAP,
                          seed=5)  # fmt: skip
    got = report["reference"]
    assert got["u"]["error"] == pytest.approx(u.raw_err, rel=1e-12)
    assert got["u"]["error_method"] == "standard error over the 4 Monte Carlo chains"
    assert got["c_v"]["error"] == pytest.approx(cv.raw_err, rel=1e-12)
    assert got["c_v"]["error_method"] == "bootstrap over the 4 Monte Carlo chains"
    iid = mf.energy_per_particle(ref.energy, n)
    assert got["u"]["naive_error"] == pytest.approx(iid.raw_err, rel=1e-12)
    assert got["u"]["error"] != pytest.approx(iid.raw_err, rel=1e-3)


# ---------------------------------------------------------------------------- errors
def _fail_if_computing(monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("the evaluation started although the input was bad")

    monkeypatch.setattr(evaluate_module, "radial_distribution", boom)


def test_bad_input_fails_before_any_output(tmp_path, monkeypatch):
    _fail_if_computing(monkeypatch)
    sample_path, ds = tiny_samples()
    ref = make_reference()
    out = tmp_path / "out"

    def run(samples, reference=ref, **kw):
        return mf.evaluate_runs(samples, reference=reference, out_dir=out, **kw)

    with pytest.raises(ValueError, match=r"T=0\.1 but temperature=0\.2"):
        run({"a": sample_path}, temperature=0.2)
    with pytest.raises(ValueError, match="box"):
        run({"a": ds.replace(box=ds.box * 1.1)})
    wrong_species = ds.replace(species=np.repeat(np.arange(2), [4, 6]).astype(np.int32))
    with pytest.raises(ValueError, match="composition"):
        run({"a": wrong_species})
    with pytest.raises(ValueError, match="log q"):
        run({"a": ds.replace(extra={})})
    with pytest.raises(ValueError, match="no energies"):
        run({"a": sample_path}, reference=ref.replace(energy=None))
    with pytest.raises(ValueError, match="temperature"):
        run({"a": sample_path}, reference=ref.replace(temperature=None))
    with pytest.raises(ValueError, match="non-empty"):
        run({})
    with pytest.raises(FileNotFoundError):
        run({"a": tmp_path / "missing.npz"})
    assert not out.exists()


def test_energy_convention_mismatch_is_an_error(tmp_path, monkeypatch):
    """Reference energies summed over all periodic images do not match samples whose U used
    the minimum image: a different Hamiltonian, refused."""
    _fail_if_computing(monkeypatch)
    sample_path, _ = tiny_samples()
    with pytest.raises(ValueError, match="different Hamiltonians or image conventions"):
        mf.evaluate_runs(
            {"a": sample_path}, reference=make_reference(images="all"), out_dir=tmp_path / "o"
        )
    assert not (tmp_path / "o").exists()


def test_existing_report_needs_force(tmp_path):
    (tmp_path / "report.json").write_text("{}")
    sample_path, _ = tiny_samples()
    with pytest.raises(FileExistsError, match="force"):
        mf.evaluate_runs({"a": sample_path}, reference=make_reference(), out_dir=tmp_path)
    assert (tmp_path / "report.json").read_text() == "{}"


# ---------------------------------------------------------------------------- CLI
def test_cli_evaluate_happy_path(tmp_path, monkeypatch, capsys):
    sample_path, _ = tiny_samples()
    make_reference(tmp_path / "ref.npz")
    out = tmp_path / "eval"
    code, stdout, stderr = run_cli(
        monkeypatch, capsys,
        "evaluate", "--samples", f"eRSI={sample_path}", "--samples", str(sample_path),
        "--reference", str(tmp_path / "ref.npz"), "--temperature", "0.1", "--out", str(out),
        "--bootstrap", "50", "--no-plots",
    )  # fmt: skip
    assert code == 0, stderr
    report = json.loads((out / "report.json").read_text())
    assert set(report["runs"]) == {"eRSI", "samples"}  # a bare FILE is labelled by its stem
    assert "eRSI: R = 6, ESS =" in stdout and "reference: u =" in stdout
    assert (out / "evaluate.manifest.json").is_file()
    # k-hat as the report tables print it (3 significant digits), not 0.9702998152507507
    khat = report["runs"]["eRSI"]["weights"]["khat"]
    assert f"k-hat {mf.format_number(khat, 3)} (" in stdout
    assert khat is None or f"k-hat {khat} (" not in stdout or str(khat) == mf.format_number(khat, 3)


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--temperature", "0.5"], "T=0.1 but --temperature 0.5 was asked"),
        (["--samples", "eRSI=missing.npz"], "not found"),
        (["--samples", "=x.npz"], "label before '=' is empty"),
    ],
)
def test_cli_evaluate_errors(args, expected, tmp_path, monkeypatch, capsys):
    sample_path, _ = tiny_samples()
    make_reference(tmp_path / "ref.npz")
    base = ["evaluate", "--reference", str(tmp_path / "ref.npz"), "--out", str(tmp_path / "o")]
    if not any(a == "--samples" for a in args):
        base += ["--samples", f"eRSI={sample_path}"]
    monkeypatch.chdir(tmp_path)
    code, _, stderr = run_cli(monkeypatch, capsys, *base, *args)
    lines = stderr.strip().splitlines()
    assert code == 2 and len(lines) == 1 and expected in lines[0], stderr
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("fail", [False, True])
def test_cli_audit_goes_into_report_and_exit_code(fail, tmp_path, monkeypatch, capsys):
    """`--audit` runs the likelihood audit on the run's flow (mocked here: its own tests live
    with it) with the samples' solver settings and the box's symmetry group for a torus EGNN;
    the checks land in the report and a failed check makes the command fail."""
    from manifold_flows import _flow

    seen = {}

    def fake_audit(flow, key, args, *, group=None, **options):
        seen.update(flow=flow, args=args, group=group, options=options)
        checks = (
            _flow.AuditCheck("forward_reverse", "fwd == rev", 1e-6, 1e-3, True),
            _flow.AuditCheck("group_invariance", "log q(gx)", 1.0 if fail else 0.0, 1e-3, not fail),
        )
        return _flow.AuditReport(checks, True, {"solver": type(flow.solver).__name__})

    monkeypatch.setattr(_flow, "likelihood_audit", fake_audit)
    sample_path, _ = tiny_samples()
    make_reference(tmp_path / "ref.npz")
    out = tmp_path / "eval"
    code, _, stderr = run_cli(
        monkeypatch, capsys,
        "evaluate", "--samples", f"eRSI={sample_path}", "--reference", str(tmp_path / "ref.npz"),
        "--out", str(out), "--bootstrap", "50", "--audit", str(tiny_run_dir()),
        "--audit-points", "2", "--no-plots",
    )  # fmt: skip
    report = json.loads((out / "report.json").read_text())
    audit = report["audits"]["eRSI"]  # the bare run dir is matched to the samples drawn from it
    assert audit["passed"] is (not fail) and report["audit_passed"] is (not fail)
    assert [c["name"] for c in audit["checks"]] == ["forward_reverse", "group_invariance"]
    assert isinstance(seen["flow"], mf.ContinuousFlow) and seen["options"] == {"num_points": 2}
    assert seen["flow"].num_steps == 2 and seen["flow"].dtype_name == "float64"
    assert isinstance(seen["group"], mf.ProductAction)
    np.testing.assert_array_equal(np.asarray(seen["args"]), ipl_system().species)
    if fail:
        assert code == 2 and "likelihood audit FAILED (eRSI: group_invariance)" in stderr
        assert "FAILED" in (out / "summary.md").read_text()
    else:
        assert code == 0, stderr


@pytest.mark.slow
def test_real_audit_of_the_tiny_run(tmp_path):
    """The real audit (slow). The run is labelled apart from the samples, so it is audited
    with the default solver (dopri5 at 1e-5) rather than the samples' two Euler steps, which
    are too coarse for the audit's known-answer problems."""
    sample_path, _ = tiny_samples()
    report = mf.evaluate_runs(
        {"eRSI": sample_path},
        reference=make_reference(),
        out_dir=tmp_path,
        audit_runs={"tiny": tiny_run_dir()},
        audit_options={"num_points": 2, "num_probes": 16},
        num_bootstrap=50,
        plots=False,
    )
    audit = report["audits"]["tiny"]
    assert report["audit_passed"] is True, audit["table"]
    assert audit["config"]["solver"] == "Dopri5"
    names = {c["name"]: c["passed"] for c in audit["checks"]}
    assert names["forward_reverse"] and names["group_invariance"] and names["exact_divergence"]


def test_report_number_formatting():
    assert mf.format_number(0.333749) == "0.3337"
    assert mf.format_number(1280) == "1280"
    assert mf.format_number(123456.0) == "1.235e+05"  # scientific from 1e5 on
    assert mf.format_number(4.2e-4) == "4.200e-04"  # and below 1e-3
    assert mf.format_number(0) == "0"
    assert mf.format_number(None) == "n/a"
    assert mf.format_number(float("nan")) == "nan"
    assert mf.format_value_error(0.3441, 0.00351) == "0.3441 ± 0.0035"
    assert mf.format_value_error(0.3441, None) == "0.3441"
    assert mf.format_value_error(None, 0.1) == "n/a"
