"""Batched entry points: many samples or many log-densities, vmapped in chunks."""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray, PyTree, Shaped

from .._backend import AUTO, batching_defaults, resolve_chunk
from .base import AbstractLikelihood
from .continuous import ContinuousFlow
from .solution import FlowStats


def _check_chunk(chunk_size: int | str | None) -> int | None:
    """The chunk size to use: `"auto"` resolved for the backend, anything else validated."""
    return resolve_chunk(chunk_size, batching_defaults().sample_chunk)


def _map(fn, xs, chunk_size: int | None, total: int):
    # `jax.vmap` within a chunk, `jax.lax.map` over chunks (a remainder chunk is handled by
    # lax.map): memory is that of `chunk_size` examples at a time.
    if chunk_size is None or chunk_size >= total:
        return jax.vmap(fn)(xs)
    if chunk_size == 1:
        return jax.lax.map(fn, xs)  # no vmap at all: unbatched solver loops
    return jax.lax.map(fn, xs, batch_size=chunk_size)


@eqx.filter_jit
def sample(
    flow: AbstractLikelihood,
    key: PRNGKeyArray,
    num_samples: int,
    args: PyTree,
    *,
    chunk_size: int | str | None = AUTO,
    return_stats: bool = False,
) -> (
    tuple[Shaped[Array, "r ..."], Float[Array, " r"]]
    | tuple[Shaped[Array, "r ..."], Float[Array, " r"], FlowStats]
):
    """Draw `num_samples` independent samples with their log-densities.

    **Arguments:**

    - `flow`: any `AbstractLikelihood` (e.g. a `ContinuousFlow`).
    - `key`: a PRNG key (split into one key per sample).
    - `num_samples`: number of samples `R`.
    - `args`: extra data shared by every sample (the species vector).
    - `chunk_size`: samples vmapped together; chunks run one after another (`jax.lax.map`)
      so memory stays bounded (`None`: all at once). Changing it changes no result. The
      default `"auto"` is the backend's `batching_defaults().sample_chunk`: 1 on a CPU,
      where the exact divergence already batches its JVPs and vmapped adaptive solves run in
      lock-step (every sample of a chunk takes the chunk's largest number of steps); 64 on
      an accelerator, which needs the batch to be busy.
    - `return_stats`: also return the per-sample `FlowStats` (a `ContinuousFlow` only).

    **Returns:**

    `(x, log_q)` with shapes `(R, *point_shape)` and `(R,)`, plus the stats if asked.
    """
    if int(num_samples) != num_samples or num_samples < 1:
        raise ValueError(f"num_samples must be a positive integer; got {num_samples!r}.")
    chunk_size = _check_chunk(chunk_size)
    if return_stats and not isinstance(flow, ContinuousFlow):
        raise TypeError(
            f"return_stats=True needs a ContinuousFlow (solver statistics); got "
            f"{type(flow).__name__}."
        )
    keys = jax.random.split(key, num_samples)

    if return_stats:

        def one(k):
            solution = flow.sample_solution(k, args)
            return solution.x1, solution.log_q, solution.stats

    else:

        def one(k):
            return flow.sample_and_log_prob(k, args)

    return _map(one, keys, chunk_size, num_samples)


@eqx.filter_jit
def log_prob_batch(
    flow: AbstractLikelihood,
    x: Shaped[ArrayLike, "r ..."],
    args: PyTree,
    *,
    key: PRNGKeyArray | None = None,
    chunk_size: int | str | None = AUTO,
) -> Float[Array, " r"]:
    """Log-densities of a batch of points (the reverse pass of a flow, vmapped in chunks).

    **Arguments:**

    - `flow`: any `AbstractLikelihood`.
    - `x`: points stacked along a leading axis, `(R, *point_shape)`.
    - `args`: extra data shared by every point (the species vector).
    - `key`: a PRNG key, split per point; needed only by stochastic divergence estimators.
    - `chunk_size`: points vmapped together (`None`: all at once; default `"auto"`, see
      `sample`).
      Changing it changes no result.

    **Returns:**

    `log q(x_r)` for every point, shape `(R,)`.
    """
    chunk_size = _check_chunk(chunk_size)
    x = jnp.asarray(x)
    point_shape = tuple(flow.space.point_shape)
    if x.ndim != len(point_shape) + 1 or x.shape[1:] != point_shape:
        raise ValueError(
            f"log_prob_batch: `x` must have shape (num_points, *{point_shape}); got {x.shape}."
        )
    total = x.shape[0]
    if key is None:
        return _map(lambda xi: flow.log_prob(xi, args), x, chunk_size, total)
    keys = jax.random.split(key, total)
    return _map(lambda xk: flow.log_prob(xk[0], args, key=xk[1]), (x, keys), chunk_size, total)
