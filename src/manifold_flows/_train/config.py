"""Configuration records of a training run: the optimisation settings and the model spec."""

import dataclasses
import math
from typing import Any

import numpy as np

#: Learning-rate schedules `TrainConfig.schedule` accepts.
SCHEDULES: tuple[str, ...] = ("constant", "cosine")
#: Parameter/data precisions `TrainConfig.dtype` accepts.
DTYPES: tuple[str, ...] = ("float32", "float64")
#: Training objectives `TrainConfig.objective` accepts: flow matching trains a vector field;
#: the others train a flow with a one-pass likelihood (`ModelConfig.flow = "augmented_coupling"`).
OBJECTIVES: tuple[str, ...] = ("flow_matching", "ml", "energy", "mixed")
#: Estimators of the energy objective's gradient (`manifold_flows._train.likelihood`).
ENERGY_GRADIENTS: tuple[str, ...] = ("path", "total")
#: Flows `ModelConfig.flow` accepts.
FLOWS: tuple[str, ...] = ("continuous", "augmented_coupling")


def _fields_from(cls, values: dict[str, Any], what: str) -> dict[str, Any]:
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(
            f"unknown {what} option(s) {', '.join(map(repr, unknown))}; valid options are: "
            f"{', '.join(sorted(names))}."
        )
    return dict(values)


def _check_int(owner: str, name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{owner}.{name} must be an integer >= {minimum}; got {value!r}.")
    return int(value)


def _check_float(owner: str, name: str, value, lo: float, hi: float, *, open_lo=False) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{owner}.{name} must be a number; got {value!r}.") from None
    if isinstance(value, bool) or not math.isfinite(v) or v < lo or v > hi or (open_lo and v == lo):
        bound = f"({lo}, {hi}]" if open_lo else f"[{lo}, {hi}]"
        raise ValueError(f"{owner}.{name} must lie in {bound}; got {value!r}.")
    return v


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Settings of a flow-matching training run (reference values of the eRSI paper).

    **Fields:**

    - `lr`: Adam learning rate (peak value for the cosine schedule).
    - `batch_size`: pairs per step.
    - `clip`: gradient clipping by global norm (`0` disables it).
    - `epochs`: passes over the training split; one epoch is `num_train // batch_size` steps.
    - `ema_decay`: decay of the exponential moving average of the weights, in `[0, 1)`; the
      effective decay at step `s` is `min(ema_decay, (1 + s) / (10 + s))` so early averages
      are not dominated by the initialisation.
    - `val_fraction`: share of the dataset held out for validation (`0` for none).
    - `val_max_samples`: cap on the validation set size (validation runs every epoch).
    - `seed`: seeds every random draw of the run (base draws, times, noise, batches).
    - `split_seed`: seeds the train/validation split (fixed across training seeds).
    - `schedule`: `"constant"` or `"cosine"` (decay to 0 over the run).
    - `augment`: apply a random element of the data's symmetry group (permutations within
      species, torus translations, the box point group) to every data point; meant for
      non-equivariant fields (the RSI baseline).
    - `dtype`: `"float32"` (training default) or `"float64"`.
    - `checkpoint_every`: also checkpoint every this many steps (`0`: at epoch ends only).
    - `log_every`: write a metrics line every this many steps.
    - `init_from`: a run directory whose trained (EMA) weights this run's model starts from
      (a warm start: continue a run with other settings, e.g. a maximum-likelihood run
      fine-tuned on the energy or with several auxiliary draws). The model must be the same
      (`[model]`); an augmented coupling flow may come from a run at another size with the
      same cutoff. `None` (the default): a fresh model from `seed`. The step count, the
      optimiser state and the schedule start afresh.

    Fields of the likelihood objectives (a flow with a one-pass log-density, e.g.
    `ModelConfig(flow="augmented_coupling")`; left out of `to_dict` for flow matching):

    - `objective`: `"flow_matching"` (the default: a vector field), `"ml"` (maximum likelihood
      on the data, `-E_data log q`), `"energy"` (reverse KL to the Boltzmann distribution,
      `E_q[log q + U/T]`, no data in the loss) or `"mixed"` (`ml + energy_weight * energy`).
    - `energy_weight`: weight of the energy term in `"mixed"`.
    - `energy_start_epoch`: epochs of pure maximum likelihood before the energy term enters
      (`"mixed"` only): a flow far from the data draws overlapping particles whose energies
      would swamp the gradient.
    - `energy_gradient`: estimator of the energy term's gradient: `"path"` (the default:
      "sticking the landing", the path derivative through the sample alone; its variance
      vanishes as the flow approaches the target) or `"total"` (the plain reparameterisation
      gradient, which adds the zero-mean score term). Both are unbiased.
    - `energy_soft_cap`: total energy above which `U` enters the energy loss as
      `cap + log(1 + U - cap)` (the loss stays finite and its gradient bounded for
      overlapping particles; samples below the cap are unaffected). `None`: the largest
      training-data energy plus `10 N T`.
    - `energy_max_force`: bound on the norm of each flow sample's energy gradient `|grad U|`
      (over all particles and axes) in the energy term; a larger one is scaled down to it.
      `None` (the default): no bound. Hot samples (overlapping particles) have forces many
      orders above equilibrium ones and swamp the batch's gradient; a bound of a few times
      the largest `|grad U|` of the training data leaves equilibrium-like samples alone. It
      biases the gradient of the hot samples only (towards a weaker pull).
    - `val_num_samples`: flow samples drawn (with fixed keys) at every epoch end to report
      the ESS fraction of their importance weights (`val_ess`); `0` turns it off.
    - `aux_draws`: for an augmented flow, train (and validate) the model with K auxiliary
      draws per configuration (`MultiAuxFlow(flow, K)`): the data term becomes the
      importance-weighted bound `-log (1/K) sum_k q(x, a_k) / p_aux(a_k | x)`, which is
      tighter than one draw's and reaches `-log q(x)` as K grows, and the energy term is the
      reverse KL of the K-draw model. Sample such a run with `aux_draws = K` (or more). Costs
      K inverse passes per data point. Default 1 (the flow itself).
    """

    lr: float = 1e-3
    batch_size: int = 256
    clip: float = 5.0
    epochs: int = 10
    ema_decay: float = 0.999
    val_fraction: float = 0.1
    val_max_samples: int = 4096
    seed: int = 0
    split_seed: int = 0
    schedule: str = "constant"
    augment: bool = False
    dtype: str = "float32"
    checkpoint_every: int = 0
    log_every: int = 10
    objective: str = "flow_matching"
    energy_weight: float = 1.0
    energy_start_epoch: int = 0
    energy_gradient: str = "path"
    energy_soft_cap: float | None = None
    energy_max_force: float | None = None
    val_num_samples: int = 1024
    aux_draws: int = 1
    init_from: str | None = None

    def __post_init__(self):
        o = "TrainConfig"
        if self.init_from is not None and (
            not isinstance(self.init_from, str) or not self.init_from.strip()
        ):
            raise ValueError(
                f"TrainConfig.init_from must be a run directory (a path); got {self.init_from!r}."
            )
        if self.objective not in OBJECTIVES:
            raise ValueError(
                f"TrainConfig.objective must be one of {', '.join(OBJECTIVES)}; got "
                f"{self.objective!r}."
            )
        object.__setattr__(
            self,
            "energy_weight",
            _check_float(o, "energy_weight", self.energy_weight, 0.0, math.inf, open_lo=True),
        )
        object.__setattr__(
            self,
            "energy_start_epoch",
            _check_int(o, "energy_start_epoch", self.energy_start_epoch, 0),
        )
        if self.energy_gradient not in ENERGY_GRADIENTS:
            raise ValueError(
                f"TrainConfig.energy_gradient must be one of {', '.join(ENERGY_GRADIENTS)}; "
                f"got {self.energy_gradient!r}."
            )
        if self.energy_soft_cap is not None:
            object.__setattr__(
                self,
                "energy_soft_cap",
                _check_float(o, "energy_soft_cap", self.energy_soft_cap, -math.inf, math.inf),
            )
        if self.energy_max_force is not None:
            object.__setattr__(
                self,
                "energy_max_force",
                _check_float(
                    o, "energy_max_force", self.energy_max_force, 0.0, math.inf, open_lo=True
                ),
            )
        object.__setattr__(
            self, "val_num_samples", _check_int(o, "val_num_samples", self.val_num_samples, 0)
        )
        object.__setattr__(self, "aux_draws", _check_int(o, "aux_draws", self.aux_draws, 1))
        object.__setattr__(self, "lr", _check_float(o, "lr", self.lr, 0.0, 10.0, open_lo=True))
        object.__setattr__(self, "batch_size", _check_int(o, "batch_size", self.batch_size, 1))
        object.__setattr__(self, "clip", _check_float(o, "clip", self.clip, 0.0, math.inf))
        object.__setattr__(self, "epochs", _check_int(o, "epochs", self.epochs, 1))
        ema = _check_float(o, "ema_decay", self.ema_decay, 0.0, 1.0)
        if ema >= 1.0:
            raise ValueError(f"TrainConfig.ema_decay must be < 1; got {self.ema_decay!r}.")
        object.__setattr__(self, "ema_decay", ema)
        vf = _check_float(o, "val_fraction", self.val_fraction, 0.0, 0.5)
        object.__setattr__(self, "val_fraction", vf)
        object.__setattr__(
            self, "val_max_samples", _check_int(o, "val_max_samples", self.val_max_samples, 1)
        )
        object.__setattr__(self, "seed", _check_int(o, "seed", self.seed, 0))
        object.__setattr__(self, "split_seed", _check_int(o, "split_seed", self.split_seed, 0))
        if self.schedule not in SCHEDULES:
            raise ValueError(
                f"TrainConfig.schedule must be one of {', '.join(SCHEDULES)}; got "
                f"{self.schedule!r}."
            )
        if not isinstance(self.augment, (bool, np.bool_)):
            raise ValueError(f"TrainConfig.augment must be true or false; got {self.augment!r}.")
        object.__setattr__(self, "augment", bool(self.augment))
        if self.dtype not in DTYPES:
            raise ValueError(
                f"TrainConfig.dtype must be one of {', '.join(DTYPES)}; got {self.dtype!r}."
            )
        object.__setattr__(
            self, "checkpoint_every", _check_int(o, "checkpoint_every", self.checkpoint_every, 0)
        )
        object.__setattr__(self, "log_every", _check_int(o, "log_every", self.log_every, 1))

    @property
    def likelihood_objective(self) -> bool:
        """Whether the objective trains a flow's log-density (not flow matching)."""
        return self.objective != "flow_matching"

    def to_dict(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        if values["init_from"] is None:
            # added after runs were recorded: left out unset, so those runs stay resumable
            del values["init_from"]
        if not self.likelihood_objective:
            # Meaningless for flow matching; leaving them out keeps the records of those runs
            # as they were before the likelihood objectives existed (and such runs resumable).
            for name in _LIKELIHOOD_TRAIN_FIELDS:
                del values[name]
        else:
            if self.objective == "ml":
                # No energy term: its estimator is meaningless (and runs recorded before the
                # option existed stay resumable).
                del values["energy_gradient"]
            # Options added later, left out at their defaults so that runs recorded before
            # them stay resumable.
            for name, default in _LATER_LIKELIHOOD_DEFAULTS.items():
                if values[name] == default:
                    del values[name]
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        """Build from a mapping (e.g. a TOML `[train]` table); unknown keys raise `ValueError`."""
        return cls(**_fields_from(cls, values, "[train]"))

    def replace(self, **changes: Any) -> "TrainConfig":
        return dataclasses.replace(self, **changes)


_LIKELIHOOD_TRAIN_FIELDS = (
    "objective",
    "energy_weight",
    "energy_start_epoch",
    "energy_gradient",
    "energy_soft_cap",
    "energy_max_force",
    "val_num_samples",
    "aux_draws",
)
#: Likelihood options added after runs were recorded, with the defaults that leave them out
#: of `TrainConfig.to_dict`.
_LATER_LIKELIHOOD_DEFAULTS: dict[str, Any] = {"energy_max_force": None, "aux_draws": 1}


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """How to build the model (a vector field, `manifold_flows.build_field`, or a flow with a
    one-pass likelihood), recorded with a run so that `load_run` can rebuild it.

    **Fields:**

    - `flow`: `"continuous"` (the default: a vector field integrated by `ContinuousFlow`) or
      `"augmented_coupling"` (an `AugmentedCouplingFlow`, trained by the likelihood
      objectives of `TrainConfig`).
    - for `"continuous"`: `field` (`"torus_egnn"`, `"euclidean_egnn"`, `"mlp"` or `"kernel"`),
      `width`, `depth`, `attention`, `tanh_bound` (`True`, `False` or the bound `C`); for
      `"kernel"` (`KernelField`) also `num_kernels` and `cutoff` (default: half the box).
    - for `"augmented_coupling"`: `num_layers` (coupling pairs), `num_bins` (spline bins),
      `width`, `channels`, `num_rbf`, `angular` (of each conditioner: `angular` > 1 resolves
      the per-axis neighbour moments in angle; `rounds` > 1 adds message-passing rounds, so
      that an edge sees the neighbourhoods of both its ends: `LocalConditioner`),
      `learned_aux` (learn the auxiliary target `p_aux(a | x)`, `LearnedAux`), `cutoff` (neighbour
      range, default half the box), `aux_scale` (width of the auxiliary wrapped normal,
      default a quarter of the mean particle spacing) and `neighbours` (`"auto"`, `"dense"`
      or `"cells"`: `"auto"` takes a cell list when the box holds at least 3 cells of side
      `cutoff` per axis, all pairs otherwise).
    """

    field: str = "torus_egnn"
    width: int = 32
    depth: int = 3
    attention: bool = True
    tanh_bound: bool | float = True
    num_kernels: int = 32
    cutoff: float | None = None
    flow: str = "continuous"
    num_layers: int = 4
    num_bins: int = 8
    channels: int = 8
    num_rbf: int = 16
    angular: int = 1
    rounds: int = 1
    learned_aux: bool = False
    aux_scale: float | None = None
    neighbours: str = "auto"

    def __post_init__(self):
        from .._field import FIELD_NAMES

        if self.flow not in FLOWS:
            raise ValueError(
                f"unknown flow {self.flow!r} in [model] flow; valid flows are: {', '.join(FLOWS)}."
            )
        if self.field not in FIELD_NAMES:
            raise ValueError(
                f"unknown vector field name {self.field!r}; valid names are: "
                f"{', '.join(FIELD_NAMES)}."
            )
        o = "ModelConfig"
        for name in ("width", "depth", "num_kernels", "num_layers", "num_bins", "channels"):
            object.__setattr__(self, name, _check_int(o, name, getattr(self, name), 1))
        object.__setattr__(self, "num_rbf", _check_int(o, "num_rbf", self.num_rbf, 1))
        object.__setattr__(self, "angular", _check_int(o, "angular", self.angular, 1))
        object.__setattr__(self, "rounds", _check_int(o, "rounds", self.rounds, 1))
        if not isinstance(self.attention, (bool, np.bool_)):
            raise ValueError(
                f"ModelConfig.attention must be true or false; got {self.attention!r}."
            )
        object.__setattr__(self, "attention", bool(self.attention))
        if not isinstance(self.learned_aux, (bool, np.bool_)):
            raise ValueError(
                f"ModelConfig.learned_aux must be true or false; got {self.learned_aux!r}."
            )
        object.__setattr__(self, "learned_aux", bool(self.learned_aux))
        for name in ("cutoff", "aux_scale"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(
                    self, name, _check_float(o, name, value, 0.0, math.inf, open_lo=True)
                )
        if self.neighbours not in NEIGHBOURS:
            raise ValueError(
                f"ModelConfig.neighbours must be one of {', '.join(NEIGHBOURS)}; got "
                f"{self.neighbours!r}."
            )

    @property
    def is_coupling_flow(self) -> bool:
        """Whether the model is a flow with a one-pass likelihood (not a vector field)."""
        return self.flow == "augmented_coupling"

    def build(self, torus, num_particles: int, num_species: int, *, key, dtype=None):
        """The model for particles in the box `torus` (a `FlatTorus`): the vector field, or
        the `AugmentedCouplingFlow` on `ParticleSpace(torus, num_particles)`."""
        if self.is_coupling_flow:
            return self._build_coupling_flow(torus, num_particles, num_species, key, dtype)
        from .._field import build_field

        return build_field(
            self.field,
            torus_or_dim=torus,
            num_particles=num_particles,
            num_species=num_species,
            width=self.width,
            depth=self.depth,
            attention=self.attention,
            tanh_bound=self.tanh_bound,
            num_kernels=self.num_kernels,
            cutoff=self.cutoff,
            dtype=dtype,
            key=key,
        )

    def _build_coupling_flow(self, torus, num_particles, num_species, key, dtype):
        from .._flow.augmented import AugmentedCouplingFlow
        from .._manifold import ParticleSpace

        return AugmentedCouplingFlow(
            ParticleSpace(torus, num_particles),
            num_species,
            num_layers=self.num_layers,
            cutoff=self.cutoff,
            aux_scale=self.aux_scale,
            num_bins=self.num_bins,
            width=self.width,
            channels=self.channels,
            num_rbf=self.num_rbf,
            angular=self.angular,
            rounds=self.rounds,
            learned_aux=self.learned_aux,
            neighbour_list=neighbour_list_for(self.neighbours, torus, num_particles, self.cutoff),
            dtype=dtype,
            key=key,
        )

    def to_dict(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        if self.is_coupling_flow:
            keep = ("flow", "width", "cutoff", *_COUPLING_FLOW_FIELDS)
            # At their defaults, options added later are left out, so the records of runs
            # made before them stay as they were.
            later = {"angular": 1, "rounds": 1, "learned_aux": False}
            keep = tuple(k for k in keep if k not in later or getattr(self, k) != later[k])
            return {k: v for k, v in values.items() if k in keep}
        for name in ("flow", *_COUPLING_FLOW_FIELDS):
            del values[name]
        if self.field != "kernel":
            # The kernel options mean nothing to the other fields; leaving them out keeps the
            # records of those runs as they were before the kernel field existed (and such
            # runs resumable).
            del values["num_kernels"], values["cutoff"]
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "ModelConfig":
        """Build from a mapping (e.g. a TOML `[model]` table); unknown keys raise `ValueError`."""
        return cls(**_fields_from(cls, values, "[model]"))


#: Neighbour lists `ModelConfig.neighbours` accepts.
NEIGHBOURS: tuple[str, ...] = ("auto", "dense", "cells")
_COUPLING_FLOW_FIELDS = (
    "num_layers",
    "num_bins",
    "channels",
    "num_rbf",
    "angular",
    "rounds",
    "learned_aux",
    "aux_scale",
    "neighbours",
)


def neighbour_list_for(kind: str, torus, num_particles: int, cutoff: float | None):
    """The neighbour list of a coupling flow of `num_particles` in the box `torus`: `"dense"`
    (all pairs), `"cells"` (a cell list of side `cutoff`), or `"auto"`: cells when every axis
    holds at least 3 of them (below that a cell list visits every pair anyway).

    The cell list's bounds follow from the density `rho`: a cell holds `rho * side^d` and a
    ball of radius `cutoff` `rho * V_d(cutoff)` particles on average; the bounds are three
    times these plus 8, far beyond what a liquid or glass of soft particles reaches. A
    configuration that exceeds them is an error at run time (never a silently dropped
    neighbour)."""
    from .._analysis.rdf import ball_volume
    from .._flow.augmented import CellNeighbourList, DenseNeighbourList

    lengths = torus.lengths
    cutoff = 0.5 * min(lengths) if cutoff is None else float(cutoff)
    cells = [int(length // cutoff) for length in lengths]
    if not (kind == "cells" or (kind == "auto" and min(cells) >= 3)):
        return DenseNeighbourList()
    density = num_particles / math.prod(lengths)
    per_cell = density * math.prod(
        length / c if c >= 3 else length for length, c in zip(lengths, cells, strict=True)
    )
    in_ball = density * float(ball_volume(cutoff, len(lengths)))
    return CellNeighbourList(
        capacity=math.ceil(3 * per_cell) + 8, max_neighbours=math.ceil(3 * in_ball) + 8
    )
