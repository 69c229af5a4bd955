"""The equivariant velocity network of eRSI on the flat torus (DESIGN.md section 2)."""

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PRNGKeyArray

from .._manifold import FlatTorus
from .._manifold.particles import check_species
from ._egnn_core import EGNNCore, cast_floating
from ._options import check_common_options, coord_scale_from
from .base import AbstractVectorField


class TorusEGNN(AbstractVectorField):
    """E(n)-style equivariant graph network on the flat torus: the eRSI velocity field.

    Fully connected graph over the `n` particles of one configuration. Node input
    `[t, one_hot(species)]` is embedded linearly into `h_i` (width `H`). Each layer computes

    - `Delta_ij = log_{x_j}(x_i)` (minimum image), `r_ij = |Delta_ij|^2`;
    - `m_ij = phi_e(h_i, h_j, r_ij, a_ij)`, `a_ij` the squared distance at the **input**
      positions, optionally gated `m_ij <- m_ij * sigmoid(w . m_ij + b)`;
    - `x_i <- exp_{x_i}(sum_{j != i} Delta_ij / (sqrt(r_ij) + 1) * C tanh(phi_x(m_ij)))`;
    - `h_i <- h_i + phi_h(h_i, sum_{j != i} m_ij)`;

    with SiLU activations, and returns `v_i = log_{x_i}(x_i^final)`, a tangent vector at the
    input (computed as the minimum image of the summed steps, which is the same vector).
    The last layer has no `phi_h`: its node features would never be read.

    The field is equivariant under permutations of particles within a species, torus
    translations and the point group of the box (signed axis permutations, when the box is
    cubic), and periodic: `f(t, x + L k) == f(t, x)` for integer vectors `k`. Self-edges are
    masked, and the square root is guarded so that coincident particles give finite gradients.

    The output has the dtype of `x`; the parameters are cast to it on the fly (train in
    float32, evaluate likelihoods in float64 with the same weights). One configuration in;
    batch with `jax.vmap` or, faster on a CPU, `manifold_flows.evaluate_batch`.

    **Arguments:**

    - `torus`: the `FlatTorus` (box) the particles live in.
    - `num_species`: the number of species labels (`args` holds labels in `[0, num_species)`).
    - `width`: hidden width `H` (default 32).
    - `depth`: number of message-passing layers (default 3).
    - `attention`: gate the messages with a learned sigmoid (default `True`).
    - `tanh_bound`: bound each coordinate coefficient by `C tanh(.)`; `True` uses
      `C = 15 / depth`, a positive float sets `C`, `False` leaves `phi_x` unbounded.
    - `dtype`: parameter dtype (default: JAX's default float dtype).
    - `key`: PRNG key for the initialisation.
    """

    torus: FlatTorus
    core: EGNNCore

    def __init__(
        self,
        torus: FlatTorus,
        num_species: int,
        *,
        width: int = 32,
        depth: int = 3,
        attention: bool = True,
        tanh_bound: bool | float = True,
        dtype=None,
        key: PRNGKeyArray,
    ):
        if not isinstance(torus, FlatTorus):
            raise TypeError(
                f"TorusEGNN needs a FlatTorus for `torus`; got {type(torus).__name__}. Build one "
                "with FlatTorus(box_length, dim=2). For particles in R^d use EuclideanEGNN."
            )
        check_common_options("TorusEGNN", num_species=num_species, width=width, depth=depth)
        dtype = jnp.result_type(float) if dtype is None else dtype
        self.torus = torus
        self.core = EGNNCore(
            int(num_species),
            width=int(width),
            depth=int(depth),
            attention=bool(attention),
            coord_scale=coord_scale_from("TorusEGNN", tanh_bound, depth),
            dtype=dtype,
            key=key,
        )

    @property
    def num_species(self) -> int:
        return self.core.num_species

    def __call__(
        self, t: Float[Array, ""] | float, x: Float[Array, "n d"], args: Int[Array, " n"]
    ) -> Float[Array, "n d"]:
        if x.ndim != 2 or x.shape[-1] != self.torus.dim:
            raise ValueError(
                f"TorusEGNN expects one configuration x of shape (n, {self.torus.dim}); got "
                f"shape {x.shape}. Batch with jax.vmap."
            )
        species = check_species(args, x.shape[0], self.core.num_species)
        core = cast_floating(self.core, x.dtype)
        torus = self.torus

        def displacement(y: Array) -> Array:
            # delta[i, j] = log_{y_j}(y_i): minimum-image vector from particle j to particle i.
            return jax.vmap(lambda yi: jax.vmap(lambda yj: torus.log(yj, yi))(y))(y)

        def exp(y: Array, v: Array) -> Array:
            return jax.vmap(torus.exp)(y, v)

        total = core(jnp.asarray(t, dtype=x.dtype), x, species, displacement, exp)
        # v = log_x(exp_x(total)); on the flat torus this is the minimum image of `total`
        # (log_x(exp_x(D)) = log_0(D) by translation invariance), computed without the
        # cancellation of two box-sized coordinates.
        zero = jnp.zeros_like(x)
        return jax.vmap(torus.log)(zero, total)
