"""Energies against the field's reference files (../shared/data): skipped when they are absent.

Those files are other codes' output and stay outside the project (their README says so); the
minimum-image convention they pin is also checked without them, against an independent plain
sum over the pairs (test_energy.py::test_presets_use_the_minimum_image_of_an_independent_sum).
"""

from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from manifold_flows import (
    ImageConventionWarning,
    SmoothedLennardJones,
    get_system,
    load_configurations,
    make_system,
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
KA_FILES = [
    "ka2d_ternary_N1290_T0.231.xyz",
    "ka2d_ternary_N1290_T0.231.exyz",
    "ka2d_ternary_N1290_T0.231.lammpsdump",
]


def data_file(name: str) -> Path:
    path = DATA / name
    if not path.is_file():
        pytest.skip(f"reference data {path} is absent (it lives next to the repository clone)")
    return path


@eqx.filter_jit
def batch_energy(energy, positions, species):
    return jax.vmap(lambda x: energy(x, species))(positions)


def test_ipl_frames_match_the_header_energies_with_minimum_images_only():
    ds = load_configurations(data_file("ipl_bhhp_N10_T0.1.xyz"))
    nearest = get_system("ipl-n10")  # the preset's own convention: no warning
    with pytest.warns(ImageConventionWarning):
        every = get_system("ipl-n10", images="all")
    assert ds.num_samples == 100 and ds.num_particles == nearest.num_particles
    np.testing.assert_allclose(ds.box, nearest.box, rtol=1e-6)
    np.testing.assert_array_equal(ds.species, nearest.species)
    assert ds.temperature == pytest.approx(nearest.default_temperature)
    n = ds.num_particles
    header = ds.energy / n  # the reader stores U = u * N
    x, s = jnp.asarray(ds.positions), jnp.asarray(ds.species)
    u_nearest = np.asarray(batch_energy(nearest.energy, x, s)) / n
    u_every = np.asarray(batch_energy(every.energy, x, s)) / n
    assert np.max(np.abs(u_nearest - header)) < 1e-6
    # every frame: the sum over all images inside rc is a different Hamiltonian
    assert np.min(np.abs(u_every - header)) > 1e-5
    assert np.all(u_every > u_nearest)  # purely repulsive: more images, more energy


def test_ternary_ka_energy_from_all_three_formats():
    datasets = [load_configurations(data_file(name)) for name in KA_FILES]
    first = datasets[0]
    for ds in datasets[1:]:
        np.testing.assert_array_equal(ds.species, first.species)
        np.testing.assert_allclose(ds.box, first.box, rtol=1e-12)
        np.testing.assert_allclose(ds.positions, first.positions, rtol=0, atol=1e-9)
    assert first.composition == {"1": 600, "2": 330, "3": 360}
    assert first.temperature == pytest.approx(0.231)
    assert first.metadata["density"] == pytest.approx(1.19206, abs=1e-5)
    system = make_system(
        "ka3", num_particles=1290, composition=[600, 330, 360], box=float(first.box[0])
    )
    assert isinstance(system.energy, SmoothedLennardJones)
    for ds in datasets:
        u = batch_energy(system.energy, jnp.asarray(ds.positions), jnp.asarray(ds.species))
        assert abs(float(u[0]) / 1290 - (-2.676832)) < 1e-6
