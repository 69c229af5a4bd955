"""Named particle systems (the eRSI paper's state points) and custom ones.

A `ParticleSystem` bundles everything a sampler or a dataset needs to know about a physical
system: the pair energy (with its box and image convention), the species vector, which species
may swap in Monte Carlo, the Monte Carlo step, density, a default temperature and a
JSON-serialisable record of every parameter.
"""

import dataclasses
import difflib
import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .._manifold import FlatTorus, ParticleSpace
from ._images import ImageConventionWarning, check_images, warn_if_short_box
from .base import AbstractPairEnergy
from .cluster_presets import list_cluster_systems
from .ipl import InversePowerLaw
from .lennard_jones import LennardJones, TruncatedShiftedLennardJones
from .smoothed_lj import SmoothedLennardJones, smoothing_coefficients

_LABELS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@dataclasses.dataclass(frozen=True, eq=False)
class ParticleSystem:
    """A physical system: N particles of given species in a periodic box with a pair energy.

    **Fields:**

    - `name`: preset name (e.g. `"ka3-n44"`) or a descriptive name for a custom system.
    - `energy`: the `AbstractPairEnergy` (it holds the box and the image convention).
    - `species`: sorted integer labels `(n,)` in `[0, len(species_names))`.
    - `species_names`: the name of each label, e.g. `("A", "B", "C")`.
    - `swap_pairs`: species pairs `(a, b)` whose particles may exchange species in Monte Carlo
      swap moves (e.g. `((0, 2), (1, 2))` for ternary Kob-Andersen); `()` for none.
    - `displacement`: standard deviation of a Gaussian Monte Carlo displacement (per axis).
    - `density`: number density `N / volume`.
    - `default_temperature`: the temperature of the state point (reduced units).
    - `parameters`: JSON-serialisable record of the model (model name, potential class,
      epsilon/sigma/cutoff matrices, composition, box, density, images ...), meant for
      dataset metadata.
    """

    name: str
    energy: AbstractPairEnergy
    species: np.ndarray
    species_names: tuple[str, ...]
    swap_pairs: tuple[tuple[int, int], ...]
    displacement: float
    density: float
    default_temperature: float
    parameters: dict[str, Any]

    def __post_init__(self):
        if not isinstance(self.energy, AbstractPairEnergy):
            raise TypeError(
                f"ParticleSystem.energy must be an AbstractPairEnergy; got {type(self.energy)}."
            )
        species = np.asarray(self.species)
        names = tuple(str(s) for s in self.species_names)
        if species.ndim != 1 or species.size == 0 or not np.issubdtype(species.dtype, np.integer):
            raise ValueError(
                f"ParticleSystem.species must be a non-empty integer vector; got {species!r}."
            )
        if np.any(np.diff(species) < 0):
            raise ValueError("ParticleSystem.species must be sorted (all 0s, then 1s, ...).")
        if len(names) != self.energy.num_species:
            raise ValueError(
                f"ParticleSystem has {len(names)} species names {names} but the energy has "
                f"{self.energy.num_species} species."
            )
        if species.min() < 0 or species.max() >= len(names):
            raise ValueError(
                f"ParticleSystem.species labels must lie in [0, {len(names)}); got "
                f"{sorted(set(species.tolist()))}."
            )
        pairs = tuple((int(a), int(b)) for a, b in self.swap_pairs)
        for a, b in pairs:
            if a == b or not (0 <= a < len(names) and 0 <= b < len(names)):
                raise ValueError(
                    f"swap pair {(a, b)} must name two different species labels in "
                    f"[0, {len(names)})."
                )
            if not (np.any(species == a) and np.any(species == b)):
                raise ValueError(
                    f"swap pair {(names[a], names[b])} names a species with no particles; "
                    "drop it from swap_pairs."
                )
        for field in ("displacement", "density", "default_temperature"):
            v = float(getattr(self, field))
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"ParticleSystem.{field} must be positive; got {v}.")
            object.__setattr__(self, field, v)
        species = species.astype(np.int32)
        species.setflags(write=False)
        object.__setattr__(self, "species", species)
        object.__setattr__(self, "species_names", names)
        object.__setattr__(self, "swap_pairs", pairs)
        object.__setattr__(self, "parameters", dict(self.parameters))

    @property
    def torus(self) -> FlatTorus:
        """The periodic box as a manifold (one particle)."""
        return self.energy.torus

    @property
    def space(self) -> ParticleSpace:
        """The configuration space (torus)^N."""
        return ParticleSpace(self.torus, self.num_particles)

    @property
    def box(self) -> np.ndarray:
        """Box lengths, float64 `(d,)`."""
        return np.asarray(self.torus.lengths, dtype=np.float64)

    @property
    def num_particles(self) -> int:
        return int(self.species.shape[0])

    @property
    def dim(self) -> int:
        return self.torus.dim

    @property
    def images(self) -> str:
        """The periodic-image convention of the energy (`"minimum"` or `"all"`)."""
        return self.energy.images

    @property
    def composition(self) -> dict[str, int]:
        """Number of particles of each species, by name."""
        counts = np.bincount(self.species, minlength=len(self.species_names))
        return {n: int(c) for n, c in zip(self.species_names, counts, strict=True)}

    def with_temperature(self, temperature: float) -> "ParticleSystem":
        """The same system with another default temperature (must be positive)."""
        t = _check_temperature(temperature)
        return dataclasses.replace(
            self, default_temperature=t, parameters={**self.parameters, "temperature": t}
        )


# ---------------------------------------------------------------------------------- models
@dataclasses.dataclass(frozen=True)
class _Model:
    description: str
    potential: type
    defaults: dict[str, Any]  # potential parameters
    extra_params: tuple[str, ...]  # further keyword parameters accepted by the potential
    density: float
    temperature: float
    displacement: float
    swap_pairs: tuple[tuple[int, int], ...]


_MODELS: dict[str, _Model] = {
    "ipl": _Model(
        "binary inverse-power-law (p = 12) soft disks, shifted at rc = 2.5 sigma (IPL/BHHP)",
        InversePowerLaw,
        {"epsilon": 1.0, "sigma": [[1.0, 1.2], [1.2, 1.4]], "cutoff": None},
        ("exponent",),
        density=0.5,
        temperature=0.1,
        # Gaussian step: at T = 0.1 and rho = 0.5 the thermal vibration amplitude in a cage,
        # sqrt(T / k) with k ~ sum of W'' over ~6 neighbours at r ~ 1.3 sigma, is ~0.1. Measured
        # on the 100 reference frames of ipl_bhhp_N10_T0.1.xyz, a step of 0.1 is accepted 40 % of
        # the time (0.05: 64 %, 0.2: 18 %): the usual target for displacement moves.
        displacement=0.1,
        swap_pairs=((0, 1),),
    ),
    "ka3": _Model(
        "ternary 2D Kob-Andersen, polynomially smoothed LJ at rc = 2.5 sigma (KA2-2D/JBB)",
        SmoothedLennardJones,
        {
            "epsilon": [[1.0, 1.5, 0.75], [1.5, 0.5, 1.5], [0.75, 1.5, 0.75]],
            "sigma": [[1.0, 0.8, 0.9], [0.8, 0.88, 0.8], [0.9, 0.8, 0.94]],
            "cutoff": None,
        },
        (),
        density=1.1920748468939728,
        temperature=1.0,
        displacement=0.05,
        swap_pairs=((0, 2), (1, 2)),
    ),
    "ka2": _Model(
        "binary Kob-Andersen, LJ truncated and shifted at rc = 2.5 sigma",
        TruncatedShiftedLennardJones,
        {"epsilon": [[1.0, 1.5], [1.5, 0.5]], "sigma": [[1.0, 0.8], [0.8, 0.88]], "cutoff": None},
        (),
        density=1.2,
        temperature=1.0,
        displacement=0.05,
        swap_pairs=(),
    ),
    "lj": _Model(
        "Lennard-Jones truncated at rc = 2.5 sigma (shift=True to shift it to W(rc) = 0)",
        LennardJones,
        {"epsilon": 1.0, "sigma": 1.0, "cutoff": None},
        ("shift",),
        density=0.8,
        temperature=1.0,
        displacement=0.1,
        swap_pairs=(),
    ),
}

#: The image convention every preset is defined with: that of the published reference data.
PRESET_IMAGES = "minimum"
_PRESETS: dict[str, dict[str, Any]] = {
    "ipl-n10": dict(model="ipl", num_particles=10, composition={"A": 5, "B": 5}),
    "ipl-n44": dict(model="ipl", num_particles=44, composition={"A": 22, "B": 22}),
    "ka3-n44": dict(model="ka3", num_particles=44, composition={"A": 20, "B": 12, "C": 12}),
    "ka2-n100": dict(model="ka2", num_particles=100, composition={"A": 65, "B": 35}),
    # 3D: the original Kob-Andersen 80:20 mixture at rho = 1.2 (L = 5.928 > 2 rc).
    "ka2-3d-n250": dict(model="ka2", num_particles=250, composition={"A": 200, "B": 50}, dim=3),
    # 3D IPL 50:50 at rho = 0.5 (L = 7.368 > 2 rc).
    "ipl-3d-n200": dict(model="ipl", num_particles=200, composition={"A": 100, "B": 100}, dim=3),
}


def list_systems() -> list[str]:
    """Names of the preset systems accepted by `get_system`."""
    return sorted(_PRESETS)


def list_models() -> list[str]:
    """Model names accepted by `make_system`."""
    return sorted(_MODELS)


def get_system(
    name: str, *, temperature: float | None = None, images: str = "minimum"
) -> ParticleSystem:
    """A preset system by name.

    Presets: `ipl-n10` (L = 4.472136), `ipl-n44` (L = 9.380832): binary IPL soft disks, 50:50,
    rho = 0.5, T = 0.1; `ka3-n44`: ternary smoothed Kob-Andersen 20:12:12, rho =
    1.1920748468939728 (L = 6.075396), T = 1.0, swaps A<->C and B<->C; `ka2-n100`: binary
    Kob-Andersen 65:35, rho = 1.2, T = 1.0; `ka2-3d-n250`: 3D Kob-Andersen 80:20, rho = 1.2;
    `ipl-3d-n200`: 3D IPL 50:50, rho = 0.5.

    **Arguments:**

    - `name`: one of `list_systems()`.
    - `temperature`: overrides the preset's default temperature (must be positive).
    - `images`: periodic-image convention, `"minimum"` (default, as in the reference data) or
      `"all"`. Every preset is defined with the minimum-image convention (`PRESET_IMAGES`),
      the one of the published reference data. When half the box is shorter than a cutoff
      (e.g. `ipl-n10`) the choice changes the energy: `images="all"` then warns with an
      `ImageConventionWarning` naming the convention in force; the preset's own convention
      does not (the preset names it).

    **Returns:**

    A `ParticleSystem`.
    """
    if name in list_cluster_systems():
        raise ValueError(
            f"{name!r} is a cluster in open space (centre of mass removed), not a system in a "
            f"periodic box: use get_cluster_system({name!r})."
        )
    if name not in _PRESETS:
        close = difflib.get_close_matches(str(name), list(_PRESETS), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(
            f"unknown system {name!r}; choose one of {', '.join(list_systems())}, or build a "
            f"custom one with make_system(model, ...).{hint}"
        )
    spec = dict(_PRESETS[name])
    model = spec.pop("model")
    return _make_system(
        model,
        name=name,
        temperature=temperature,
        images=images,
        warn_images=images != PRESET_IMAGES,
        **spec,
    )


def make_system(
    model: str,
    *,
    num_particles: int,
    composition: Mapping[str, int] | Sequence[int],
    density: float | None = None,
    box: float | Sequence[float] | None = None,
    dim: int = 2,
    images: str = "minimum",
    name: str | None = None,
    temperature: float | None = None,
    displacement: float | None = None,
    swap_pairs: Sequence[tuple[int, int]] | None = None,
    **params: Any,
) -> ParticleSystem:
    """A custom system of a known model.

    **Arguments:**

    - `model`: `"ipl"`, `"ka3"` (ternary smoothed KA), `"ka2"` (binary truncated-shifted KA)
      or `"lj"` (see `list_models()`).
    - `num_particles`: N.
    - `composition`: particles per species, either `{"A": 20, "B": 12, "C": 12}` (labels
      `A, B, ...` in order) or a sequence of counts; must sum to N.
    - `density`, `box`: give one (or both if they agree); `box` is a side length (cubic box) or
      one length per axis. Neither: the model's density.
    - `dim`: space dimension (ignored if `box` has one length per axis).
    - `images`: `"minimum"` or `"all"` (see `AbstractPairEnergy`).
    - `name`: a name for the system (default: built from model and N).
    - `temperature`, `displacement`: default temperature and Monte Carlo step (model defaults
      otherwise).
    - `swap_pairs`: species pairs that may swap (model default when the species count matches
      the model's, else none).
    - `**params`: potential parameters overriding the model's: `epsilon`, `sigma`, `cutoff`
      (`(S, S)` matrices or scalars), and `exponent` (ipl) or `shift` (lj).

    **Returns:**

    A `ParticleSystem`. Inconsistent input (composition not summing to N, unknown label,
    density and box disagreeing, non-positive values, unknown model or parameter) raises
    `ValueError` naming the argument and the fix.
    """
    return _make_system(
        model,
        num_particles=num_particles,
        composition=composition,
        density=density,
        box=box,
        dim=dim,
        images=images,
        name=name,
        temperature=temperature,
        displacement=displacement,
        swap_pairs=swap_pairs,
        **params,
    )


def _make_system(
    model,
    *,
    num_particles,
    composition,
    density=None,
    box=None,
    dim=2,
    images="minimum",
    name=None,
    temperature=None,
    displacement=None,
    swap_pairs=None,
    warn_images=True,
    **params,
) -> ParticleSystem:
    # called by `make_system` and `get_system` only, so the warning points at the user's line;
    # `warn_images=False`: the convention is the preset's documented one, no warning.
    if model not in _MODELS:
        raise ValueError(
            f"unknown model {model!r}; choose one of {', '.join(list_models())} (or a preset "
            f"with get_system: {', '.join(list_systems())})."
        )
    spec = _MODELS[model]
    accepted = (*spec.defaults, *spec.extra_params)
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ValueError(
            f"unknown parameter(s) {unknown} for model {model!r}; it accepts {list(accepted)}."
        )
    check_images(images)
    pot = {**spec.defaults, **params}
    n = _check_count(num_particles)
    num_species = _species_count(pot)
    names = tuple(_LABELS[:num_species])
    counts = _composition(composition, names, n)
    lengths, rho = _box_and_density(n, density, box, dim, spec.density)
    torus = FlatTorus(lengths)
    label = name or f"{model}-n{n}" + (f"-{len(lengths)}d" if len(lengths) != 2 else "")
    # Build the energy quietly and warn once below, naming the system rather than the class.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ImageConventionWarning)
        energy = spec.potential(torus, images=images, **pot)
    if warn_images:
        warn_if_short_box(
            torus.lengths, energy.max_cutoff(), images, f"system {label!r}", stacklevel=4
        )
    t = spec.temperature if temperature is None else _check_temperature(temperature)
    step = spec.displacement if displacement is None else float(displacement)
    if swap_pairs is None:
        default_count = _species_count(spec.defaults)
        swap_pairs = spec.swap_pairs if num_species == default_count else ()
        swap_pairs = tuple((a, b) for a, b in swap_pairs if counts[a] > 0 and counts[b] > 0)
    species = np.repeat(np.arange(num_species, dtype=np.int32), counts)
    parameters = {
        "model": model,
        "description": spec.description,
        "potential": type(energy).__name__,
        "species_names": list(names),
        "composition": dict(zip(names, (int(c) for c in counts), strict=True)),
        "num_particles": n,
        "dim": len(lengths),
        "box": list(lengths),
        "density": rho,
        "temperature": t,
        "images": images,
        "epsilon": np.asarray(energy.epsilon).tolist(),
        "sigma": np.asarray(energy.sigma).tolist(),
        "cutoff": np.asarray(energy.cutoff).tolist(),
        "swap_pairs": [list(p) for p in swap_pairs],
        "displacement": step,
    }
    if isinstance(energy, InversePowerLaw):
        parameters["exponent"] = energy.exponent
    if isinstance(energy, LennardJones):
        parameters["shift"] = energy.shift
    if isinstance(energy, SmoothedLennardJones):
        c0, c2, c4 = smoothing_coefficients(np.asarray(energy.cutoff) / np.asarray(energy.sigma))
        parameters["smoothing"] = {"c0": c0.tolist(), "c2": c2.tolist(), "c4": c4.tolist()}
    return ParticleSystem(
        name=label,
        energy=energy,
        species=species,
        species_names=names,
        swap_pairs=tuple(swap_pairs),
        displacement=step,
        density=rho,
        default_temperature=t,
        parameters=parameters,
    )


# ---------------------------------------------------------------------------------- checks
def _check_temperature(temperature) -> float:
    t = float(temperature)
    if not (math.isfinite(t) and t > 0):
        raise ValueError(
            f"temperature must be positive and finite (reduced units, k_B = 1); got {temperature}."
        )
    return t


def _check_count(num_particles) -> int:
    if isinstance(num_particles, bool) or int(num_particles) != num_particles or num_particles < 1:
        raise ValueError(f"num_particles must be a positive integer; got {num_particles!r}.")
    return int(num_particles)


def _species_count(pot: Mapping[str, Any]) -> int:
    sizes = {np.shape(pot[k])[0] for k in ("epsilon", "sigma", "cutoff") if np.ndim(pot[k]) > 0}
    if len(sizes) > 1:
        raise ValueError(
            f"epsilon, sigma and cutoff describe different numbers of species ({sorted(sizes)}); "
            "pass (S, S) matrices of one size."
        )
    return sizes.pop() if sizes else 1


def _composition(composition, names: tuple[str, ...], n: int) -> np.ndarray:
    if isinstance(composition, Mapping):
        unknown = [k for k in composition if k not in names]
        if unknown:
            raise ValueError(
                f"unknown species label(s) {unknown} in composition; this model has species "
                f"{list(names)}: use those labels."
            )
        counts = [composition.get(k, 0) for k in names]
    else:
        counts = list(np.asarray(composition).reshape(-1).tolist())
        if len(counts) != len(names):
            raise ValueError(
                f"composition has {len(counts)} counts but the model has {len(names)} species "
                f"{list(names)}; give one count per species."
            )
    bad = [c for c in counts if isinstance(c, bool) or int(c) != c or c < 0]
    if bad:
        raise ValueError(f"composition counts must be non-negative integers; got {counts}.")
    counts = np.asarray(counts, dtype=np.int64)
    if counts.sum() != n:
        raise ValueError(
            f"composition {counts.tolist()} (species {list(names)}) sums to "
            f"{int(counts.sum())} but num_particles={n}; make the counts add up to N."
        )
    return counts


def _box_and_density(n, density, box, dim, default_density) -> tuple[tuple[float, ...], float]:
    if density is not None:
        rho = float(density)
        if not (math.isfinite(rho) and rho > 0):
            raise ValueError(f"density must be positive and finite; got {density}.")
    if box is not None:
        lengths = np.asarray(box, dtype=np.float64).reshape(-1)
        if lengths.size == 1:
            if isinstance(dim, bool) or int(dim) != dim or dim < 1:
                raise ValueError(f"dim must be a positive integer; got {dim!r}.")
            lengths = np.full(int(dim), float(lengths[0]))
        if not np.all(np.isfinite(lengths)) or np.any(lengths <= 0):
            raise ValueError(f"box lengths must be positive and finite; got {box}.")
        implied = n / float(np.prod(lengths))
        if density is not None and not math.isclose(implied, rho, rel_tol=1e-6):
            raise ValueError(
                f"density={rho} disagrees with box={lengths.tolist()} (which gives N/V = "
                f"{implied:.10g}); pass only one of them."
            )
        return tuple(float(v) for v in lengths), implied
    if isinstance(dim, bool) or int(dim) != dim or dim < 1:
        raise ValueError(f"dim must be a positive integer; got {dim!r}.")
    rho = default_density if density is None else rho
    side = (n / rho) ** (1.0 / int(dim))
    return (side,) * int(dim), rho
