"""The state of Monte Carlo chains (a pytree the engine returns, never hidden state)."""

import equinox as eqx
from jaxtyping import Array


class ChainState(eqx.Module):
    """One Markov chain (or, with a leading chain axis on every field, many).

    **Fields:**

    - `positions`: `(n, d)` configuration, wrapped into the box.
    - `species`: `(n,)` integer labels; swap moves permute them, so the order is not canonical.
    - `energy`: the running total energy U, updated by the energy change of every accepted
      move and reset to a full recomputation at every drift check.
    - `key`: the chain's PRNG key.
    """

    positions: Array
    species: Array
    energy: Array
    key: Array


class SamplerState(eqx.Module):
    """Everything that evolves during a run: the (batched) chains and the step-size tuner.

    **Fields:**

    - `chains`: a `ChainState` with a leading chain axis.
    - `step_size`: the Gaussian displacement width shared by all chains (tuned during
      equilibration only, frozen in production).
    - `window_accepted`, `window_attempted`, `window_sweeps`: displacement-move counts pooled
      over chains since the last step-size update.
    """

    chains: ChainState
    step_size: Array
    window_accepted: Array
    window_attempted: Array
    window_sweeps: Array
