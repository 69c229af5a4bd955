"""Local equivariant conditioner: per-particle, per-axis spline parameters from a neighbourhood."""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from ..._field._egnn_core import cast_floating
from .spline import num_spline_params


def _silu(x: Array) -> Array:
    """`x sigmoid(x)`, written out: `jax.nn.silu` is a separately jitted function, and its
    gradient in a conditioner's backward pass cost 1.6x as much on the CPU (2 cores, 11520
    edges: 4.8 ms against 2.9 ms per edge-network gradient; `benchmarks/`)."""
    return x * jax.nn.sigmoid(x)


def _pair_geometry(
    anchor: Float[Array, "n d"], neighbours: Int[Array, "n m"], box: Float[Array, " d"]
) -> tuple[Float[Array, "n m d"], Float[Array, "n m"], Bool[Array, "n m"]]:
    """Minimum-image vectors `Delta_ij = y_j - y_i`, distances, and a mask of real entries."""
    n = anchor.shape[0]
    real = neighbours < n
    j = jnp.where(real, neighbours, 0)
    delta = anchor[j] - anchor[:, None, :]
    lengths = box[None, None, :]
    delta = delta - lengths * jnp.round(delta / lengths)
    squared = jnp.sum(delta * delta, axis=-1)
    positive = real & (squared > 0)
    # A safe square root: coincident points get r = 0 without a NaN gradient.
    r = jnp.where(positive, jnp.sqrt(jnp.where(positive, squared, 1)), 0)
    return delta, r, real


class LocalConditioner(eqx.Module):
    """Spline parameters for every particle and axis from the particle's neighbourhood in the
    *anchor* configuration `y` (the variables a coupling layer does not transform).

    For particle `i` and neighbours `j` within the cutoff `r_c` (minimum image),

        e_ij = env(r_ij / r_c) phi(rbf(r_ij), s_i, s_j)             (edge network)
        h_i = sum_j e_ij^h,
        v_ik = sum_j e_ij^v Delta_ijk / r_c,
        m_ik = sum_j e_ij^m (Delta_ijk / r_c)^2

    with `env(u) = (1 - u^2)^3` for `u < 1` and 0 beyond (smooth at the cutoff), and per axis
    `k` the raw parameters `G(h_i, s_i, v_ik, m_ik)` of a circular spline (the same network
    `G` for every axis), symmetrised under `v -> -v` so that reflecting axis `k` reflects the
    spline of axis `k` (reversed bins and knot derivatives, opposite rotation).

    With `angular = P > 1` the moments are resolved in angle too: for `p = 1..P` the channels
    `v^(p)_ik = sum_j e_ij^(v,p) (Delta_ijk / r_c) c_ijk^(2p-2)` and `m^(p)_ik` likewise with
    `(Delta_ijk / r_c)^2`, `c_ijk = Delta_ijk / r_ij` the cosine of the pair's angle with axis
    `k` (`p = 1` is the plain moment above). They tell the axis network where along the
    axis a neighbour sits, not just how far, at `2 (P - 1) channels` more features; the odd
    ones (`v`) change sign under a reflection of the axis, the even ones (`m`) do not, so
    the symmetry below is unchanged.

    With `rounds = R > 1` the edges see the neighbourhoods of both ends: `R - 1` message rounds
    first give every particle invariant features, `h^(1)_i = sum_j env(r_ij / r_c)
    phi_1(rbf(r_ij), s_i, s_j)` and `h^(t)_i = sum_j env phi_t(rbf(r_ij), h^(t-1)_i, s_i,
    h^(t-1)_j, s_j)`, and the edge network above takes `(h^(R-1), s)` of both ends in place of
    the species alone. The moments then weigh a neighbour by how crowded both ends are (a
    many-body feature), at the cost of `R - 1` more edge networks; the reach grows to `R r_c`.

    Symmetry: the output depends on `y` only through minimum-image differences (translation
    invariant), on the neighbours through a sum (permutation equivariant, species as
    features), and transforms under a signed permutation of the axes as the relative
    coordinate does, so a coupling layer built on it commutes with the point group of a
    cubic box exactly.

    **Arguments:**

    - `num_species`: the number of species labels.
    - `cutoff`: `r_c`, at most half the shortest box side.
    - `num_bins`: `K`, bins of each spline.
    - `width`: hidden width (and number of invariant features `h`).
    - `channels`: number of vector (`v`) and second-moment (`m`) features per axis (and per
      angular order).
    - `angular`: `P`, angular orders of the moments (1: the plain first and second moments).
    - `num_rbf`: Gaussian radial basis functions on `[0, r_c]`.
    - `rounds`: `R`, message-passing rounds (1: edges see the two species only).
    - `init_scale`: scale of the last layer of `G` (small: the layer starts near the identity).
    - `out_size`: outputs of `G` per axis (default: the `3K + 1` spline parameters; another
      head reads `axis_pair`).
    - `dtype`: parameter dtype.
    - `key`: PRNG key.
    """

    edge_net: eqx.nn.MLP
    axis_net: eqx.nn.MLP
    message_nets: tuple[eqx.nn.MLP, ...]
    num_species: int = eqx.field(static=True)
    cutoff: float = eqx.field(static=True)
    num_bins: int = eqx.field(static=True)
    width: int = eqx.field(static=True)
    channels: int = eqx.field(static=True)
    num_rbf: int = eqx.field(static=True)
    angular: int = eqx.field(static=True)
    rounds: int = eqx.field(static=True)

    def __init__(
        self,
        num_species: int,
        cutoff: float,
        *,
        num_bins: int = 8,
        width: int = 32,
        channels: int = 8,
        num_rbf: int = 16,
        angular: int = 1,
        rounds: int = 1,
        init_scale: float = 0.01,
        out_size: int | None = None,
        dtype=None,
        key: PRNGKeyArray,
    ):
        for name, value in (("angular", angular), ("rounds", rounds)):
            if isinstance(value, bool) or int(value) != value or value < 1:
                raise ValueError(
                    f"LocalConditioner({name}=...) must be a positive integer; got {value!r}."
                )
        moments = 2 * channels * int(angular)
        edge_key, axis_key, message_key = jax.random.split(key, 3)
        # Node features the edges see: the species, and after a message round the invariant
        # features of that round too.
        node = num_species + (width if rounds > 1 else 0)
        self.message_nets = tuple(
            eqx.nn.MLP(
                num_rbf + 2 * (num_species + (width if t > 0 else 0)),
                width,
                width,
                depth=2,
                activation=_silu,
                key=k,
                dtype=dtype,
            )
            for t, k in enumerate(jax.random.split(message_key, int(rounds) - 1))
        )
        self.edge_net = eqx.nn.MLP(
            num_rbf + 2 * node,
            width + moments,
            width,
            depth=2,
            activation=_silu,
            key=edge_key,
            dtype=dtype,
        )
        axis_net = eqx.nn.MLP(
            width + num_species + moments,
            num_spline_params(num_bins) if out_size is None else out_size,
            width,
            depth=2,
            activation=_silu,
            key=axis_key,
            dtype=dtype,
        )
        last = axis_net.layers[-1]
        self.axis_net = eqx.tree_at(
            lambda net: (net.layers[-1].weight, net.layers[-1].bias),
            axis_net,
            (last.weight * init_scale, last.bias * init_scale),
        )
        self.num_species = int(num_species)
        self.cutoff = float(cutoff)
        self.num_bins = int(num_bins)
        self.width = int(width)
        self.channels = int(channels)
        self.num_rbf = int(num_rbf)
        self.angular = int(angular)
        self.rounds = int(rounds)

    def __call__(
        self,
        anchor: Float[Array, "n d"],
        species: Int[Array, " n"],
        neighbours: Int[Array, "n m"],
        box: Float[Array, " d"],
    ) -> Float[Array, "n d p"]:
        """Raw spline parameters `(N, d, 3K + 1)` (see `circular_spline`)."""
        plus, minus = self.axis_pair(anchor, species, neighbours, box)
        return _symmetrize(plus, minus, self.num_bins)

    def axis_pair(
        self,
        anchor: Float[Array, "n d"],
        species: Int[Array, " n"],
        neighbours: Int[Array, "n m"],
        box: Float[Array, " d"],
    ) -> tuple[Float[Array, "n d o"], Float[Array, "n d o"]]:
        """`G(h, s, v, m)` and `G(h, s, -v, m)` per particle and axis, before symmetrising."""
        dtype = anchor.dtype
        edge_net = cast_floating(self.edge_net, dtype)
        axis_net = cast_floating(self.axis_net, dtype)
        delta, r, real = _pair_geometry(anchor, neighbours, box)
        u = r / self.cutoff
        envelope = jnp.where(real & (u < 1), (1 - u * u) ** 3, 0)

        centres = jnp.linspace(0, self.cutoff, self.num_rbf, dtype=dtype)
        spread = self.cutoff / self.num_rbf
        rbf = jnp.exp(-0.5 * ((r[..., None] - centres[None, None, :]) / spread) ** 2)
        onehot = jax.nn.one_hot(species, self.num_species, dtype=dtype)
        listed = jnp.where(real, neighbours, 0)
        node = onehot
        for net in self.message_nets:
            messages = _edge_network(cast_floating(net, dtype), rbf, node, listed)
            node = jnp.concatenate([jnp.sum(messages * envelope[..., None], axis=1), onehot], -1)
        edges = _edge_network(edge_net, rbf, node, listed)
        edges = edges * envelope[..., None]
        w, c, p = self.width, self.channels, self.angular
        h = jnp.sum(edges[..., :w], axis=1)  # (n, w)
        scaled = delta / self.cutoff  # (n, m, d)
        odd, even = scaled[..., None], (scaled * scaled)[..., None]  # (n, m, d, p)
        if p > 1:
            powers = _angular_powers(delta, r, p)
            odd, even = odd * powers, even * powers
        moments = edges[..., w:].reshape((*edges.shape[:2], 2, p, c))
        n, d = anchor.shape
        v = jnp.einsum("nmpc,nmdp->ndpc", moments[:, :, 0], odd).reshape(n, d, p * c)
        second = jnp.einsum("nmpc,nmdp->ndpc", moments[:, :, 1], even).reshape(n, d, p * c)

        invariant = jnp.concatenate([h, onehot], axis=-1)[:, None, :]
        invariant = jnp.broadcast_to(invariant, (anchor.shape[0], d, invariant.shape[-1]))
        # G(v) and G(-v) in one batch of 2 N d rows.
        rows = jnp.concatenate(
            [
                jnp.concatenate([invariant, v, second], axis=-1),
                jnp.concatenate([invariant, -v, second], axis=-1),
            ]
        )
        both = _mlp_rows(axis_net, rows.reshape(-1, rows.shape[-1])).reshape(2, n, d, -1)
        return both[0], both[1]


def _angular_powers(
    delta: Float[Array, "n m d"], r: Float[Array, "n m"], orders: int
) -> Float[Array, "n m d p"]:
    """`c^(2p)` for `p = 0..orders-1`, `c = Delta_k / r` the cosine of each pair's angle with
    each axis: even in `Delta_k`, so the moments they weight keep their parity under a
    reflection of the axis (0 for padded pairs, whose `r` is 0).

    Built as a running product, not as `c2 ** p`: the gradient of `x ** 0` at `x = 0` is
    `0 * x ** -1`, NaN, and a pair lying exactly on an axis plane (`Delta_k = 0`) occurs in
    float32 data (2 % of the training steps of a 15-epoch IPL N = 10 run were lost to it)."""
    cos = delta / jnp.where(r > 0, r, 1)[..., None]
    c2 = cos * cos
    powers = [jnp.ones_like(c2)]
    for _ in range(1, orders):
        powers.append(powers[-1] * c2)
    return jnp.stack(powers, axis=-1)


def _mlp_rows(net: eqx.nn.MLP, rows: Float[Array, "r a"], start: int = 0) -> Float[Array, "r b"]:
    """`net` from layer `start` on, applied to every row of a matrix as plain matrix products
    (the layers' bias is always on: `eqx.nn.MLP` builds them so)."""
    for layer in net.layers[start:-1]:
        rows = net.activation(rows @ layer.weight.T + layer.bias[None, :])
    last = net.layers[-1]
    return rows @ last.weight.T + last.bias[None, :]


def _edge_network(
    net: eqx.nn.MLP,
    rbf: Float[Array, "n m r"],
    node: Float[Array, "n s"],
    neighbours: Int[Array, "n m"],
) -> Float[Array, "n m e"]:
    """`net([rbf_ij, node_i, node_j])` for every pair, with the first layer factorised: its
    node columns act once per particle (`N x H` products) and are broadcast to the pairs, so
    only the radial columns are multiplied per pair. The neighbours' node rows are gathered
    before their product (`node[j] @ W`, not `(node @ W)[j]`): for the species one-hot rows,
    which do not depend on the parameters, that keeps a scatter-add out of the backward pass
    (it took the edge network's parameter gradient from 8.8 to 3.8 ms on 2 cores)."""
    first = net.layers[0]
    n, m, r = rbf.shape
    s = node.shape[-1]
    own = node @ first.weight[:, r : r + s].T + first.bias[None, :]
    theirs = node[neighbours].reshape(n * m, s) @ first.weight[:, r + s :].T
    hidden = rbf.reshape(n * m, r) @ first.weight[:, :r].T + theirs
    hidden = net.activation(hidden.reshape(n, m, -1) + own[:, None, :]).reshape(n * m, -1)
    return _mlp_rows(net, hidden, start=1).reshape(n, m, -1)


def _symmetrize(
    plus: Float[Array, "n d p"], minus: Float[Array, "n d p"], k: int
) -> Float[Array, "n d p"]:
    """Combine `G(v)` and `G(-v)` so that `v -> -v` reflects the spline: width and height
    logits reversed, knot derivatives reversed about the knot at 0 (`b -> K - b mod K`),
    rotation negated."""
    widths = plus[..., :k] + jnp.flip(minus[..., :k], axis=-1)
    heights = plus[..., k : 2 * k] + jnp.flip(minus[..., k : 2 * k], axis=-1)
    derivatives = plus[..., 2 * k : 3 * k] + jnp.roll(
        jnp.flip(minus[..., 2 * k : 3 * k], axis=-1), 1, axis=-1
    )
    rotation = plus[..., 3 * k :] - minus[..., 3 * k :]
    return jnp.concatenate([widths, heights, derivatives, rotation], axis=-1)
