"""Which physical system (and so which energy U) a trained run or a sample file refers to."""

import math
import re
import warnings
from collections.abc import Sequence

import numpy as np

from .._energy import ImageConventionWarning, ParticleSystem, get_system, list_systems, make_system
from .._energy._images import short_box_note

#: Model names written by other simulation codes (lower case) -> the model of `make_system`.
#: "BHHP" is the binary inverse-power-law mixture of the reference data (atooms `model:`),
#: "JBB" / "KA2-2D" the ternary smoothed Kob-Andersen mixture.
MODEL_ALIASES: dict[str, str] = {
    "ipl": "ipl",
    "bhhp": "ipl",
    "ka3": "ka3",
    "jbb": "ka3",
    "ka2-2d": "ka3",
    "ka2": "ka2",
    "lj": "lj",
}


def resolve_system(
    name: str,
    *,
    box: Sequence[float] | np.ndarray,
    species: Sequence[int] | np.ndarray,
    images: str = "minimum",
    temperature: float | None = None,
) -> tuple[ParticleSystem, str]:
    """The `ParticleSystem` (energy, image convention) named by a run or a dataset.

    A preset name (`list_systems()`, e.g. `"ipl-n10"`) gives that preset; a model name known
    from other codes (`MODEL_ALIASES`: `"BHHP"`, `"ipl"`, `"JBB"`, ...) gives that model with
    the given box and composition. Either way the box and the particle count of each species
    must match the given ones.

    **Arguments:**

    - `name`: the system name recorded in the run or dataset.
    - `box`: box lengths `(d,)`.
    - `species`: the sorted species vector `(n,)`.
    - `images`: periodic-image convention of the energy, `"minimum"` (the convention of the
      published reference data) or `"all"`.
    - `temperature`: the state point's temperature (optional; recorded on the system).

    **Returns:**

    `(system, note)`: the system and, when half the box is shorter than a cutoff, the sentence
    that says which image convention is in force (else `""`).

    **Raises:**

    `ValueError` when the name is unknown (naming the known ones and how to pass a system
    explicitly) or when the preset's box or composition does not match.
    """
    box = np.asarray(box, dtype=np.float64).reshape(-1)
    species = np.asarray(species)
    counts = np.bincount(species).tolist() if species.size else []
    label = str(name or "")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ImageConventionWarning)
        model = MODEL_ALIASES.get(label.lower()) or _default_name_model(label, species.size)
        if label in list_systems():
            system = get_system(label, temperature=temperature, images=images)
        elif model is not None:
            system = make_system(
                model,
                num_particles=int(species.size),
                composition=counts,
                box=box.tolist(),
                images=images,
                name=label,
                temperature=temperature,
            )
        else:
            known = ", ".join([*list_systems(), *sorted({k.upper() for k in MODEL_ALIASES})])
            raise ValueError(
                f"cannot tell which energy the system {label!r} has (known: {known}); pass the "
                "system explicitly (system=get_system(...) or make_system(...))."
            )
    # The note is recorded whenever the convention matters; the warning reaches the caller only
    # where it must be told (a convention other than the preset's own, or a custom model).
    note = short_box_note(
        system.torus.lengths, system.energy.max_cutoff(), system.images, f"system {label!r}"
    )
    for w in caught:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    check_system(system, box=box, species=species, what=f"system {label!r}")
    return system, note


#: Model parameters a resized system must share with the system it is resized from.
_SHARED = ("model", "potential", "species_names", "dim", "density", "images", "epsilon", "sigma")
_SHARED += ("cutoff", "exponent", "shift", "smoothing", "swap_pairs")


def resized_system(
    system: ParticleSystem,
    num_particles: int,
    *,
    composition: Sequence[int] | None = None,
) -> ParticleSystem:
    """The same model at the same density with `num_particles` particles (for size transfer).

    **Arguments:**

    - `system`: the system to resize (a preset or a custom system of a known model).
    - `num_particles`: the new N.
    - `composition`: particles per species label (default: the system's counts scaled by
      N_new / N, which must come out whole).

    **Returns:**

    A `ParticleSystem` named as `make_system` names custom systems (`ipl-n1024`), with the
    model's potential parameters, image convention, swap pairs and temperature of `system`.

    **Raises:**

    `ValueError` when the scaled counts are not whole (pass `composition`), or when the model
    cannot be rebuilt with the same parameters.
    """
    n = int(num_particles)
    if isinstance(num_particles, bool) or n != num_particles or n < 2:
        raise ValueError(f"num_particles must be an integer >= 2; got {num_particles!r}.")
    counts = np.bincount(system.species, minlength=len(system.species_names))
    if composition is None:
        scaled = counts * n / counts.sum()
        if not np.allclose(scaled, np.round(scaled), rtol=0, atol=1e-9):
            raise ValueError(
                f"N = {n} does not scale the composition {counts.tolist()} of {system.name!r} to "
                f"whole counts ({scaled.round(3).tolist()}); choose N a multiple of "
                f"{counts.sum() // math.gcd(*counts.tolist())} or give the composition."
            )
        composition = np.round(scaled).astype(int).tolist()
    params = system.parameters
    options = {
        k: params[k] for k in ("epsilon", "sigma", "cutoff", "exponent", "shift") if k in params
    }
    resized = make_system(
        params["model"],
        num_particles=n,
        composition=[int(c) for c in composition],
        density=system.density,
        dim=int(params["dim"]),
        images=system.images,
        temperature=system.default_temperature,
        displacement=system.displacement,
        swap_pairs=system.swap_pairs,
        **options,
    )
    changed = [k for k in _SHARED if resized.parameters.get(k) != params.get(k)]
    if changed:
        raise ValueError(
            f"cannot rebuild {system.name!r} at N = {n} with the same model: "
            f"{', '.join(changed)} would differ."
        )
    return resized


def _default_name_model(label: str, num_particles: int) -> str | None:
    """The model of a name `make_system` gives a custom system by default (`ipl-n1024`,
    `ka3-n1100`, `ipl-n500-3d`), provided its N is the configurations' N; else None."""
    match = re.fullmatch(r"([a-z0-9]+)-n(\d+)(-\d+d)?", label.lower())
    if match is None or match.group(1) not in MODEL_ALIASES:
        return None
    if int(match.group(2)) != int(num_particles):
        return None
    return MODEL_ALIASES[match.group(1)]


def check_system(
    system: ParticleSystem,
    *,
    box: Sequence[float] | np.ndarray,
    species: Sequence[int] | np.ndarray,
    what: str = "the system",
) -> None:
    """`ValueError` unless `system` has the given box (relative 1e-6) and the same number of
    particles of each species label."""
    if not isinstance(system, ParticleSystem):
        raise TypeError(f"expected a ParticleSystem for {what}; got {type(system).__name__}.")
    box = np.asarray(box, dtype=np.float64).reshape(-1)
    species = np.asarray(species)
    if system.box.shape != box.shape or not np.allclose(system.box, box, rtol=1e-6, atol=0):
        raise ValueError(
            f"{what} has box {system.box.tolist()} but the configurations have box "
            f"{box.tolist()}; use the system the model was trained on."
        )
    mine = np.bincount(system.species, minlength=len(system.species_names))
    theirs = np.bincount(species, minlength=len(system.species_names))
    if mine.shape != theirs.shape or not np.array_equal(mine, theirs):
        raise ValueError(
            f"{what} has composition {mine.tolist()} (per species label) but the "
            f"configurations have {theirs.tolist()}; use the system the model was trained on."
        )


def same_box(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two box-length vectors agree (same dimension, relative 1e-6)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1)
    b = np.asarray(b, dtype=np.float64).reshape(-1)
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=1e-6, atol=0))


def same_temperature(a: float, b: float) -> bool:
    """Whether two temperatures agree (relative 1e-6)."""
    return math.isclose(float(a), float(b), rel_tol=1e-6, abs_tol=0.0)
