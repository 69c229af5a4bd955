"""Training a flow with a one-pass log-density: maximum likelihood on data, the energy (reverse
KL to the Boltzmann distribution), or a mix of the two.

The flow is an `AbstractLikelihood` whose `log_prob` and `sample_and_log_prob` are
differentiable in its parameters (`AugmentedCouplingFlow`: both are one pass through the
coupling layers). For an augmented flow both losses use the aux-corrected `log q~` (see
`AbstractAugmentedLikelihood`):

- maximum likelihood: `-E_data E_{a ~ p_aux(.|x)} [log q(x, a) - log p_aux(a | x)]`, which
  differs from the forward KL of the augmented target `p(x) p_aux(a|x)` to `q(x, a)` by a
  constant;
- energy: `E_{(x, a) ~ q} [log q(x, a) - log p_aux(a | x) + U(x) / T]`, the reverse KL of
  `q(x, a)` to the augmented target minus `log Z`, with the reparameterised gradient through
  the sample.

The energy gradient comes in two forms with the same expectation (`ENERGY_GRADIENTS`). With
`(x, a) = f_theta(z)` the total derivative of `log q_theta(f_theta(z))` is a *path* term (through
the sample) plus the *score* `d/dtheta log q_theta(x, a)` at fixed `(x, a)`, whose expectation
under `q_theta` is zero (`int d/dtheta q = 0`):

- `"total"`: both terms (the plain reparameterisation gradient);
- `"path"`: the path term alone ("sticking the landing"): the log-density is evaluated at the
  sample by the inverse pass with the parameters held fixed. Unbiased as well, and its
  per-sample gradient vanishes where `q` equals the target, where the score term's does not;
  so its variance goes to zero as the flow improves instead of staying at the score's.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float, Int, PRNGKeyArray

from .._flow.augmented import AbstractAugmentedLikelihood, MultiAuxFlow
from .config import ENERGY_GRADIENTS
from .state import TrainState
from .step import apply_gradients


def with_aux_draws(flow, aux_draws: int):
    """`flow` itself for one draw, else `MultiAuxFlow(flow, aux_draws)` (an augmented flow
    whose `log q~` averages `aux_draws` auxiliary draws)."""
    return flow if aux_draws == 1 else MultiAuxFlow(flow, aux_draws)


def soft_capped(energy: Float[Array, "..."], cap: float) -> Float[Array, "..."]:
    """`U` below `cap`, `cap + log(1 + U - cap)` above it (continuous, with a bounded
    gradient), so that overlapping particles in an early flow's samples do not swamp the
    energy loss."""
    # An infinite energy (coincident particles) counts as a very large finite one.
    excess = jnp.clip(energy - cap, 0, 1e30)
    return jnp.where(energy < cap, energy, cap + jnp.log1p(excess))


def guarded_energy(energy, x: Float[Array, "n d"], species: Int[Array, " n"], max_force=None):
    """`energy(x, species)` whose gradient has its non-finite entries set to 0: the force
    between nearly coincident particles overflows (in float32 below about `1e-3 sigma` for a
    `r^-12` potential), and one such sample would make the whole batch's gradient NaN. The
    value is unchanged (the loss caps it, `soft_capped`). With `max_force`, a gradient whose
    norm (over all particles and axes) is larger is scaled down to that norm: the energy
    then pulls a hot sample (overlapping particles) towards lower energy with a bounded
    strength instead of dominating the batch's gradient."""

    @jax.custom_vjp
    def value(x):
        return energy(x, species)

    def forward(x):
        u, gradient = jax.value_and_grad(lambda y: energy(y, species))(x)
        gradient = jnp.where(jnp.isfinite(gradient), gradient, 0)
        if max_force is not None:
            norm = jnp.sqrt(jnp.sum(gradient * gradient))
            gradient = gradient * jnp.minimum(1.0, max_force / jnp.maximum(norm, 1e-30))
        return u, gradient

    def backward(gradient, cotangent):
        return (cotangent * gradient,)

    value.defvjp(forward, backward)
    return value(x)


def _inner(flow):
    return flow.flow if isinstance(flow, MultiAuxFlow) else flow


def _with_live_aux(frozen, flow):
    """`frozen` with `flow`'s learned auxiliary target (if it has one) put back: `q` does not
    depend on that target's parameters, so their whole gradient is the one through
    `log p_aux` itself, which a frozen copy would drop (and training would not move them)."""
    if getattr(_inner(flow), "learned_aux", None) is None:
        return frozen
    return eqx.tree_at(lambda f: _inner(f).learned_aux, frozen, _inner(flow).learned_aux)


def _path_sample_and_log_prob(flow, key: PRNGKeyArray, species: Int[Array, " n"]):
    """A sample (differentiable in the parameters through the sample only) and its `log q~`
    from the inverse pass with the flow's parameters held fixed: the score term is left out.
    A learned auxiliary target keeps its parameters live (`_with_live_aux`)."""
    params, rest = eqx.partition(flow, eqx.is_inexact_array)
    frozen = _with_live_aux(eqx.combine(jax.lax.stop_gradient(params), rest), flow)
    if isinstance(flow, AbstractAugmentedLikelihood):
        x, a, _ = flow.sample_joint(key, species)
        log_q = frozen.log_prob_joint(x, a, species) - frozen.aux_log_prob(a, x, species)
        return x, log_q
    x, _ = flow.sample_and_log_prob(key, species)
    return x, frozen.log_prob(x, species)


def ml_loss(flow, x: Float[Array, "b n d"], species: Int[Array, " n"], key: PRNGKeyArray):
    """Mean negative log-density `-log q~(x)` of a data batch (one auxiliary draw each)."""
    keys = jax.random.split(key, x.shape[0])
    log_q = jax.vmap(lambda xi, k: flow.log_prob(xi, species, key=k))(x, keys)
    return -jnp.mean(log_q)


def energy_loss(
    flow,
    energy,
    species: Int[Array, " n"],
    key: PRNGKeyArray,
    *,
    batch_size: int,
    temperature: float,
    cap: float,
    gradient: str = "path",
    max_force: float | None = None,
):
    """Mean of `log q~(x) + soft_capped(U(x)) / T` over `batch_size` flow samples, and the
    (uncapped) energies and log-densities of the samples. `gradient` picks the estimator of
    its parameter gradient (`"path"` or `"total"`; same value, same expectation);
    `max_force` bounds the norm of each sample's energy gradient (`guarded_energy`), which
    biases the gradient of hot samples (and only theirs)."""
    keys = jax.random.split(key, batch_size)
    if gradient == "total":
        x, log_q = jax.vmap(lambda k: flow.sample_and_log_prob(k, species))(keys)
    elif gradient == "path":
        x, log_q = jax.vmap(lambda k: _path_sample_and_log_prob(flow, k, species))(keys)
    else:
        raise ValueError(
            f"energy_loss: gradient must be one of {', '.join(ENERGY_GRADIENTS)}; got {gradient!r}."
        )
    u = jax.vmap(lambda xi: guarded_energy(energy, xi, species, max_force))(x)
    loss = jnp.mean(log_q + soft_capped(u, cap) / temperature)
    return loss, (u, log_q)


@eqx.filter_jit
def likelihood_step(
    state: TrainState,
    x: Float[Array, "b n d"],
    species: Int[Array, " n"],
    *,
    optimizer: optax.GradientTransformation,
    ema_decay: float,
    ml_weight: float,
    energy_weight: float,
    energy=None,
    temperature: float = 1.0,
    cap: float = 0.0,
    energy_gradient: str = "path",
    aux_draws: int = 1,
    max_force: float | None = None,
):
    """One Adam step on `ml_weight * ml_loss + energy_weight * energy_loss` (a zero weight
    leaves its term out; the energy batch has the size of the data batch), with the EMA of
    the weights updated as in `train_step` (`energy_gradient`: the energy term's gradient
    estimator, `"path"` or `"total"`; `aux_draws`: both terms are those of
    `with_aux_draws(flow, aux_draws)`; `max_force`: see `energy_loss`). A step whose loss or
    gradient is not finite leaves the state unchanged (and is reported by its loss). Returns
    `(new_state, metrics)` with the total `loss`, `grad_norm`, and the two terms `nll`,
    `energy_loss` (NaN when left out)."""
    key_ml, key_energy = jax.random.split(state.step_key())
    params, static = eqx.partition(state.params, eqx.is_inexact_array)
    nan = jnp.asarray(jnp.nan, x.dtype)

    def loss_fn(p):
        flow = with_aux_draws(eqx.combine(p, static), aux_draws)
        total, nll, e_loss = jnp.zeros((), x.dtype), nan, nan
        if ml_weight:
            nll = ml_loss(flow, x, species, key_ml)
            total = total + ml_weight * nll
        if energy_weight:
            e_loss, _ = energy_loss(
                flow,
                energy,
                species,
                key_energy,
                batch_size=x.shape[0],
                temperature=temperature,
                cap=cap,
                gradient=energy_gradient,
                max_force=max_force,
            )
            total = total + energy_weight * e_loss
        return total, (nll, e_loss)

    (loss, (nll, e_loss)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    new_state, grad_norm = apply_gradients(state, loss, grads, optimizer, ema_decay)
    return new_state, {"loss": loss, "grad_norm": grad_norm, "nll": nll, "energy_loss": e_loss}


@eqx.filter_jit
def validation_nll(flow, x: Float[Array, "b n d"], species, key: PRNGKeyArray):
    """`ml_loss` of a validation block with a fixed key (comparable between epochs)."""
    return ml_loss(flow, x, species, key)


@eqx.filter_jit
def draw_with_energy(flow, energy, species, keys):
    """Flow samples (one per key) with their `log q~` and energies."""
    x, log_q = jax.vmap(lambda k: flow.sample_and_log_prob(k, species))(keys)
    return log_q, jax.vmap(lambda xi: energy(xi, species))(x)
