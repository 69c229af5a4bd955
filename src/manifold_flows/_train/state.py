"""The training state (a pytree that the training functions return) and the optimiser."""

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Int, PRNGKeyArray, PyTree, UInt32

from .config import TrainConfig


class TrainState(eqx.Module):
    """Everything a training run carries from one step to the next.

    **Fields:**

    - `params`: the vector field being trained (an `eqx.Module`).
    - `opt_state`: the optax state of its trainable arrays.
    - `ema_params`: the exponential moving average of `params` (what sampling uses).
    - `step`: the number of completed optimisation steps.
    - `key`: the run's PRNG key as raw key data (`jax.random.key_data`), so that it
      serialises; the key of step `s` is `fold_in(key, s)`, which makes every draw a function
      of (seed, step) and a resumed run exactly equal to an uninterrupted one.
    """

    params: PyTree
    opt_state: PyTree
    ema_params: PyTree
    step: Int[Array, ""]
    key: UInt32[Array, "..."]

    def __init__(self, params, opt_state, ema_params, step, key):
        self.params = params
        self.opt_state = opt_state
        self.ema_params = ema_params
        self.step = jnp.asarray(step, dtype=jnp.int32)
        self.key = jnp.asarray(key)

    def step_key(self) -> PRNGKeyArray:
        """The PRNG key of the current step."""
        return jax.random.fold_in(jax.random.wrap_key_data(self.key), self.step)


def cast_floating(tree: PyTree, dtype) -> PyTree:
    """Cast every floating-point array leaf of `tree` to `dtype` (other leaves unchanged)."""
    dtype = jnp.dtype(dtype)

    def cast(leaf):
        if eqx.is_inexact_array(leaf) and leaf.dtype != dtype:
            return leaf.astype(dtype)
        return leaf

    return jax.tree.map(cast, tree)


def learning_rate_schedule(config: TrainConfig, total_steps: int) -> optax.Schedule:
    """The learning rate as a function of the step: constant, or cosine decay to 0."""
    return _schedule(config.lr, config.schedule, _decay_steps(config, total_steps))


def make_optimizer(config: TrainConfig, total_steps: int) -> optax.GradientTransformation:
    """Adam with gradient clipping by global norm (`config.clip`, `0` = off) and the learning
    rate schedule of `config` (always a schedule, so the optimiser state has one structure).

    Runs with the same optimiser settings get the same (cached) object, so the jitted training
    step is not compiled again when `fit` is called again."""
    return _optimizer(config.lr, config.clip, config.schedule, _decay_steps(config, total_steps))


def _decay_steps(config: TrainConfig, total_steps: int) -> int:
    return max(1, int(total_steps)) if config.schedule == "cosine" else 0


@functools.lru_cache(maxsize=32)
def _schedule(lr: float, kind: str, decay_steps: int) -> optax.Schedule:
    if kind == "cosine":
        return optax.cosine_decay_schedule(lr, decay_steps=decay_steps)
    return optax.constant_schedule(lr)


@functools.lru_cache(maxsize=32)
def _optimizer(lr: float, clip: float, kind: str, decay_steps: int):
    parts = []
    if clip > 0:
        parts.append(optax.clip_by_global_norm(clip))
    parts.append(optax.adam(learning_rate=_schedule(lr, kind, decay_steps)))
    return optax.chain(*parts)


def init_train_state(
    field: PyTree,
    optimizer: optax.GradientTransformation,
    *,
    key: PRNGKeyArray,
    dtype=None,
) -> TrainState:
    """The state at step 0.

    **Arguments:**

    - `field`: the vector field (an `eqx.Module`); its floating arrays are cast to `dtype`.
    - `optimizer`: an optax transformation (see `make_optimizer`).
    - `key`: the run's PRNG key (a typed key or raw key data).
    - `dtype`: the training precision (default: keep the field's).

    **Returns:**

    A `TrainState` with `ema_params == params` and `step == 0`.
    """
    if dtype is not None:
        field = cast_floating(field, dtype)
    params = eqx.filter(field, eqx.is_inexact_array)
    opt_state = optimizer.init(params)
    key = jnp.asarray(key)
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    return TrainState(field, opt_state, field, jnp.zeros((), jnp.int32), key)
