"""Importance reweighting, estimators with error bars, and observables of particle systems."""

from .estimators import (
    ObservableSummary as ObservableSummary,
    bootstrap_weighted_means as bootstrap_weighted_means,
    summarize_moments as summarize_moments,
    summarize_observable as summarize_observable,
    weighted_mean as weighted_mean,
)
from .free_energy import (
    FreeEnergyDifference as FreeEnergyDifference,
    FreeEnergyResult as FreeEnergyResult,
    free_energy as free_energy,
    free_energy_difference as free_energy_difference,
    free_energy_difference_independent as free_energy_difference_independent,
)
from .observables import (
    EnergyHistogram as EnergyHistogram,
    energy_histogram as energy_histogram,
    energy_per_particle as energy_per_particle,
    high_energy_fraction as high_energy_fraction,
    high_energy_threshold as high_energy_threshold,
    specific_heat as specific_heat,
)
from .pareto import (
    ParetoDiagnostic as ParetoDiagnostic,
    fit_generalized_pareto as fit_generalized_pareto,
    pareto_khat as pareto_khat,
)
from .rdf import (
    RadialDistribution as RadialDistribution,
    ball_volume as ball_volume,
    radial_distribution as radial_distribution,
)
from .reweight import ReweightResult as ReweightResult, reweight as reweight
from .thermodynamic_integration import (
    ThermodynamicIntegration as ThermodynamicIntegration,
    power_law_quadrature as power_law_quadrature,
    thermodynamic_integration as thermodynamic_integration,
)

__all__ = [
    "EnergyHistogram",
    "FreeEnergyDifference",
    "FreeEnergyResult",
    "ObservableSummary",
    "ParetoDiagnostic",
    "RadialDistribution",
    "ReweightResult",
    "ThermodynamicIntegration",
    "ball_volume",
    "bootstrap_weighted_means",
    "energy_histogram",
    "energy_per_particle",
    "fit_generalized_pareto",
    "free_energy",
    "free_energy_difference",
    "free_energy_difference_independent",
    "high_energy_fraction",
    "high_energy_threshold",
    "pareto_khat",
    "power_law_quadrature",
    "radial_distribution",
    "reweight",
    "specific_heat",
    "summarize_moments",
    "summarize_observable",
    "thermodynamic_integration",
    "weighted_mean",
]
