"""Flow moves: independent Metropolis-Hastings proposals drawn from a likelihood model q.

A flow move replaces a chain's configuration x by a proposal x' ~ q, drawn independently of
x, with probability `min(1, w(x') / w(x))`, `log w = -U / T - log q`. It leaves the Boltzmann
law `p ∝ exp(-U / T)` invariant for any q whose support covers p's (independent
Metropolis-Hastings); a poor q only lowers the acceptance. Interleaved with local sweeps it
gives a chain that is exact whatever the flow, and fast where the flow is good.

Species. A flow samples positions for one fixed species vector (sorted: all species-0
particles first, as in every `Dataset`), while swap moves permute a chain's labels. The target
is invariant under relabelling particles (permuting positions and labels together), and so is
every move here, so a chain state is only defined up to that relabelling. The density of a
state under the proposal, made label-free by a uniformly random relabelling, is proportional
to `q(canonical(x))`, where `canonical` orders the particles by species (stable), provided q
is invariant under permutations *within* a species (true for the equivariant flows of this
library; `canonicalize` states the condition, a test checks it). An accepted proposal is
stored with the flow's sorted species vector.

Augmented flows (`AbstractAugmentedLikelihood`, e.g. the coupling flow) model `(x, a)` with
auxiliary variables `a`; their `log q~(x, a) = log q(x, a) - log p_aux(a | x)` stands in for
log q. The chain then runs on the extended space `(x, a)` with target `p(x) p_aux(a | x)`,
whose x-marginal is `p`: a proposal brings its own `a` (and `log q~`), and after local moves
change `x` the state's `a` is drawn afresh from `p_aux(. | x)` (a Gibbs step of `a`, which
leaves the extended target invariant) when its log q~ is next needed. Each refresh uses its
own key (`refresh_key`), so a resumed run draws the same `a`.
"""

import math
import time
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from .._energy import AbstractPairEnergy
from .._flow import AbstractLikelihood
from .._flow.augmented import AbstractAugmentedLikelihood
from .._flow.batch import log_prob_batch
from .acceptance import AbstractAcceptance
from .advance import AdvanceOutput, KernelSettings, advance
from .extra_moves import AbstractExtraMoves
from .proposals import AbstractProposals, LikelihoodProposals
from .state import ChainState, SamplerState


def canonicalize(positions: Float[Array, "n d"], species: Int[Array, " n"]) -> Float[Array, "n d"]:
    """The positions reordered so that their species are sorted (stable: particles of one
    species keep their order).

    For a density q invariant under permutations within a species, `q(canonicalize(x, s))`
    is the density of the configuration `(x, s)` whatever the order of its labels, which is
    what a flow move needs after swaps have permuted them.
    """
    return positions[jnp.argsort(species, stable=True)]


def flow_log_weight(
    energy: Float[Array, "*b"], log_q: Float[Array, "*b"], temperature: Float[Array, ""]
) -> Float[Array, "*b"]:
    """`log w = -U / T - log q`, the log importance weight of a configuration."""
    return -energy / temperature - log_q


def flow_step(
    energy: AbstractPairEnergy,
    state: ChainState,
    log_q: Float[Array, ""],
    proposal: Float[Array, "n d"],
    proposal_log_q: Float[Array, ""],
    flow_species: Int[Array, " n"],
    temperature: Float[Array, ""],
    uniform: Float[Array, ""],
) -> tuple[ChainState, Float[Array, ""], Bool[Array, ""]]:
    """One independent Metropolis-Hastings move of one chain.

    Accepts the proposal iff `log(1 - uniform) <= log w(proposal) - log w(state)`, i.e. with
    probability `min(1, w(x') / w(x))`; a non-finite difference (NaN: a failed log q on either
    side) rejects, which keeps detailed balance (the move is then refused in both directions).

    **Arguments:**

    - `energy`: the pair energy.
    - `state`: the chain (its running energy must be exact).
    - `log_q`: log q of the state's canonical form (`canonicalize`).
    - `proposal`, `proposal_log_q`: a draw x' ~ q (species `flow_species`) and log q(x').
    - `flow_species`: the flow's (sorted) species vector.
    - `temperature`: T.
    - `uniform`: a uniform draw in `[0, 1)`.

    **Returns:**

    `(new_state, new_log_q, accepted)`; the new running energy is `U(x')` computed in full.
    """
    proposal_energy = energy(proposal, flow_species)
    log_ratio = flow_log_weight(proposal_energy, proposal_log_q, temperature) - flow_log_weight(
        state.energy, log_q, temperature
    )
    accept = jnp.log1p(-uniform) <= log_ratio
    new = ChainState(
        positions=jnp.where(accept, proposal, state.positions),
        species=jnp.where(accept, flow_species, state.species),
        energy=jnp.where(accept, proposal_energy, state.energy),
        key=state.key,
    )
    return new, jnp.where(accept, proposal_log_q, log_q), accept


@eqx.filter_jit
def flow_block(
    energy: AbstractPairEnergy,
    chains: ChainState,
    log_q: Float[Array, " c"],
    proposals: Float[Array, "c m n d"],
    proposal_log_q: Float[Array, "c m"],
    flow_species: Int[Array, " n"],
    temperature: Float[Array, ""],
) -> tuple[ChainState, Float[Array, " c"], Int[Array, " c"]]:
    """`m` consecutive flow moves of every chain (vmapped over chains), chain `c` trying
    `proposals[c, 0]`, then `proposals[c, 1]`, ... The acceptance draws come from each chain's
    key, which is advanced.

    **Returns:**

    `(chains, log_q, accepted)` with `accepted` the number of accepted moves per chain.
    """

    def one_chain(state, lq, xs, lqs):
        key, sub = jax.random.split(state.key)
        uniforms = jax.random.uniform(sub, lqs.shape, dtype=state.energy.dtype)

        def body(carry, inputs):
            st, lq = carry
            x, lqx, u = inputs
            st, lq, acc = flow_step(energy, st, lq, x, lqx, flow_species, temperature, u)
            return (st, lq), acc

        (state, lq), accepted = jax.lax.scan(body, (state, lq), (xs, lqs, uniforms))
        state = ChainState(state.positions, state.species, state.energy, key)
        return state, lq, jnp.sum(accepted, dtype=jnp.int32)

    return jax.vmap(one_chain)(chains, log_q, proposals, proposal_log_q)


@eqx.filter_jit
def _canonical_batch(
    positions: Float[Array, "c n d"], species: Int[Array, "c n"]
) -> Float[Array, "c n d"]:
    return jax.vmap(canonicalize)(positions, species)


@eqx.filter_jit
def _joint_batch(likelihood: AbstractAugmentedLikelihood, x, a, species) -> Array:
    return jax.vmap(likelihood.log_prob_joint, in_axes=(0, 0, None))(x, a, species)


def check_label_invariance(
    likelihood: AbstractLikelihood,
    positions: np.ndarray,
    species: np.ndarray,
    *,
    atol: float = 1e-3,
) -> float:
    """Check that `likelihood` gives the same log q to a configuration and to its particles
    permuted within each species (each species' particles in reverse order), the property the
    species handling of flow moves rests on (see `canonicalize`).

    **Arguments:**

    - `likelihood`: the model q.
    - `positions`: one `(n, d)` configuration (e.g. a proposal).
    - `species`: the sorted `(n,)` species vector the model samples with.
    - `atol`: the largest difference of log q accepted (solver round-off is far below it; a
      model that is not invariant differs by order one).

    **Returns:**

    The absolute difference of the two log q.

    **Raises:**

    `ValueError` when it exceeds `atol`.
    """
    species = np.asarray(species)
    order = np.concatenate([np.nonzero(species == s)[0][::-1] for s in np.unique(species)])
    x = np.asarray(positions)
    batch = jnp.asarray(np.stack([x, x[order]]), dtype=jnp.result_type(float))
    spec = jnp.asarray(species, jnp.int32)
    if isinstance(likelihood, AbstractAugmentedLikelihood):
        # log q(x, a) is deterministic: permute the auxiliaries with the particles
        a = likelihood.sample_aux(jax.random.key(0), batch[0], spec)
        aux = jnp.stack([a, likelihood.permute_aux(a, order)]).astype(batch.dtype)
        values = np.asarray(_joint_batch(likelihood, batch, aux, spec))
    else:
        values = np.asarray(log_prob_batch(likelihood, batch, spec))
    gap = float(abs(values[1] - values[0]))
    if not gap <= atol:  # NaN fails too
        raise ValueError(
            f"the model's log q changes by {gap:.3g} (> {atol:g}) when particles of one species "
            "are permuted; flow moves need a q invariant under such permutations (an "
            "equivariant flow, e.g. the torus EGNN of eRSI, not the RSI baseline's MLP)."
        )
    return gap


class FlowMoves(AbstractExtraMoves):
    """Flow moves interleaved with the local sweeps of `run_monte_carlo` (pass it as
    `extra_moves`).

    Every `every` sweeps, each chain tries `moves` consecutive flow moves (`flow_step`), all
    chains at once. Proposals come from `proposals` in the order they were drawn and each is
    used once in all (by one chain, one move): a proposal shared by two chains would correlate
    them, and one reused by a chain would make its proposals a finite sample rather than q.

    The log q of a chain's current state is needed by the acceptance ratio. It is known when
    the state is an accepted proposal; after local moves changed the state it is evaluated by
    `likelihood.log_prob` (a reverse solve for a flow; for an augmented flow, the inverse pass
    at auxiliaries drawn afresh, see the module docstring), lazily: only for the chains whose
    state changed since it was last known, right before a flow move, in batches of
    `eval_batch` chains. The accuracy of log q matters as for reweighting: an error `e` in
    log q biases the chain by at most a factor `exp(|e|)` in density ratios.

    A driver is stateful (the log q of each chain, which proposals are used): use one per run;
    its state is checkpointed with the run, so a resumed run continues exactly.

    **Arguments:**

    - `likelihood`: the model q (any `AbstractLikelihood` on the particle space), invariant
      under permutations of particles within a species (see the module docstring).
    - `species`: the `(n,)` sorted species vector q samples with (the system's).
    - `proposals`: where proposals come from (default: `LikelihoodProposals(likelihood, ...)`
      drawing batches of `proposal_batch` with `seed`).
    - `every`: local sweeps between two flow blocks (>= 1).
    - `moves`: consecutive flow moves per chain in a block (>= 1); the log q of the state is
      evaluated at most once per block, so several moves amortise it.
    - `eval_batch`: chains whose log q is evaluated in one compiled call.
    - `chunk_size`: points vmapped together inside a `log_prob` batch (see `log_prob_batch`).
    - `seed`: seed of the default proposals and of the auxiliary draws of an augmented flow.
    - `proposal_batch`: batch size of the default proposals.
    """

    names = ("flow",)

    def __init__(
        self,
        likelihood: AbstractLikelihood,
        species: np.ndarray,
        *,
        proposals: AbstractProposals | None = None,
        every: int = 10,
        moves: int = 1,
        eval_batch: int = 16,
        chunk_size: int | None = 1,
        seed: int = 0,
        proposal_batch: int = 64,
    ):
        if not isinstance(likelihood, AbstractLikelihood):
            raise TypeError(f"`likelihood` must be an AbstractLikelihood; got {type(likelihood)}.")
        for name, value in (("every", every), ("moves", moves), ("eval_batch", eval_batch)):
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1; got {value!r}.")
        species = np.asarray(species)
        if species.ndim != 1 or not np.all(np.diff(species) >= 0):
            raise ValueError(
                f"`species` must be the sorted (n,) species vector the flow samples with; got "
                f"{species.tolist()}."
            )
        if proposals is None:
            proposals = LikelihoodProposals(
                likelihood, species, seed=seed, batch_size=proposal_batch, chunk_size=chunk_size
            )
        if not isinstance(proposals, AbstractProposals):
            raise TypeError(f"`proposals` must be an AbstractProposals; got {type(proposals)}.")
        if not np.array_equal(np.asarray(proposals.species), species):
            raise ValueError(
                f"the proposals have species {np.asarray(proposals.species).tolist()} but the "
                f"flow moves use {species.tolist()}; draw them for the same system."
            )
        self.likelihood = likelihood
        self.seed = int(seed)
        self.species = species
        self.proposals = proposals
        self.every = int(every)
        self.moves = int(moves)
        self.eval_batch = int(eval_batch)
        self.chunk_size = chunk_size
        self.log_q: np.ndarray | None = None  # (c,) log q of each chain's state
        self.known: np.ndarray | None = None  # (c,) whether that log q is up to date
        self.cursor = 0  # proposals used so far
        self.evaluations = 0  # log_prob calls on chain states
        self.eval_seconds = 0.0  # CPU seconds of those
        self.nonfinite_log_q = 0  # chain states whose log q came out non-finite
        # production: CPU seconds of this process, sweeps, proposals used
        self.production = np.zeros(3)

    @property
    def augmented(self) -> bool:
        """Whether the likelihood models auxiliary variables (log q~ stands in for log q)."""
        return isinstance(self.likelihood, AbstractAugmentedLikelihood)

    # ------------------------------------------------------------------ planning
    def proposals_needed(self, num_chains: int, sweeps: int) -> int:
        """Proposals `sweeps` sweeps of `num_chains` chains consume."""
        return num_chains * self.moves * (sweeps // self.every)

    # ------------------------------------------------------------------ the hook
    def advance(
        self,
        energy: AbstractPairEnergy,
        acceptance: AbstractAcceptance,
        sampler: SamplerState,
        temperatures: Float[Array, " s"],
        active: Bool[Array, " s"],
        tune: Bool[Array, ""],
        settings: KernelSettings,
    ) -> tuple[SamplerState, AdvanceOutput]:
        """`advance` in segments of `every` sweeps, each followed by a flow block at the
        temperature of its last active sweep (segments with no active sweep have none). The
        energy trace of that sweep records the energy after the flow block."""
        tic = time.process_time()
        cursor = self.cursor
        temps = np.asarray(temperatures)
        act = np.asarray(active)
        num_chains = sampler.chains.energy.shape[0]
        if self.log_q is None or self.log_q.shape != (num_chains,):
            self.log_q = np.zeros(num_chains)
            self.known = np.zeros(num_chains, bool)
        k, total = self.every, len(temps)
        traces, accepted, attempted, drifts, relative = [], [], [], [], []
        flow_acc = np.zeros(num_chains, np.int64)
        flow_att = np.zeros(num_chains, np.int64)
        for start in range(0, total, k):
            seg_t = np.full(k, temps[min(start + k, total) - 1])
            seg_a = np.zeros(k, bool)
            stop = min(start + k, total)
            seg_t[: stop - start] = temps[start:stop]
            seg_a[: stop - start] = act[start:stop]
            before = sampler.chains
            sampler, out = advance(
                energy,
                acceptance,
                sampler,
                jnp.asarray(seg_t, temperatures.dtype),
                jnp.asarray(seg_a),
                tune,
                settings,
            )
            moved = np.any(np.asarray(before.positions != sampler.chains.positions), axis=(1, 2))
            moved |= np.any(np.asarray(before.species != sampler.chains.species), axis=1)
            self.known &= ~moved
            trace = np.array(out.trace)[: stop - start]
            if seg_a.any() and (start + k <= total):
                last = int(np.nonzero(seg_a)[0][-1])
                sampler, acc = self._flow_block(energy, sampler, seg_t[last])
                flow_acc += acc
                flow_att += self.moves
                trace[last] = np.asarray(sampler.chains.energy)
            traces.append(trace)
            accepted.append(np.asarray(out.accepted))
            attempted.append(np.asarray(out.attempted))
            drifts.append(np.asarray(out.drift))
            relative.append(np.asarray(out.relative_drift))
        local_acc = np.sum(accepted, axis=0)
        local_att = np.sum(attempted, axis=0)
        out = AdvanceOutput(
            trace=jnp.asarray(np.concatenate(traces)),
            accepted=jnp.asarray(np.column_stack([local_acc, flow_acc]), jnp.int32),
            attempted=jnp.asarray(np.column_stack([local_att, flow_att]), jnp.int32),
            drift=jnp.asarray(np.max(drifts, axis=0)),
            relative_drift=jnp.asarray(np.max(relative, axis=0)),
        )
        if not bool(tune):  # production (the step size is tuned during equilibration only)
            self.production += np.asarray(
                [time.process_time() - tic, np.count_nonzero(act), self.cursor - cursor]
            )
        return sampler, out

    def _refresh_log_q(self, chains: ChainState) -> None:
        """Evaluate log q of the chains whose state changed since it was last known."""
        todo = np.nonzero(~self.known)[0]
        if todo.size == 0:
            return
        tic = time.process_time()
        canon = np.asarray(_canonical_batch(chains.positions, chains.species))
        dtype = chains.positions.dtype
        spec = jnp.asarray(self.species, jnp.int32)
        b = self.eval_batch
        for start in range(0, todo.size, b):
            idx = todo[start : start + b]
            batch = np.repeat(canon[idx[:1]], b, axis=0)  # padded to one shape
            batch[: idx.size] = canon[idx]
            key = self.refresh_key(self.evaluations + start) if self.augmented else None
            values = log_prob_batch(
                self.likelihood,
                jnp.asarray(batch, dtype),
                spec,
                chunk_size=self.chunk_size,
                key=key,
            )
            self.log_q[idx] = np.asarray(values, np.float64)[: idx.size]
        self.evaluations += int(todo.size)
        self.nonfinite_log_q += int(np.count_nonzero(~np.isfinite(self.log_q[todo])))
        self.known[todo] = True
        self.eval_seconds += time.process_time() - tic

    def refresh_key(self, index: int):
        """The key of the auxiliary draws of the state evaluations numbered `index ..` (an
        augmented flow): a stream of its own, `fold_in(split(key(seed))[1], index)`, apart from
        the proposals' `fold_in(key(seed), b)`."""
        stream = jax.random.split(jax.random.key(self.seed))[1]
        return jax.random.fold_in(stream, index)

    def _flow_block(
        self, energy: AbstractPairEnergy, sampler: SamplerState, temperature: float
    ) -> tuple[SamplerState, np.ndarray]:
        chains = sampler.chains
        num_chains = chains.energy.shape[0]
        self._refresh_log_q(chains)
        count = num_chains * self.moves
        x, lq = self.proposals.take(self.cursor, count)
        self.cursor += count
        dtype = chains.positions.dtype
        n, d = chains.positions.shape[1:]
        # rounding to a narrower dtype can turn a coordinate just below L into L: fold it to 0
        box = jnp.asarray(np.asarray(energy.torus.lengths), dtype)
        x = jnp.asarray(x, dtype)
        x = jnp.where(x >= box[None, None, :], x - box[None, None, :], x)
        chains, log_q, acc = flow_block(
            energy,
            chains,
            jnp.asarray(self.log_q, dtype),
            x.reshape(num_chains, self.moves, n, d),
            jnp.asarray(lq, dtype).reshape(num_chains, self.moves),
            jnp.asarray(self.species, jnp.int32),
            jnp.asarray(temperature, dtype),
        )
        self.log_q = np.array(log_q, np.float64)
        new = SamplerState(
            chains,
            sampler.step_size,
            sampler.window_accepted,
            sampler.window_attempted,
            sampler.window_sweeps,
        )
        return new, np.asarray(acc, np.int64)

    # ------------------------------------------------------------------ checkpoints
    def state_arrays(self) -> dict[str, np.ndarray]:
        return {
            "log_q": np.asarray(self.log_q),
            "known": np.asarray(self.known),
            "counters": np.asarray([self.cursor, self.evaluations, self.nonfinite_log_q]),
            "eval_seconds": np.asarray(self.eval_seconds),
            "proposal_seconds": np.asarray(self.proposals.seconds),
            "production": np.asarray(self.production),
        }

    def load_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.log_q = np.asarray(arrays["log_q"], np.float64).copy()
        self.known = np.asarray(arrays["known"], bool).copy()
        self.cursor, self.evaluations, self.nonfinite_log_q = (int(v) for v in arrays["counters"])
        self.eval_seconds = float(arrays["eval_seconds"])
        self.proposals.seconds = float(arrays["proposal_seconds"])
        self.production = np.asarray(arrays["production"], np.float64).copy()

    def fingerprint(self) -> dict[str, Any]:
        return {
            "kind": "flow",
            "every": self.every,
            "moves": self.moves,
            "likelihood": type(self.likelihood).__name__,
            "proposals": self.proposals.fingerprint(),
            **({"aux_seed": self.seed} if self.augmented else {}),
            **self._aux_draws(),
        }

    def _aux_draws(self) -> dict[str, int]:
        """`{"aux_draws": K}` for a `MultiAuxFlow` (nothing otherwise: earlier records stay
        as they were)."""
        num_aux = getattr(self.likelihood, "num_aux", None)
        return {} if num_aux is None else {"aux_draws": int(num_aux)}

    def metadata(self) -> dict[str, Any]:
        per = self.proposals.seconds_per_proposal()
        return {
            "kind": "flow moves (independent Metropolis-Hastings, proposals x' ~ q)",
            "acceptance": "min(1, w(x') / w(x)), log w = -U/T - log q",
            "every_sweeps": self.every,
            "moves_per_block": self.moves,
            "likelihood": type(self.likelihood).__name__,
            "species_handling": (
                "log q of a chain state is evaluated on its particles ordered by species "
                "(exact for q invariant under permutations within a species); accepted "
                "proposals carry the flow's sorted species vector"
            ),
            "proposal_use": "each proposal is used once in all (one chain, one move)",
            **(
                {
                    "auxiliaries": (
                        "augmented flow: log q~ = log q(x, a) - log p_aux(a | x) in place of "
                        "log q; a chain state's a is drawn afresh from p_aux(. | x) after local "
                        "moves changed x (keys: refresh_key)"
                    )
                }
                if self.augmented
                else {}
            ),
            **self._aux_draws(),
            "proposals": self.proposals.describe(),
            "proposals_used": self.cursor,
            "log_q_evaluations": self.evaluations,
            "log_q_nonfinite": self.nonfinite_log_q,
            "log_q_evaluation_cpu_seconds": self.eval_seconds,
            "proposal_cpu_seconds": self.proposals.seconds,
            "proposal_cpu_seconds_per_proposal": per,
            "proposal_cost_charged_cpu_seconds": (
                None if per is None or not math.isfinite(per) else per * self.cursor
            ),
            "production_cpu_seconds": float(self.production[0]),
            "production_sweeps": int(self.production[1]),
            "production_proposals": int(self.production[2]),
            "production_note": (
                "CPU seconds of this process in production calls (local sweeps, flow moves, "
                "log q evaluations, proposals drawn here); proposals read from a file cost "
                "what drawing them cost, not counted here"
            ),
        }
