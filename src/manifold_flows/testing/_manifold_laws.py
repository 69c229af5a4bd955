"""Checkers for the laws every `AbstractManifold` must satisfy.

Users check their own manifolds with the same laws as the built-in ones:

```python
import jax
from manifold_flows.testing import assert_manifold_laws

assert_manifold_laws(MyManifold(...), jax.random.key(0))
```
"""

import itertools
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from .._manifold import AbstractManifold, FlatTorus, ParticleSpace, Sphere
from ._law_result import LawResult, format_law, law_result
from ._sampling import default_max_norm, tangent_from_direction
from ._tolerances import tolerance

__all__ = ["MANIFOLD_LAWS", "assert_manifold_laws", "check_manifold_laws"]

#: Every manifold law, by name, with what it states. `check_manifold_laws` returns the subset
#: that applies to the manifold at hand.
MANIFOLD_LAWS: dict[str, str] = {
    "sample_on_manifold": "points drawn by random_uniform are fixed by project: project(x) == x",
    "project_idempotent": "project(project(a)) == project(a) for ambient arrays a",
    "exp_on_manifold": "exp lands on the manifold: project(exp(x, v)) == exp(x, v)",
    "exp_zero": "exp(x, 0) == x",
    "log_x_x_zero": "log(x, x) == 0",
    "log_is_tangent": "log(x, y) is tangent at x: project_tangent(x, log(x, y)) == log(x, y)",
    "log_exp_round_trip": "log(x, exp(x, v)) == v when norm(x, v) < injectivity_radius",
    "exp_log_round_trip": "exp(x, log(x, y)) == y when dist(x, y) < injectivity_radius",
    "dist_is_tangent_norm": "dist(x, exp(x, v)) == norm(x, v) when norm(x, v) < "
    "injectivity_radius (geodesics minimise)",
    "dist_symmetric": "dist(x, y) == dist(y, x)",
    "dist_nonnegative": "dist(x, y) >= 0 (and finite)",
    "triangle_inequality": "dist(x, z) <= dist(x, y) + dist(y, z)",
    "tangent_projection_idempotent": "project_tangent(x, project_tangent(x, a)) == "
    "project_tangent(x, a)",
    "uniform_log_prob": "uniform_log_prob(x) == -log_volume()",
    "in_fundamental_domain": "(torus) project and exp land in the box [0, L), also for inputs "
    "at the box edges and far outside it (error: number of coordinates outside)",
    "log_brute_force": "(torus) log(x, y) equals the shortest of the 3^d displacements to the "
    "periodic images of y",
    "uniform_moments": "(compact) sample means of test functions over random_uniform match "
    "their uniform expectations (error: largest |z-score|)",
    "volume_small_balls": "(compact, dim <= 3) the fraction of uniform pairs closer than r "
    "matches vol(B_r) / exp(log_volume()) (error: |z-score|)",
    "random_uniform_raises": "(infinite volume) random_uniform raises ValueError",
}

# ----------------------------------------------------------------------------- helpers


def _max_abs(a: Array) -> Array:
    return jnp.max(jnp.abs(a))


def _key_seed(key: PRNGKeyArray) -> list[int]:
    """The raw bits of a JAX PRNG key (new-style typed or legacy uint32), as a numpy seed."""
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    return [int(b) for b in np.asarray(key).ravel()]


def _torus_factor(manifold: AbstractManifold) -> FlatTorus | None:
    """The torus of a `FlatTorus` or of a (nested) `ParticleSpace` of one, else None."""
    while isinstance(manifold, ParticleSpace):
        manifold = manifold.manifold
    return manifold if isinstance(manifold, FlatTorus) else None


def _uniform_samples(manifold: AbstractManifold, key: PRNGKeyArray, num: int, dtype) -> Array:
    """`num` points drawn by `random_uniform` (one vmapped PRNG graph)."""
    keys = jax.random.split(key, num)
    return jax.vmap(lambda k: manifold.random_uniform(k, dtype=dtype))(keys)


def _brute_force_log(torus: FlatTorus, x: Float[Array, " d"], y: Float[Array, " d"]) -> Array:
    """The shortest displacement from `x` to a periodic image of `y` (x, y in the box)."""
    L = jnp.asarray(torus.lengths, dtype=x.dtype)
    shifts = np.array(list(itertools.product((-1, 0, 1), repeat=torus.dim)))
    candidates = (y - x)[None, :] + jnp.asarray(shifts, dtype=x.dtype) * L[None, :]
    return candidates[jnp.argmin(jnp.sum(candidates**2, axis=-1))]


def _outside_box(torus: FlatTorus, z: Array) -> Array:
    """How many coordinates of `z` (trailing axis: the torus axes) are not in [0, L)."""
    L = jnp.asarray(torus.lengths, dtype=z.dtype)[None, :]
    z = z.reshape(-1, torus.dim)
    bad = (z < 0) | (z >= L) | ~jnp.isfinite(z)
    return jnp.sum(bad).astype(z.dtype)


def _box_edge_cases(torus: FlatTorus, dtype) -> Array:
    """Ambient torus points at and around the box edges, and far outside the box."""
    L = np.asarray(torus.lengths, dtype=np.float64)
    finfo = np.finfo(dtype)
    offsets = [
        0.0,
        -float(finfo.tiny),
        -float(finfo.eps) * L / 4,
        -float(finfo.eps) * L,
        L,
        L * (1 - float(finfo.eps) / 4),
        -L,
        3 * L,
        -7 * L - float(finfo.eps),
        1e3 * L + 0.25,
    ]
    rows = [np.broadcast_to(np.asarray(o, dtype=np.float64), L.shape) for o in offsets]
    return jnp.asarray(np.stack(rows), dtype=dtype)


def _moment_statistics(manifold: AbstractManifold):
    """`(stat, expected)`: a map from a point to a vector of test-function values, and their
    exact means under the uniform distribution; `None` when unknown for this manifold."""
    if isinstance(manifold, FlatTorus):

        def stat(x):
            phase = 2 * jnp.pi * x / jnp.asarray(manifold.lengths, dtype=x.dtype)
            return jnp.concatenate(
                [jnp.cos(phase), jnp.sin(phase), jnp.cos(2 * phase), jnp.sin(2 * phase)]
            )

        return stat, np.zeros(4 * manifold.dim)
    if isinstance(manifold, Sphere):
        m = manifold.dim + 1

        def stat(x):
            return jnp.concatenate([x, x**2, x**4, x * jnp.roll(x, 1)])

        expected = np.concatenate(
            [np.zeros(m), np.full(m, 1 / m), np.full(m, 3 / (m * (m + 2))), np.zeros(m)]
        )
        return stat, expected
    if isinstance(manifold, ParticleSpace):
        inner = _moment_statistics(manifold.manifold)
        if inner is None:
            return None
        inner_stat, inner_expected = inner
        n = manifold.num_particles

        def stat(x):
            per_particle = jax.vmap(inner_stat)(x)  # (n, k)
            parts = [per_particle.reshape(-1)]
            if n > 1:
                # Independence of neighbouring particles: centred products have mean zero.
                centred = per_particle - jnp.asarray(inner_expected, dtype=x.dtype)[None, :]
                parts.append((centred * jnp.roll(centred, 1, axis=0)).reshape(-1))
            return jnp.concatenate(parts)

        expected = np.tile(inner_expected, n)
        if n > 1:
            expected = np.concatenate([expected, np.zeros(n * inner_expected.shape[0])])
        return stat, expected
    return None


def _z_scores(values: Array, expected: Array) -> Array:
    """|z| of the sample means of the columns of `values` against `expected`."""
    n = values.shape[0]
    mean = jnp.mean(values, axis=0)
    std = jnp.std(values, axis=0)
    dev = jnp.abs(mean - expected)
    se = std / math.sqrt(n)
    degenerate = jnp.where(dev == 0, jnp.zeros_like(dev), jnp.full_like(dev, jnp.inf))
    return jnp.where(se > 0, dev / jnp.where(se > 0, se, 1.0), degenerate)


def _ball_radius(manifold: AbstractManifold) -> tuple[float, float]:
    """`(r, p)`: a small radius and the chance that two uniform points are closer than it,
    `vol(B_r) / volume` with the Euclidean ball volume (exact on flat manifolds below the
    injectivity radius, accurate to O(r^2) relative on curved ones)."""
    d = manifold.dim
    volume = math.exp(float(manifold.log_volume()))
    unit_ball = math.pi ** (d / 2) / math.gamma(d / 2 + 1)
    r = (0.05 * volume / unit_ball) ** (1 / d)
    if math.isfinite(manifold.injectivity_radius):
        r = min(r, 0.075 * manifold.injectivity_radius)
    return r, unit_ball * r**d / volume


# ----------------------------------------------------------------------------- the laws


#: Sample size of the small-ball volume law (pairs: its square).
_BALL_SAMPLES = 768


# The law graph runs once on small arrays, so XLA's backend optimisations cost far more
# (compile time) than they save (run time).
@eqx.filter_jit(compiler_options={"xla_backend_optimization_level": 0})
def _law_errors(
    manifold: AbstractManifold,
    key: PRNGKeyArray,
    gauss: Array,
    unif: Array,
    num_samples: int,
    compact: bool,
    ball: tuple[Array, Array] | None,
) -> tuple[dict[str, Array], dict[str, Array]]:
    """Every law as an error scalar, plus the scales the tolerances are relative to.

    XLA compile time dominates the cost, so every map is called as few times as possible on
    concatenated batches, and the only PRNG call is `random_uniform` (the Gaussian `gauss`
    of shape `(7, n, *point_shape)` and uniform `unif` of shape `(2, n)` inputs come in).
    """
    M = manifold
    vm = jax.vmap
    dtype = gauss.dtype
    n = gauss.shape[1]
    cat = lambda *arrays: jnp.concatenate(arrays)
    parts = lambda a, k: [a[i * n : (i + 1) * n] for i in range(k)]

    if compact:
        drawn = _uniform_samples(M, key, 3 * n + num_samples, dtype)
        x, y, z = parts(drawn, 3)
        samples = drawn[3 * n :]
    else:
        x, y, z = parts(vm(M.project)(2.0 * gauss[:3].reshape(3 * n, *gauss.shape[2:])), 3)
    max_norm = default_max_norm(M)
    tangent = vm(lambda xi, di, ui: tangent_from_direction(M, xi, di, ui, max_norm))
    v, w = parts(tangent(cat(x, x), cat(gauss[3], gauss[4]), cat(unif[0], unif[1])), 2)
    ambient = x + 3.0 * jnp.maximum(1.0, _max_abs(x)) * gauss[5]
    torus = _torus_factor(M)
    big = x if torus is None else x + 25.0 * max(torus.lengths) * gauss[6]

    e, y_near, e_zero, e_big = parts(
        vm(M.exp)(cat(x, x, x, x), cat(v, w, jnp.zeros_like(x), big - x)), 4
    )
    log_xx, log_xy, log_xe, log_xyn = parts(vm(M.log)(cat(x, x, x, x), cat(x, y, e, y_near)), 4)
    back = vm(M.exp)(x, log_xyn)
    first, second = [x, y, y, x, x, y_near], [y, x, z, z, e, back]
    if compact and ball is not None:
        s = samples[: min(num_samples, _BALL_SAMPLES)]
        nb = s.shape[0]
        first.append(jnp.repeat(s, nb, axis=0))
        second.append(jnp.tile(s, (nb,) + (1,) * (s.ndim - 1)))
    dists = vm(M.dist)(cat(*first), cat(*second))
    d_xy, d_yx, d_yz, d_xz, d_xe, d_back = parts(dists, 6)
    proj_x, p, proj_e = parts(vm(M.project)(cat(x, ambient, e)), 3)
    tan_log, tan_amb = parts(vm(M.project_tangent)(cat(x, x), cat(log_xy, ambient)), 2)

    errors: dict[str, Array] = {}
    scales: dict[str, Array] = {
        "point": jnp.maximum(1.0, _max_abs(x)),
        "tangent": jnp.maximum(1.0, _max_abs(v)),
        "dist": jnp.maximum(1.0, jnp.max(d_xz)),
    }
    errors["sample_on_manifold"] = _max_abs(proj_x - x)
    errors["project_idempotent"] = _max_abs(vm(M.project)(p) - p)
    errors["exp_on_manifold"] = _max_abs(proj_e - e)
    errors["exp_zero"] = _max_abs(e_zero - x)
    errors["log_x_x_zero"] = _max_abs(log_xx)
    errors["log_is_tangent"] = _max_abs(tan_log - log_xy)
    errors["log_exp_round_trip"] = _max_abs(log_xe - v)
    errors["exp_log_round_trip"] = jnp.max(d_back)
    errors["dist_is_tangent_norm"] = jnp.max(jnp.abs(d_xe - vm(M.norm)(x, v)))
    errors["dist_symmetric"] = jnp.max(jnp.abs(d_xy - d_yx))
    errors["dist_nonnegative"] = jnp.maximum(0.0, -jnp.min(cat(d_xy, d_yx)))
    errors["triangle_inequality"] = jnp.maximum(0.0, jnp.max(d_xz - d_xy - d_yz))
    errors["tangent_projection_idempotent"] = _max_abs(vm(M.project_tangent)(x, tan_amb) - tan_amb)
    log_prob = vm(M.uniform_log_prob)(x)
    expected = -jnp.asarray(M.log_volume(), dtype=dtype)
    # Equal infinities (infinite volume) count as agreement.
    errors["uniform_log_prob"] = jnp.max(
        jnp.where(log_prob == expected, jnp.zeros_like(log_prob), jnp.abs(log_prob - expected))
    )

    if torus is not None:
        edges = _box_edge_cases(torus, dtype)
        errors["in_fundamental_domain"] = (
            _outside_box(torus, e)
            + _outside_box(torus, p)
            + _outside_box(torus, e_big)
            + _outside_box(torus, vm(torus.project)(edges))
        )
        flat = lambda a: a.reshape(-1, torus.dim)
        brute = vm(lambda a, b: _brute_force_log(torus, a, b))(flat(x), flat(y))
        errors["log_brute_force"] = _max_abs(flat(log_xy) - brute)

    if compact:
        moments = _moment_statistics(M)
        if moments is not None:
            stat, mean = moments
            errors["uniform_moments"] = jnp.max(
                _z_scores(vm(stat)(samples), jnp.asarray(mean, dtype=dtype))
            )
        if ball is not None:
            r, prob = (jnp.asarray(b, dtype=dtype) for b in ball)
            close = (dists[6 * n :] < r).reshape(nb, nb)
            close = (close & ~jnp.eye(nb, dtype=bool)).astype(dtype)
            pairs = nb * (nb - 1)
            frac = jnp.sum(close) / pairs
            rows = jnp.sum(close, axis=1) / (nb - 1)
            # Variance of the U-statistic `frac`: 4 Var(h1) / n + 2 p (1 - p) / (n (n - 1)),
            # with h1(x) = P(dist(x, Y) < r). Var(h1) is the variance of the row means minus
            # their binomial noise (zero on homogeneous spaces such as tori and spheres).
            pair_var = frac * (1 - frac)
            var_h1 = jnp.maximum(jnp.var(rows) - pair_var / (nb - 1), 0.0)
            var = 4 * var_h1 / nb + 2 * pair_var / pairs
            # Never below the pair term at the expected rate (guards against frac = 0).
            var = jnp.maximum(var, 2 * prob * (1 - prob) / pairs)
            errors["volume_small_balls"] = jnp.abs(frac - prob) / jnp.sqrt(var)
    return errors, scales


#: Which scale each law's tolerance is relative to (`atol + rtol * scale`).
_SCALE_OF = {
    "log_exp_round_trip": "tangent",
    "dist_is_tangent_norm": "tangent",
    "log_x_x_zero": "tangent",
    "log_is_tangent": "dist",
    "dist_symmetric": "dist",
    "dist_nonnegative": "dist",
    "triangle_inequality": "dist",
    "tangent_projection_idempotent": "point",
}
_STATISTICAL = ("uniform_moments", "volume_small_balls")
_COUNTING = ("in_fundamental_domain",)


def check_manifold_laws(
    manifold: AbstractManifold,
    key: PRNGKeyArray,
    *,
    num_points: int = 32,
    num_samples: int = 2048,
    dtype=None,
    rtol: float | None = None,
    atol: float | None = None,
    z_threshold: float = 6.0,
) -> dict[str, LawResult]:
    """Check the laws of `AbstractManifold` (see `MANIFOLD_LAWS`) on random points.

    Points are drawn by `random_uniform` on compact manifolds and as projected Gaussians
    otherwise; tangent vectors by projecting Gaussians onto the tangent space and rescaling
    to norms below `0.9 * injectivity_radius` (round trips are checked away from the cut
    locus), with many tiny norms among them. Everything runs in one `jit`-compiled function,
    on JAX's default device.

    Laws (entries of the returned dict) that apply to every manifold: `sample_on_manifold`,
    `project_idempotent`, `exp_on_manifold`, `exp_zero`, `log_x_x_zero`, `log_is_tangent`,
    `log_exp_round_trip`, `exp_log_round_trip`, `dist_is_tangent_norm`, `dist_symmetric`,
    `dist_nonnegative`, `triangle_inequality`, `tangent_projection_idempotent`,
    `uniform_log_prob`. Further laws apply where they make sense:

    - `FlatTorus` (also as the factor of a `ParticleSpace`): `in_fundamental_domain`
      (including box-edge and far-away inputs) and `log_brute_force` (log equals the minimum
      over the 3^d neighbouring periodic images);
    - compact manifolds: `uniform_moments` (Monte Carlo test that `random_uniform` is uniform,
      for `FlatTorus`, `Sphere` and particle spaces of them, including independence of
      neighbouring particles) and, for `dim <= 3`, `volume_small_balls` (the chance that two
      uniform points are closer than a small `r` equals `vol(B_r) / exp(log_volume())`, which
      ties `log_volume`, `dist` and `random_uniform` together);
    - infinite volume: `random_uniform_raises`.

    **Arguments:**

    - `manifold`: the manifold to check.
    - `key`: a JAX PRNG key.
    - `num_points`: how many random points (and tangent vectors) each law is checked on.
    - `num_samples`: sample size of the Monte Carlo laws.
    - `dtype`: floating dtype of the points (default: JAX's default float dtype). float64
      needs `jax.config.update("jax_enable_x64", True)`.
    - `rtol`, `atol`: tolerances (default `manifold_flows.testing.tolerance(dtype)`); a
      deterministic law passes when its error is at most `atol + rtol * scale`, with `scale`
      the size of the compared quantity (at least 1).
    - `z_threshold`: the largest |z-score| the Monte Carlo laws accept.

    **Returns:**

    A dict from law name to `LawResult(name, passed, error, tolerance)`.
    """
    if not isinstance(manifold, AbstractManifold):
        raise TypeError(
            f"check_manifold_laws needs an AbstractManifold; got {type(manifold).__name__}."
        )
    if isinstance(num_points, bool) or not isinstance(num_points, int) or num_points < 2:
        raise ValueError(f"num_points must be an integer >= 2; got {num_points!r}.")
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 16:
        raise ValueError(f"num_samples must be an integer >= 16; got {num_samples!r}.")
    dtype = jnp.dtype(jnp.result_type(float) if dtype is None else dtype)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"check_manifold_laws needs a floating dtype; got dtype={dtype}.")
    if dtype.itemsize > jnp.dtype(jnp.result_type(float)).itemsize:
        raise ValueError(
            f"check_manifold_laws(dtype={dtype}) needs 64-bit JAX: call "
            'jax.config.update("jax_enable_x64", True) first (or use jax.enable_x64(True)).'
        )
    default_rtol, default_atol = tolerance(dtype)
    rtol = default_rtol if rtol is None else float(rtol)
    atol = default_atol if atol is None else float(atol)

    log_volume = float(manifold.log_volume())
    compact = math.isfinite(log_volume)
    ball = None
    if compact and manifold.dim <= 3:
        # Arrays, not python floats: a different radius must not trigger a recompilation.
        ball = tuple(jnp.asarray(b, dtype=dtype) for b in _ball_radius(manifold))
    law_key, raise_key = jax.random.split(key)
    # The inputs that are not points come from numpy (PRNG graphs are slow to compile),
    # seeded by the key so that results are reproducible.
    rng = np.random.default_rng(_key_seed(key))
    shape = manifold.point_shape
    gauss = jnp.asarray(rng.standard_normal((7, num_points, *shape)), dtype=dtype)
    unif = jnp.asarray(rng.uniform(size=(2, num_points)), dtype=dtype)
    errors, scales = _law_errors(manifold, law_key, gauss, unif, num_samples, compact, ball)
    results: dict[str, LawResult] = {}
    for name, error in errors.items():
        if name in _STATISTICAL:
            tol = z_threshold
        elif name in _COUNTING:
            tol = 0.0
        elif name == "uniform_log_prob":
            tol = atol + rtol * max(1.0, abs(log_volume) if compact else 1.0)
        else:
            tol = atol + rtol * float(scales[_SCALE_OF.get(name, "point")])
        results[name] = law_result(name, error, tol)
    if not compact:
        try:
            manifold.random_uniform(raise_key, dtype=dtype)
        except ValueError:
            raised = 0.0
        else:
            raised = 1.0
        results["random_uniform_raises"] = law_result("random_uniform_raises", raised, 0.0)
    return results


def assert_manifold_laws(
    manifold: AbstractManifold, key: PRNGKeyArray, **kwargs
) -> dict[str, LawResult]:
    """Run `check_manifold_laws(manifold, key, **kwargs)`; raise `AssertionError` naming every
    failed law with its error and tolerance.

    **Returns:**

    The results (all passed) when no law fails.
    """
    results = check_manifold_laws(manifold, key, **kwargs)
    failed = [r for r in results.values() if not r.passed]
    if failed:
        lines = "\n".join(f"  {format_law(r)}  [{MANIFOLD_LAWS[r.name]}]" for r in failed)
        raise AssertionError(f"{manifold} breaks {len(failed)} manifold law(s):\n{lines}")
    return results
