"""Readers and writers: extended XYZ (through ASE and back), atooms xyz, LAMMPS dumps, npz, the
format dispatch, and bad files."""

import warnings

import ase
import ase.io
import numpy as np
import pytest
from ase.calculators.singlepoint import SinglePointCalculator

from manifold_flows import (
    Dataset,
    load_configurations,
    read_extxyz,
    read_lammps_dump,
    read_xyz,
    save_configurations,
    write_extxyz,
)
from manifold_flows._io._frames import OutsideBoxWarning


def make_dataset(dim=2, num_samples=3, seed=0):
    rng = np.random.default_rng(seed)
    box = np.asarray([3.0, 4.5, 5.0][:dim])
    n = 5
    return Dataset(
        positions=rng.uniform(size=(num_samples, n, dim)) * box,
        species=np.asarray([0, 0, 0, 1, 1]),
        species_names=("A", "B"),
        box=box,
        temperature=0.5,
        system="ipl-n10",
        energy=rng.normal(size=num_samples),
        extra={
            "log_q": rng.normal(size=num_samples),
            "log_w": np.asarray([-np.inf, *rng.normal(size=num_samples - 1)]),
        },
        metadata={"seed": 7, "parameters": {"sigma": [[1.0, 1.2], [1.2, 1.4]]}, "note": 'a "b"'},
    )


def assert_same_dataset(a: Dataset, b: Dataset):
    np.testing.assert_array_equal(a.positions, b.positions)
    np.testing.assert_array_equal(a.species, b.species)
    np.testing.assert_array_equal(a.box, b.box)
    assert a.species_names == b.species_names
    assert a.temperature == b.temperature and a.system == b.system
    np.testing.assert_array_equal(a.energy, b.energy)
    assert sorted(a.extra) == sorted(b.extra)
    for k in a.extra:
        np.testing.assert_array_equal(a.extra[k], b.extra[k])
    assert a.metadata == b.metadata


# ======================================================================= extended XYZ
@pytest.mark.parametrize("dim", [2, 3])
def test_extxyz_is_read_by_ase(tmp_path, dim):
    ds = make_dataset(dim)
    path = write_extxyz(tmp_path / "samples.extxyz", ds)
    frames = ase.io.read(path, index=":")
    assert len(frames) == ds.num_samples
    for r, atoms in enumerate(frames):
        np.testing.assert_array_equal(atoms.positions[:, :dim], ds.positions[r])
        if dim == 2:
            np.testing.assert_array_equal(atoms.positions[:, 2], 0.0)
        np.testing.assert_array_equal(atoms.cell.lengths()[:dim], ds.box)
        assert list(atoms.pbc) == [True] * dim + [False] * (3 - dim)
        assert atoms.get_potential_energy() == ds.energy[r]
        assert atoms.info["log_q"] == ds.extra["log_q"][r]
        np.testing.assert_array_equal(atoms.info["log_w"], ds.extra["log_w"][r])
        assert atoms.info["T"] == 0.5
        assert list(atoms.arrays["type"]) == ["A", "A", "A", "B", "B"]


@pytest.mark.parametrize("dim", [2, 3])
def test_extxyz_round_trip_through_our_reader(tmp_path, dim):
    ds = make_dataset(dim)
    path = write_extxyz(tmp_path / "samples.extxyz", ds)
    back = load_configurations(path)
    assert_same_dataset(ds, back)
    # `.xyz` holding extended XYZ is recognised by its header
    path_xyz = write_extxyz(tmp_path / "samples.xyz", ds)
    assert_same_dataset(ds, load_configurations(path_xyz))


def test_extxyz_keeps_unsorted_and_unused_species_names(tmp_path):
    ds = make_dataset().replace(species_names=("small", "big", "unused"))
    assert_same_dataset(ds, read_extxyz(write_extxyz(tmp_path / "names.extxyz", ds)))


def test_extxyz_written_by_ase_is_read(tmp_path):
    rng = np.random.default_rng(1)
    frames = []
    for k in range(2):
        order = rng.permutation(["Ar", "Ar", "Kr", "Ar"])  # per-frame order differs
        atoms = ase.Atoms(
            symbols=list(order),
            positions=rng.uniform(-3, 9, size=(4, 3)),  # unwrapped
            cell=[3.0, 4.0, 5.0],
            pbc=True,
        )
        atoms.calc = SinglePointCalculator(atoms, energy=-1.5 - k)
        frames.append(atoms)
    path = tmp_path / "ase.extxyz"
    ase.io.write(path, frames, format="extxyz")
    with pytest.warns(OutsideBoxWarning):  # the frames are unwrapped and carry energies
        ds = read_extxyz(path)
    assert ds.species_names == ("Ar", "Kr") and ds.composition == {"Ar": 3, "Kr": 1}
    np.testing.assert_array_equal(ds.box, [3.0, 4.0, 5.0])
    np.testing.assert_array_equal(ds.energy, [-1.5, -2.5])
    for k, atoms in enumerate(frames):
        kr = atoms.positions[np.asarray(atoms.get_chemical_symbols()) == "Kr"][0]
        np.testing.assert_allclose(ds.positions[k, -1], np.mod(kr, ds.box), atol=1e-9)
        assert np.all((ds.positions[k] >= 0) & (ds.positions[k] < ds.box))


def test_extxyz_2d_reference_style(tmp_path):
    text = (
        "3\n"
        'Lattice="4.0 0.0 0.0 0.0 5.0 0.0 0.0 0.0 0.0" Properties=species:S:1:pos:R:2\n'
        "2 -1.0 2.0\n1 0.5 -0.5\n2 1.0 6.0\n"
    )
    (tmp_path / "a.exyz").write_text(text)
    ds = load_configurations(tmp_path / "a.exyz")
    assert ds.dim == 2 and ds.species_names == ("1", "2")
    np.testing.assert_allclose(ds.positions[0], [[0.5, 4.5], [3.0, 2.0], [1.0, 1.0]])


def test_write_extxyz_refuses_what_it_cannot_hold_and_leaves_no_file(tmp_path):
    ds = make_dataset()
    bad_key = ds.replace(extra={"log q": np.zeros(3)})
    bad_shape = ds.replace(extra={"grid": np.zeros((3, 2, 2))})
    target = tmp_path / "out.extxyz"
    for bad in (bad_key, bad_shape):
        with pytest.raises(ValueError, match=r"extra"):
            write_extxyz(target, bad)
        assert not target.exists()
    write_extxyz(target, ds)
    before = target.read_bytes()
    with pytest.raises(ValueError):
        write_extxyz(target, bad_key)
    assert target.read_bytes() == before  # the complete old file is untouched
    assert [p.name for p in tmp_path.iterdir()] == ["out.extxyz"]  # no temporary left
    with pytest.raises(TypeError, match="Dataset"):
        write_extxyz(target, ds.positions)


# ======================================================================= npz
def test_npz_round_trip_keeps_everything(tmp_path):
    ds = make_dataset(3)
    path = save_configurations(tmp_path / "d.npz", ds)
    assert_same_dataset(ds, load_configurations(path))


# ======================================================================= atooms xyz
ATOOMS = (
    "3\n"
    "step:{step} columns:species,position dt:1 cell:4.0,5.0 rho:0.15 T:0.3 model:BHHP "
    "potential_energy_per_particle:{u}\n"
    "{rows}\n"
)


def test_atooms_xyz_wraps_orders_and_reads_the_header(tmp_path):
    base = np.asarray([[0.5, 1.0], [3.5, 4.5], [2.0, 0.1]])
    names = ["2", "10", "2"]  # numeric order: "2" before "10"
    shifts = [np.zeros((3, 2)), np.asarray([[4.0, -5.0], [-8.0, 10.0], [0.0, 15.0]])]
    text = ""
    for k, shift in enumerate(shifts):
        x = base + shift  # unwrapped: other periodic images of the same points
        rows = "\n".join(f"{n} {a} {b}" for n, (a, b) in zip(names, x, strict=True))
        text += ATOOMS.format(step=1000 * (k + 1), u=0.25 * (k + 1), rows=rows)
    (tmp_path / "t.xyz").write_text(text)
    with pytest.warns(OutsideBoxWarning):  # unwrapped coordinates with energies: flagged
        ds = read_xyz(tmp_path / "t.xyz")
    assert ds.species_names == ("2", "10") and list(ds.species) == [0, 0, 1]
    want = base[[0, 2, 1]]
    for k in range(2):
        np.testing.assert_allclose(ds.positions[k], want, atol=1e-12)
    np.testing.assert_allclose(ds.energy, [0.75, 1.5])  # u * N
    np.testing.assert_array_equal(ds.extra["step"], [1000, 2000])
    assert ds.temperature == 0.3 and ds.system == "BHHP"
    assert ds.metadata["density"] == 0.15 and ds.metadata["model"] == "BHHP"
    with pytest.warns(OutsideBoxWarning):
        assert load_configurations(tmp_path / "t.xyz").metadata["format"] == "xyz (atooms)"


def test_atooms_xyz_centred_coordinates(tmp_path):
    text = "2\ncolumns:species,position cell:2.0,2.0\nA -1.0 -0.5\nB 0.5 0.99\n"
    (tmp_path / "c.xyz").write_text(text)
    ds = load_configurations(tmp_path / "c.xyz")
    np.testing.assert_allclose(ds.positions[0], [[1.0, 1.5], [0.5, 0.99]])


def test_files_without_a_box_are_refused(tmp_path):
    (tmp_path / "nobox.xyz").write_text("2\ncolumns:species,position T:0.1\nA 0 0\nB 1 1\n")
    with pytest.raises(ValueError, match="lacks the box"):
        read_xyz(tmp_path / "nobox.xyz")
    with pytest.raises(ValueError, match="lacks the box"):
        load_configurations(tmp_path / "nobox.xyz")
    (tmp_path / "plain.xyz").write_text("2\njust a comment\nA 0 0 0\nB 1 1 1\n")
    with pytest.raises(ValueError, match="lacks the box"):
        load_configurations(tmp_path / "plain.xyz")
    (tmp_path / "nobox.extxyz").write_text("1\nProperties=species:S:1:pos:R:3\nA 0 0 0\n")
    with pytest.raises(ValueError, match="lacks the box"):
        load_configurations(tmp_path / "nobox.extxyz")


def test_malformed_text_files_name_the_problem(tmp_path):
    (tmp_path / "short.xyz").write_text("3\ncolumns:species,position cell:2,2\nA 0 0\n")
    with pytest.raises(ValueError, match="truncated"):
        load_configurations(tmp_path / "short.xyz")
    (tmp_path / "nan.xyz").write_text("1\ncolumns:species,position cell:2,2\nA 0 x\n")
    with pytest.raises(ValueError, match="line 3"):
        load_configurations(tmp_path / "nan.xyz")
    skew = 'Lattice="2 0.5 0 0 2 0 0 0 2" Properties=species:S:1:pos:R:3'
    (tmp_path / "skew.extxyz").write_text(f"1\n{skew}\nA 0 0 0\n")
    with pytest.raises(ValueError, match="rectangular"):
        load_configurations(tmp_path / "skew.extxyz")
    two = (
        "1\ncolumns:species,position cell:2,2\nA 0 0\n1\ncolumns:species,position cell:3,3\nA 0 0\n"
    )
    (tmp_path / "two.xyz").write_text(two)
    with pytest.raises(ValueError, match="box"):
        load_configurations(tmp_path / "two.xyz")


# ======================================================================= LAMMPS
def lammps_snapshot(step, bounds, columns, rows, tilt=False):
    head = "ITEM: BOX BOUNDS xy xz yz pp pp pp" if tilt else "ITEM: BOX BOUNDS pp pp pp"
    lines = [f"ITEM: TIMESTEP\n{step}", f"ITEM: NUMBER OF ATOMS\n{len(rows)}", head]
    lines += [" ".join(str(v) for v in b) for b in bounds]
    lines += [f"ITEM: ATOMS {' '.join(columns)}"] + [" ".join(str(v) for v in r) for r in rows]
    return "\n".join(lines) + "\n"


def test_lammps_dump_any_column_order_ids_and_2d(tmp_path):
    bounds = [(-2.0, 2.0), (-3.0, 3.0), (-0.1, 0.1)]
    # columns in an unusual order; rows shuffled; ids restore the order
    rows0 = [(3, 1.5, 2, -2.5), (1, -1.0, 1, 0.5), (2, 0.25, 2, 2.75)]
    rows1 = [(2, 0.5, 2, 2.0), (3, 5.5, 2, -2.0), (1, -1.5, 1, 0.0)]
    text = lammps_snapshot(0, bounds, ["id", "x", "type", "y"], rows0)
    text += lammps_snapshot(100, bounds, ["id", "x", "type", "y"], rows1)
    (tmp_path / "d.lammpsdump").write_text(text)
    ds = load_configurations(tmp_path / "d.lammpsdump")
    assert ds.dim == 2 and list(ds.species) == [0, 1, 1] and ds.species_names == ("1", "2")
    np.testing.assert_array_equal(ds.box, [4.0, 6.0])
    np.testing.assert_allclose(ds.positions[0], [[3.0, 0.5], [0.25, 2.75], [1.5, 3.5]])
    np.testing.assert_allclose(ds.positions[1], [[2.5, 0.0], [0.5, 2.0], [1.5, 4.0]])
    np.testing.assert_array_equal(ds.extra["step"], [0, 100])


def test_lammps_dump_3d_scaled_and_flat_z(tmp_path):
    bounds = [(0.0, 2.0), (0.0, 4.0), (1.0, 2.0)]
    rows = [(1, 0.5, 0.25, 0.5), (2, 0.75, 1.5, 0.0)]
    (tmp_path / "s.dump").write_text(lammps_snapshot(5, bounds, ["type", "xs", "ys", "zs"], rows))
    ds = read_lammps_dump(tmp_path / "s.dump")
    assert ds.dim == 3
    # x = lo + s (hi - lo), then wrapped: z = 1.5 -> 0.5 and 1.0 -> 0.0 in a box of height 1
    np.testing.assert_allclose(ds.positions[0], [[1.0, 1.0, 0.5], [1.5, 2.0, 0.0]])
    flat = [(1, 0.5, 0.25, 0.0), (2, 0.75, 1.5, 0.0)]
    (tmp_path / "f.dump").write_text(lammps_snapshot(5, bounds, ["type", "x", "y", "z"], flat))
    assert read_lammps_dump(tmp_path / "f.dump").dim == 2
    assert read_lammps_dump(tmp_path / "f.dump", dim=3).dim == 3
    tilted = [(0.0, 2.0, 0.3), (0.0, 4.0, 0.0), (1.0, 2.0, 0.0)]
    (tmp_path / "t.dump").write_text(
        lammps_snapshot(5, tilted, ["type", "x", "y", "z"], flat, tilt=True)
    )
    with pytest.raises(ValueError, match="triclinic"):
        read_lammps_dump(tmp_path / "t.dump")
    (tmp_path / "n.dump").write_text(lammps_snapshot(5, bounds, ["id", "vx", "vy"], flat))
    with pytest.raises(ValueError, match="species column"):
        read_lammps_dump(tmp_path / "n.dump")


# ======================================================================= dispatch
def test_load_configurations_dispatch_and_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_configurations(tmp_path / "missing.npz")
    (tmp_path / "x.csv").write_text("1,2\n")
    with pytest.raises(ValueError, match="extension"):
        load_configurations(tmp_path / "x.csv")
    with pytest.raises(ValueError, match="format"):
        load_configurations(tmp_path / "x.csv", format="pdb")
    ds = make_dataset()
    path = write_extxyz(tmp_path / "d.txt", ds)
    assert_same_dataset(ds, load_configurations(path, format="extxyz"))
    with pytest.raises(ValueError, match="cannot write"):
        save_configurations(tmp_path / "d.dump", ds)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # reading is silent
        load_configurations(path, format="xyz")


def test_text_frames_with_energies_far_outside_the_box_are_flagged(tmp_path):
    # Unwrapped coordinates are legitimate (a periodic energy does not change when a particle
    # moves by whole box lengths), but far outside the box they may also mean a wrong box or
    # wrong units: the frames are wrapped and flagged, never silently.
    import warnings

    header = 'Lattice="4.0 0.0 0.0 0.0 5.0 0.0 0.0 0.0 0.0" Properties=species:S:1:pos:R:2'
    far = f"2\n{header} energy=-1.5\nA 13.0 1.0\nB 1.0 2.0\n"
    with pytest.warns(OutsideBoxWarning, match=r"up to 2\.25 box lengths outside"):
        ds = load_configurations(_write(tmp_path / "far.extxyz", far))
    assert ds.metadata["positions_outside_box"]["frames"] == 1
    np.testing.assert_allclose(ds.positions[0, 0], [1.0, 1.0])  # wrapped all the same
    centred = f"2\n{header} energy=-1.5\nA -1.9 -2.4\nB 1.0 2.0\n"
    no_energy = f"2\n{header}\nA 13.0 1.0\nB 1.0 2.0\n"
    with warnings.catch_warnings():
        warnings.simplefilter("error", OutsideBoxWarning)
        for name, text in (("centred.extxyz", centred), ("plain.extxyz", no_energy)):
            ds = load_configurations(_write(tmp_path / name, text))
            assert "positions_outside_box" not in ds.metadata


def _write(path, text):
    path.write_text(text)
    return path
