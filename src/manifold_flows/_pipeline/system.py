"""Which physical system (and so which energy U) a trained run or a sample file refers to."""

import math
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
        if label in list_systems():
            system = get_system(label, temperature=temperature, images=images)
        elif label.lower() in MODEL_ALIASES:
            system = make_system(
                MODEL_ALIASES[label.lower()],
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
