"""`fit_likelihood`: training a flow with a one-pass log-density (the augmented coupling flow)
by maximum likelihood on data, by its energy, or by both."""

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import PRNGKeyArray

from .._flow.augmented import AbstractAugmentedLikelihood
from .._flow.base import AbstractLikelihood
from .._io import Dataset
from .._manifold import FlatTorus, ParticleSpace
from .._parallel import SingleDevice
from .checkpoint import load_train_checkpoint
from .config import ModelConfig, TrainConfig
from .fit import (
    TrainingDiverged,
    TrainResult,
    _check_resume,
    _saved_run_and_key,
    split_indices,
)
from .likelihood import draw_with_energy, likelihood_step, validation_nll, with_aux_draws
from .loop import _BatchOrder, _Bookkeeper, _Checkpoints
from .progress import MetricsLog, MetricsWindow, Progress
from .run import (
    CHECKPOINT,
    METRICS,
    RUN_FORMAT,
    RUN_FORMAT_VERSION,
    RUN_INFO,
    data_fingerprint,
    write_json,
)
from .state import cast_floating, init_train_state, learning_rate_schedule, make_optimizer

#: Consecutive steps with a non-finite loss or gradient (each skipped, the state unchanged)
#: after which a run is declared diverged.
MAX_SKIPPED_STEPS = 10
#: Flow samples per compiled block of the validation ESS.
_VAL_BLOCK = 256


def _resolve_energy(config: TrainConfig, dataset: Dataset, system, temperature):
    """The energy function and temperature the objective needs (`None, None` for pure
    maximum likelihood without a system)."""
    needs = config.objective in ("energy", "mixed")
    if system is None:
        if needs:
            raise ValueError(
                f"TrainConfig.objective={config.objective!r} trains on the energy: pass the "
                "ParticleSystem as system=... (mflows train: set [data] system to a preset)."
            )
        return None, None
    from .._pipeline.system import check_system

    check_system(
        system,
        box=np.asarray(dataset.box, dtype=np.float64),
        species=np.asarray(dataset.species),
        what=f"the system {system.name!r}",
    )
    if temperature is None:
        temperature = dataset.temperature
    if temperature is None:
        raise ValueError(
            "the dataset records no temperature: pass temperature=T for the energy objective "
            "(mflows train: set [data] temperature)."
        )
    temperature = float(temperature)
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be positive; got {temperature!r}.")
    return system, temperature


def _soft_cap(config: TrainConfig, dataset: Dataset, train_idx, system, temperature) -> float:
    """`config.energy_soft_cap`, or the largest training-data energy plus `10 N T`."""
    if config.energy_soft_cap is not None:
        return float(config.energy_soft_cap)
    from .._pipeline.draw import system_energies

    x = dataset.positions[train_idx]
    energies = system_energies(system, x, dataset.species)
    n = dataset.positions.shape[1]
    return float(np.max(energies) + 10 * n * temperature)


def _run_info(dataset, model, flow, config, split, steps, root, temperature) -> dict[str, Any]:
    train_idx, val_idx = split
    steps_per_epoch, total_steps = steps
    return {
        "format": RUN_FORMAT,
        "version": RUN_FORMAT_VERSION,
        "model": None if model is None else model.to_dict(),
        "field_class": type(flow).__name__,
        "train": config.to_dict(),
        "interpolant": None,
        "coupling": None,
        "space": "torus",
        "box": [float(v) for v in dataset.box],
        "num_particles": int(dataset.positions.shape[1]),
        "species": [int(s) for s in dataset.species],
        "species_names": list(dataset.species_names),
        "system": dataset.system,
        "temperature": dataset.temperature if temperature is None else temperature,
        "data_fingerprint": data_fingerprint(dataset.positions, dataset.species, dataset.box),
        "num_samples": int(dataset.positions.shape[0]),
        "num_train": int(train_idx.size),
        "num_val": int(val_idx.size),
        "steps_per_epoch": steps_per_epoch,
        "total_steps": total_steps,
        "key": [int(v) for v in np.asarray(jax.random.key_data(root)).reshape(-1)],
    }


def _weights(config: TrainConfig, epoch: int) -> tuple[float, float]:
    """`(ml_weight, energy_weight)` of a step in `epoch` (0-based)."""
    if config.objective == "ml":
        return 1.0, 0.0
    if config.objective == "energy":
        return 0.0, 1.0
    return 1.0, (config.energy_weight if epoch >= config.energy_start_epoch else 0.0)


def fit_likelihood(
    model,
    dataset: Dataset,
    *,
    config: TrainConfig,
    system=None,
    temperature: float | None = None,
    key: PRNGKeyArray | None = None,
    run_dir=None,
    resume: bool = False,
    progress: bool = True,
    callback: Callable[[dict[str, Any]], None] | None = None,
) -> TrainResult:
    """Train a flow with a one-pass log-density (e.g. `AugmentedCouplingFlow`) by maximum
    likelihood on `dataset`, by its energy, or both (`config.objective`: `"ml"`, `"energy"`,
    `"mixed"`; see `TrainConfig` and `manifold_flows._train.likelihood`).

    Each step takes a data batch (the epoch's permutation of the training split, as in `fit`)
    and/or `batch_size` samples of the flow, one Adam step with gradient clipping, and the EMA
    of the weights. `"mixed"` trains by maximum likelihood alone for `energy_start_epoch`
    epochs, then adds `energy_weight` times the energy loss. A step whose loss or gradient is
    not finite (e.g. coincident particles in a sample) is skipped and counted (`skipped` in
    the metrics); `MAX_SKIPPED_STEPS` of them in a row raise `TrainingDiverged`. At every
    epoch end the EMA flow is validated: `val_loss` is the mean `-log q~` of the validation
    split (fixed auxiliary draws), and with a system `val_ess` / `val_khat` are the ESS
    fraction and Pareto k-hat of the importance weights of `config.val_num_samples` flow
    samples drawn with fixed keys. Resuming from a checkpoint gives the uninterrupted run
    (every draw is a function of the run's key and the step).

    **Arguments:**

    - `model`: a `ModelConfig` with `flow="augmented_coupling"` (then `load_run` rebuilds the
      flow from the run directory), or a flow (an `AbstractLikelihood` module).
    - `dataset`: the configurations (maximum likelihood, validation, box and species).
    - `config`: a `TrainConfig` with a likelihood objective.
    - `system`: the `ParticleSystem` whose energy `U` the energy objective (and the
      validation ESS) uses; required for `"energy"` and `"mixed"`.
    - `temperature`: `T` of the Boltzmann target (default: the dataset's).
    - `key`, `run_dir`, `resume`, `progress`, `callback`: as in `fit`.

    **Returns:**

    A `TrainResult` (`field` is the flow with the EMA weights).
    """
    if not isinstance(config, TrainConfig) or not config.likelihood_objective:
        raise ValueError(
            "fit_likelihood needs a TrainConfig with objective 'ml', 'energy' or 'mixed'; got "
            f"{getattr(config, 'objective', config)!r} (flow matching trains with fit)."
        )
    if not isinstance(dataset, Dataset):
        raise TypeError(f"fit_likelihood needs a manifold_flows.Dataset; got {type(dataset)}.")
    if dataset.num_samples == 0 or not np.all(np.isfinite(dataset.positions)):
        raise ValueError("the dataset is empty or has non-finite coordinates.")
    if config.dtype == "float64" and not jax.config.jax_enable_x64:
        raise ValueError(
            "TrainConfig.dtype is float64 but JAX runs in 32-bit mode; enable it with "
            "jax.config.update('jax_enable_x64', True) or train in float32."
        )
    system, temperature = _resolve_energy(config, dataset, system, temperature)
    run_dir = None if run_dir is None else Path(run_dir)
    dtype = jnp.dtype(config.dtype)
    num, n, _ = dataset.positions.shape
    train_idx, val_idx = split_indices(num, config)
    if config.batch_size > train_idx.size:
        raise ValueError(
            f"batch_size {config.batch_size} is larger than the training split ({train_idx.size} "
            f"of {num} samples); lower batch_size or use a larger dataset."
        )
    steps_per_epoch = train_idx.size // config.batch_size
    total_steps = config.epochs * steps_per_epoch
    torus = FlatTorus(tuple(float(v) for v in dataset.box))
    species = jnp.asarray(dataset.species, dtype=jnp.int32)

    saved_info, root = _saved_run_and_key(run_dir, resume, key, config)
    train_key, val_key, init_key, order_key = (jax.random.fold_in(root, i) for i in range(4))
    order_seed = [int(v) for v in np.asarray(jax.random.key_data(order_key)).reshape(-1)]
    model_config = None
    if isinstance(model, ModelConfig):
        if not model.is_coupling_flow:
            raise ValueError(
                "fit_likelihood trains a flow with a one-pass likelihood: use "
                "ModelConfig(flow='augmented_coupling') (a vector field trains with fit)."
            )
        model_config = model
        model = model.build(torus, n, len(dataset.species_names), key=init_key, dtype=dtype)
    if not isinstance(model, AbstractLikelihood):
        raise TypeError(
            f"`model` must be a ModelConfig or an AbstractLikelihood; got {type(model).__name__}."
        )
    space = model.space
    if not (
        isinstance(space, ParticleSpace)
        and space.num_particles == n
        and np.allclose(getattr(space.manifold, "lengths", ()), dataset.box, rtol=1e-9)
    ):
        raise ValueError(
            f"the flow's space {space!r} is not the dataset's: {n} particles in the box "
            f"{dataset.box.tolist()}."
        )
    if config.aux_draws > 1 and not isinstance(model, AbstractAugmentedLikelihood):
        raise ValueError(
            f"TrainConfig.aux_draws={config.aux_draws} averages auxiliary draws of an augmented "
            f"flow, and {type(model).__name__} has none: set aux_draws = 1."
        )
    if config.init_from is not None and saved_info is None:
        from .warm_start import warm_start

        model = warm_start(model, config.init_from, model_config=model_config)
    model = cast_floating(model, dtype)
    cap = _soft_cap(config, dataset, train_idx, system, temperature) if system else 0.0

    info = _run_info(
        dataset,
        model_config,
        model,
        config,
        (train_idx, val_idx),
        (steps_per_epoch, total_steps),
        root,
        temperature,
    )
    if saved_info is not None:
        saved_train = saved_info["train"]
        if saved_train.get("objective") in ("energy", "mixed"):
            # recorded before the estimator was an option: those runs used the total gradient
            saved_train.setdefault("energy_gradient", "total")
        _check_resume(saved_info, info, run_dir)
    optimizer = make_optimizer(config, total_steps)
    schedule = learning_rate_schedule(config, total_steps)
    state = init_train_state(model, optimizer, key=train_key, dtype=dtype)
    window, last_ckpt_step = MetricsWindow(), None
    if saved_info is not None:
        state, saved_window = load_train_checkpoint(run_dir / CHECKPOINT, state)
        if saved_window is not None:
            window = MetricsWindow.from_array(saved_window)
        last_ckpt_step = int(state.step)
    if run_dir is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json(run_dir / RUN_INFO, info)
    metrics = MetricsLog(
        run_dir / METRICS if run_dir is not None else None, resume_step=last_ckpt_step
    )

    train_x = jnp.asarray(dataset.positions[train_idx], dtype=dtype)
    val_x = jnp.asarray(dataset.positions[val_idx], dtype=dtype) if val_idx.size else None
    energy = None if system is None else system.energy

    def validate(flow) -> dict[str, Any]:
        flow = with_aux_draws(flow, config.aux_draws)
        out: dict[str, Any] = {}
        if val_x is not None:
            total = 0.0
            for i, start in enumerate(range(0, val_x.shape[0], config.batch_size)):
                block = val_x[start : start + config.batch_size]
                nll = validation_nll(flow, block, species, jax.random.fold_in(val_key, i))
                total += float(nll) * block.shape[0]
            out["val_loss"] = total / val_x.shape[0]
        if energy is not None and config.val_num_samples:
            from .._analysis import reweight

            sample_key = jax.random.fold_in(val_key, -1 % (2**31))
            parts = []
            for start in range(0, config.val_num_samples, _VAL_BLOCK):
                idx = jnp.arange(start, start + _VAL_BLOCK)
                keys = jax.vmap(lambda i: jax.random.fold_in(sample_key, i))(idx)
                log_q, u = draw_with_energy(flow, energy, species, keys)
                parts.append((np.asarray(log_q, np.float64), np.asarray(u, np.float64)))
            log_q = np.concatenate([p[0] for p in parts])[: config.val_num_samples]
            u = np.concatenate([p[1] for p in parts])[: config.val_num_samples]
            result = reweight(u, log_q, temperature)
            out["val_ess"] = result.ess_fraction
            out["val_khat"] = result.khat
        return out

    checkpoints = _Checkpoints(run_dir, steps_per_epoch, total_steps)
    checkpoints.last_step = last_ckpt_step
    start = int(state.step)
    initial = validate(state.params) if start == 0 else {}
    initial_val = initial.get("val_loss")
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
        validate=lambda s: validate(s.ema_params),
        last_val=initial_val,
        window=window,
    )
    if start == 0:
        books.write({"step": 0, "epoch": 0, "lr": float(schedule(0)), **initial})
    skipped_in_row = 0
    # skipped steps so far: a resumed run continues the count of its last record
    skipped = int(metrics.last_value("skipped", 0) or 0) if start > 0 else 0
    batch_at = _BatchOrder(train_x, order_seed, steps_per_epoch, config.batch_size, SingleDevice())
    step_args = dict(
        optimizer=optimizer,
        ema_decay=config.ema_decay,
        energy=energy,
        temperature=temperature or 1.0,
        energy_gradient=config.energy_gradient,
        aux_draws=config.aux_draws,
        max_force=config.energy_max_force,
    )
    try:
        for step in range(start, total_steps):
            epoch = step // steps_per_epoch
            ml_weight, energy_weight = _weights(config, epoch)
            new_state, out = likelihood_step(
                state,
                batch_at(step),
                species,
                ml_weight=ml_weight,
                energy_weight=energy_weight,
                cap=cap,
                **step_args,
            )
            loss, grad_norm = float(out["loss"]), float(out["grad_norm"])
            if not (math.isfinite(loss) and math.isfinite(grad_norm)):
                skipped_in_row += 1
                skipped += 1
                if skipped_in_row >= MAX_SKIPPED_STEPS:
                    metrics.write({"step": step + 1, "loss": loss, "diverged": True})
                    raise TrainingDiverged(
                        f"training diverged: {skipped_in_row} steps in a row up to step "
                        f"{step + 1} had a non-finite loss or gradient (loss {loss}); the last "
                        f"good checkpoint (step {checkpoints.last_step}) was kept. Lower the "
                        "learning rate, train longer by maximum likelihood first "
                        "(energy_start_epoch) or lower energy_soft_cap.",
                        step=step + 1,
                        loss=loss,
                        checkpoint_step=checkpoints.last_step,
                    )
                # The step left the state as it was, apart from its counter; it is not
                # averaged into the record.
                state = new_state
            else:
                skipped_in_row = 0
                state, books.window = new_state, books.window.add(loss, grad_norm)
            books.stepped(state, {"skipped": skipped})
    except KeyboardInterrupt:
        books.interrupted(state, run_dir)
        raise
    finally:
        bar.close()
    books.finished(state, run_dir)
    last_val, history = books.last_val, books.history
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
