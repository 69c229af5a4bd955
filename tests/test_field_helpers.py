"""Shared helpers for the vector-field tests (test_field_*.py)."""

import equinox as eqx
import jax
import jax.numpy as jnp


def lively(field, key, scale: float = 0.2):
    """Replace the tiny-initialised last coordinate layer of every EGNN layer by O(scale)
    weights, so the test field moves particles by O(1) (a freshly built field is close to the
    zero field, which would make every equivariance check trivially pass)."""
    layers = field.core.layers
    keys = jax.random.split(key, len(layers))
    new = tuple(
        eqx.tree_at(
            lambda lay: lay.coord2,
            lay,
            scale * jax.random.normal(k, lay.coord2.shape, lay.coord2.dtype),
        )
        for lay, k in zip(layers, keys, strict=True)
    )
    return eqx.tree_at(lambda f: f.core.layers, field, new)


def reference_egnn(field, t, x, species, *, periodic: bool, lengths=None):
    """A direct, edge-by-edge transcription of the EGNN of DESIGN.md section 2, reading the
    weights of `field` (a `TorusEGNN` or `EuclideanEGNN`). No factorisation, no fused products:
    every edge MLP is the plain `eqx.nn.Linear` applied to the concatenated edge input."""
    core = field.core
    n = x.shape[0]
    L = jnp.asarray(lengths, dtype=x.dtype) if periodic else None

    def disp(xi, xj):  # log_{x_j}(x_i)
        d = xi - xj
        return d - L * jnp.round(d / L) if periodic else d

    def pairwise(fn, *arrays):
        return jax.vmap(lambda i: jax.vmap(lambda j: fn(i, j, *arrays))(jnp.arange(n)))(
            jnp.arange(n)
        )

    node_in = jnp.concatenate(
        [
            jnp.full((n, 1), t, dtype=x.dtype),
            jax.nn.one_hot(species, core.num_species, dtype=x.dtype),
        ],
        axis=-1,
    )
    h = jax.vmap(core.embedding)(node_in)
    a = pairwise(lambda i, j, y: jnp.sum(disp(y[i], y[j]) ** 2), x)
    y = x
    total = jnp.zeros_like(x)
    for layer in core.layers:

        def message(i, j, y, h, layer=layer):
            d = disp(y[i], y[j])
            r = jnp.sum(d**2)
            e = jnp.concatenate([h[i], h[j], r[None], a[i, j][None]])
            m = jax.nn.silu(layer.edge2(jax.nn.silu(layer.edge1(e))))
            if layer.attention is not None:
                m = m * jax.nn.sigmoid(layer.attention(m))[0]
            c = (layer.coord2 @ jax.nn.silu(layer.coord1(m)))[0]
            if core.coord_scale is not None:
                c = core.coord_scale * jnp.tanh(c)
            # sqrt(r) is only taken off the diagonal; the diagonal is dropped below.
            step = d / (jnp.sqrt(jnp.where(i == j, 1.0, r)) + 1) * c
            keep = (i != j).astype(x.dtype)
            return keep * step, keep * m

        steps, msgs = pairwise(message, y, h)
        step = jnp.sum(steps, axis=1)
        total = total + step
        y = jnp.mod(y + step, L[None]) if periodic else y + step
        if layer.node1 is not None:
            node = jnp.concatenate([h, jnp.sum(msgs, axis=1)], axis=-1)
            h = h + jax.vmap(lambda u, lay=layer: lay.node2(jax.nn.silu(lay.node1(u))))(node)
    if periodic:
        return total - L[None] * jnp.round(total / L[None])
    return total - jnp.mean(total, axis=0, keepdims=True)
