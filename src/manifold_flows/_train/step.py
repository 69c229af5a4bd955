"""One optimisation step of flow matching, and the draw of training pairs it uses."""

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float, Int, PRNGKeyArray, PyTree

from .._coupling import AbstractCoupling, AbstractHostCoupling
from .._flow._base_dist import AbstractBase
from .._group import AbstractGroupAction
from .._interpolant import AbstractInterpolant
from .._manifold import AbstractManifold
from .._parallel import AbstractParallelism, SingleDevice
from .loss import flow_matching_loss
from .state import TrainState


def draw_pairs(
    key: PRNGKeyArray,
    x1: Float[Array, " batch *shape"],
    *,
    interpolant: AbstractInterpolant,
    base: AbstractManifold | AbstractBase,
    group: AbstractGroupAction | None = None,
) -> tuple[Array, Array, Array, Array | None]:
    """The random draws of `sample_pairs`, before the coupling: augmented data points, base
    points, times and noise (see `sample_pairs`)."""
    x1 = jnp.asarray(x1)
    batch, dtype = x1.shape[0], x1.dtype
    k_aug, k_base, k_t, k_z = jax.random.split(key, 4)
    if group is not None:
        elements = jax.vmap(group.random_element)(jax.random.split(k_aug, batch))
        x1 = jax.vmap(group.act)(elements, x1)
    base_keys = jax.random.split(k_base, batch)
    if isinstance(base, AbstractBase):
        # A base distribution of its own (e.g. CenteredGaussianBase on ZeroCenterOfMass for
        # clusters in open space, which have no uniform distribution); drawn without `args`.
        x0 = jax.vmap(lambda k: base.sample(k, None))(base_keys).astype(dtype)
    else:
        x0 = jax.vmap(lambda k: base.random_uniform(k, dtype=dtype))(base_keys)
    if x0.shape != x1.shape:
        raise ValueError(
            f"base draws have shape {x0.shape[1:]} but the data points {x1.shape[1:]}; the base "
            "space must be the configuration space of the data."
        )
    t = jax.random.uniform(k_t, (batch,), dtype=dtype)
    z = jax.random.normal(k_z, x1.shape, dtype=dtype) if interpolant.needs_noise else None
    return x0, x1, t, z


def sample_pairs(
    key: PRNGKeyArray,
    x1: Float[Array, " batch *shape"],
    species: Int[Array, " n"] | None,
    *,
    interpolant: AbstractInterpolant,
    coupling: AbstractCoupling,
    base: AbstractManifold | AbstractBase,
    group: AbstractGroupAction | None = None,
) -> tuple[Array, Array, Array, Array | None]:
    """Draw the random part of a flow-matching batch for the data points `x1`.

    In order: a random element of `group` applied to each data point (augmentation; `None`
    skips it), base points `x0 ~ uniform(base)` (or `base.sample(key, None)` when `base` is
    an `AbstractBase`, e.g. `CenteredGaussianBase`), the coupling of each `(x0, x1)` pair, times
    `t ~ U(0, 1)` and, when the interpolant needs it, noise `z ~ N(0, I)`.

    **Returns:**

    `(x0, x1, t, z)` (`z` is `None` for noise-free interpolants), all in the dtype of `x1`.
    """
    x0, x1, t, z = draw_pairs(key, x1, interpolant=interpolant, base=base, group=group)
    x0, x1 = jax.vmap(coupling, in_axes=(0, 0, None))(x0, x1, species)
    return x0, x1, t, z


def _ema_update(ema, params, decay):
    def update(e, p):
        if eqx.is_inexact_array(p):
            d = decay.astype(p.dtype)
            return d * e + (1 - d) * p
        return p

    return jax.tree.map(update, ema, params)


def apply_gradients(state: TrainState, loss, grads, optimizer, ema_decay: float):
    """The optimiser step and the EMA update of `state.params` from `grads` (of the
    inexact-array leaves), the EMA decay at step `s` being `min(ema_decay, (1 + s) / (10 + s))`.
    A step whose loss or gradient is not finite leaves parameters, optimiser state and EMA
    unchanged (the step counter still advances). Returns `(new_state, grad_norm)`."""
    params, static = eqx.partition(state.params, eqx.is_inexact_array)
    grad_norm = optax.tree.norm(grads)
    # optax's bias corrections raise python floats to int32 step counters, which strict dtype
    # promotion (used by the test suite) rejects; the update itself is dtype-consistent.
    with jax.numpy_dtype_promotion("standard"):
        updates, opt_state = optimizer.update(grads, state.opt_state, params)
    new_params = eqx.combine(eqx.apply_updates(params, updates), static)
    s = state.step.astype(jnp.float32)
    decay = jnp.minimum(ema_decay, (1.0 + s) / (10.0 + s))
    new_ema = _ema_update(state.ema_params, new_params, decay)
    ok = jnp.isfinite(loss) & jnp.isfinite(grad_norm)

    def keep(new, old):
        return jax.tree.map(lambda a, b: jnp.where(ok, a, b) if eqx.is_array(a) else a, new, old)

    new_state = TrainState(
        keep(new_params, state.params),
        keep(opt_state, state.opt_state),
        keep(new_ema, state.ema_params),
        state.step + 1,
        state.key,
    )
    return new_state, grad_norm


@eqx.filter_jit
def _draw_and_pose(key_data, step, x1, species, *, interpolant, coupling, base, group):
    """First half of a step with a host coupling: the random draws of step `step` (keyed as
    `TrainState.step_key` keys them) and the coupling problems."""
    key = jax.random.fold_in(jax.random.wrap_key_data(key_data), step)
    draws = draw_pairs(key, x1, interpolant=interpolant, base=base, group=group)
    x0, x1 = draws[:2]
    spec = coupling.check_pair(x0[0], x1[0], species)
    problems = jax.vmap(coupling.pose, in_axes=(0, 0, None))(x0, x1, spec)
    return draws, jax.lax.stop_gradient(problems), spec


class HostCoupled(eqx.Module):
    """The host stage of one training step with a host coupling, done ahead of the step: the
    random draws and the coupling's solutions (see `pose_host_coupling`)."""

    draws: tuple
    solutions: PyTree


def pose_host_coupling(
    state: TrainState,
    x1: Float[Array, " batch *shape"],
    species: Int[Array, " n"] | None,
    *,
    interpolant: AbstractInterpolant,
    coupling: AbstractHostCoupling,
    base: AbstractManifold | AbstractBase,
    group: AbstractGroupAction | None = None,
    ahead: int = 0,
) -> tuple:
    """Dispatch the device half of the host stage of step `state.step + ahead`: its random
    draws for the data batch `x1` and the coupling problems. Returns at once (JAX dispatches
    asynchronously); `solve_host_coupling` finishes the stage on the host.

    The draws of a step depend only on `(state.key, step)` and its batch, not on the
    parameters, so the stage of the next step (`ahead=1`) can run while the device computes
    the current one: `fit` dispatches it before the current update, and the host solves its
    assignment while the device takes the gradient. The result is the same either way.
    """
    step = state.step + ahead
    return _draw_and_pose(
        state.key,
        step,
        x1,
        species,
        interpolant=interpolant,
        coupling=coupling,
        base=base,
        group=group,
    )


def solve_host_coupling(
    posed: tuple,
    coupling: AbstractHostCoupling,
    parallel: AbstractParallelism | None = None,
) -> HostCoupled:
    """Finish the host stage started by `pose_host_coupling`: copy the coupling problems to
    the host, solve them in one call, and send the solutions back (split over the devices
    of `parallel` like the batch)."""
    parallel = SingleDevice() if parallel is None else parallel
    draws, problems, spec = posed
    problems = jax.tree.map(parallel.to_host, problems)
    solutions = coupling.solve(problems, parallel.to_host(spec))
    return HostCoupled(draws, jax.tree.map(parallel.shard_batch, solutions))


def train_step(
    state: TrainState,
    x1: Float[Array, " batch *shape"],
    species: Int[Array, " n"] | None,
    *,
    interpolant: AbstractInterpolant,
    coupling: AbstractCoupling,
    base: AbstractManifold | AbstractBase,
    optimizer: optax.GradientTransformation,
    ema_decay: float,
    group: AbstractGroupAction | None = None,
    parallel: AbstractParallelism | None = None,
    coupled: HostCoupled | None = None,
) -> tuple[TrainState, dict[str, Array]]:
    """One step: draw pairs for the data batch `x1` (see `sample_pairs`, keyed by
    `state.step_key()`), take the gradient of `flow_matching_loss`, apply the optimiser and
    update the EMA of the weights with decay `min(ema_decay, (1 + s) / (10 + s))`.

    With `parallel` (an `AbstractParallelism`, e.g. `DataParallel`), pass `x1` split over
    its devices (`parallel.shard_batch`) and `state` replicated (`parallel.replicate`): each
    device takes the gradient of its part of the batch, and the means are averaged over the
    devices, so the step equals the one-device step up to the order of floating-point sums.
    The batch size must be a multiple of the number of devices.

    With a host coupling (`AbstractHostCoupling`, e.g. `SpeciesOTCoupling`) the step is two
    compiled functions with the host stage between them: the draws and the coupling problems
    (cost matrices) are computed on the devices, only the problems are copied to the host
    and solved there in one call, and the solutions (permutations) are sent back to the
    devices, which apply them and take the gradient. Every draw is a function of
    `(state.key, state.step)` either way. (A host callback inside a computation split over
    devices can deadlock, which is why the host stage is not a callback inside the step.)
    `coupled` passes that stage done ahead of time (`pose_host_coupling` +
    `solve_host_coupling` for this step and batch), so that it can overlap the previous
    step on the device; the step is the same.

    A step whose loss or gradient is not finite leaves the parameters, optimiser state and EMA
    unchanged (only the step counter advances); the returned loss tells the caller.

    **Returns:**

    `(new_state, {"loss", "grad_norm"})`.
    """
    parallel = SingleDevice() if parallel is None else parallel
    strategies = dict(interpolant=interpolant, coupling=coupling, base=base, group=group)
    if isinstance(coupling, AbstractHostCoupling):
        if coupled is None:
            posed = pose_host_coupling(state, x1, species, **strategies)
            coupled = solve_host_coupling(posed, coupling, parallel)
        batch, solutions = coupled.draws, coupled.solutions
    else:  # the draws are made inside the compiled step
        if coupled is not None:
            raise ValueError(
                "train_step: `coupled` is the host stage of a host coupling, but "
                f"{type(coupling).__name__} couples inside the step; pass coupled=None."
            )
        batch, solutions = x1, None
    return _step(
        state,
        batch,
        solutions,
        species,
        optimizer=optimizer,
        ema_decay=ema_decay,
        parallel=parallel,
        **strategies,
    )


@eqx.filter_jit
def _step(
    state,
    x1_or_draws,
    solutions,
    species,
    *,
    interpolant,
    coupling,
    base,
    group,
    optimizer,
    ema_decay,
    parallel,
):
    """The compiled step: from the data batch (plain couplings) or from the draws and the
    host coupling's solutions (host couplings)."""
    if solutions is None:
        # The random draws are made for the whole batch (a function of (key, step) only); the
        # coupling, the loss and its gradient are evaluated per device on its part of the
        # batch and the batch means are averaged over the devices (one all-reduce).
        draws = draw_pairs(
            state.step_key(), x1_or_draws, interpolant=interpolant, base=base, group=group
        )
    else:
        draws = x1_or_draws

    def local_loss_and_grad(shared, batch):
        field, spec = shared
        p, static = eqx.partition(field, eqx.is_inexact_array)
        (x0, x1, t, z), sol = batch
        if sol is None:
            x0, x1 = jax.vmap(coupling, in_axes=(0, 0, None))(x0, x1, spec)
        else:
            x0, x1 = jax.vmap(coupling.apply)(x0, x1, sol)

        def loss_fn(p):
            return flow_matching_loss(eqx.combine(p, static), interpolant, x0, x1, t, spec, z)

        return jax.value_and_grad(loss_fn)(p)

    loss, grads = parallel.mean_over_batch(
        local_loss_and_grad, (state.params, species), (draws, solutions)
    )
    new_state, grad_norm = apply_gradients(state, loss, grads, optimizer, ema_decay)
    return new_state, {"loss": loss, "grad_norm": grad_norm}
