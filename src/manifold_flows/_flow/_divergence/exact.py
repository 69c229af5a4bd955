"""Exact divergence: the trace of the Jacobian from one linearisation and chunked JVPs."""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray, Shaped

from ..._backend import batching_defaults
from ..._manifold import AbstractManifold
from .base import AbstractDivergence, PointField, is_flat_embedded


class ExactDivergence(AbstractDivergence):
    """The exact Riemannian divergence, without materialising the Jacobian.

    The field is linearised once at `x` (`jax.linearize`: one forward pass, whose residuals
    are kept), then the linear map `J` is applied to the `D = prod(point_shape)` ambient basis
    vectors `e_k` in chunks of `chunk_size` (`jax.lax.map` over chunks, `jax.vmap` inside a
    chunk), keeping only the diagonal entry of each result:

        div = sum_k [P(x) J e_k]_k = tr(P J),

    with `P` the tangent projector (the identity on flat spaces, where this is `tr J`). The
    cost is about `D` forward-mode passes; memory is that of `chunk_size` tangents at a time,
    so it stays bounded for large systems. On an embedded manifold (the sphere) the `D`
    ambient directions are used rather than `dim` intrinsic ones: one or a few more JVPs per
    particle, but no tangent frame is needed.

    **Arguments:**

    - `chunk_size`: number of basis vectors pushed through `J` at once (`None`: the
      backend's default, `batching_defaults().divergence_chunk`: 16 on a CPU, 128 on an
      accelerator). Larger chunks are not faster on CPU once the batched tangents fall out
      of cache: for the torus EGNN at N = 44, chunks of 8 to 16 run about twice as fast as
      one batch of all 88 (`python benchmarks/run.py --only divergence`); an accelerator
      wants them all at once. Pass `chunk_size=D` for a single batch.
    """

    chunk_size: int | None = eqx.field(static=True)

    def __init__(self, chunk_size: int | None = None):
        if chunk_size is not None and (int(chunk_size) != chunk_size or chunk_size < 1):
            raise ValueError(
                f"ExactDivergence(chunk_size=...) must be a positive integer or None; got "
                f"{chunk_size!r}."
            )
        self.chunk_size = None if chunk_size is None else int(chunk_size)

    def effective_chunk_size(self, size: int) -> int:
        """The number of basis vectors per chunk for a point of `size` coordinates."""
        chunk = batching_defaults().divergence_chunk if self.chunk_size is None else self.chunk_size
        return size if chunk is None else min(chunk, size)

    def init_probe(
        self, key: PRNGKeyArray | None, space: AbstractManifold, x: Shaped[Array, "..."]
    ) -> None:
        return None

    def __call__(
        self,
        fn: PointField,
        x: Shaped[Array, "..."],
        probe: None,
        space: AbstractManifold,
    ) -> tuple[Shaped[Array, "..."], Float[Array, ""]]:
        v, jvp_fn = jax.linearize(fn, x)
        size = x.size
        flat = is_flat_embedded(space)
        on_manifold = x if flat else space.project(x)

        def diagonal_entry(k: Array) -> Array:
            basis = jnp.zeros(size, x.dtype).at[k].set(1).reshape(x.shape)
            column = jvp_fn(basis)
            if not flat:
                column = space.project_tangent(on_manifold, column)
            return column.reshape(-1)[k]

        index = jnp.arange(size)
        chunk = self.effective_chunk_size(size)
        if chunk >= size:
            diagonal = jax.vmap(diagonal_entry)(index)
        else:
            diagonal = jax.lax.map(diagonal_entry, index, batch_size=chunk)
        return v, jnp.sum(diagonal)
