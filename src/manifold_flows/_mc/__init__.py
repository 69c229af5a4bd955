from .acceptance import (
    AbstractAcceptance as AbstractAcceptance,
    Barker as Barker,
    Metropolis as Metropolis,
)
from .adaptive import (
    AdaptiveResult as AdaptiveResult,
    BurnIn as BurnIn,
    adapt_flow as adapt_flow,
    adaptive_flow_mcmc as adaptive_flow_mcmc,
    flow_matching_adapter as flow_matching_adapter,
    likelihood_adapter as likelihood_adapter,
)
from .advance import (
    AdvanceOutput as AdvanceOutput,
    KernelSettings as KernelSettings,
    advance as advance,
)
from .annealed import (
    AnnealedSamples as AnnealedSamples,
    annealed_importance_sample as annealed_importance_sample,
    annealing_ladder as annealing_ladder,
    tune_step_sizes as tune_step_sizes,
)
from .checkpoint import CheckpointStore as CheckpointStore
from .cluster import (
    ClusterMCResult as ClusterMCResult,
    cluster_monte_carlo as cluster_monte_carlo,
)
from .config import MCConfig as MCConfig
from .diagnostics import (
    AutocorrelationTime as AutocorrelationTime,
    AutocorrelationWarning as AutocorrelationWarning,
    ChainAgreement as ChainAgreement,
    ChainDisagreementWarning as ChainDisagreementWarning,
    MCDiagnosticWarning as MCDiagnosticWarning,
    SampleSpacingWarning as SampleSpacingWarning,
    chain_agreement as chain_agreement,
    integrated_autocorrelation_time as integrated_autocorrelation_time,
    mean_with_error as mean_with_error,
)
from .engine import (
    BlockInfo as BlockInfo,
    EnergyDriftError as EnergyDriftError,
    MCResult as MCResult,
    run_monte_carlo as run_monte_carlo,
)
from .extra_moves import AbstractExtraMoves as AbstractExtraMoves
from .flow_mcmc import (
    flow_mcmc_dataset as flow_mcmc_dataset,
    flow_mcmc_summary as flow_mcmc_summary,
    proposals_from_samples as proposals_from_samples,
)
from .flow_moves import (
    FlowMoves as FlowMoves,
    canonicalize as canonicalize,
    check_label_invariance as check_label_invariance,
    flow_block as flow_block,
    flow_log_weight as flow_log_weight,
    flow_step as flow_step,
)
from .generate import checkpoint_dir_for as checkpoint_dir_for, generate_dataset as generate_dataset
from .initial import (
    contact_distances as contact_distances,
    random_configurations as random_configurations,
)
from .moves import (
    Proposal as Proposal,
    chain_sweep as chain_sweep,
    draw_sweep as draw_sweep,
    mc_step as mc_step,
    propose as propose,
    propose_move as propose_move,
)
from .proposals import (
    AbstractProposals as AbstractProposals,
    ArrayProposals as ArrayProposals,
    LikelihoodProposals as LikelihoodProposals,
    ProposalsExhaustedError as ProposalsExhaustedError,
)
from .schedule import temperature_schedule as temperature_schedule
from .state import ChainState as ChainState, SamplerState as SamplerState

__all__ = [
    "AbstractAcceptance",
    "AbstractExtraMoves",
    "AbstractProposals",
    "AdaptiveResult",
    "AdvanceOutput",
    "AnnealedSamples",
    "ArrayProposals",
    "AutocorrelationTime",
    "AutocorrelationWarning",
    "Barker",
    "BlockInfo",
    "BurnIn",
    "ChainAgreement",
    "ChainDisagreementWarning",
    "ChainState",
    "CheckpointStore",
    "ClusterMCResult",
    "EnergyDriftError",
    "FlowMoves",
    "KernelSettings",
    "LikelihoodProposals",
    "MCConfig",
    "MCDiagnosticWarning",
    "MCResult",
    "Metropolis",
    "Proposal",
    "ProposalsExhaustedError",
    "SampleSpacingWarning",
    "SamplerState",
    "adapt_flow",
    "adaptive_flow_mcmc",
    "advance",
    "annealed_importance_sample",
    "annealing_ladder",
    "canonicalize",
    "chain_agreement",
    "chain_sweep",
    "check_label_invariance",
    "checkpoint_dir_for",
    "cluster_monte_carlo",
    "contact_distances",
    "draw_sweep",
    "flow_block",
    "flow_log_weight",
    "flow_matching_adapter",
    "flow_mcmc_dataset",
    "flow_mcmc_summary",
    "flow_step",
    "generate_dataset",
    "integrated_autocorrelation_time",
    "likelihood_adapter",
    "mc_step",
    "mean_with_error",
    "proposals_from_samples",
    "propose",
    "propose_move",
    "random_configurations",
    "run_monte_carlo",
    "temperature_schedule",
    "tune_step_sizes",
]
