"""The EGNN message-passing core shared by the torus and the Euclidean EGNN.

The core knows nothing about the geometry: the caller hands it a displacement function
(`delta[i, j]`, the tangent vector pointing from particle j to particle i) and an exponential
map. `TorusEGNN` passes the minimum-image displacement and the wrapping `exp` of the flat
torus; `EuclideanEGNN` passes plain differences and addition.

Layout and speed (DESIGN.md section 5). One configuration is `n` particles with `H` hidden
features; the edge tensors are `(n, n, H)`, and under `jax.vmap` over a batch `(B, n, n, H)`
with `H` the fastest axis. The first edge layer acts on `concat(h_i, h_j, r_ij, a_ij)`; it is
evaluated as `W_i h_i + W_j h_j + w_r r_ij + w_a a_ij + b`: two `(n, H) x (H, H)` products
and one broadcast sum that XLA fuses with the following SiLU into a single loop, instead of an
`(n^2, 2H + 2) x (2H + 2, H)` product on a materialised concatenation. The attention gate is
a per-edge scalar that factors out of every linear map after it, so the gated messages are
never materialised, and the per-node sums over j are contractions (`einsum`), which XLA emits
as dots rather than as slower strided reductions.

Beyond the layout, what decides the speed on a CPU is memory traffic: at the paper's size a
batch of 256 configurations makes every edge tensor 63 MB, far larger than the caches, and the
backward pass reads and writes dozens of them. `evaluate_batch` therefore evaluates a batch in
small chunks under `jax.checkpoint`, so that each chunk's edge tensors stay in cache in the
forward and in the backward pass (see `benchmarks/README.md` for the measurements).
"""

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from .._backend import batching_defaults


def _xavier_uniform(key: PRNGKeyArray, shape: tuple[int, int], gain: float, dtype) -> Array:
    fan_out, fan_in = shape
    bound = gain * float(np.sqrt(6.0 / (fan_in + fan_out)))
    return jax.random.uniform(key, shape, dtype=dtype, minval=-bound, maxval=bound)


def _safe_sqrt(r: Array) -> Array:
    # sqrt(0) has an infinite derivative; self-edges (and coincident particles) have r == 0.
    # The double `where` keeps both the value (0) and the gradient (0) finite there.
    positive = r > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, r, 1)), 0)


def receiver_block(n: int, width: int) -> int | None:
    """Rows of receivers per block for an `n`-particle graph of hidden width `width`, or
    `None` to compute every edge at once.

    Small graphs (the paper's N = 44: `44 * 44 * 32` = 62k elements per edge tensor) are
    computed whole, which is fastest. Above the backend's `edge_block_elements`
    (`batching_defaults()`) the rows are blocked so that each edge tensor of a block holds at
    most that many elements. On a CPU that is 2^20 (4 MB in float32): at N = 1024, width 32
    this is 32 rows, and the exact divergence (vmapped tangents through every intermediate)
    fits in memory; see `benchmarks/README.md`. An accelerator takes 2^24 (512 rows there).
    """
    limit = batching_defaults().edge_block_elements
    if n * n * width <= limit:
        return None
    return max(1, limit // (n * width))


def _row(v: Array, ndim: int) -> Array:
    # A feature vector shaped to broadcast along the last axis of a rank-`ndim` array (explicit,
    # so the code runs under jax_numpy_rank_promotion="raise").
    return v.reshape((1,) * (ndim - 1) + (-1,))


def _linear(x: Array, layer: eqx.nn.Linear) -> Array:
    # A Linear applied along the last axis of an array of any rank (one matrix product).
    return x @ layer.weight.T + _row(layer.bias, x.ndim)


class EGNNLayer(eqx.Module):
    """One EGNN layer (final). Parameters are plain `eqx.nn.Linear`s with the unfactorised
    shapes, so the same weights drive the naive reference implementation in `benchmarks/`.

    - `edge1`: `Linear(2H + 2 -> H)` on `concat(h_i, h_j, r_ij, a_ij)` (evaluated factorised);
    - `edge2`: `Linear(H -> H)`; `m_ij = silu(edge2(silu(edge1(...))))`;
    - `attention`: `Linear(H -> 1)`, the gate `sigmoid(attention(m_ij))` (or `None`);
    - `coord1`: `Linear(H -> H)`, `coord2`: weight `(1, H)` without bias, tiny init;
    - `node1`: `Linear(2H -> H)`, `node2`: `Linear(H -> H)` (`None` in the last layer, whose
      features would never be read).
    """

    edge1: eqx.nn.Linear
    edge2: eqx.nn.Linear
    attention: eqx.nn.Linear | None
    coord1: eqx.nn.Linear
    coord2: Float[Array, "1 h"]
    node1: eqx.nn.Linear | None
    node2: eqx.nn.Linear | None

    def __init__(
        self, width: int, *, attention: bool, update_nodes: bool, dtype, key: PRNGKeyArray
    ):
        k = jax.random.split(key, 7)
        H = width
        self.edge1 = eqx.nn.Linear(2 * H + 2, H, dtype=dtype, key=k[0])
        self.edge2 = eqx.nn.Linear(H, H, dtype=dtype, key=k[1])
        self.attention = eqx.nn.Linear(H, 1, dtype=dtype, key=k[2]) if attention else None
        self.coord1 = eqx.nn.Linear(H, H, dtype=dtype, key=k[3])
        # Tiny init of the last coordinate layer: the untrained network is close to the
        # identity map on positions, so its velocity starts near zero.
        self.coord2 = _xavier_uniform(k[4], (1, H), 1e-3, dtype)
        if update_nodes:
            self.node1 = eqx.nn.Linear(2 * H, H, dtype=dtype, key=k[5])
            self.node2 = eqx.nn.Linear(H, H, dtype=dtype, key=k[6])
        else:
            self.node1 = None
            self.node2 = None

    def __call__(
        self,
        x: Float[Array, "n d"],
        h: Float[Array, "n h"],
        delta: Float[Array, "n n d"],
        r: Float[Array, "n n"],
        a: Float[Array, "n n"],
        mask: Float[Array, "n n"],
        coord_scale: float | None,
        exp: Callable[[Array, Array], Array],
    ) -> tuple[Float[Array, "n d"], Float[Array, "n h"], Float[Array, "n d"]]:
        n, H = h.shape
        w1 = self.edge1.weight
        # Factorised first edge layer: (n, H) products, then one fused broadcast per row.
        hi = h @ w1[:, :H].T + _row(self.edge1.bias, 2)
        hj = h @ w1[:, H : 2 * H].T
        block = receiver_block(n, H)
        if block is None:
            step, msum = self._messages(hi, hj, delta, r, a, mask, coord_scale)
        else:
            # Large systems: the receivers i are processed in blocks of rows, so an edge tensor
            # is (block, n, H) instead of (n, n, H). Each block is rematerialised (forward-mode
            # and reverse-mode derivatives recompute it instead of storing its intermediates).
            pad = (-n) % block

            def rows(v: Array) -> Array:
                if pad:
                    v = jnp.concatenate([v, jnp.zeros((pad, *v.shape[1:]), v.dtype)])
                return v.reshape(-1, block, *v.shape[1:])

            @jax.checkpoint
            def one_block(c):
                return self._messages(c[0], hj, c[1], c[2], c[3], c[4], coord_scale)

            step, msum = jax.lax.map(
                one_block, (rows(hi), rows(delta), rows(r), rows(a), rows(mask))
            )
            step = step.reshape(-1, step.shape[-1])[:n]
            msum = msum.reshape(-1, msum.shape[-1])[:n]
        x_new = exp(x, step)
        if self.node1 is None or self.node2 is None:
            return x_new, h, step
        hidden = jax.nn.silu(_linear(jnp.concatenate([h, msum], axis=-1), self.node1))
        dh = _linear(hidden, self.node2)
        return x_new, h + dh, step

    def _messages(
        self,
        hi: Float[Array, "b h"],
        hj: Float[Array, "n h"],
        delta: Float[Array, "b n d"],
        r: Float[Array, "b n"],
        a: Float[Array, "b n"],
        mask: Float[Array, "b n"],
        coord_scale: float | None,
    ) -> tuple[Float[Array, "b d"], Float[Array, "b h"]]:
        # The edge computations for the receivers i of a block of rows (all rows when the
        # system is small): the coordinate step of each receiver and its summed gated messages.
        H = hj.shape[-1]
        w1 = self.edge1.weight
        pre = (
            hi[:, None, :]
            + hj[None, :, :]
            + r[:, :, None] * _row(w1[:, 2 * H], 3)
            + a[:, :, None] * _row(w1[:, 2 * H + 1], 3)
        )
        m = jax.nn.silu(_linear(jax.nn.silu(pre), self.edge2))  # (b, n, H), ungated
        if self.attention is None:
            gate = mask
            c = _linear(m, self.coord1)
        else:
            # The gate is a per-edge scalar, so it factors out of the linear maps that follow:
            # coord1(gate * m) = gate * (W m) + b, and sum_j gate * m is one contraction. The
            # gated messages are never materialised. (A fused (H, H + 1) product for W and the
            # attention logit writes less in the forward pass but costs more in the backward
            # pass, whose slicing pads a 33-wide minor axis.)
            logit = m @ self.attention.weight[0] + self.attention.bias[0]
            gate = jax.nn.sigmoid(logit) * mask
            c = gate[..., None] * (m @ self.coord1.weight.T) + _row(self.coord1.bias, 3)
        coef = jax.nn.silu(c) @ self.coord2[0]  # (b, n)
        if coord_scale is not None:
            coef = coord_scale * jnp.tanh(coef)
        weight = coef * mask / (_safe_sqrt(r) + 1)
        step = jnp.einsum("ij,ijd->id", weight, delta)
        if self.node1 is None or self.node2 is None:
            return step, jnp.zeros_like(hi)  # the last layer never reads the messages
        msum = jnp.einsum("ij,ijh->ih", gate, m)  # sum over j != i of the gated messages
        return step, msum


class EGNNCore(eqx.Module):
    """Embedding plus a stack of `EGNNLayer`s (final).

    Returns the sum of the layers' tangent steps `D`, so that the final positions are
    `exp_x(D)` on a flat space (the torus or R^d). Returning `D` instead of the wrapped final
    positions keeps the output exact to the precision of the steps themselves: recovering it as
    `log_x(x_final)` would cancel two numbers of the size of the box and lose about `eps * L`
    (5e-7 in float32 for L ~ 4), a large relative error on the small velocities of early
    training.
    """

    embedding: eqx.nn.Linear
    layers: tuple[EGNNLayer, ...]
    num_species: int = eqx.field(static=True)
    width: int = eqx.field(static=True)
    coord_scale: float | None = eqx.field(static=True)

    def __init__(
        self,
        num_species: int,
        *,
        width: int,
        depth: int,
        attention: bool,
        coord_scale: float | None,
        dtype,
        key: PRNGKeyArray,
    ):
        keys = jax.random.split(key, depth + 1)
        self.embedding = eqx.nn.Linear(1 + num_species, width, dtype=dtype, key=keys[0])
        self.layers = tuple(
            EGNNLayer(width, attention=attention, update_nodes=(i < depth - 1), dtype=dtype, key=k)
            for i, k in enumerate(keys[1:])
        )
        self.num_species = num_species
        self.width = width
        self.coord_scale = coord_scale

    def __call__(
        self,
        t: Float[Array, ""],
        x: Float[Array, "n d"],
        species: Array,
        displacement: Callable[[Array], Array],
        exp: Callable[[Array, Array], Array],
    ) -> Float[Array, "n d"]:
        n = x.shape[0]
        dtype = x.dtype
        onehot = jax.nn.one_hot(species, self.num_species, dtype=dtype)
        node_in = jnp.concatenate([jnp.broadcast_to(t, (n, 1)).astype(dtype), onehot], axis=-1)
        h = _linear(node_in, self.embedding)
        mask = 1 - jnp.eye(n, dtype=dtype)
        delta = displacement(x)
        a = jnp.sum(delta * delta, axis=-1)
        y = x
        total = jnp.zeros_like(x)
        for k, layer in enumerate(self.layers):
            if k > 0:
                delta = displacement(y)
            r = a if k == 0 else jnp.sum(delta * delta, axis=-1)
            y, h, step = layer(y, h, delta, r, a, mask, self.coord_scale, exp)
            total = total + step
        return total


def cast_floating(tree, dtype):
    """Cast every floating-point array leaf of `tree` to `dtype` (parameters follow the input)."""
    return jax.tree.map(lambda p: p.astype(dtype) if eqx.is_inexact_array(p) else p, tree)
