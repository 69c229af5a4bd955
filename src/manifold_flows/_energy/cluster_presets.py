"""Named clusters in Euclidean space with the centre of mass removed: DW4 and LJ13."""

import dataclasses
import difflib
import math
from typing import Any

import numpy as np

from .._manifold import ZeroCenterOfMass
from .cluster_base import AbstractClusterEnergy
from .double_well import DoubleWellPair
from .lj_cluster import LennardJonesCluster


@dataclasses.dataclass(frozen=True, eq=False)
class ClusterSystem:
    """A cluster of `n` identical particles in `R^d` with a translation-invariant energy, whose
    configurations live on `ZeroCenterOfMass(n, d)` (the counterpart of `ParticleSystem`,
    which holds a periodic box).

    **Fields:**

    - `name`: preset name (`"dw4"`, `"lj13"`) or a descriptive name.
    - `energy`: the `AbstractClusterEnergy`.
    - `num_particles`: `n`.
    - `displacement`: standard deviation of a Gaussian Monte Carlo displacement (per axis).
    - `default_temperature`: the temperature of the state point (reduced units, `k_B = 1`).
    - `parameters`: JSON-serialisable record of the model, for dataset metadata.
    """

    name: str
    energy: AbstractClusterEnergy
    num_particles: int
    displacement: float
    default_temperature: float
    parameters: dict[str, Any]

    def __post_init__(self):
        if not isinstance(self.energy, AbstractClusterEnergy):
            raise TypeError(
                f"ClusterSystem.energy must be an AbstractClusterEnergy; got {type(self.energy)}."
            )
        for field in ("displacement", "default_temperature"):
            value = float(getattr(self, field))
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"ClusterSystem.{field} must be positive; got {value}.")
            object.__setattr__(self, field, value)
        object.__setattr__(self, "parameters", dict(self.parameters))

    @property
    def dim(self) -> int:
        return self.energy.dim

    @property
    def space(self) -> ZeroCenterOfMass:
        """The configuration space: `n` particles in `R^d` with zero centre of mass."""
        return ZeroCenterOfMass(self.num_particles, self.dim)

    @property
    def species(self) -> np.ndarray:
        """One species: labels `0`, shape `(n,)` (what fields and energies take as `args`)."""
        return np.zeros(self.num_particles, dtype=np.int32)


def _dw4() -> ClusterSystem:
    energy = DoubleWellPair(2)
    parameters = {
        "model": "double-well pair potential a (r-d0) + b (r-d0)^2 + c (r-d0)^4",
        "potential": "DoubleWellPair",
        "a": energy.a,
        "b": energy.b,
        "c": energy.c,
        "d0": energy.d0,
        "num_particles": 4,
        "dim": 2,
        "temperature": 1.0,
        "center_of_mass": "removed",
    }
    # Step 0.5: a pair well's curvature is 16 (W'' = 2b + 12 c u^2 at u^2 = -b / 2c), so the
    # thermal spread of a distance at T = 1 is ~0.25; 0.5 per axis is accepted ~45 % of the time.
    return ClusterSystem("dw4", energy, 4, 0.5, 1.0, parameters)


def _lj13() -> ClusterSystem:
    energy = LennardJonesCluster(13, 3)
    parameters = {
        "model": "Lennard-Jones eps [(rm/r)^12 - 2 (rm/r)^6] + harmonic (k/2) sum |x_i - x_com|^2",
        "potential": "LennardJonesCluster",
        "epsilon": energy.epsilon,
        "rm": energy.rm,
        "spring": energy.spring,
        "num_particles": 13,
        "dim": 3,
        "temperature": 1.0,
        "center_of_mass": "removed",
    }
    # Step 0.1: the LJ well's curvature at rm is 72 eps / rm^2, a thermal spread of ~0.12 at
    # T = 1 (and the repulsive core rejects larger steps).
    return ClusterSystem("lj13", energy, 13, 0.1, 1.0, parameters)


_CLUSTERS = {"dw4": _dw4, "lj13": _lj13}


def list_cluster_systems() -> list[str]:
    """Names of the preset clusters accepted by `get_cluster_system`."""
    return sorted(_CLUSTERS)


def get_cluster_system(name: str, *, temperature: float | None = None) -> ClusterSystem:
    """A preset cluster by name.

    Presets: `dw4`: 4 particles in 2D with the double-well pair potential (`DoubleWellPair`:
    `a = 0`, `b = -4`, `c = 0.9`, `d0 = 4`), `T = 1`; `lj13`: 13 Lennard-Jones particles in
    3D with the harmonic confinement (`LennardJonesCluster`: `eps = rm = k = 1`), `T = 1`.
    Both live on `ZeroCenterOfMass(n, d)` (the centre of mass removed).

    **Arguments:**

    - `name`: one of `list_cluster_systems()`.
    - `temperature`: overrides the preset's temperature (positive).

    **Returns:**

    A `ClusterSystem`.
    """
    if name not in _CLUSTERS:
        close = difflib.get_close_matches(str(name), list(_CLUSTERS), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(
            f"unknown cluster system {name!r}; choose one of "
            f"{', '.join(list_cluster_systems())}.{hint}"
        )
    system = _CLUSTERS[name]()
    if temperature is None:
        return system
    t = float(temperature)
    if not (math.isfinite(t) and t > 0):
        raise ValueError(f"temperature must be positive and finite; got {temperature!r}.")
    return dataclasses.replace(
        system, default_temperature=t, parameters={**system.parameters, "temperature": t}
    )
