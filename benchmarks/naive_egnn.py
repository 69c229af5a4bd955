"""A straightforward reference implementation of the torus EGNN, for the speed comparison.

Same mathematics and the same parameters as `manifold_flows.TorusEGNN` (it reads the weights of
a built field), written the way the network is usually written: the edge input
`concat(h_i, h_j, r_ij, a_ij)` is materialised as an `(n, n, 2H + 2)` array and multiplied by
the unfactorised `(2H + 2) x H` weight, every edge MLP is applied layer by layer through
`eqx.nn.Linear` vmapped over the edges, and the gated messages are materialised.
The benchmark suite (`benchmarks/run.py`) compares its outputs with the library's.

`NaiveTorusEGNN` wraps it as a vector field and `JacfwdTraceDivergence` is the naive exact
divergence (the trace of the materialised Jacobian), so a naive sample is the library's ODE
solve with both naive parts swapped in.
"""

import jax
import jax.numpy as jnp

from manifold_flows import AbstractDivergence, AbstractVectorField, TorusEGNN


def _edge_map(fn, z):
    # Apply a function of one edge feature vector to every edge of an (n, n, k) array.
    return jax.vmap(jax.vmap(fn))(z)


def naive_torus_egnn(field: TorusEGNN, t, x, species):
    """Evaluate `field(t, x, species)` the naive way. One configuration; vmap to batch.

    The output is `log_x(x_final)` computed from the wrapped final positions, as usually
    written; it agrees with the library to about `eps * L`.
    """
    core = field.core
    L = field.torus.box(x.dtype)[None]  # (1, d)
    n = x.shape[0]

    def min_image(y):
        d = y[:, None, :] - y[None, :, :]
        return d - L[None] * jnp.round(d / L[None])

    onehot = jax.nn.one_hot(species, core.num_species, dtype=x.dtype)
    node_in = jnp.concatenate([jnp.full((n, 1), t, dtype=x.dtype), onehot], axis=-1)
    h = jax.vmap(core.embedding)(node_in)
    mask = 1 - jnp.eye(n, dtype=x.dtype)
    a = jnp.sum(min_image(x) ** 2, axis=-1)
    y = x
    for layer in core.layers:
        delta = min_image(y)
        r = jnp.sum(delta**2, axis=-1)
        edge_in = jnp.concatenate(
            [
                jnp.broadcast_to(h[:, None, :], (n, n, h.shape[-1])),
                jnp.broadcast_to(h[None, :, :], (n, n, h.shape[-1])),
                r[..., None],
                a[..., None],
            ],
            axis=-1,
        )
        m = jax.nn.silu(_edge_map(layer.edge1, edge_in))
        m = jax.nn.silu(_edge_map(layer.edge2, m))
        if layer.attention is not None:
            m = m * jax.nn.sigmoid(_edge_map(layer.attention, m))
        c = _edge_map(lambda e, lay=layer: lay.coord2 @ jax.nn.silu(lay.coord1(e)), m)[..., 0]
        if core.coord_scale is not None:
            c = core.coord_scale * jnp.tanh(c)
        dist = jnp.sqrt(r + jnp.eye(n, dtype=x.dtype)) * mask  # dodge sqrt(0) on the diagonal
        upd = jnp.sum((c * mask / (dist + 1))[..., None] * delta, axis=1)
        y = jnp.mod(y + upd, L)
        if layer.node1 is not None and layer.node2 is not None:
            msum = jnp.sum(m * mask[..., None], axis=1)
            node = jnp.concatenate([h, msum], axis=-1)
            h = h + jax.vmap(lambda u, lay=layer: lay.node2(jax.nn.silu(lay.node1(u))))(node)
    v = y - x
    return v - L * jnp.round(v / L)


class NaiveTorusEGNN(AbstractVectorField):
    """`naive_torus_egnn` as a vector field (the weights of a `TorusEGNN`), so that it drops
    into `ContinuousFlow` for the naive sampling benchmark."""

    field: TorusEGNN

    def __call__(self, t, x, args):
        return naive_torus_egnn(self.field, jnp.asarray(t, x.dtype), x, args)


class JacfwdTraceDivergence(AbstractDivergence):
    """The naive exact divergence: `trace(jax.jacfwd(fn)(x))`, the whole `(N d) x (N d)`
    Jacobian materialised at once (every basis tangent pushed through in one `vmap`). Flat
    spaces only (torus, Euclidean), where the divergence is the plain trace."""

    def init_probe(self, key, space, x):
        return None

    def __call__(self, fn, x, probe, space):
        size = x.size
        jacobian = jax.jacfwd(fn)(x).reshape(size, size)
        return fn(x), jnp.trace(jacobian)
