"""The computing half of `sample_to_file`: drawing samples of a flow with their solver
statistics (on one device or split over several), reading solver failures on the host, and
the energies of the samples."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._energy import ParticleSystem
from .._flow.continuous import FAILED_MESSAGE, MAX_STEPS_MESSAGE, ContinuousFlow
from .._flow.solution import SOLVE_FAILED, SOLVE_MAX_STEPS

#: How the samples of one chunk are solved: `"sequential"` runs one adaptive solve after
#: another (`lax.map`), `"vmap"` solves them together in lock-step (every sample takes the
#: steps of the stiffest one, but each step is one batched field evaluation).
BATCHING = ("sequential", "vmap")


#: Lines of JAX's and Equinox's runtime-error texts that frame the message rather than say it.
_FRAMING = (
    "above is the stack",
    "an error occurred during the runtime",
    "traceback",
    "file ",
    "internal:",
    "-----",
)


def _error_summary(exc: BaseException) -> str:
    """The line of a runtime error that says what went wrong (e.g. the solver's max_steps
    message), without the framing that JAX and Equinox put around it."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for line in lines:
        at = line.find("ContinuousFlow:")
        if at >= 0:
            return line[at:]
    for line in lines:
        if not line.lower().startswith(_FRAMING):
            return line
    return type(exc).__name__


def _solve_problem(status: np.ndarray, max_steps: int) -> str | None:
    """What went wrong in a chunk's solves (their `FlowStats.status`), or None."""
    status = np.asarray(status)
    messages = {
        SOLVE_MAX_STEPS: MAX_STEPS_MESSAGE.format(max_steps=max_steps),
        SOLVE_FAILED: FAILED_MESSAGE,
    }
    for code, message in messages.items():  # running out of steps is reported first
        count = int(np.count_nonzero(status == code))
        if count:
            return f"{count} solve(s): {message}"
    return None


@eqx.filter_jit
def _draw(flow, root, indices, species, batching="sequential"):
    """Samples `indices` of the stream `fold_in(root, r)`: end points, log q and statistics."""
    keys = jax.vmap(lambda i: jax.random.fold_in(root, i))(indices)
    if not isinstance(flow, ContinuousFlow):
        # A one-pass likelihood (the augmented coupling flow): no solver, so no statistics;
        # every "solve" succeeded. One vmap: the pass is the same for every sample.
        x, log_q = jax.vmap(lambda k: flow.sample_and_log_prob(k, species))(keys)
        zeros = jnp.zeros(indices.shape, jnp.int32)
        return x, log_q, zeros, zeros, zeros, zeros

    def one(k):
        # Failures come back as a status and are raised on the host (`_solve_problem`): a
        # runtime error inside a computation split over devices is raised once per device.
        return flow.sample_solution(k, species, check=False)

    # Which is faster depends on N and the machine: lock-step solves pay for the stiffest
    # sample of the chunk, sequential solves pay the per-step overhead once per sample.
    solution = jax.vmap(one)(keys) if batching == "vmap" else jax.lax.map(one, keys)
    stats = solution.stats
    return (
        solution.x1,
        solution.log_q,
        stats.num_fn_evals,
        stats.num_steps,
        stats.num_rejected_steps,
        stats.status,
    )


@eqx.filter_jit
def _draw_on(parallel, flow, root, indices, species, batching="sequential"):
    """`_draw` with each device of `parallel` solving its share of `indices` (split along
    the devices); sample `r` still uses the key `fold_in(root, r)`, whatever device runs it."""

    def local(shared, local_indices):
        flow, root, species = shared
        return _draw(flow, root, local_indices, species, batching)

    return parallel.map_batch(local, (flow, root, species), indices)


@eqx.filter_jit
def _energies(energy, x, species):
    return jax.vmap(lambda xi: energy(xi, species))(x)


def system_energies(
    system: ParticleSystem, positions: np.ndarray, species: np.ndarray, *, block: int = 256
) -> np.ndarray:
    """Total energy U of each configuration `(R, n, d)` with the system's energy (its image
    convention), in JAX's default float, in blocks of exactly `block` configurations (the
    last one padded), so that every call with the same `block` reuses one compilation whatever
    the number of configurations (e.g. the short last chunk of `sample_to_file`)."""
    positions = np.asarray(positions)
    num = positions.shape[0]
    dtype = jnp.result_type(float)
    spec = jnp.asarray(np.asarray(species, dtype=np.int32))
    block = max(1, int(block))
    out = np.empty(num)
    for start in range(0, num, block):
        stop = min(start + block, num)
        chunk = np.zeros((block, *positions.shape[1:]))
        chunk[: stop - start] = positions[start:stop]
        chunk[stop - start :] = positions[start]  # padding: a valid configuration
        values = _energies(system.energy, jnp.asarray(chunk, dtype=dtype), spec)
        out[start:stop] = np.asarray(values, dtype=np.float64)[: stop - start]
    return out
