from .config import ModelConfig as ModelConfig, TrainConfig as TrainConfig
from .fit import TrainingDiverged as TrainingDiverged, TrainResult as TrainResult, fit as fit
from .fit_likelihood import fit_likelihood as fit_likelihood
from .from_config import (
    RunSetup as RunSetup,
    setup_run as setup_run,
    train_from_config as train_from_config,
)
from .loss import evaluate_loss as evaluate_loss, flow_matching_loss as flow_matching_loss
from .run import TrainedRun as TrainedRun, load_run as load_run
from .state import (
    TrainState as TrainState,
    init_train_state as init_train_state,
    make_optimizer as make_optimizer,
)
from .step import (
    HostCoupled as HostCoupled,
    draw_pairs as draw_pairs,
    pose_host_coupling as pose_host_coupling,
    sample_pairs as sample_pairs,
    solve_host_coupling as solve_host_coupling,
    train_step as train_step,
)

__all__ = [
    "HostCoupled",
    "ModelConfig",
    "RunSetup",
    "TrainConfig",
    "TrainResult",
    "TrainState",
    "TrainedRun",
    "TrainingDiverged",
    "draw_pairs",
    "evaluate_loss",
    "fit",
    "fit_likelihood",
    "flow_matching_loss",
    "init_train_state",
    "load_run",
    "make_optimizer",
    "pose_host_coupling",
    "sample_pairs",
    "setup_run",
    "solve_host_coupling",
    "train_from_config",
    "train_step",
]
