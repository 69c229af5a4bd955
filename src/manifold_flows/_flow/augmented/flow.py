"""A local augmented coupling flow on the particle space of a flat torus."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, Int, PRNGKeyArray, PyTree

from ..._manifold import FlatTorus, ParticleSpace
from ..._manifold.particles import check_species
from .._base_dist import UniformBase
from .base import AbstractAugmentedLikelihood
from .conditioner import LocalConditioner
from .learned_aux import LearnedAux
from .neighbours import AbstractNeighbourList, DenseNeighbourList
from .spline import circular_spline, circular_spline_inverse, wrap
from .wrapped_normal import _num_images, wrapped_normal_log_prob


def _couple(
    conditioner: LocalConditioner,
    neighbour_list: AbstractNeighbourList,
    target: Float[Array, "n d"],
    anchor: Float[Array, "n d"],
    species: Int[Array, " n"],
    box: Float[Array, "1 d"],
    lengths: tuple[float, ...],
    *,
    inverse: bool,
) -> tuple[Float[Array, "n d"], Float[Array, ""]]:
    """One coupling step: `target_i -> anchor_i + S_ik(target_i - anchor_i)` per axis `k`, the
    splines `S` set by `anchor` alone; returns the new target and `log |det d(new)/d(target)|`."""
    neighbours = neighbour_list(anchor, lengths, conditioner.cutoff)
    raw = conditioner(anchor, species, neighbours, box[0])
    spline = circular_spline_inverse if inverse else circular_spline
    relative = target - anchor
    moved, log_det = jax.vmap(jax.vmap(spline))(relative, raw, jnp.broadcast_to(box, target.shape))
    return wrap(anchor + moved, box), jnp.sum(log_det)


class AugmentedCouplingFlow(AbstractAugmentedLikelihood):
    """A local augmented coupling flow of particles on a flat torus (an
    `AbstractAugmentedLikelihood`: read its contract for what `log_q` means).

    Every particle `i` carries an auxiliary point `a_i` **on the torus** (it moves with the
    particles under translations, which a vector in R^d would not: see below). The model is a
    bijection of `(x, a)` in `(T^d)^N x (T^d)^N`, a stack of coupling pairs

        x_i <- a_i + S_ik(x_i - a_i)      splines set by the neighbourhood of i in a,
        a_i <- x_i + S'_ik(a_i - x_i)     splines set by the neighbourhood of i in x,

    each `S` a circular rational-quadratic spline with a rotation (`circular_spline`) acting on
    the relative coordinate of axis `k`, its parameters from a `LocalConditioner` that sees
    neighbours within `cutoff` under the minimum image. Each step is an exact bijection of the
    torus (the target's relative coordinate goes through a circle diffeomorphism; the anchor is
    unchanged) with a diagonal Jacobian block, so `log |det|` is the sum of the spline
    log-slopes, computed in the same pass, and the inverse runs the steps backwards.

    Base and auxiliary target: `z_x` uniform on the torus, and `z_a | z_x` (and `a | x`) the
    wrapped normal centred on the particle, `a_ik = x_ik + aux_scale * eps (mod L_k)`,

        log p_aux(a | x) = sum_{i,k} log sum_n N(delta_ik + n L_k; 0, aux_scale^2),

    `delta` the minimum-image `a - x`, with enough images `n` for float64. Both are normalised,
    so log q is (`normalized` is True). With `learned_aux`, the auxiliary target `p_aux(a | x)`
    is a `LearnedAux` instead (the base keeps the fixed wrapped normal): its centre and width
    follow each particle's neighbourhood and train with the flow, so that `log q~` scatters
    less over the auxiliaries.

    Exact symmetries of `log q(x, a)` (and of the aux-corrected `log q~`):

    - torus translations `(x, a) -> (x + c, a + c)`: the splines act on differences and the
      conditioners see only differences, so each step commutes with the shift; the base and
      `p_aux` are invariant. (This is why `a` lives on the torus: a shift-equivariant map of
      `x` set by shift-invariant data alone can only be a translation, with unit Jacobian; an
      anchor point that moves with `x` makes non-trivial, shift-equivariant splines possible.)
    - permutations of particles within a species, acting on `x` and `a` together: the
      conditioners are sums over neighbours with species as features.
    - the point group of the box (signed permutations of axes of equal length) acting about the
      origin: the conditioner's per-axis network is shared by the axes and symmetrised under
      reflection (`LocalConditioner`), and the wrapped normal is isotropic.

    Locality: each conditioner sees only pairs closer than `cutoff` (a smooth envelope), listed
    by `neighbour_list` (default `DenseNeighbourList`: all pairs, O(N^2), right for tens of
    particles; `CellNeighbourList` gives O(N) at fixed density).

    **Arguments:**

    - `space`: `ParticleSpace(FlatTorus(...), N)`.
    - `num_species`: the number of species labels (`args` is the species vector).
    - `num_layers`: coupling pairs (each updates x, then a).
    - `cutoff`: neighbour range (default and maximum: half the shortest box side).
    - `aux_scale`: width of the auxiliary wrapped normal (default: a quarter of the mean
      particle spacing `(V / N)^(1/d)`).
    - `num_bins`, `width`, `channels`, `num_rbf`, `angular`, `rounds`, `init_scale`: of each
      `LocalConditioner`.
    - `learned_aux`: learn the auxiliary target (`LearnedAux`, same width, channels and radial
      basis as the conditioners) instead of fixing it.
    - `neighbour_list`: an `AbstractNeighbourList` (default `DenseNeighbourList()`).
    - `dtype`: parameter dtype (default: JAX's default float).
    - `key`: PRNG key for the initialisation.
    """

    space: ParticleSpace
    base: UniformBase
    position_conditioners: tuple[LocalConditioner, ...]
    aux_conditioners: tuple[LocalConditioner, ...]
    neighbour_list: AbstractNeighbourList
    learned_aux: LearnedAux | None
    num_species: int = eqx.field(static=True)
    aux_scale: float = eqx.field(static=True)
    num_images: int = eqx.field(static=True)

    def __init__(
        self,
        space: ParticleSpace,
        num_species: int,
        *,
        num_layers: int = 4,
        cutoff: float | None = None,
        aux_scale: float | None = None,
        num_bins: int = 8,
        width: int = 32,
        channels: int = 8,
        num_rbf: int = 16,
        angular: int = 1,
        rounds: int = 1,
        init_scale: float = 0.01,
        learned_aux: bool = False,
        neighbour_list: AbstractNeighbourList | None = None,
        dtype=None,
        key: PRNGKeyArray,
    ):
        if not (isinstance(space, ParticleSpace) and isinstance(space.manifold, FlatTorus)):
            raise TypeError(
                "AugmentedCouplingFlow needs space=ParticleSpace(FlatTorus(...), N); got "
                f"{space!r}."
            )
        for name, value in (("num_species", num_species), ("num_layers", num_layers)):
            if isinstance(value, bool) or int(value) != value or value < 1:
                raise ValueError(
                    f"AugmentedCouplingFlow({name}=...) must be a positive integer; got {value!r}."
                )
        lengths = space.manifold.lengths
        half = 0.5 * min(lengths)
        cutoff = half if cutoff is None else float(cutoff)
        if not 0 < cutoff <= half:
            raise ValueError(
                f"AugmentedCouplingFlow: cutoff must lie in (0, L/2 = {half:g}] so that every "
                f"neighbour is seen once under the minimum image; got {cutoff!r}."
            )
        if aux_scale is None:
            spacing = (math.prod(lengths) / space.num_particles) ** (1 / len(lengths))
            aux_scale = 0.25 * spacing
        if not (math.isfinite(aux_scale) and aux_scale > 0):
            raise ValueError(
                f"AugmentedCouplingFlow(aux_scale=...) must be positive; got {aux_scale!r}."
            )
        neighbour_list = DenseNeighbourList() if neighbour_list is None else neighbour_list
        if not isinstance(neighbour_list, AbstractNeighbourList):
            raise TypeError(
                "AugmentedCouplingFlow(neighbour_list=...) must be an AbstractNeighbourList; got "
                f"{type(neighbour_list).__name__}."
            )

        def make(k):
            return LocalConditioner(
                num_species,
                cutoff,
                num_bins=num_bins,
                width=width,
                channels=channels,
                num_rbf=num_rbf,
                angular=angular,
                rounds=rounds,
                init_scale=init_scale,
                dtype=dtype,
                key=k,
            )

        keys = jax.random.split(key, 2 * num_layers)
        self.space = space
        self.base = UniformBase(space)
        self.position_conditioners = tuple(make(k) for k in keys[:num_layers])
        self.aux_conditioners = tuple(make(k) for k in keys[num_layers:])
        self.neighbour_list = neighbour_list
        # Its own key, folded from the flow's: the conditioners are initialised as without it.
        self.learned_aux = (
            LearnedAux(
                num_species,
                cutoff,
                scale=float(aux_scale),
                box=lengths,
                width=width,
                channels=channels,
                num_rbf=num_rbf,
                dtype=dtype,
                key=jax.random.fold_in(key, 1),
            )
            if learned_aux
            else None
        )
        self.num_species = int(num_species)
        self.aux_scale = float(aux_scale)
        self.num_images = _num_images(self.aux_scale, lengths)

    # ------------------------------------------------------------------ size transfer
    def resized(
        self, space: ParticleSpace, *, neighbour_list: AbstractNeighbourList | None = None
    ) -> "AugmentedCouplingFlow":
        """The same flow (the same trained conditioners, cutoff and `aux_scale`) on another
        particle space: more or fewer particles, another box of the same dimension.

        Every conditioner sees only the neighbours within `cutoff` of a particle, through
        minimum-image differences, so its parameters do not depend on N or on the box: a model
        trained at one size defines a flow at any size, and it is the same local model when the
        density and composition are the same (`aux_scale`, a length, is kept). The new box must
        hold the cutoff (at most half its shortest side). Which species labels occur is set by
        `args` when sampling, as always.

        **Arguments:**

        - `space`: `ParticleSpace(FlatTorus(...), N)` of the same dimension.
        - `neighbour_list`: for the new size (default: this flow's); a cell list
          (`CellNeighbourList`) keeps the cost O(N) in large boxes.

        **Returns:**

        An `AugmentedCouplingFlow` sharing this one's parameters.
        """
        if not (isinstance(space, ParticleSpace) and isinstance(space.manifold, FlatTorus)):
            raise TypeError(
                "AugmentedCouplingFlow.resized needs space=ParticleSpace(FlatTorus(...), N); got "
                f"{space!r}."
            )
        if space.manifold.dim != self.space.manifold.dim:
            raise ValueError(
                f"AugmentedCouplingFlow.resized: the flow is {self.space.manifold.dim}D but the "
                f"new space is {space.manifold.dim}D; resize within one dimension."
            )
        first = self.position_conditioners[0]
        half = 0.5 * min(space.manifold.lengths)
        if first.cutoff > half * (1 + 1e-12):
            raise ValueError(
                f"AugmentedCouplingFlow.resized: the new box {space.manifold.lengths} is too "
                f"small for the cutoff {first.cutoff:g} (at most half the shortest side, "
                f"{half:g}); use a box of side >= {2 * first.cutoff:g}."
            )
        fresh = AugmentedCouplingFlow(
            space,
            self.num_species,
            num_layers=len(self.position_conditioners),
            cutoff=min(first.cutoff, half),
            aux_scale=self.aux_scale,
            num_bins=first.num_bins,
            width=first.width,
            channels=first.channels,
            num_rbf=first.num_rbf,
            angular=first.angular,
            rounds=first.rounds,
            learned_aux=self.learned_aux is not None,
            neighbour_list=self.neighbour_list if neighbour_list is None else neighbour_list,
            dtype=self.dtype,
            key=jax.random.key(0),  # placeholders, replaced by this flow's parameters
        )
        return eqx.tree_at(
            lambda f: (f.position_conditioners, f.aux_conditioners, f.learned_aux),
            fresh,
            (self.position_conditioners, self.aux_conditioners, self.learned_aux),
            is_leaf=lambda node: node is None,
        )

    # ------------------------------------------------------------------ helpers
    @property
    def dtype(self):
        """The floating dtype of the parameters."""
        leaves = [p for p in jax.tree.leaves(self.position_conditioners) if eqx.is_array(p)]
        return leaves[0].dtype

    def _box(self, dtype) -> Float[Array, "1 d"]:
        return jnp.asarray(self.space.manifold.lengths, dtype=dtype)[None, :]

    def _species(self, args: PyTree) -> Int[Array, " n"]:
        return check_species(args, self.space.num_particles, self.num_species)

    def _points(self, value: ArrayLike, name: str) -> Float[Array, "n d"]:
        value = jnp.asarray(value)
        if value.shape != self.space.point_shape:
            raise ValueError(
                f"AugmentedCouplingFlow: `{name}` must have shape {self.space.point_shape} "
                f"(num_particles, dim); got {value.shape}."
            )
        return wrap(value, self._box(value.dtype))

    # ------------------------------------------------------------------ the bijection
    def forward(
        self, z_x: Float[ArrayLike, "n d"], z_a: Float[ArrayLike, "n d"], args: PyTree
    ) -> tuple[Float[Array, "n d"], Float[Array, "n d"], Float[Array, ""]]:
        """Map base variables to `(x, a)` and return `log |det d(x, a) / d(z_x, z_a)|`."""
        species = self._species(args)
        x, a = self._points(z_x, "z_x"), self._points(z_a, "z_a")
        box, lengths = self._box(x.dtype), self.space.manifold.lengths
        total = jnp.zeros((), x.dtype)
        for pos, aux in zip(self.position_conditioners, self.aux_conditioners, strict=True):
            x, ld = _couple(pos, self.neighbour_list, x, a, species, box, lengths, inverse=False)
            a, la = _couple(aux, self.neighbour_list, a, x, species, box, lengths, inverse=False)
            total = total + ld + la
        return x, a, total

    def inverse(
        self, x: Float[ArrayLike, "n d"], a: Float[ArrayLike, "n d"], args: PyTree
    ) -> tuple[Float[Array, "n d"], Float[Array, "n d"], Float[Array, ""]]:
        """Map `(x, a)` back to the base and return `log |det d(z_x, z_a) / d(x, a)|`."""
        species = self._species(args)
        x, a = self._points(x, "x"), self._points(a, "a")
        box, lengths = self._box(x.dtype), self.space.manifold.lengths
        total = jnp.zeros((), x.dtype)
        pairs = zip(self.position_conditioners, self.aux_conditioners, strict=True)
        for pos, aux in reversed(tuple(pairs)):
            a, la = _couple(aux, self.neighbour_list, a, x, species, box, lengths, inverse=True)
            x, ld = _couple(pos, self.neighbour_list, x, a, species, box, lengths, inverse=True)
            total = total + ld + la
        return x, a, total

    # ------------------------------------------------------------------ densities
    def _learned(self, x: Float[Array, "n d"], args: PyTree):
        """What the learned auxiliary target needs: species, neighbours of `x`, box."""
        species = self._species(args)
        neighbours = self.neighbour_list(
            x, self.space.manifold.lengths, self.learned_aux.conditioner.cutoff
        )
        return species, neighbours, self._box(x.dtype)[0]

    def aux_log_prob(
        self, a: Float[ArrayLike, "n d"], x: Float[ArrayLike, "n d"], args: PyTree
    ) -> Float[Array, ""]:
        """`log p_aux(a | x)`: the fixed wrapped normal of width `aux_scale` centred on the
        particles, or with `learned_aux` the `LearnedAux` density."""
        a, x = jnp.asarray(a), jnp.asarray(x)
        if self.learned_aux is not None:
            return self.learned_aux.log_prob(a, x, *self._learned(x, args))
        return self._base_aux_log_prob(a, x)

    def _base_aux_log_prob(self, a: Float[Array, "n d"], x: Float[Array, "n d"]):
        return wrapped_normal_log_prob(a - x, self.aux_scale, self._box(x.dtype), self.num_images)

    def permute_aux(self, a: Float[Array, "n d"], order: ArrayLike) -> Float[Array, "n d"]:
        # One auxiliary vector per particle: it moves with its particle.
        return jnp.asarray(a)[jnp.asarray(order)]

    def sample_aux(
        self, key: PRNGKeyArray, x: Float[ArrayLike, "n d"], args: PyTree
    ) -> Float[Array, "n d"]:
        x = jnp.asarray(x)
        if self.learned_aux is not None:
            return self.learned_aux.sample(key, x, *self._learned(x, args))
        return self.sample_base_aux(key, x, args)

    def sample_base_aux(
        self, key: PRNGKeyArray, z_x: Float[ArrayLike, "n d"], args: PyTree
    ) -> Float[Array, "n d"]:
        """`z_a | z_x` of the base: the wrapped normal of width `aux_scale` centred on `z_x`
        (the auxiliary target too, unless `learned_aux`)."""
        z_x = jnp.asarray(z_x)
        noise = jax.random.normal(key, z_x.shape, dtype=z_x.dtype)
        return wrap(z_x + self.aux_scale * noise, self._box(z_x.dtype))

    def base_log_prob(
        self, z_x: Float[ArrayLike, "n d"], z_a: Float[ArrayLike, "n d"], args: PyTree
    ) -> Float[Array, ""]:
        """The base log-density of `(z_x, z_a)`: uniform `z_x` on the torus, `z_a | z_x` the
        wrapped normal of `p_aux` (`forward` maps it to the flow's joint density)."""
        z_x = jnp.asarray(z_x)
        uniform = -jnp.asarray(self.space.log_volume(), dtype=z_x.dtype)
        return uniform + self._base_aux_log_prob(jnp.asarray(z_a), z_x)

    def sample_joint(
        self, key: PRNGKeyArray, args: PyTree
    ) -> tuple[Float[Array, "n d"], Float[Array, "n d"], Float[Array, ""]]:
        position_key, aux_key = jax.random.split(key)
        z_x = self.space.random_uniform(position_key, dtype=self.dtype)
        z_a = self.sample_base_aux(aux_key, z_x, args)
        x, a, log_det = self.forward(z_x, z_a, args)
        return x, a, self.base_log_prob(z_x, z_a, args) - log_det

    def log_prob_joint(
        self, x: Float[ArrayLike, "n d"], a: Float[ArrayLike, "n d"], args: PyTree
    ) -> Float[Array, ""]:
        z_x, z_a, log_det = self.inverse(x, a, args)
        return self.base_log_prob(z_x, z_a, args) + log_det
