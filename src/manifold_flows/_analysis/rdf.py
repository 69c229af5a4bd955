"""Partial radial distribution functions g_ab(r) in a periodic box (any dimension)."""

import dataclasses
import math
from typing import Literal

import numpy as np
from jaxtyping import ArrayLike, Float, Int, Real

from ._weights import log_weights_of, normalized_weights, require_some_weight
from .reweight import LogWeights

Normalization = Literal["ideal_gas", "number_density"]
_NORMALIZATIONS = ("ideal_gas", "number_density")
#: Pair distances (or count-table entries) handled at once: bounds memory (~ a hundred MB)
#: whatever R, n and the number of bins.
_PAIRS_PER_CHUNK = 1 << 21


@dataclasses.dataclass(frozen=True)
class RadialDistribution:
    """Partial radial distribution functions `g_ab(r)` on a grid of `r`.

    **Fields:**

    - `r`: bin centres, shape `(num_bins,)`.
    - `edges`: bin edges from 0 to `r_max`, shape `(num_bins + 1,)`.
    - `pairs`: the species pairs `(a, b)`, `a <= b`, one per row of `g` (pairs with no two
      distinct particles, e.g. `(a, a)` for a species with one particle, are left out).
    - `g`: raw `g_ab(r)`, every configuration counting once, shape `(num_pairs, num_bins)`.
    - `g_reweighted`: the same with importance weights, or `None`.
    - `normalization`: `"ideal_gas"` or `"number_density"` (see `radial_distribution`).
    - `counts`: number of particles of each species, shape `(num_species,)`.
    - `box`: the box lengths; `num_samples`: configurations used.
    """

    r: np.ndarray
    edges: np.ndarray
    pairs: tuple[tuple[int, int], ...]
    g: np.ndarray
    g_reweighted: np.ndarray | None
    normalization: str
    counts: np.ndarray
    box: np.ndarray
    num_samples: int

    def pair(self, a: int, b: int, *, reweighted: bool = False) -> np.ndarray:
        """`g_ab(r)` (symmetric in `a`, `b`); `reweighted=True` for the weighted one."""
        key = (min(a, b), max(a, b))
        if key not in self.pairs:
            raise ValueError(f"no pair {key} in this result; available pairs: {self.pairs}.")
        table = self.g_reweighted if reweighted else self.g
        if table is None:
            raise ValueError("no reweighted g(r): call radial_distribution with log_weights.")
        return table[self.pairs.index(key)]


def ball_volume(radius: Real[ArrayLike, "..."], dim: int) -> np.ndarray:
    """Volume of the `dim`-dimensional ball of radius `radius`:
    `pi^(d/2) r^d / Gamma(d/2 + 1)` (length `2r` in 1D, area `pi r^2` in 2D)."""
    coef = math.pi ** (dim / 2) / math.gamma(dim / 2 + 1)
    return coef * np.asarray(radius, dtype=np.float64) ** dim


def _pair_counts(
    positions: Float[np.ndarray, "c n d"],
    box: Float[np.ndarray, " d"],
    first: Int[np.ndarray, " p"],
    second: Int[np.ndarray, " p"],
    pair_type: Int[np.ndarray, " p"],
    r_max: float,
    num_bins: int,
    num_pair_types: int,
) -> Int[np.ndarray, "c slots"]:
    """Pair counts of each configuration, exact integers; column `type * num_bins + bin`
    counts the pairs of type `type` whose distance falls in bin `bin` of `[0, r_max)`.

    The minimum-image distances are taken in float64 whatever the dtype of the input (float32
    coordinates are exact in float64), so the counts do not depend on the caller's precision
    or backend."""
    x = positions.astype(np.float64)
    delta = x[:, second] - x[:, first]
    delta -= box * np.round(delta / box)  # minimum image, rectangular box
    dist = np.sqrt(np.einsum("cpd,cpd->cp", delta, delta))
    inside = dist < r_max
    bins = np.minimum(np.floor(dist[inside] / (r_max / num_bins)).astype(np.int64), num_bins - 1)
    config = np.nonzero(inside)[0]
    slot = (config * num_pair_types + np.broadcast_to(pair_type, dist.shape)[inside]) * num_bins
    size = num_pair_types * num_bins
    counts = np.bincount(slot + bins, minlength=x.shape[0] * size)
    return counts.reshape(x.shape[0], size)


def radial_distribution(
    positions: Float[ArrayLike, "r n d"],
    species: Int[ArrayLike, " n"],
    box: Real[ArrayLike, " d"],
    *,
    num_bins: int = 100,
    r_max: float | int | None = None,
    log_weights: LogWeights | None = None,
    normalization: Normalization = "ideal_gas",
    num_species: int | None = None,
) -> RadialDistribution:
    """Partial radial distribution functions `g_ab(r)` of configurations in a periodic box.

    Distances are minimum-image distances in the rectangular box (`delta - L round(delta / L)`
    per axis), histogrammed on `num_bins` equal bins of `[0, r_max)`, with `r_max <= min(L) / 2`
    so that every shell lies inside the box's inscribed ball and is counted completely. The
    shell volume in `d` dimensions is `V_d(r_hi) - V_d(r_lo)` with `V_d` the ball volume.

    Normalisation (stated in the result's `normalization` field):

    - `"ideal_gas"` (default): `g_ab(r) = <n_ab(r)> / (P_ab * shell(r) / V)` where `n_ab(r)` is
      the number of **distinct** `a`-`b` pairs in the shell and `P_ab` the number of such pairs
      (`N_a N_b` for `a != b`, `N_a (N_a - 1) / 2` for `a == b`). Uniform random points (an ideal
      gas of the same composition) give exactly `g_ab = 1` for every pair, at any N.
    - `"number_density"` (the textbook one): `g_ab(r) = V <sum_{i in a} sum_{j in b, j != i}
      delta(r - r_ij)> / (N_a N_b shell(r))`; the ideal gas gives 1 for `a != b` and
      `(N_a - 1) / N_a` for `a == b`, a finite-size offset that is large for small N
      (0.8 for five particles). It equals `"ideal_gas"` times `(N_a - 1) / N_a` on the diagonal.

    Raw `g` counts every configuration once; with `log_weights`, `g_reweighted` averages the
    per-configuration histograms with the self-normalised importance weights (weight 0 for
    non-finite log weights). The work runs on the host in NumPy, in float64 whatever the dtype
    of `positions` or JAX's precision mode: distances in float64, pair counts as integers,
    their weighted sums in float64 (over chunks of at most ~2 million pair distances).

    **Arguments:**

    - `positions`: configurations, shape `(R, n, d)` (wrapped or not: only differences matter).
    - `species`: integer species label of each particle, shape `(n,)`, labels `>= 0`.
    - `box`: box lengths, shape `(d,)`.
    - `num_bins`: number of bins.
    - `r_max`: upper end of the grid; default and maximum `min(box) / 2`.
    - `log_weights`: log importance weights `(R,)` or a `ReweightResult`; `None` for raw only.
    - `normalization`: `"ideal_gas"` or `"number_density"`, as above.
    - `num_species`: number of species (default: largest label + 1).

    **Returns:**

    A `RadialDistribution`.
    """
    pos = np.asarray(positions)
    if pos.ndim != 3 or not np.issubdtype(pos.dtype, np.floating):
        raise ValueError(
            f"`positions` must be a float array of shape (num_samples, n, d); got shape "
            f"{pos.shape}, dtype {pos.dtype}. Stack configurations along axis 0."
        )
    num, n, dim = pos.shape
    spec = np.asarray(species)
    if spec.shape != (n,) or not np.issubdtype(spec.dtype, np.integer) or np.any(spec < 0):
        raise ValueError(
            f"`species` must hold one non-negative integer label per particle (n={n}); got "
            f"shape {spec.shape}, dtype {spec.dtype}."
        )
    lengths = np.asarray(box, dtype=np.float64).reshape(-1)
    if lengths.shape != (dim,) or not np.all(np.isfinite(lengths) & (lengths > 0)):
        raise ValueError(
            f"`box` must hold one positive length per axis (d={dim}); got {lengths.tolist()}."
        )
    if normalization not in _NORMALIZATIONS:
        raise ValueError(
            f"`normalization` must be one of {_NORMALIZATIONS}; got {normalization!r}."
        )
    if int(num_bins) < 1:
        raise ValueError(f"`num_bins` must be a positive integer; got {num_bins}.")
    num_bins = int(num_bins)
    half = 0.5 * float(lengths.min())
    r_max = half if r_max is None else float(r_max)
    if not (0.0 < r_max <= half * (1.0 + 1e-12)):
        raise ValueError(
            f"`r_max` must lie in (0, min(box)/2 = {half:.6g}]; got {r_max}. Beyond half the box "
            "the minimum-image shells are cut by the box and g(r) would be wrong."
        )
    if not np.all(np.isfinite(pos)):
        raise ValueError("`positions` has non-finite coordinates; remove those configurations.")
    nspec = int(spec.max()) + 1 if num_species is None else int(num_species)
    if nspec <= int(spec.max()):
        raise ValueError(
            f"`num_species`={num_species} is smaller than the largest label + 1 ({spec.max() + 1})."
        )
    counts = np.bincount(spec, minlength=nspec)

    pairs, pair_count = [], []
    for a in range(nspec):
        for b in range(a, nspec):
            total = counts[a] * (counts[a] - 1) // 2 if a == b else counts[a] * counts[b]
            if total > 0:
                pairs.append((a, b))
                pair_count.append(total)
    if not pairs:
        raise ValueError("no two particles: g(r) needs at least one pair.")
    pair_index = {p: k for k, p in enumerate(pairs)}
    first, second = np.triu_indices(n, k=1)
    sa, sb = spec[first], spec[second]
    ptype = np.array(
        [pair_index[(int(min(x, y)), int(max(x, y)))] for x, y in zip(sa, sb, strict=True)],
        dtype=np.int32,
    )

    rows = np.ones((2, num))
    with_weights = log_weights is not None
    if with_weights:
        log_w = log_weights_of(log_weights, num)
        require_some_weight(log_w)
        rows[1] = normalized_weights(log_w)
    rows[0] /= num

    # bounded by the pair distances and by the per-configuration count table of a chunk
    per_config = max(first.shape[0], len(pairs) * num_bins)
    chunk = max(1, min(num, _PAIRS_PER_CHUNK // per_config))
    total_counts = np.zeros((2, len(pairs) * num_bins))
    for start in range(0, num, chunk):
        stop = min(start + chunk, num)
        counts_c = _pair_counts(
            pos[start:stop], lengths, first, second, ptype, r_max, num_bins, len(pairs)
        )
        total_counts += rows[:, start:stop] @ counts_c
    total_counts = total_counts.reshape(2, len(pairs), num_bins)

    edges = np.linspace(0.0, r_max, num_bins + 1)
    shell = np.diff(ball_volume(edges, dim))
    volume = float(np.prod(lengths))
    norm = np.empty((len(pairs), 1))
    for k, (a, b) in enumerate(pairs):
        if normalization == "ideal_gas":
            norm[k] = pair_count[k]
        else:
            # V <ordered pairs (i in a, j in b, j != i) in the shell> / (N_a N_b shell); the
            # histogram holds unordered pairs, which are half the ordered ones when a == b.
            norm[k] = counts[a] * counts[b] / (2.0 if a == b else 1.0)
    g_all = total_counts / (norm[None] * shell[None, None, :] / volume)
    return RadialDistribution(
        r=0.5 * (edges[1:] + edges[:-1]),
        edges=edges,
        pairs=tuple(pairs),
        g=g_all[0],
        g_reweighted=g_all[1] if with_weights else None,
        normalization=normalization,
        counts=counts,
        box=lengths,
        num_samples=num,
    )
