"""System presets and custom systems: state points, parameters, and bad input."""

import json
import warnings

import numpy as np
import pytest

import manifold_flows as mf
from manifold_flows import (
    FlatTorus,
    ImageConventionWarning,
    InversePowerLaw,
    LennardJones,
    ParticleSpace,
    SmoothedLennardJones,
    TruncatedShiftedLennardJones,
    get_system,
    list_systems,
    make_system,
)


def quiet_system(name, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ImageConventionWarning)
        return get_system(name, **kwargs)


@pytest.mark.parametrize(
    "name, side, composition, density, temperature, potential, swaps",
    [
        ("ipl-n10", 4.472136, {"A": 5, "B": 5}, 0.5, 0.1, InversePowerLaw, ((0, 1),)),
        ("ipl-n44", 9.380832, {"A": 22, "B": 22}, 0.5, 0.1, InversePowerLaw, ((0, 1),)),
        (
            "ka3-n44",
            6.075396,
            {"A": 20, "B": 12, "C": 12},
            1.1920748468939728,
            1.0,
            SmoothedLennardJones,
            ((0, 2), (1, 2)),
        ),
        ("ka2-n100", 9.128709, {"A": 65, "B": 35}, 1.2, 1.0, TruncatedShiftedLennardJones, ()),
    ],
)
def test_presets_are_the_published_state_points(
    name, side, composition, density, temperature, potential, swaps
):
    system = quiet_system(name)
    assert system.name == name
    np.testing.assert_allclose(system.box, [side, side], atol=1e-6)
    assert system.composition == composition and system.density == pytest.approx(density)
    assert system.default_temperature == temperature and system.swap_pairs == swaps
    assert isinstance(system.energy, potential) and system.energy.images == "minimum"
    assert np.all(np.diff(system.species) >= 0) and system.num_particles == sum(
        composition.values()
    )
    assert isinstance(system.torus, FlatTorus) and isinstance(system.space, ParticleSpace)
    assert system.space.point_shape == (system.num_particles, 2)
    params = json.loads(json.dumps(system.parameters))  # JSON-serialisable
    assert params["composition"] == composition and params["images"] == "minimum"
    assert params["model"] in name and np.asarray(params["sigma"]).shape == (len(composition),) * 2
    assert system.displacement > 0


def test_ka_parameter_tables():
    ka3 = get_system("ka3-n44").parameters
    np.testing.assert_array_equal(
        ka3["epsilon"], [[1.0, 1.5, 0.75], [1.5, 0.5, 1.5], [0.75, 1.5, 0.75]]
    )
    np.testing.assert_array_equal(
        ka3["sigma"], [[1.0, 0.8, 0.9], [0.8, 0.88, 0.8], [0.9, 0.8, 0.94]]
    )
    np.testing.assert_allclose(
        ka3["cutoff"], [[2.5, 2.0, 2.25], [2.0, 2.2, 2.0], [2.25, 2.0, 2.35]], rtol=1e-15
    )
    assert get_system("ka3-n44").displacement == 0.05
    ipl = quiet_system("ipl-n10").parameters
    np.testing.assert_allclose(ipl["cutoff"], [[2.5, 3.0], [3.0, 3.5]], rtol=1e-15)
    assert ipl["exponent"] == 12


def test_3d_presets_and_other_dimensions():
    for name in ("ka2-3d-n250", "ipl-3d-n200"):
        with warnings.catch_warnings():
            warnings.simplefilter("error", ImageConventionWarning)  # boxes are large enough
            system = get_system(name)
        assert system.dim == 3 and system.box.shape == (3,)
        assert system.num_particles / np.prod(system.box) == pytest.approx(system.density)
    one_d = make_system("lj", num_particles=4, composition=[4], box=12.0, dim=1)
    # (energies in 1D and 3D are checked against a brute-force sum in test_energy.py)
    assert one_d.dim == 1 and isinstance(one_d.energy, LennardJones)
    np.testing.assert_array_equal(one_d.box, [12.0])


def test_temperature_override_and_with_temperature():
    system = get_system("ka3-n44", temperature=0.32)
    assert system.default_temperature == 0.32 and system.parameters["temperature"] == 0.32
    assert system.with_temperature(2.0).default_temperature == 2.0
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="temperature"):
            get_system("ka3-n44", temperature=bad)


def test_images_choice_is_recorded():
    system = quiet_system("ipl-n10", images="all")
    assert system.energy.images == "all" and system.parameters["images"] == "all"
    with pytest.raises(ValueError, match="images"):
        get_system("ipl-n44", images="some")


def test_make_system_custom():
    a = make_system("ka3", num_particles=44, composition={"A": 20, "B": 12, "C": 12}, density=1.2)
    b = make_system("ka3", num_particles=44, composition=[20, 12, 12], box=float(a.box[0]))
    np.testing.assert_allclose(a.box, b.box)
    assert a.density == pytest.approx(b.density)
    c = make_system(
        "ipl", num_particles=6, composition={"A": 6}, box=(7.0, 8.0), sigma=[[1.0, 1.1], [1.1, 1.2]]
    )
    assert c.swap_pairs == () and c.composition == {"A": 6, "B": 0}  # no B: nothing to swap
    np.testing.assert_array_equal(c.box, [7.0, 8.0])
    d = make_system("ipl", num_particles=6, composition=[3, 3], box=(7.0, 8.0), exponent=10)
    assert d.energy.exponent == 10 and d.parameters["exponent"] == 10
    lj = make_system("lj", num_particles=4, composition=[4], density=0.1, shift=True)
    assert lj.energy.shift and lj.species_names == ("A",)
    three = make_system(
        "lj", num_particles=3, composition=[1, 1, 1], density=0.1, sigma=np.ones((3, 3))
    )
    assert three.species_names == ("A", "B", "C")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(composition={"A": 20, "B": 12, "C": 11}), "sums to 43"),
        (dict(composition={"A": 20, "B": 12, "D": 12}), "unknown species label"),
        (dict(composition=[22, 22]), "one count per species"),
        (dict(composition=[20, -12, 36]), "non-negative"),
        (dict(composition=[20, 12, 12], density=1.0, box=6.075396), "disagrees"),
        (dict(composition=[20, 12, 12], density=-1.0), "density"),
        (dict(composition=[20, 12, 12], box=(6.0, 0.0)), "box"),
        (dict(composition=[20, 12, 12], dim=0), "dim"),
        (dict(composition=[20, 12, 12], sigma=np.ones((2, 2))), "species"),
        (dict(composition=[20, 12, 12], exponent=10), "unknown parameter"),
        (dict(composition=[20, 12, 12], displacement=0.0), "displacement"),
        (dict(composition=[20, 12, 12], swap_pairs=[(0, 0)]), "swap pair"),
    ],
)
def test_make_system_rejects_inconsistent_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_system("ka3", num_particles=44, **kwargs)


def test_unknown_names_are_refused_with_the_choices():
    with pytest.raises(ValueError, match="ka3-n44") as info:
        get_system("ka3-n4")
    assert "Did you mean" in str(info.value)
    with pytest.raises(ValueError, match="unknown model"):
        make_system("morse", num_particles=2, composition=[2])
    with pytest.raises(ValueError, match="num_particles"):
        make_system("lj", num_particles=0, composition=[0])
    assert {"ipl-n10", "ipl-n44", "ka3-n44", "ka2-n100"} <= set(list_systems())


def test_consistent_density_and_box_are_accepted():
    system = make_system(
        "ka3", num_particles=44, composition=[20, 12, 12], density=1.1920748468939728, box=6.075396
    )
    assert system.density == pytest.approx(1.1920748468939728, rel=1e-6)


def test_image_warning_only_when_the_user_departs_from_the_preset_convention():
    # ipl-n10: L/2 = 2.236 < rc; the preset is defined with minimum images (the reference
    # data's convention), so asking for it is not news; 'all' (a different Hamiltonian) and a
    # custom model, whose convention no preset names, are told.
    with warnings.catch_warnings():
        warnings.simplefilter("error", ImageConventionWarning)
        system = get_system("ipl-n10")
    assert system.images == "minimum"
    with pytest.warns(ImageConventionWarning, match="images='all' is in force"):
        get_system("ipl-n10", images="all")
    with pytest.warns(ImageConventionWarning, match="images='minimum' is in force"):
        make_system("ipl", num_particles=10, composition=[5, 5], density=0.5)
    # the note is still recorded for the samples' metadata
    _, note = mf.resolve_system("ipl-n10", box=system.box, species=system.species)
    assert "images='minimum' is in force" in note
