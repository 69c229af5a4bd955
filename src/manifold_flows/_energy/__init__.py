from ._images import ImageConventionWarning as ImageConventionWarning
from .base import AbstractEnergy as AbstractEnergy, AbstractPairEnergy as AbstractPairEnergy
from .ipl import InversePowerLaw as InversePowerLaw
from .lennard_jones import (
    LennardJones as LennardJones,
    TruncatedShiftedLennardJones as TruncatedShiftedLennardJones,
)
from .presets import (
    ParticleSystem as ParticleSystem,
    get_system as get_system,
    list_models as list_models,
    list_systems as list_systems,
    make_system as make_system,
)
from .smoothed_lj import (
    SmoothedLennardJones as SmoothedLennardJones,
    smoothing_coefficients as smoothing_coefficients,
)

__all__ = [
    "AbstractEnergy",
    "AbstractPairEnergy",
    "ImageConventionWarning",
    "InversePowerLaw",
    "LennardJones",
    "ParticleSystem",
    "SmoothedLennardJones",
    "TruncatedShiftedLennardJones",
    "get_system",
    "list_models",
    "list_systems",
    "make_system",
    "smoothing_coefficients",
]
