"""`fit`: flow-matching training of a vector field on a dataset of particle configurations."""

import dataclasses
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import PRNGKeyArray

from .._coupling import (
    AbstractCoupling,
    AbstractHostCoupling,
    AuctionOTCoupling,
    SpeciesOTCoupling,
)
from .._interpolant import AbstractInterpolant
from .._io import Dataset
from .._manifold import FlatTorus, ParticleSpace
from .._parallel import AbstractParallelism, SingleDevice, is_main_process
from .checkpoint import load_train_checkpoint
from .config import ModelConfig, TrainConfig
from .loop import _BatchOrder, _Bookkeeper, _Checkpoints
from .loss import evaluate_loss
from .progress import MetricsLog, MetricsWindow, Progress
from .run import (
    CHECKPOINT,
    METRICS,
    RUN_FORMAT,
    RUN_FORMAT_VERSION,
    RUN_INFO,
    data_fingerprint,
    describe_interpolant,
    flow_space_kind,
    read_run_info,
    write_json,
)
from .state import (
    TrainState,
    cast_floating,
    init_train_state,
    learning_rate_schedule,
    make_optimizer,
)
from .step import pose_host_coupling, sample_pairs, solve_host_coupling, train_step

_sample_pairs_jit = eqx.filter_jit(sample_pairs)


class TrainingDiverged(FloatingPointError):
    """The loss (or gradient) became NaN/inf. `step` is the step that produced it; the last
    good checkpoint of the run directory (if any) was kept untouched."""

    def __init__(self, message: str, *, step: int, loss: float, checkpoint_step: int | None):
        super().__init__(message)
        self.step = step
        self.loss = loss
        self.checkpoint_step = checkpoint_step


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """What `fit` returns.

    **Fields:** `state` (the final `TrainState`), `field` (EMA weights), `raw_field`,
    `history` (the metrics records of this call), `initial_val_loss` (untrained field, `None`
    without validation data or when resumed past step 0), `val_loss` (final, EMA weights),
    `steps_per_epoch`, `total_steps`, `run_dir`.
    """

    state: TrainState
    field: Any
    raw_field: Any
    history: list[dict[str, Any]]
    initial_val_loss: float | None
    val_loss: float | None
    steps_per_epoch: int
    total_steps: int
    run_dir: Path | None


# ------------------------------------------------------------------------------ validation
def split_indices(num: int, config: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """`(train_index, val_index)`: a permutation of `range(num)` seeded by `split_seed`."""
    n_val = 0
    if config.val_fraction > 0 and num >= 2:
        n_val = min(config.val_max_samples, max(1, round(config.val_fraction * num)), num - 1)
    perm = np.random.default_rng(config.split_seed).permutation(num)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def _check_box(what: str, manifold, box: np.ndarray) -> None:
    if isinstance(manifold, ParticleSpace):
        manifold = manifold.manifold
    if isinstance(manifold, FlatTorus) and not np.allclose(manifold.lengths, box, rtol=1e-9):
        raise ValueError(
            f"the {what}'s box {list(manifold.lengths)} does not match the dataset's box "
            f"{box.tolist()}; build it with FlatTorus(dataset.box)."
        )


def _check_inputs(dataset, interpolant, coupling, config) -> None:
    if not isinstance(dataset, Dataset):
        raise TypeError(f"fit needs a manifold_flows.Dataset; got {type(dataset).__name__}.")
    if dataset.num_samples == 0:
        raise ValueError("the dataset is empty (0 configurations); nothing to train on.")
    if not np.all(np.isfinite(dataset.positions)):
        raise ValueError("the dataset has non-finite coordinates; repair or remove those samples.")
    if not isinstance(interpolant, AbstractInterpolant):
        raise TypeError(f"`interpolant` must be an AbstractInterpolant; got {interpolant!r}.")
    if not isinstance(coupling, AbstractCoupling):
        raise TypeError(f"`coupling` must be an AbstractCoupling; got {coupling!r}.")
    _check_box("interpolant", getattr(interpolant, "manifold", None), dataset.box)
    if isinstance(coupling, (SpeciesOTCoupling, AuctionOTCoupling)):
        _check_box("coupling", coupling.manifold, dataset.box)
    if config.dtype == "float64" and not jax.config.jax_enable_x64:
        raise ValueError(
            "TrainConfig.dtype is float64 but JAX runs in 32-bit mode; enable it with "
            "jax.config.update('jax_enable_x64', True) or train in float32."
        )


def _check_field(field, num_particles: int, dim: int, species, dtype) -> None:
    x = jax.ShapeDtypeStruct((num_particles, dim), dtype)
    t = jax.ShapeDtypeStruct((), dtype)
    try:
        out = eqx.filter_eval_shape(field, t, x, species)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(
            f"the vector field cannot take the dataset's configurations (n={num_particles}, "
            f"d={dim}, {int(np.max(np.asarray(species))) + 1} species): {first}"
        ) from exc
    if getattr(out, "shape", None) != (num_particles, dim):
        raise ValueError(
            f"the vector field returns shape {getattr(out, 'shape', None)} for configurations of "
            f"shape {(num_particles, dim)}; it must return one velocity per particle."
        )


# ------------------------------------------------------------------------------ run info
_RESUME_FREE = {"epochs", "log_every", "checkpoint_every"}


def _check_resume(saved: dict[str, Any], new: dict[str, Any], run_dir: Path) -> None:
    for key in (
        "model",
        "field_class",
        "interpolant",
        "coupling",
        "space",
        "box",
        "species",
        "data_fingerprint",
    ):
        if saved.get(key) != new.get(key):
            raise ValueError(
                f"cannot resume the run in {run_dir}: its {key} differs ({saved.get(key)!r} "
                f"saved, {new.get(key)!r} now); resume with the same data and configuration or "
                "start a new run directory."
            )
    old_t = {k: v for k, v in saved["train"].items() if k not in _RESUME_FREE}
    new_t = {k: v for k, v in new["train"].items() if k not in _RESUME_FREE}
    if old_t != new_t:
        diff = sorted(k for k in set(old_t) | set(new_t) if old_t.get(k) != new_t.get(k))
        raise ValueError(
            f"cannot resume the run in {run_dir}: training option(s) {', '.join(diff)} differ "
            "from the saved run; only epochs, log_every and checkpoint_every may change."
        )
    schedule = new["train"]["schedule"]
    if saved["train"]["epochs"] != new["train"]["epochs"] and schedule != "constant":
        raise ValueError(
            f"cannot change epochs when resuming the run in {run_dir}: its {schedule} "
            "learning-rate schedule depends on the total number of steps."
        )


def _describe_coupling(coupling: AbstractCoupling) -> dict[str, Any]:
    if isinstance(coupling, (SpeciesOTCoupling, AuctionOTCoupling)):
        auction = isinstance(coupling, AuctionOTCoupling)
        return {
            "name": "species_ot_auction" if auction else "species_ot",
            "metric": type(coupling.manifold).__name__,
            "point_group": coupling.point_group is not None,
        }
    name = "independent" if type(coupling).__name__ == "IndependentCoupling" else None
    return {"name": name, "class": type(coupling).__name__}


# ------------------------------------------------------------------------------ fit
def _saved_run_and_key(run_dir, resume: bool, key, config: TrainConfig):
    """The saved run record of `run_dir` (`None` for a new run) and the run's root key: a
    resumed run keeps the key it started with, a new one takes `key` (default: the seed's)."""
    saved_info = None
    if run_dir is not None and (run_dir / CHECKPOINT).is_file():
        if not resume:
            raise FileExistsError(
                f"{run_dir} already holds a training run; pass resume=True (mflows train "
                "--resume) to continue it, or choose another run directory."
            )
        saved_info = read_run_info(run_dir)
    if saved_info is not None:
        return saved_info, jax.random.wrap_key_data(
            jnp.asarray(saved_info["key"], dtype=jnp.uint32)
        )
    root = jax.random.key(config.seed) if key is None else key
    if not jnp.issubdtype(jnp.asarray(root).dtype, jax.dtypes.prng_key):
        root = jax.random.wrap_key_data(jnp.asarray(root, dtype=jnp.uint32))
    return None, root


def _run_info(
    dataset: Dataset,
    *,
    model,
    field,
    config: TrainConfig,
    interpolant,
    coupling,
    split,
    steps,
    root,
) -> dict[str, Any]:
    """The run's record (`run.json`): what rebuilds the model and interprets its samples."""
    train_idx, val_idx = split
    steps_per_epoch, total_steps = steps
    return {
        "format": RUN_FORMAT,
        "version": RUN_FORMAT_VERSION,
        "model": None if model is None else model.to_dict(),
        "field_class": type(field).__name__,
        "train": config.to_dict(),
        "interpolant": describe_interpolant(interpolant),
        "coupling": _describe_coupling(coupling),
        "space": flow_space_kind(interpolant),
        "box": [float(v) for v in dataset.box],
        "num_particles": int(dataset.positions.shape[1]),
        "species": [int(s) for s in dataset.species],
        "species_names": list(dataset.species_names),
        "system": dataset.system,
        "temperature": dataset.temperature,
        "data_fingerprint": data_fingerprint(dataset.positions, dataset.species, dataset.box),
        "num_samples": int(dataset.positions.shape[0]),
        "num_train": int(train_idx.size),
        "num_val": int(val_idx.size),
        "steps_per_epoch": steps_per_epoch,
        "total_steps": total_steps,
        "key": [int(v) for v in np.asarray(jax.random.key_data(root)).reshape(-1)],
    }


def fit(
    field,
    dataset: Dataset,
    *,
    interpolant: AbstractInterpolant,
    coupling: AbstractCoupling,
    config: TrainConfig | None = None,
    key: PRNGKeyArray | None = None,
    run_dir=None,
    resume: bool = False,
    progress: bool = True,
    callback: Callable[[dict[str, Any]], None] | None = None,
    parallel: AbstractParallelism | None = None,
) -> TrainResult:
    """Train a vector field by flow matching on a dataset of particle configurations.

    Each step draws a batch of data points `x1`, base points `x0` uniform on the torus of the
    dataset's box (same species vector), couples them (`coupling`), draws `t ~ U(0, 1)` (and
    noise for a stochastic interpolant) and takes one Adam step on `flow_matching_loss`, with
    gradient clipping and an EMA of the weights. With `config.augment` the data points are
    first moved by a random element of their symmetry group. A fixed validation split, with
    base draws, times and noise drawn once, gives a validation loss that is comparable from
    epoch to epoch (evaluated with the EMA and the raw weights at every epoch end).

    Every random draw is a function of (key, step), so a run interrupted and resumed from its
    checkpoint ends with the same parameters as an uninterrupted one, and writes the same
    metrics records: the checkpoint holds the steps averaged since the last record, and a
    record is written before the checkpoint of its step (a resumed run drops the records past
    its checkpoint and writes them again).

    **Arguments:**

    - `field`: the vector field (`field(t, x, species)`), or a `ModelConfig` to build it from
      the dataset (then `load_run` can rebuild it from the run directory alone).
    - `dataset`: the training data (`manifold_flows.Dataset`).
    - `interpolant`, `coupling`: strategy objects (e.g. `GeodesicInterpolant(torus)`,
      `SpeciesOTCoupling(torus)`).
    - `config`: a `TrainConfig` (default: `TrainConfig()`).
    - `key`: the run's PRNG key (default `jax.random.key(config.seed)`). A resumed run uses
      the key saved in its run directory.
    - `run_dir`: where to write `run.json`, checkpoints and `metrics.jsonl` (none if `None`).
    - `resume`: continue from the checkpoint in `run_dir` (starts fresh if there is none).
      Without it, a `run_dir` that already holds a checkpoint raises `FileExistsError`.
    - `progress`: show a progress bar.
    - `callback`: called with every metrics record (a dict), after the checkpoint of that step
      if any. Raising `KeyboardInterrupt` from it stops the run like Ctrl-C: the current state
      is checkpointed, then the exception propagates.
    - `parallel`: how to spread each step over devices (`make_parallelism("all")`, a
      `DataParallel`); default one device. Each batch is split over the devices and the
      parameters are replicated; the run gives the one-device result up to floating-point
      summation order, and `config.batch_size` must be a multiple of the number of devices.
      In a multi-process run only process 0 writes to `run_dir`. The returned fields are
      ordinary one-device arrays.

    **Returns:**

    A `TrainResult`.

    **Raises:**

    `ValueError`/`TypeError` for inconsistent inputs (before any training compute),
    `FileExistsError` (see `resume`), `TrainingDiverged` when the loss becomes NaN/inf.
    """
    config = TrainConfig() if config is None else config
    _check_inputs(dataset, interpolant, coupling, config)
    run_dir = None if run_dir is None else Path(run_dir)
    dtype = jnp.dtype(config.dtype)
    num, n, d = dataset.positions.shape
    train_idx, val_idx = split_indices(num, config)
    if config.batch_size > train_idx.size:
        raise ValueError(
            f"batch_size {config.batch_size} is larger than the training split ({train_idx.size} "
            f"of {num} samples, val_fraction={config.val_fraction}); lower batch_size or use a "
            "larger dataset."
        )
    par = SingleDevice() if parallel is None else parallel
    if not isinstance(par, AbstractParallelism):
        raise TypeError(
            f"`parallel` must be an AbstractParallelism (e.g. make_parallelism('all')); got "
            f"{parallel!r}."
        )
    par.check_batch(config.batch_size, "batch_size")
    steps_per_epoch = train_idx.size // config.batch_size
    total_steps = config.epochs * steps_per_epoch
    torus = FlatTorus(tuple(float(v) for v in dataset.box))
    base = ParticleSpace(torus, n)
    species = jnp.asarray(dataset.species, dtype=jnp.int32)
    num_species = len(dataset.species_names)

    saved_info, root = _saved_run_and_key(run_dir, resume, key, config)
    train_key, val_key, init_key, order_key = (jax.random.fold_in(root, i) for i in range(4))
    order_seed = [int(v) for v in np.asarray(jax.random.key_data(order_key)).reshape(-1)]

    model = None
    if isinstance(field, ModelConfig):
        model = field
        field = model.build(torus, n, num_species, key=init_key, dtype=dtype)
    if not isinstance(field, eqx.Module):
        raise TypeError(
            f"`field` must be a vector field (an eqx.Module) or a ModelConfig; got {field!r}."
        )
    if config.init_from is not None and saved_info is None:
        from .warm_start import warm_start

        field = warm_start(field, config.init_from, model_config=model)
    field = cast_floating(field, dtype)
    _check_field(field, n, d, species, dtype)

    info = _run_info(
        dataset,
        model=model,
        field=field,
        config=config,
        interpolant=interpolant,
        coupling=coupling,
        split=(train_idx, val_idx),
        steps=(steps_per_epoch, total_steps),
        root=root,
    )
    if saved_info is not None:
        _check_resume(saved_info, info, run_dir)

    optimizer = make_optimizer(config, total_steps)
    schedule = learning_rate_schedule(config, total_steps)
    state = init_train_state(field, optimizer, key=train_key, dtype=dtype)
    last_ckpt_step = None
    window = MetricsWindow()  # the steps since the last metrics record
    if saved_info is not None:
        state, saved_window = load_train_checkpoint(run_dir / CHECKPOINT, state)
        if saved_window is not None:  # (a checkpoint of an older version holds no window)
            window = MetricsWindow.from_array(saved_window)
        last_ckpt_step = int(state.step)
    state = par.replicate(state)
    # In a multi-process run every process trains; process 0 alone writes the run directory.
    writes = run_dir is not None and is_main_process()
    if writes:
        write_json(run_dir / RUN_INFO, info)
    metrics = MetricsLog(run_dir / METRICS if writes else None, resume_step=last_ckpt_step)

    # ---- data on the device; a fixed validation draw
    train_x = jnp.asarray(dataset.positions[train_idx], dtype=dtype)
    group = None
    if config.augment:
        from .._group import full_symmetry_group

        group = full_symmetry_group(torus, species)
    strategies = dict(interpolant=interpolant, coupling=coupling, base=base)
    val_pairs = None
    if val_idx.size:
        val_x = jnp.asarray(dataset.positions[val_idx], dtype=dtype)
        val_pairs = _sample_pairs_jit(val_key, val_x, species, **strategies)

    def validate(params) -> float | None:
        if val_pairs is None:
            return None
        x0, x1, t, z = val_pairs
        return evaluate_loss(
            par.to_local(params), interpolant, x0, x1, t, species, z, batch_size=config.batch_size
        )

    checkpoints = _Checkpoints(run_dir if writes else None, steps_per_epoch, total_steps)
    checkpoints.last_step = last_ckpt_step
    start = int(state.step)
    initial_val = None
    if start == 0:
        initial_val = validate(state.params)
    bar = Progress(total_steps, start, progress)
    books = _Bookkeeper(
        config=config,
        schedule=schedule,
        steps_per_epoch=steps_per_epoch,
        total_steps=total_steps,
        metrics=metrics,
        checkpoints=checkpoints,
        bar=bar,
        callback=callback,
        validate=lambda s: {
            "val_loss": validate(s.ema_params),
            "val_loss_raw": validate(s.params),
        },
        last_val=initial_val if start == 0 else None,
        window=window,
    )
    if start == 0:
        books.write({"step": 0, "epoch": 0, "val_loss": initial_val, "lr": float(schedule(0))})
    batch_at = _BatchOrder(train_x, order_seed, steps_per_epoch, config.batch_size, par)

    # A host coupling (the Hungarian assignment on the CPU) is pipelined: the draws of the
    # next step are dispatched before the current update and its assignment is solved on
    # the host while the device takes the gradient. Draws depend on (key, step) only, so
    # the steps are those of the unpipelined loop.
    host_coupling = isinstance(coupling, AbstractHostCoupling)
    host = dict(strategies, group=group)
    coupled = None
    x1_next = batch_at(start) if start < total_steps else None
    try:
        for step in range(start, total_steps):
            epoch = step // steps_per_epoch
            x1, x1_next = x1_next, batch_at(step + 1) if step + 1 < total_steps else None
            ahead = None
            if host_coupling:
                if coupled is None:
                    posed = pose_host_coupling(state, x1, species, **host)
                    coupled = solve_host_coupling(posed, coupling, parallel)
                if x1_next is not None:
                    ahead = pose_host_coupling(state, x1_next, species, ahead=1, **host)
            new_state, out = train_step(
                state,
                x1,
                species,
                optimizer=optimizer,
                ema_decay=config.ema_decay,
                group=group,
                parallel=parallel,
                coupled=coupled,
                **strategies,
            )
            coupled = None if ahead is None else solve_host_coupling(ahead, coupling, parallel)
            loss, grad_norm = float(out["loss"]), float(out["grad_norm"])
            if not (math.isfinite(loss) and math.isfinite(grad_norm)):
                metrics.write(
                    {
                        "step": step + 1,
                        "epoch": epoch + 1,
                        "loss": loss,
                        "grad_norm": grad_norm,
                        "diverged": True,
                    }
                )
                where = (
                    f"the last good checkpoint (step {checkpoints.last_step}) in {run_dir} was kept"
                    if checkpoints.last_step is not None
                    else "no checkpoint had been written yet"
                )
                raise TrainingDiverged(
                    f"training diverged at step {step + 1}: the loss is {loss} (grad norm "
                    f"{grad_norm}); {where}. Lower the learning rate or check the data.",
                    step=step + 1,
                    loss=loss,
                    checkpoint_step=checkpoints.last_step,
                )
            # one statement: an interrupt never separates the state from its window
            state, books.window = new_state, books.window.add(loss, grad_norm)
            books.stepped(state)
    except KeyboardInterrupt:
        books.interrupted(state, run_dir)
        raise
    finally:
        bar.close()
    books.finished(state, run_dir)
    last_val, history = books.last_val, books.history
    if val_pairs is not None and (not history or history[-1].get("val_loss") is None):
        last_val = validate(state.ema_params)
    state = par.to_local(state)
    return TrainResult(
        state=state,
        field=state.ema_params,
        raw_field=state.params,
        history=history,
        initial_val_loss=initial_val,
        val_loss=last_val,
        steps_per_epoch=steps_per_epoch,
        total_steps=total_steps,
        run_dir=run_dir,
    )
