"""Configuration records of a training run: the optimisation settings and the model spec."""

import dataclasses
import math
from typing import Any

import numpy as np

#: Learning-rate schedules `TrainConfig.schedule` accepts.
SCHEDULES: tuple[str, ...] = ("constant", "cosine")
#: Parameter/data precisions `TrainConfig.dtype` accepts.
DTYPES: tuple[str, ...] = ("float32", "float64")


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

    def __post_init__(self):
        o = "TrainConfig"
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

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        """Build from a mapping (e.g. a TOML `[train]` table); unknown keys raise `ValueError`."""
        return cls(**_fields_from(cls, values, "[train]"))

    def replace(self, **changes: Any) -> "TrainConfig":
        return dataclasses.replace(self, **changes)


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """How to build the vector field (`manifold_flows.build_field`), recorded with a run so
    that `load_run` can rebuild it.

    **Fields:** `field` (`"torus_egnn"`, `"euclidean_egnn"`, `"mlp"` or `"kernel"`), `width`,
    `depth`, `attention`, `tanh_bound` (`True`, `False` or the bound `C`); for `"kernel"`
    (`KernelField`) also `num_kernels` and `cutoff` (default: half the box).
    """

    field: str = "torus_egnn"
    width: int = 32
    depth: int = 3
    attention: bool = True
    tanh_bound: bool | float = True
    num_kernels: int = 32
    cutoff: float | None = None

    def __post_init__(self):
        from .._field import FIELD_NAMES

        if self.field not in FIELD_NAMES:
            raise ValueError(
                f"unknown vector field name {self.field!r}; valid names are: "
                f"{', '.join(FIELD_NAMES)}."
            )
        object.__setattr__(self, "width", _check_int("ModelConfig", "width", self.width, 1))
        object.__setattr__(self, "depth", _check_int("ModelConfig", "depth", self.depth, 1))
        if not isinstance(self.attention, (bool, np.bool_)):
            raise ValueError(
                f"ModelConfig.attention must be true or false; got {self.attention!r}."
            )
        object.__setattr__(self, "attention", bool(self.attention))
        object.__setattr__(
            self, "num_kernels", _check_int("ModelConfig", "num_kernels", self.num_kernels, 1)
        )

    def build(self, torus, num_particles: int, num_species: int, *, key, dtype=None):
        """The field for particles in the box `torus` (a `FlatTorus`)."""
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

    def to_dict(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
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
