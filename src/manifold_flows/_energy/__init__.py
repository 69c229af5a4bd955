from ._images import ImageConventionWarning as ImageConventionWarning
from .base import AbstractEnergy as AbstractEnergy, AbstractPairEnergy as AbstractPairEnergy
from .cluster_base import AbstractClusterEnergy as AbstractClusterEnergy
from .cluster_presets import (
    ClusterSystem as ClusterSystem,
    get_cluster_system as get_cluster_system,
    list_cluster_systems as list_cluster_systems,
)
from .double_well import DoubleWellPair as DoubleWellPair
from .ipl import InversePowerLaw as InversePowerLaw
from .lennard_jones import (
    LennardJones as LennardJones,
    TruncatedShiftedLennardJones as TruncatedShiftedLennardJones,
)
from .lj_cluster import LennardJonesCluster as LennardJonesCluster
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
    "AbstractClusterEnergy",
    "AbstractEnergy",
    "AbstractPairEnergy",
    "ClusterSystem",
    "DoubleWellPair",
    "ImageConventionWarning",
    "InversePowerLaw",
    "LennardJones",
    "LennardJonesCluster",
    "ParticleSystem",
    "SmoothedLennardJones",
    "TruncatedShiftedLennardJones",
    "get_cluster_system",
    "get_system",
    "list_cluster_systems",
    "list_models",
    "list_systems",
    "make_system",
    "smoothing_coefficients",
]
