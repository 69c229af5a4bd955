"""The learned auxiliary target `LearnedAux` (`[model] learned_aux = true`): normalised, sampled
from the density it reports, invariant under the flow's symmetry group, a no-op when untrained,
and trained with the flow without breaking the exactness of the importance weights.

Where a property is claimed, a planted bug (or a perturbed value) shows that the check can fail.
"""

import itertools
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import manifold_flows as mf
from manifold_flows._flow.augmented import AugmentedCouplingFlow
from manifold_flows._flow.augmented.learned_aux import LearnedAux
from manifold_flows._train.config import ModelConfig, TrainConfig
from manifold_flows._train.fit_likelihood import fit_likelihood

jax.config.update("jax_enable_x64", True)

SPECIES = jnp.array([0, 1, 0, 1])
L = 2.5


def _perturbed(model, key, size=0.5):
    params, static = eqx.partition(model, eqx.is_inexact_array)
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(key, len(leaves))
    leaves = [p + size * jax.random.normal(k, p.shape) for p, k in zip(leaves, keys, strict=True)]
    return eqx.combine(jax.tree.unflatten(tree, leaves), static)


@pytest.fixture(scope="module")
def flow():
    space = mf.ParticleSpace(mf.FlatTorus(L, dim=2), 4)
    model = AugmentedCouplingFlow(
        space, 2, num_layers=1, num_bins=4, width=8, channels=2, num_rbf=4, learned_aux=True,
        aux_scale=0.3, key=jax.random.key(0),
    )  # fmt: skip
    model = _perturbed(model, jax.random.key(1))
    # a second push for the target's network, so that its shift and width are far from the
    # fixed target's (widths about 0.2 and 3.5 times aux_scale)
    learned = _perturbed(model.learned_aux, jax.random.key(11))
    return eqx.tree_at(lambda f: f.learned_aux, model, learned)


@pytest.fixture(scope="module")
def x():
    return jax.random.uniform(jax.random.key(2), (4, 2), dtype=jnp.float64) * L


def _centre_and_width(flow, x):
    learned = flow.learned_aux
    return learned.centre_and_width(x, *flow._learned(x, SPECIES))


def test_the_perturbed_target_is_not_the_fixed_one(flow, x):
    shift, width = _centre_and_width(flow, x)
    assert float(jnp.max(jnp.abs(shift))) > 0.05
    assert float(jnp.max(jnp.abs(jnp.log(width / flow.aux_scale)))) > 0.1


# ---------------------------------------------------------------- a normalised density
def _grid_mass(log_density, length, points=96):
    """`int exp(log_density(a)) da` over the circle^2 by the periodic trapezoid rule
    (spectrally accurate for a smooth periodic integrand)."""
    grid = jnp.arange(points, dtype=jnp.float64) * (length / points)
    pairs = jnp.stack(jnp.meshgrid(grid, grid, indexing="ij"), -1).reshape(-1, 2, 1)
    values = jax.vmap(log_density)(pairs)
    return float(jnp.sum(jnp.exp(values)) * (length / points) ** 2)


def test_learned_aux_is_a_normalised_density():
    # Two particles on a circle (d = 1): r(a | x) integrates to 1 over a in T^2 for any x.
    length = 3.0
    learned = LearnedAux(2, 1.5, scale=0.4, box=(length,), width=8, channels=2, num_rbf=4,
                         key=jax.random.key(3))  # fmt: skip
    learned = _perturbed(learned, jax.random.key(4))
    species, neighbours = jnp.array([0, 1]), jnp.array([[1], [0]])
    box = jnp.array([length])
    for seed in range(3):
        x = jax.random.uniform(jax.random.key(10 + seed), (2, 1), dtype=jnp.float64) * length
        shift, width = learned.centre_and_width(x, species, neighbours, box)
        assert float(jnp.min(width)) < 0.35 or float(jnp.max(width)) > 0.45  # not the fixed one
        mass = _grid_mass(lambda a, x=x: learned.log_prob(a, x, species, neighbours, box), length)
        assert abs(mass - 1) < 1e-9, mass

        # The check resolves a wrong normaliser: the fixed width's in place of sigma.
        def wrong(a, x=x, shift=shift, width=width):
            return learned.log_prob(a, x, species, neighbours, box) + jnp.sum(
                jnp.log(width / learned.scale)
            )

        assert abs(_grid_mass(wrong, length) - 1) > 1e-3


def test_samples_follow_the_reported_density(flow, x):
    # The circular moments of a wrapped normal are exact: E exp(i k (a - x)) =
    # exp(i k mu - k^2 sigma^2 / 2), k = 2 pi / L. 20000 draws pin them to about 0.007.
    shift, width = _centre_and_width(flow, x)
    keys = jax.random.split(jax.random.key(7), 20000)
    a = jax.jit(jax.vmap(lambda k: flow.sample_aux(k, x, SPECIES)))(keys)
    k = 2 * math.pi / L
    angle = k * (a - x[None])
    moments = np.asarray(jnp.mean(jnp.cos(angle), 0)), np.asarray(jnp.mean(jnp.sin(angle), 0))
    errors = np.asarray(jnp.std(jnp.cos(angle), 0)), np.asarray(jnp.std(jnp.sin(angle), 0))
    errors = [e / math.sqrt(len(keys)) for e in errors]

    def expected(sigma):
        damping = np.exp(-0.5 * (k * np.asarray(sigma)) ** 2)
        return damping * np.cos(k * np.asarray(shift)), damping * np.sin(k * np.asarray(shift))

    for got, want, err in zip(moments, expected(width), errors, strict=True):
        assert np.all(np.abs(got - want) < 5 * err + 1e-12), (got, want)
    # a 20 % error in the width would be caught
    too_wide = expected(1.2 * width)
    assert any(
        np.any(np.abs(g - w) > 5 * e) for g, w, e in zip(moments, too_wide, errors, strict=True)
    )


# ---------------------------------------------------------------- symmetries
def _aux_gaps(flow, x, a):
    log_r = jax.jit(lambda x, a: flow.aux_log_prob(a, x, SPECIES))
    ref = float(log_r(x, a))
    c = jnp.array([[0.7, -1.9]])
    gaps = {"translation": abs(float(log_r(jnp.mod(x + c, L), jnp.mod(a + c, L))) - ref)}
    perm = jnp.array([2, 3, 0, 1])
    gaps["permutation"] = abs(float(log_r(x[perm], a[perm])) - ref)
    group = []
    for axes in itertools.permutations(range(2)):
        for signs in itertools.product((1.0, -1.0), repeat=2):
            s = jnp.array(signs)
            act = lambda p, axes=list(axes), s=s: jnp.mod(p[:, axes] * s[None, :], L)
            group.append(abs(float(log_r(act(x), act(a))) - ref))
    gaps["point group"] = max(group)
    return gaps


def test_learned_aux_is_invariant_under_the_flows_symmetries(flow, x):
    a = flow.sample_aux(jax.random.key(5), x, SPECIES)
    for name, gap in _aux_gaps(flow, x, a).items():
        assert gap < 1e-10, (name, gap)


def test_point_group_check_catches_an_even_shift(flow, x, monkeypatch):
    # Planted bug: a shift that does not flip with the axis.
    def even_shift(self, x, species, neighbours, box):
        plus, minus = self.conditioner.axis_pair(x, species, neighbours, box)
        shift = self.scale * jnp.tanh(0.25 * (plus[..., 0] + minus[..., 0]))
        return shift, self.scale * jnp.ones_like(shift)

    monkeypatch.setattr(LearnedAux, "centre_and_width", even_shift)
    a = flow.sample_aux(jax.random.key(5), x, SPECIES)
    gaps = _aux_gaps(flow, x, a)
    assert gaps["translation"] < 1e-10 and gaps["permutation"] < 1e-10
    assert gaps["point group"] > 1e-6


# ---------------------------------------------------------------- untrained: the fixed target
def test_untrained_learned_aux_is_the_fixed_target():
    space = mf.ParticleSpace(mf.FlatTorus(L, dim=2), 4)
    fixed = AugmentedCouplingFlow(space, 2, num_layers=2, key=jax.random.key(0))
    learned = AugmentedCouplingFlow(space, 2, num_layers=2, learned_aux=True, key=jax.random.key(0))
    key = jax.random.key(3)
    x0, a0, q0 = fixed.sample_joint(key, SPECIES)
    x1, _, q1 = learned.sample_joint(key, SPECIES)
    np.testing.assert_array_equal(x0, x1)
    assert float(q0) == float(q1)
    assert float(fixed.aux_log_prob(a0, x0, SPECIES)) == pytest.approx(
        float(learned.aux_log_prob(a0, x0, SPECIES)), abs=1e-12
    )
    np.testing.assert_allclose(
        fixed.sample_aux(key, x0, SPECIES), learned.sample_aux(key, x0, SPECIES), atol=1e-12
    )
    assert "learned_aux" not in ModelConfig(flow="augmented_coupling").to_dict()
    assert ModelConfig(flow="augmented_coupling", learned_aux=True).to_dict()["learned_aux"]
    # (ValueError from the config's own check; TypeError where beartype checks the hints first)
    with pytest.raises((ValueError, TypeError), match="learned_aux"):
        ModelConfig(flow="augmented_coupling", learned_aux="yes")


# ---------------------------------------------------------------- trained with the flow
def _pair_system():
    return mf.make_system(
        "ipl", num_particles=2, composition=[1, 1], box=4.0, dim=1, temperature=1.0
    )


def _exact_log_z(system):
    from scipy import integrate

    species = jnp.asarray(system.species)
    length = float(system.box[0])
    energy = jax.jit(lambda x: system.energy(x, species))

    def boltzmann(r):
        return math.exp(-float(energy(jnp.array([[0.0], [r % length]]))))

    inner, _ = integrate.quad(boltzmann, -length / 2, length / 2, points=[0.0], limit=200)
    return math.log(length * inner)


def test_trained_learned_aux_moves_and_keeps_log_z_exact():
    """Maximum likelihood (data from the flow-free exact sampler is not needed: the energy
    objective alone) trains the learned target with the flow; the importance weights of the
    result still estimate the exact Z of the two-particle system."""
    system = _pair_system()
    rng = np.random.default_rng(0)
    positions = rng.uniform(0, 4.0, (128, 2, 1))
    data = mf.Dataset(
        positions=positions,
        species=np.asarray(system.species),
        species_names=system.species_names,
        box=np.asarray(system.box, dtype=np.float64),
        temperature=1.0,
        system=system.name,
    )
    model = ModelConfig(
        flow="augmented_coupling", num_layers=1, width=8, channels=2, num_rbf=4, num_bins=4,
        learned_aux=True,
    )  # fmt: skip
    config = TrainConfig(
        objective="energy", batch_size=64, epochs=15, lr=3e-3, val_num_samples=0,
        log_every=50, energy_soft_cap=30.0,
    )  # fmt: skip
    result = fit_likelihood(model, data, config=config, system=system, progress=False)
    flow = jax.tree.map(
        lambda a: a.astype(jnp.float64) if eqx.is_inexact_array(a) else a, result.field
    )
    last = flow.learned_aux.conditioner.axis_net.layers[-1]
    assert float(jnp.max(jnp.abs(last.weight))) > 1e-3  # it trained (it starts at zero)
    species = jnp.asarray(system.species)
    keys = jax.random.split(jax.random.key(0), 4000)
    xs, log_q = jax.jit(jax.vmap(lambda k: flow.sample_and_log_prob(k, species)))(keys)
    u = jax.jit(jax.vmap(lambda xi: system.energy(xi, species)))(xs)
    rw = mf.reweight(np.asarray(u), np.asarray(log_q), 1.0)
    exact = _exact_log_z(system)
    assert rw.ess_fraction > 0.2, rw.ess_fraction
    assert abs(rw.log_z - exact) < 4 * rw.log_z_err, (rw.log_z, exact, rw.log_z_err)


def _aux_gradient(flow, gradient):
    from manifold_flows._train.likelihood import energy_loss

    system = _pair_system()
    species = jnp.asarray(system.species)

    def loss(learned):
        model = eqx.tree_at(lambda f: f.learned_aux, flow, learned)
        value, _ = energy_loss(
            model, system.energy, species, jax.random.key(4), batch_size=32, temperature=1.0,
            cap=30.0, gradient=gradient,
        )  # fmt: skip
        return value

    grads = eqx.filter_grad(loss)(flow.learned_aux)
    return jax.tree.leaves(grads)


@pytest.fixture(scope="module")
def pair_flow():
    system = _pair_system()
    space = mf.ParticleSpace(system.torus, 2)
    model = AugmentedCouplingFlow(
        space, 2, num_layers=1, num_bins=4, width=8, channels=2, num_rbf=4, learned_aux=True,
        key=jax.random.key(0),
    )  # fmt: skip
    return _perturbed(model, jax.random.key(1), size=0.3)


def test_the_path_gradient_reaches_the_learned_target(pair_flow):
    # q does not depend on the target's parameters, so the "path" estimator (the flow's
    # parameters frozen in log q) must give them the same gradient as the plain one.
    path = _aux_gradient(pair_flow, "path")
    total = _aux_gradient(pair_flow, "total")
    assert max(float(jnp.max(jnp.abs(g))) for g in path) > 1e-4
    for p, t in zip(path, total, strict=True):
        np.testing.assert_allclose(p, t, rtol=1e-8, atol=1e-12)


def test_a_frozen_target_gets_no_gradient(pair_flow, monkeypatch):
    # Planted bug: freezing the target with the flow leaves it untrained under "path".
    from manifold_flows._train import likelihood as likelihood_module

    monkeypatch.setattr(likelihood_module, "_with_live_aux", lambda frozen, flow: frozen)
    path = _aux_gradient(pair_flow, "path")
    assert max(float(jnp.max(jnp.abs(g))) for g in path) == 0.0
