"""Flow-augmented Monte Carlo: independent Metropolis-Hastings flow moves interleaved with the
local sweeps. Detailed balance of the flow move, exact averages of the combined kernel on a
system whose averages are known by quadrature (with a good and with a deliberately bad
proposal), a check that the averages test catches a broken acceptance rule, species handling,
proposal bookkeeping and resumption."""

import contextlib
import io
import json
import sys
import warnings
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray, PyTree, Shaped

import manifold_flows as mf
from cli._errors import run_guarded
from cli.main import app
from manifold_flows._mc import flow_moves as fm

# ----------------------------------------------------------------------------- the test system
# Two particles (one A, one B: swaps exchange their labels) of the IPL model in a 3 x 3 box at
# T = 1. The relative position r = x_B - x_A (minimum image) is uniform on the box with weight
# exp(-W(|r|)/T), whatever the centre of mass, so <U> and <U^2> are 2D integrals.
L, T = 3.0, 1.0
with warnings.catch_warnings():  # the box is shorter than twice the cutoff: minimum image
    warnings.simplefilter("ignore")
    SYSTEM = mf.make_system("ipl", num_particles=2, composition=[1, 1], box=L, temperature=T)
SPECIES = np.asarray(SYSTEM.species)


def exact_moments() -> tuple[float, float]:
    """<U> and <U^2> by midpoint quadrature on a 1200 x 1200 grid of r (the integrand is smooth:
    exp(-W/T) vanishes to all orders at r = 0)."""
    m = 1200
    g = (np.arange(m) + 0.5) / m * L - L / 2
    rx, ry = np.meshgrid(g, g)
    r = np.hypot(rx, ry)
    sigma = 1.2  # sigma_AB
    cut = 2.5 * sigma
    with np.errstate(divide="ignore", over="ignore"):
        w = np.where(r < cut, (sigma / r) ** 12 - (sigma / cut) ** 12, 0.0)
    boltz = np.exp(-w / T)
    z = boltz.sum()
    return float((w * boltz).sum() / z), float((w**2 * boltz).sum() / z)


def test_system_energy_is_the_pair_potential():
    """The quadrature's potential is the system's (so the exact moments are the system's)."""
    x = np.asarray([[0.2, 0.3], [1.5, 2.9]])
    r = np.hypot(1.3, 3.0 - 2.6)  # minimum image along y
    expected = (1.2 / r) ** 12 - (1.2 / 3.0) ** 12
    got = float(SYSTEM.energy(jnp.asarray(x), jnp.asarray(SPECIES)))
    assert got == pytest.approx(expected, rel=1e-10)


class WrappedGaussianParticles(mf.AbstractLikelihood):
    """Every coordinate of every particle independent, a Gaussian of width `scale` around
    `centre` wrapped onto the box: exact sampling, exact log-density (image sum), invariant
    under every permutation of particles. A narrow one is a deliberately bad proposal for the
    test system (it puts both particles on top of each other)."""

    space: mf.ParticleSpace
    base: mf.UniformBase
    centre: Float[Array, "n d"]
    scale: Float[Array, ""]

    def __init__(self, space: mf.ParticleSpace, centre, scale: float):
        # one centre for all particles (invariant), or one per particle (not invariant)
        self.space = space
        self.base = mf.UniformBase(space)
        self.centre = jnp.broadcast_to(jnp.asarray(centre), space.point_shape)
        self.scale = jnp.asarray(scale, dtype=jnp.float64)  # an array: no recompilation

    def sample_and_log_prob(
        self, key: PRNGKeyArray, args: PyTree
    ) -> tuple[Shaped[Array, "..."], Float[Array, ""]]:
        z = jax.random.normal(key, self.space.point_shape, dtype=self.centre.dtype)
        x = jnp.mod(self.centre + self.scale * z, L)
        return x, self.log_prob(x, args)

    def log_prob(
        self, x: Shaped[ArrayLike, "..."], args: PyTree, *, key: PRNGKeyArray | None = None
    ) -> Float[Array, ""]:
        x = jnp.mod(jnp.asarray(x), L)
        images = jnp.arange(-6, 7, dtype=x.dtype) * L
        u = (x - self.centre)[..., None] + images[None, None, :]
        log_terms = -0.5 * (u / self.scale) ** 2 - 0.5 * jnp.log(2 * jnp.pi * self.scale**2)
        return jnp.sum(jax.scipy.special.logsumexp(log_terms, axis=-1))


SPACE = mf.ParticleSpace(mf.FlatTorus(L, dim=2), 2)
GOOD = WrappedGaussianParticles(SPACE, [1.5, 1.5], 2.0)  # close to uniform: a fair proposal
BAD = WrappedGaussianParticles(SPACE, [1.5, 1.5], 0.35)  # both particles near the centre


def test_wrapped_gaussian_is_a_normalised_density():
    grid = (np.arange(200) + 0.5) / 200 * L
    gx, gy = np.meshgrid(grid, grid)
    one = WrappedGaussianParticles(mf.ParticleSpace(mf.FlatTorus(L, dim=2), 1), [0.4, 2.9], 0.35)
    pts = jnp.asarray(np.stack([gx.ravel(), gy.ravel()], -1)[:, None, :])
    dens = np.exp(np.asarray(jax.vmap(lambda p: one.log_prob(p, None))(pts)))
    assert dens.sum() * (L / 200) ** 2 == pytest.approx(1.0, abs=1e-6)


# ----------------------------------------------------------------------------- detailed balance
def _acceptance_probability(x, lq_x, y, lq_y, species_x):
    """P(accept x -> y) of `flow_step`, integrated over its uniform draw on a fine grid."""
    u = (jnp.arange(20000, dtype=jnp.float64) + 0.5) / 20000
    energy = SYSTEM.energy
    x, species_x = jnp.asarray(x), jnp.asarray(species_x)
    state = mf.ChainState(x, species_x, energy(x, species_x), jax.random.key(0))
    accepted = jax.vmap(
        lambda ui: fm.flow_step(
            energy,
            state,
            jnp.asarray(lq_x, jnp.float64),
            jnp.asarray(y),
            jnp.asarray(lq_y, jnp.float64),
            jnp.asarray(SPECIES),
            jnp.asarray(T, jnp.float64),
            ui,
        )[2]
    )(u)
    return float(jnp.mean(accepted))


def test_flow_move_detailed_balance_on_a_finite_state_space():
    """With proposals drawn from a finite set of configurations with probabilities q_i, the
    flow move is a Markov chain on that set; pi_i P_ij must equal pi_j P_ji for
    pi_i ∝ exp(-U_i / T) (the Boltzmann law restricted to the set)."""
    rng = np.random.default_rng(0)
    # pairs 1.1 to 1.5 apart: energies within a few T of each other, so every acceptance
    # probability is resolved by the grid of uniforms
    angle, dist = rng.uniform(0, 2 * np.pi, 5), rng.uniform(1.1, 1.5, 5)
    first = rng.uniform(0, L, size=(5, 2))
    second = np.mod(first + dist[:, None] * np.stack([np.cos(angle), np.sin(angle)], -1), L)
    configs = np.stack([first, second], axis=1)
    q = rng.dirichlet(np.ones(5))
    u = np.asarray(jax.vmap(SYSTEM.energy, in_axes=(0, None))(jnp.asarray(configs), SPECIES))
    pi = np.exp(-(u - u.min()) / T)
    pi /= pi.sum()
    P = np.zeros((5, 5))
    for i in range(5):
        for j in range(5):
            if i != j:
                lq_i, lq_j = np.log(q[i]), np.log(q[j])
                P[i, j] = q[j] * _acceptance_probability(
                    configs[i], lq_i, configs[j], lq_j, SPECIES
                )
    flux = pi[:, None] * P
    np.testing.assert_allclose(flux, flux.T, rtol=2e-3, atol=1e-7)
    assert np.count_nonzero(P > 0) == 20  # every move is possible


def test_flow_move_ignores_the_order_of_labels():
    """A chain state whose labels were permuted by swaps has the acceptance of its canonical
    form (particles sorted by species)."""
    x = np.asarray([[0.3, 0.4], [2.0, 1.1]])
    y = np.asarray([[1.0, 2.0], [2.5, 0.3]])
    lq = float(GOOD.log_prob(jnp.asarray(x), None))
    a = _acceptance_probability(x, lq, y, -3.0, SPECIES)
    # the same configuration with the particles listed in the other order
    b = _acceptance_probability(x[::-1], lq, y, -3.0, SPECIES[::-1])
    assert a == pytest.approx(b, abs=1e-12)
    canon = fm.canonicalize(jnp.asarray(x[::-1]), jnp.asarray(SPECIES[::-1]))
    np.testing.assert_array_equal(np.asarray(canon), x)


# ----------------------------------------------------------------------------- exact averages
EXACT_U, EXACT_U2 = exact_moments()
CHAINS, SAMPLES = 32, 100


def run_flow_chains(likelihood, *, seed=0, every=1, moves=2, **options):
    """Flow-augmented chains on the test system; returns the result and the driver."""
    moves_ = mf.FlowMoves(likelihood, SPECIES, every=every, moves=moves, seed=seed + 1)
    settings = dict(
        num_chains=CHAINS,
        samples_per_chain=SAMPLES,
        sweeps_between=2,
        equilibration_sweeps=40,
        samples_per_block=50,
    )
    settings.update(options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mf.MCDiagnosticWarning)
        result = mf.run_monte_carlo(
            SYSTEM, key=seed, progress=False, extra_moves=moves_, **settings
        )
    return result, moves_


def deviation_in_errors(result) -> tuple[float, float]:
    """(<U> - exact) and (<U^2> - exact) in standard errors, chains as independent units."""
    u = result.sample_energies
    out = []
    for values, exact in ((u, EXACT_U), (u**2, EXACT_U2)):
        means = values.mean(axis=1)
        error = means.std(ddof=1) / np.sqrt(len(means))
        out.append((means.mean() - exact) / error)
    return out[0], out[1]


@pytest.mark.parametrize("likelihood", [GOOD, BAD], ids=["fair", "bad"])
def test_combined_kernel_gives_the_exact_averages(likelihood):
    """Local sweeps (displacements, swaps) and flow moves together sample the Boltzmann law:
    <U> and <U^2> within 4 standard errors of quadrature, with a fair proposal and with a bad
    one (which is only accepted less often)."""
    result, moves = run_flow_chains(likelihood)
    du, du2 = deviation_in_errors(result)
    assert abs(du) < 4 and abs(du2) < 4, (du, du2)
    rate = result.acceptance["flow"]
    assert rate is not None and 0 < rate < 1
    assert moves.cursor == moves.proposals_needed(CHAINS, 40 + 2 * SAMPLES)


def test_averages_test_catches_a_broken_acceptance_rule(monkeypatch):
    """The test above has power: with the sign of log q flipped in the weights (accepting by
    q(x') p(x') / (q(x) p(x)) instead of p(x') q(x) / (p(x) q(x'))), the bad proposal drags
    the chains towards overlapping particles and <U> is off by far more than 4 errors."""
    monkeypatch.setattr(fm, "flow_log_weight", lambda u, log_q, t: -u / t + log_q)
    jax.clear_caches()
    try:
        result, _ = run_flow_chains(BAD, samples_per_chain=60)
    finally:
        monkeypatch.undo()
        jax.clear_caches()
    du, _ = deviation_in_errors(result)
    assert du > 8, du


def _coupling_flow(init_scale: float) -> mf.AugmentedCouplingFlow:
    """A coupling flow on the test system, its splines far from the identity (random weights
    scaled up), so that q differs from the uniform density by order one."""
    return mf.AugmentedCouplingFlow(
        SPACE,
        2,
        num_layers=2,
        width=8,
        channels=2,
        num_rbf=4,
        init_scale=init_scale,
        dtype=jnp.float64,
        key=jax.random.key(7),
    )


def test_combined_kernel_with_an_augmented_flow_gives_the_exact_averages():
    """An augmented (coupling) flow proposes with its aux-corrected log q~ = log q(x, a) -
    log p_aux(a | x): the chains run on (x, a), a state's a drawn afresh after local moves, and
    still give the exact <U> and <U^2>."""
    flow = _coupling_flow(1.0)  # acceptance about 7 %, log q spread about 2
    _, lq = mf.sample(flow, jax.random.key(1), 64, SPECIES, chunk_size=None)
    assert float(jnp.std(lq)) > 1.0  # far from uniform: the weights matter
    result, moves = run_flow_chains(flow)
    du, du2 = deviation_in_errors(result)
    assert abs(du) < 4 and abs(du2) < 4, (du, du2)
    rate = result.acceptance["flow"]
    assert rate is not None and 0.02 < rate < 0.98
    assert moves.evaluations > 0 and moves.metadata()["auxiliaries"]
    assert moves.fingerprint()["aux_seed"] == 1


def test_combined_kernel_with_several_auxiliary_draws_gives_the_exact_averages():
    """The same with K = 3 auxiliary draws per configuration (`MultiAuxFlow`): a state's K
    draws are refreshed together, and the label check permutes each draw with the particles."""
    flow = mf.MultiAuxFlow(_coupling_flow(1.0), 3)
    result, moves = run_flow_chains(flow)
    du, du2 = deviation_in_errors(result)
    assert abs(du) < 4 and abs(du2) < 4, (du, du2)
    assert 0.02 < result.acceptance["flow"] < 0.98 and moves.augmented
    x = np.asarray([[0.3, 0.4], [2.0, 1.1]])
    assert (
        mf.check_label_invariance(mf.MultiAuxFlow(_coupling_flow(3.0), 3), x, np.asarray([0, 0]))
        < 1e-9
    )


def test_augmented_state_evaluations_draw_their_own_auxiliaries():
    """Each evaluation of a chain state's log q~ draws a from its own key (refresh_key): the
    same index gives the same key (a resumed run redraws the same a), other indices and the
    proposal stream differ; a flow without auxiliaries is evaluated without a key."""
    moves = mf.FlowMoves(_coupling_flow(1.0), SPECIES, seed=4)
    same = jax.random.key_data(moves.refresh_key(5)), jax.random.key_data(moves.refresh_key(5))
    np.testing.assert_array_equal(*same)
    keys = {tuple(np.asarray(jax.random.key_data(moves.refresh_key(i)))) for i in range(50)}
    keys.add(tuple(np.asarray(jax.random.key_data(jax.random.fold_in(jax.random.key(4), 0)))))
    assert len(keys) == 51
    assert not mf.FlowMoves(GOOD, SPECIES).augmented


def test_label_invariance_check_of_an_augmented_flow():
    """For an augmented flow the check compares the exact joint log q(x, a) with the
    auxiliaries permuted along with the particles (its one-draw estimate of log q(x) would
    differ by the draw)."""
    flow = _coupling_flow(3.0)
    x = np.asarray([[0.3, 0.4], [2.0, 1.1]])
    assert mf.check_label_invariance(flow, x, np.asarray([0, 0])) < 1e-9


# ----------------------------------------------------------------------------- species
def test_equivariant_flow_is_invariant_under_permutations_within_a_species():
    """The claim `canonicalize` rests on, checked for the library's flow: a continuous flow
    with a torus EGNN field and a uniform base gives the same log q to a configuration and to
    any permutation of its particles within a species (to solver round-off), but not across
    species, so sorting by species is needed and enough."""
    n, box = 4, 3.0
    torus = mf.FlatTorus(box, dim=2)
    space = mf.ParticleSpace(torus, n)
    field = mf.TorusEGNN(torus, 2, width=8, depth=1, key=jax.random.key(3))
    # a fresh network is nearly the zero field: scale its coordinate output up
    field = eqx.tree_at(
        lambda f: [layer.coord2 for layer in f.core.layers], field, replace_fn=lambda w: 300.0 * w
    )
    flow = mf.ContinuousFlow(
        space, field, base=mf.UniformBase(space), divergence=mf.ExactDivergence(), num_steps=4
    )
    species = jnp.asarray([0, 0, 1, 1])
    x = jax.random.uniform(jax.random.key(4), (n, 2), maxval=box, dtype=jnp.float64)
    log_q = jax.jit(jax.vmap(lambda p: flow.log_prob(p, species)))
    within = jnp.stack([x, x[jnp.asarray([1, 0, 2, 3])], x[jnp.asarray([1, 0, 3, 2])]])
    across = x[jnp.asarray([2, 1, 0, 3])][None]
    values = np.asarray(log_q(jnp.concatenate([within, across])))
    assert abs(values[0] - (-n * np.log(box**2))) > 1e-2  # not the uniform density
    np.testing.assert_allclose(values[1:3], values[0], rtol=0, atol=1e-9)
    assert abs(values[3] - values[0]) > 1e-3


def test_label_invariance_check():
    """`check_label_invariance` passes an invariant model and refuses one whose particles have
    their own centres (what a non-equivariant flow looks like to it)."""
    x = np.asarray([[0.3, 0.4], [2.0, 1.1]])
    species = np.asarray([0, 0])
    assert mf.check_label_invariance(GOOD, x, species) < 1e-12
    own = WrappedGaussianParticles(SPACE, [[0.5, 0.5], [2.0, 2.0]], 0.5)
    with pytest.raises(ValueError, match="permuted"):
        mf.check_label_invariance(own, x, species)
    mf.check_label_invariance(own, x, np.asarray([0, 1]))  # nothing to permute: no claim


# ----------------------------------------------------------------------------- bookkeeping
def test_each_file_proposal_is_used_once_and_running_out_is_an_error():
    x, lq = mf.sample(GOOD, jax.random.key(5), 40, None, chunk_size=None)
    proposals = mf.ArrayProposals(np.asarray(x), np.asarray(lq), SPECIES, source="test")
    moves = mf.FlowMoves(GOOD, SPECIES, proposals=proposals, every=2, moves=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mf.MCDiagnosticWarning)
        mf.run_monte_carlo(
            SYSTEM,
            key=0,
            progress=False,
            extra_moves=moves,
            num_chains=4,
            samples_per_chain=4,
            sweeps_between=4,
            equilibration_sweeps=0,
        )
    assert moves.cursor == 4 * (16 // 2) == 32  # each of 32 proposals read once
    with pytest.raises(mf.ProposalsExhaustedError, match="used up"):
        proposals.take(32, 16)


def test_interrupted_flow_run_resumes_exactly(tmp_path):
    """Flow-move state (log q of the chains, proposals used) is checkpointed with every block:
    a run interrupted after a block and resumed gives exactly the uninterrupted samples."""

    def run(on_block=None, resume=False, folder="ck"):
        return run_flow_chains(
            GOOD,
            seed=3,
            num_chains=4,
            samples_per_chain=6,
            samples_per_block=2,
            equilibration_sweeps=4,
            checkpoint_dir=tmp_path / folder,
            resume=resume,
            on_block=on_block,
        )

    class Stop(Exception):
        pass

    def stop_after_second(info):
        if info.index == 2:
            raise Stop

    with pytest.raises(Stop):
        run(on_block=stop_after_second)
    resumed, moves = run(resume=True)
    whole, moves_whole = run(folder="whole")
    np.testing.assert_array_equal(resumed.dataset.positions, whole.dataset.positions)
    np.testing.assert_array_equal(resumed.sample_energies, whole.sample_energies)
    assert moves.cursor == moves_whole.cursor
    meta = resumed.dataset.metadata["mc"]
    assert meta["extra_moves"]["proposals_used"] == moves.cursor
    assert meta["acceptance_production"]["flow"]["attempted"] > 0


# ----------------------------------------------------------------------------- the CLI
CONFIGS = Path(__file__).resolve().parents[1] / "examples" / "configs"
L10 = 4.472136  # ipl-n10 box


def _cli(args) -> tuple[int, str, str]:
    """`mflows ARGS` in-process through the console script's guard; (code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    argv = sys.argv
    sys.argv = ["mflows", *map(str, args)]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = run_guarded(app)
    finally:
        sys.argv = argv
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """A tiny eRSI run on ipl-n10 (one epoch of a width-4 network on random data): a real
    torus flow, cheap to solve with a few fixed steps."""
    folder = tmp_path_factory.mktemp("flowmcmc")
    rng = np.random.default_rng(0)
    species = np.array([0] * 5 + [1] * 5)
    data = mf.Dataset(
        rng.uniform(0, L10, (16, 10, 2)),
        species,
        ("A", "B"),
        np.full(2, L10),
        temperature=0.1,
        system="ipl-n10",
    ).save(folder / "data.npz")
    run = folder / "run"
    code, _, err = _cli(
        [
            *("train", "--config", CONFIGS / "ersi_ipl_n10.toml", "--data", data),
            *("--run-dir", run, "--set", "model.width=4", "--set", "model.depth=1"),
            *("--set", "train.batch_size=8", "--epochs", "1", "--no-progress"),
        ]
    )
    assert code == 0, err
    return run


MCMC = ["--chains", "2", "--samples-per-chain", "2", "--sweeps-between", "4"]
MCMC += ["--equilibration", "0", "--flow-every", "2", "--steps", "2", "--no-progress"]
MCMC += ["--proposal-batch", "8", "--eval-batch", "2"]


def test_cli_writes_a_dataset_generate_would(tiny_run, tmp_path):
    out = tmp_path / "chains.npz"
    code, stdout, err = _cli(["mcmc", "--run", tiny_run, "--out", out, *MCMC])
    assert code == 0, err
    assert "flow" in stdout and "autocorrelation" in stdout and "CPU s" in stdout
    data = mf.Dataset.load(out)  # what `mflows train` / `mflows evaluate` read
    assert data.num_samples == 4 and data.energy is not None and data.temperature == 0.1
    meta = data.metadata["mc"]
    assert meta["acceptance_production"]["flow"]["attempted"] == 2 * 2 * (4 // 2)
    assert meta["extra_moves"]["proposals_used"] == 2 * (2 * 4) // 2
    manifest = json.loads((tmp_path / "chains.manifest.json").read_text())
    assert manifest["flow_mcmc"]["flow_acceptance"] is not None


def _samples_file(folder: Path, run: Path, temperature: float, num: int = 8) -> Path:
    rng = np.random.default_rng(1)
    species = np.array([0] * 5 + [1] * 5)
    return mf.Dataset(
        rng.uniform(0, L10, (num, 10, 2)),
        species,
        ("A", "B"),
        np.full(2, L10),
        temperature=temperature,
        system="ipl-n10",
        extra={"log_q": rng.normal(size=num)},
        metadata={"run": {"dir": str(run)}, "solver": {"num_steps": 2}},
    ).save(folder / f"samples_T{temperature}.npz")


@pytest.mark.parametrize(
    "case",
    ["no source", "other temperature", "too few proposals", "other system"],
)
def test_cli_refuses_with_one_line(case, tiny_run, tmp_path):
    out = tmp_path / "chains.npz"
    args = {
        "no source": ["mcmc", "--out", out, *MCMC],
        "other temperature": [
            "mcmc",
            "--proposals",
            _samples_file(tmp_path, tiny_run, 0.2),
            "--out",
            out,
            *MCMC,
        ],
        "too few proposals": [
            "mcmc",
            "--proposals",
            _samples_file(tmp_path, tiny_run, 0.1, 3),
            "--out",
            out,
            *MCMC,
        ],
        "other system": ["mcmc", "--run", tiny_run, "--system", "ka3-n44", "--out", out, *MCMC],
    }[case]
    expect = {
        "no source": "--run",
        "other temperature": "T = 0.2",
        "too few proposals": "needs 8 proposals",
        "other system": "box",
    }[case]
    code, _, err = _cli(args)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert expect in lines[0], lines[0]
    assert not out.exists()


# ----------------------------------------------------------------------------- adaptive mode
def _refit(model, samples: mf.Dataset, round_: int):
    """Adapt the wrapped Gaussian to the chains' samples: its width becomes the root mean
    square minimum-image distance of the particles from its centre."""
    offset = samples.positions - np.asarray(model.centre)[None]
    offset -= L * np.round(offset / L)
    return WrappedGaussianParticles(SPACE, model.centre, float(np.sqrt(np.mean(offset**2))))


def test_adaptive_mode_learns_during_burn_in_and_is_exact_in_production():
    """The model adapts to the burn-in samples (the bad proposal broadens and its acceptance
    rises), is called once per round and never during production, and the production samples
    give the exact averages: production runs a fixed kernel."""
    calls = []

    def adapt(model, samples, round_):
        calls.append(round_)
        return _refit(model, samples, round_)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mf.MCDiagnosticWarning)
        out = mf.adaptive_flow_mcmc(
            SYSTEM,
            likelihood=BAD,
            adapt=adapt,
            key=7,
            rounds=2,
            burn_in={
                "num_chains": CHAINS,
                "samples_per_chain": 20,
                "sweeps_between": 2,
                "equilibration_sweeps": 20,
            },
            flow_every=1,
            flow_moves=2,
            samples_per_chain=60,
            sweeps_between=2,
            samples_per_block=60,
        )
    assert calls == [0, 1]
    assert float(out.likelihood.scale) > 2 * float(BAD.scale)
    first, last = out.flow_acceptance[0], out.flow_acceptance[-1]
    assert last > 10 * first, out.flow_acceptance
    du, du2 = deviation_in_errors(out.production)
    assert abs(du) < 4 and abs(du2) < 4, (du, du2)
    fingerprint = out.production.dataset.metadata["mc"]["extra_moves"]
    assert fingerprint["proposals_used"] == CHAINS * 2 * 2 * 60  # production only


@pytest.mark.slow
def test_cli_adaptive_burn_in_fine_tunes_then_freezes(tiny_run, tmp_path):
    """`--adapt-rounds`: burn-in rounds fine-tune the run's flow on the chains' samples, then
    production runs the frozen flow from the burn-in's last states (slow: compiles training)."""
    out = tmp_path / "adaptive.npz"
    code, _, err = _cli(
        [
            "mcmc",
            "--run",
            tiny_run,
            "--out",
            out,
            *MCMC,
            "--adapt-rounds",
            "1",
            "--adapt-samples",
            "4",
        ]
    )
    assert code == 0, err
    manifest = json.loads((tmp_path / "adaptive.manifest.json").read_text())
    adaptation = manifest["flow_mcmc"]["adaptation"]
    assert adaptation["rounds"] == 1 and len(adaptation["flow_acceptance_by_round"]) == 1
    assert mf.Dataset.load(out).num_samples == 4
