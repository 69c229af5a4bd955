"""Pair energies: smoothness at the cutoff, image conventions (against an independent brute-force
sum), the particle-energy identities used by Monte Carlo, forces, overlaps and bad input."""

import itertools
import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import example, given, strategies as st

from manifold_flows import (
    AbstractPairEnergy,
    FlatTorus,
    ImageConventionWarning,
    InversePowerLaw,
    LennardJones,
    SmoothedLennardJones,
    TruncatedShiftedLennardJones,
    get_system,
    smoothing_coefficients,
)
from manifold_flows.testing import tolerance

KA3_EPS = [[1.0, 1.5, 0.75], [1.5, 0.5, 1.5], [0.75, 1.5, 0.75]]
KA3_SIG = [[1.0, 0.8, 0.9], [0.8, 0.88, 0.8], [0.9, 0.8, 0.94]]
IPL_SIG = [[1.0, 1.2], [1.2, 1.4]]


def quiet(fn, *args, **kwargs):
    """Build an energy whose box is short on purpose, without the (tested elsewhere) warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ImageConventionWarning)
        return fn(*args, **kwargs)


# ----------------------------------------------------------------------- jitted entry points
@eqx.filter_jit
def total(energy, x, s):
    return energy(x, s)


def spread_configuration(rng, n, box, min_dist):
    """Random sequential addition: `n` points in the box, pairwise (minimum-image) distance
    above `min_dist`, so energies stay moderate."""
    box = np.asarray(box, dtype=float)
    pts = []
    for _ in range(100_000):
        if len(pts) == n:
            return np.asarray(pts)
        p = rng.uniform(0.0, 1.0, size=box.shape) * box
        if all(np.linalg.norm((p - q) - box * np.round((p - q) / box)) > min_dist for q in pts):
            pts.append(p)
    raise AssertionError(f"could not place {n} points {min_dist} apart in box {box.tolist()}")


# ----------------------------------------------------------------------- independent reference
def reference_pair(model, r, a, b):
    """The potentials written out again in plain numpy, from SYSTEMS.md (not from the package)."""
    if model == "ipl":
        s, rc = IPL_SIG[a][b], 2.5 * IPL_SIG[a][b]
        return (s / r) ** 12 - (s / rc) ** 12 if r < rc else 0.0
    e, s = KA3_EPS[a][b], KA3_SIG[a][b]
    rc = 2.5 * s
    if r >= rc:
        return 0.0
    if model == "ka3":
        c0, c2, c4 = 0.04049023795, -0.00970155098, 0.00062012616
        return 4 * e * ((s / r) ** 12 - (s / r) ** 6 + c0 + c2 * (r / s) ** 2 + c4 * (r / s) ** 4)
    lj = lambda q: 4 * e * ((s / q) ** 12 - (s / q) ** 6)
    return lj(r) - lj(rc)  # "lj-ts"


def brute_force_all_images(model, x, species, box):
    """U of the periodic system by explicit sums over a generous block of lattice shifts:
    U = 1/2 sum_i sum_j sum_n W(|x_j + n L - x_i|), skipping only (j == i, n == 0)."""
    box = np.asarray(box)
    reach = [int(np.ceil(3.5 / L)) + 1 for L in box]
    total_u = 0.0
    for n in itertools.product(*[range(-k, k + 1) for k in reach]):
        shift = np.asarray(n) * box
        for i, j in itertools.product(range(len(x)), repeat=2):
            if i == j and not any(n):
                continue
            r = np.linalg.norm(x[j] + shift - x[i])
            total_u += 0.5 * reference_pair(model, r, species[i], species[j])
    return total_u


def brute_force_minimum_image(model, x, species, box):
    box = np.asarray(box)
    u = 0.0
    for i, j in itertools.combinations(range(len(x)), 2):
        d = x[j] - x[i]
        d = d - box * np.round(d / box)
        u += reference_pair(model, np.linalg.norm(d), species[i], species[j])
    return u


def make_energy(model, box, images):
    torus = FlatTorus(box)
    if model == "ipl":
        return quiet(InversePowerLaw, torus, sigma=IPL_SIG, images=images)
    if model == "ka3":
        return quiet(SmoothedLennardJones, torus, epsilon=KA3_EPS, sigma=KA3_SIG, images=images)
    return quiet(
        TruncatedShiftedLennardJones,
        torus,
        epsilon=[r[:2] for r in KA3_EPS[:2]],
        sigma=[r[:2] for r in KA3_SIG[:2]],
        images=images,
    )


# ======================================================================= smoothness
def test_smoothed_ka_vanishes_to_second_order_at_the_cutoff():
    energy = SmoothedLennardJones(FlatTorus(20.0, dim=2), epsilon=KA3_EPS, sigma=KA3_SIG)
    pairs = list(itertools.combinations_with_replacement(range(3), 2))
    a = jnp.asarray([p[0] for p in pairs])
    b = jnp.asarray([p[1] for p in pairs])
    rc = 2.5 * jnp.asarray([KA3_SIG[i][j] for i, j in pairs])

    @eqx.filter_jit
    def derivatives(energy, r, a, b):
        w = lambda r, a, b: energy.pair_energy(r, a, b)
        d1 = jax.grad(w)
        d2 = jax.grad(d1)
        d3 = jax.grad(d2)
        return [jax.vmap(f)(r, a, b) for f in (w, d1, d2, d3)]

    # just below rc, i.e. on the inner branch (the outer branch is identically 0)
    w, d1, d2, d3 = derivatives(energy, rc * (1.0 - 1e-12), a, b)
    scale = 4 * jnp.asarray([KA3_EPS[i][j] for i, j in pairs])
    assert bool(jnp.all(jnp.abs(w) < 1e-10 * scale))
    assert bool(jnp.all(jnp.abs(d1) < 1e-9 * scale))
    assert bool(jnp.all(jnp.abs(d2) < 1e-8 * scale))
    # ... where the third derivative does not vanish: the checks above are not vacuous.
    assert bool(jnp.all(jnp.abs(d3) > 1e-3 * scale))
    # zero at and beyond the cutoff; symmetric in the species pair
    w_at, *_ = derivatives(energy, rc, a, b)
    assert bool(jnp.all(w_at == 0.0))
    np.testing.assert_array_equal(
        energy.pair_energy(0.9 * rc, a, b), energy.pair_energy(0.9 * rc, b, a)
    )


def test_smoothing_coefficients_are_the_published_constants():
    c0, c2, c4 = smoothing_coefficients(2.5)
    np.testing.assert_allclose(
        [c0, c2, c4], [0.04049023795, -0.00970155098, 0.00062012616], rtol=0, atol=1e-11
    )


def test_truncated_and_plain_lennard_jones_at_the_cutoff():
    torus = FlatTorus(20.0, dim=2)
    ts = TruncatedShiftedLennardJones(torus)
    plain = LennardJones(torus)
    shifted = LennardJones(torus, shift=True)
    rc = jnp.asarray(2.5)
    below = rc * (1 - 1e-12)
    assert abs(float(ts.pair_energy(below, 0, 0))) < 1e-10
    expected_jump = 4 * (2.5**-12 - 2.5**-6)
    assert float(plain.pair_energy(below, 0, 0)) == pytest.approx(expected_jump, rel=1e-9)
    r = jnp.linspace(0.8, 3.0, 23)
    np.testing.assert_allclose(shifted.pair_energy(r, 0, 0), ts.pair_energy(r, 0, 0), rtol=1e-14)
    assert float(plain.pair_energy(rc, 0, 0)) == 0.0


def test_smoothed_and_truncated_ka_are_different_models():
    rng = np.random.default_rng(0)
    box = (4.0, 4.0)
    x = jnp.asarray(spread_configuration(rng, 8, box, 0.85))
    s = jnp.asarray([0, 0, 0, 0, 0, 1, 1, 1])
    eps, sig = [r[:2] for r in KA3_EPS[:2]], [r[:2] for r in KA3_SIG[:2]]
    smooth = quiet(SmoothedLennardJones, FlatTorus(box), epsilon=eps, sigma=sig)
    trunc = quiet(TruncatedShiftedLennardJones, FlatTorus(box), epsilon=eps, sigma=sig)
    assert abs(float(total(smooth, x, s) - total(trunc, x, s))) > 1e-3


# ======================================================================= image conventions
@pytest.mark.parametrize(
    "model, box",
    [("ipl", (1.6, 2.1)), ("ka3", (1.9,)), ("lj-ts", (2.2, 2.2, 2.2))],
    ids=["ipl-2d", "ka3-1d", "ka2-3d"],
)
def test_all_images_match_an_independent_brute_force_sum(model, box):
    # Boxes shorter than some cutoffs, so images beyond the nearest one and self-images count.
    rng = np.random.default_rng(1)
    n = 3
    num_species = 2 if model != "ka3" else 3
    x = spread_configuration(rng, n, box, 0.5)
    species = (np.arange(n) + 1) % num_species
    energy = make_energy(model, box, "all")
    got = float(total(energy, jnp.asarray(x), jnp.asarray(species)))
    want = brute_force_all_images(model, x, species, box)
    np.testing.assert_allclose(got, want, rtol=1e-9)
    # and the nearest-image sum is a different number here
    nearest = brute_force_minimum_image(model, x, species, box)
    assert abs(nearest - want) > 1e-6 * max(1.0, abs(want))
    got_min = float(total(make_energy(model, box, "minimum"), jnp.asarray(x), jnp.asarray(species)))
    np.testing.assert_allclose(got_min, nearest, rtol=1e-9)


@pytest.mark.parametrize(
    ("preset", "model", "min_dist"), [("ipl-n10", "ipl", 0.9), ("ka3-n44", "ka3", 0.75)]
)
@pytest.mark.parametrize("seed", [3, 4])
def test_presets_use_the_minimum_image_of_an_independent_sum(preset, model, min_dist, seed):
    # The convention of the published reference data (SYSTEMS.md section 1): each pair
    # through its nearest image only, even where half the box (2.24 for ipl-n10) is shorter
    # than the cutoffs (up to 3.5). Checked against a plain double loop over the pairs at
    # the presets' own boxes and compositions, with the all-images sum as a control that
    # differs. (The field's reference files, where present, check the same against energies
    # written by another Monte Carlo code: test_energy_reference.py.)
    system = quiet(get_system, preset)
    box = tuple(float(v) for v in np.asarray(system.torus.lengths))
    species = np.asarray(system.species)
    x = spread_configuration(np.random.default_rng(seed), len(species), box, min_dist)
    got = float(system.energy(jnp.asarray(x), jnp.asarray(species)))
    want = brute_force_minimum_image(model, x, species, box)
    # 1e-8: the plain sum uses the smoothing constants as published (11 digits).
    np.testing.assert_allclose(got, want, rtol=1e-8)
    if preset == "ipl-n10":
        # The far images of an r^-12 potential add little, but 10x the tolerance above.
        every_image = brute_force_all_images(model, x, species, box)
        assert abs(every_image - want) > 1e-7 * abs(want)


def test_all_images_reach_the_second_shell():
    # Two B particles (rc_BB = 3.5) 1.0 apart along y in a box of height 2.1: the images at
    # |1.0 - 2 * 2.1| = 3.2 < rc (two boxes away) count, the ones at 3 boxes do not.
    box = (1.6, 2.1)
    x = np.asarray([[0.1, 0.1], [0.2, 1.1]])
    species = np.asarray([1, 1])
    got = total(make_energy("ipl", box, "all"), jnp.asarray(x), jnp.asarray(species))
    np.testing.assert_allclose(got, brute_force_all_images("ipl", x, species, box), rtol=1e-12)


def test_conventions_agree_in_a_large_box_and_differ_in_a_small_one():
    rng = np.random.default_rng(2)
    s = jnp.asarray([0] * 5 + [1] * 5)
    big = (7.1, 7.3)  # L/2 >= 3.5 = largest IPL cutoff
    x = jnp.asarray(spread_configuration(rng, 10, big, 0.9))
    u_min = total(make_energy("ipl", big, "minimum"), x, s)
    u_all = total(make_energy("ipl", big, "all"), x, s)
    np.testing.assert_allclose(u_all, u_min, rtol=tolerance()[0])
    small = (4.472136, 4.472136)
    x = jnp.asarray(spread_configuration(rng, 10, small, 0.9))
    u_min = total(make_energy("ipl", small, "minimum"), x, s)
    u_all = total(make_energy("ipl", small, "all"), x, s)
    assert abs(float(u_all - u_min)) > 1e-6


def test_the_warning_names_the_convention_in_force():
    torus = FlatTorus(4.472136, dim=2)
    with pytest.warns(ImageConventionWarning, match="images='minimum' is in force"):
        InversePowerLaw(torus, sigma=IPL_SIG)
    with pytest.warns(ImageConventionWarning, match="images='all' is in force"):
        InversePowerLaw(torus, sigma=IPL_SIG, images="all")
    with pytest.warns(ImageConventionWarning, match="images='all' is in force") as rec:
        get_system("ipl-n10", images="all")
    message = str(rec[0].message)
    assert "images='minimum'" in message and "ipl-n10" in message
    with warnings.catch_warnings():
        warnings.simplefilter("error", ImageConventionWarning)
        # a preset in its own (minimum-image) convention is what the user asked for: no
        # warning (test_presets.py checks the note it records instead); nor in a large box
        get_system("ipl-n10")
        get_system("ipl-n44")
        get_system("ka3-n44", images="all")


# ======================================================================= MC identities
N_MC = 10
BOX_MC = (4.472136, 4.472136)


@pytest.fixture(scope="module")
def mc_energies():
    tiny = (2.6, 3.0)  # shorter than the BB cutoff 3.5: self-images count for "all"
    return {
        "ipl-minimum": (make_energy("ipl", BOX_MC, "minimum"), BOX_MC),
        "ipl-all": (make_energy("ipl", BOX_MC, "all"), BOX_MC),
        "ipl-all-tiny": (make_energy("ipl", tiny, "all"), tiny),
    }


@eqx.filter_jit
def move_and_swap(energy, x, s, i, j, step):
    """Incremental and full energy changes for a displacement of i and a species swap i<->j,
    plus every particle energy, the per-particle split and the total."""
    torus = energy.torus
    x_new = x.at[i].set(torus.exp(x[i], step))
    d_inc = energy.particle_energy(x_new, s, i) - energy.particle_energy(x, s, i)
    d_full = energy(x_new, s) - energy(x, s)
    s_new = s.at[i].set(s[j]).at[j].set(s[i])
    before = energy.particle_energy(x, s, i) + energy.particle_energy(x, s, j)
    after = energy.particle_energy(x, s_new, i) + energy.particle_energy(x, s_new, j)
    e = jax.vmap(lambda k: energy.particle_energy(x, s, k))(jnp.arange(x.shape[0]))
    return (
        d_inc,
        d_full,
        after - before,
        energy(x, s_new) - energy(x, s),
        e,
        energy(x, s),
        (energy.per_particle(x, s)),
    )


@pytest.mark.parametrize("which", ["ipl-minimum", "ipl-all", "ipl-all-tiny"])
@given(seed=st.integers(0, 2**31 - 1))
@example(seed=29465)  # ipl-all-tiny: an overlap, U after the move 1.3e14
def test_incremental_energy_changes_equal_full_recomputation(mc_energies, which, seed):
    energy, box = mc_energies[which]
    rng = np.random.default_rng(seed)
    x = jnp.asarray(spread_configuration(rng, N_MC, box, 0.6))
    s = jnp.asarray(rng.permutation([0] * 5 + [1] * 5))
    i = int(rng.integers(N_MC))
    j = int(rng.choice(np.nonzero(np.asarray(s) != int(s[i]))[0]))
    step = jnp.asarray(rng.normal(scale=0.3, size=2))
    d_inc, d_full, sw_inc, sw_full, e, u, per = move_and_swap(
        energy, x, s, jnp.asarray(i), jnp.asarray(j), step
    )
    # Both sides are differences of sums of ~N^2 terms as large as the energy before or after
    # the change: the rounding scales with the larger of the two (a move into an overlap can
    # take U from 1e4 to 1e14).
    rtol = 1e3 * tolerance()[0]
    u_now = float(jnp.abs(u))
    assert abs(float(d_inc - d_full)) <= rtol * (u_now + abs(float(d_full)) + 1.0)
    assert abs(float(sw_inc - sw_full)) <= rtol * (u_now + abs(float(sw_full)) + 1.0)
    # U == 1/2 sum_i e_i (self-image terms included in e_i, see particle_energy)
    np.testing.assert_allclose(0.5 * jnp.sum(e), u, rtol=rtol)
    np.testing.assert_allclose(per, 0.5 * e, rtol=rtol)


def test_self_image_terms_are_present_in_a_box_shorter_than_the_cutoff(mc_energies):
    energy, box = mc_energies["ipl-all-tiny"]
    x = jnp.asarray([[0.3, 0.4]])
    s = jnp.asarray([1])
    # one B particle alone: U = 1/2 sum_{n != 0} W_BB(|n L|) with images at distances 2.6, 3.0
    want = 0.5 * sum(
        2 * reference_pair("ipl", r, 1, 1) for r in (box[0], box[1], float(np.hypot(*box)))
    )
    np.testing.assert_allclose(total(energy, x, s), want, rtol=1e-12)
    np.testing.assert_allclose(energy.particle_energy(x, s, 0), 2 * want, rtol=1e-12)


# ======================================================================= forces, overlaps
@eqx.filter_jit
def forces_and_finite_differences(energy, x, s, components, h):
    """Autodiff forces and central finite differences -dU/dx at the given (k, axis) pairs."""

    def fd(c):
        e = jnp.zeros_like(x).at[c[0], c[1]].set(h)
        return -(energy(x + e, s) - energy(x - e, s)) / (2 * h)

    return energy.forces(x, s), jax.vmap(fd)(components)


def test_forces_match_finite_differences():
    box = (5.2, 5.2)
    grid = np.stack(np.meshgrid(np.arange(4), np.arange(4)), -1).reshape(-1, 2) * 1.3
    rng = np.random.default_rng(3)
    x = jnp.asarray(grid + rng.normal(scale=0.08, size=grid.shape))
    s = jnp.asarray(np.sort(rng.integers(0, 3, size=16)))
    components = jnp.asarray([(0, 0), (5, 1), (15, 0), (9, 1)])
    for images in ("minimum", "all"):
        energy = make_energy("ka3", box, images)
        f, fd = forces_and_finite_differences(energy, x, s, components, 1e-6)
        assert bool(jnp.all(jnp.isfinite(f)))
        np.testing.assert_allclose(f[components[:, 0], components[:, 1]], fd, rtol=1e-6, atol=1e-6)
        # Newton's third law: forces of a translation-invariant energy sum to zero
        np.testing.assert_allclose(jnp.sum(f, axis=0), 0.0, atol=1e-9)


@eqx.filter_jit
def overlap_check(energy, x_overlap, x_ok, s):
    return energy(x_overlap, s), energy.forces(x_ok, s)


@pytest.mark.parametrize(
    "model, images",
    [
        ("ipl", "minimum"),
        ("ka3", "minimum"),
        ("lj-ts", "minimum"),
        ("lj", "minimum"),
        ("ipl", "all"),
    ],
)
def test_overlapping_particles_give_plus_infinity_not_nan(model, images):
    box = (3.0, 3.0)
    if model == "lj":
        energy = quiet(LennardJones, FlatTorus(box), images=images)
    else:
        energy = make_energy(model, box, images)
    x = jnp.asarray([[0.5, 0.5], [0.5, 0.5], [2.0, 1.5]])
    s = jnp.asarray([0, 1, 1])
    # away from overlaps the gradient is finite (the diagonal j == i is handled safely)
    x_ok = x.at[1].set(jnp.asarray([1.4, 0.6]))
    u, f = overlap_check(energy, x, x_ok, s)
    assert bool(jnp.isposinf(u))
    assert bool(jnp.isposinf(energy.pair_energy(jnp.asarray(0.0), 0, 1)))
    assert bool(jnp.all(jnp.isfinite(f)))


def test_pair_energy_broadcasts_and_keeps_the_dtype():
    energy = InversePowerLaw(FlatTorus(10.0, dim=2), sigma=IPL_SIG)
    r = jnp.linspace(0.9, 4.0, 6, dtype=jnp.float32)
    w = energy.pair_energy(r[:, None], jnp.asarray([[0, 1]]), jnp.asarray([1]))
    assert w.shape == (6, 2) and w.dtype == jnp.float32
    w_swapped = energy.pair_energy(r[:, None], jnp.asarray([1]), jnp.asarray([[0, 1]]))
    np.testing.assert_array_equal(w, w_swapped)
    assert float(w[0, 0]) != float(w[0, 1])
    x32 = jnp.asarray([[1.0, 1.0], [2.1, 1.0]], dtype=jnp.float32)
    assert total(energy, x32, jnp.asarray([0, 1])).dtype == jnp.float32


# ======================================================================= bad input
def test_bad_parameters_raise():
    torus = FlatTorus(10.0, dim=2)
    with pytest.raises(ValueError, match="symmetric"):
        InversePowerLaw(torus, sigma=[[1.0, 1.2], [1.1, 1.4]])
    with pytest.raises(ValueError, match="positive"):
        InversePowerLaw(torus, sigma=[[1.0, -1.2], [-1.2, 1.4]])
    with pytest.raises(ValueError, match="square"):
        SmoothedLennardJones(torus, sigma=[1.0, 2.0])
    with pytest.raises(ValueError, match="images"):
        LennardJones(torus, images="nearest")
    with pytest.raises(ValueError, match="number of species"):
        TruncatedShiftedLennardJones(torus, epsilon=np.ones((3, 3)), sigma=np.ones((2, 2)))
    with pytest.raises(TypeError, match="FlatTorus"):
        LennardJones(10.0)
    with pytest.raises(TypeError):
        AbstractPairEnergy()


def test_bad_configurations_raise():
    energy = InversePowerLaw(FlatTorus(10.0, dim=2), sigma=IPL_SIG)
    x = jnp.asarray([[1.0, 1.0], [2.0, 2.0]])
    with pytest.raises(ValueError, match=r"shape \(n, 2\)"):
        energy(jnp.zeros((2, 3)), jnp.asarray([0, 1]))
    # (under the test suite's jaxtyping hook the annotation may catch these first)
    with pytest.raises((ValueError, TypeError)):
        energy(jnp.zeros((4, 2, 2)), jnp.asarray([0, 1]))
    with pytest.raises(TypeError):
        energy(jnp.asarray([[1, 1], [2, 2]]), jnp.asarray([0, 1]))
    with pytest.raises((ValueError, TypeError)):
        energy(x, jnp.asarray([0, 1, 1]))
    with pytest.raises(TypeError):
        energy(x, jnp.asarray([0.0, 1.0]))
    with pytest.raises(RuntimeError, match="species labels"):
        total(energy, x, jnp.asarray([0, 2]))
    with pytest.raises(RuntimeError, match="NaN"):
        total(energy, x.at[0, 0].set(jnp.nan), jnp.asarray([0, 1]))
