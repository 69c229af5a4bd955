"""Thermodynamic integration: free-energy differences between temperatures from mean
energies, `beta_2 F_2 - beta_1 F_1 = integral_{beta_1}^{beta_2} <U> d beta`.

It follows from `d(beta F) / d beta = d(-log Z) / d beta = <U>_beta` (`k_B = 1`), and checks
the differences that `free_energy_difference` gets by reweighting: Monte Carlo runs at a path
of temperatures, each with its mean energy and an error taking the chains as units.
"""

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from jaxtyping import ArrayLike, Real
from scipy.integrate import simpson, trapezoid

from ._results import plain_dict
from ._weights import as_vector


@dataclasses.dataclass(frozen=True)
class ThermodynamicIntegration:
    """`beta_2 F_2 - beta_1 F_1 = integral_{beta_1}^{beta_2} <U> d beta` on a grid of inverse
    temperatures, from the mean energies measured there.

    **Fields:**

    - `betas`, `mean_energies`, `errors`: the grid and its data, as given (`beta_1 =
      betas[0]`, `beta_2 = betas[-1]`; the integral is signed).
    - `trapezoid`, `trapezoid_err`: the trapezoid rule and its statistical error.
    - `simpson`, `simpson_err`: composite Simpson (`scipy.integrate.simpson`: uneven spacing
      allowed; with an odd number of intervals the last one is integrated by the parabola
      through the last three points), or `None` with fewer than three points.
    - `value`, `error`: the estimate reported: Simpson when there are three points or more,
      else the trapezoid; and its statistical error.
    - `method`: `"simpson"` or `"trapezoid"`.
    - `discretisation_error`: `|simpson - trapezoid|`, about the trapezoid rule's own error
      and an upper estimate of Simpson's; `None` with two points.

    The statistical errors assume independent runs per temperature: both rules are linear in
    the energies, `sum_k c_k <U>_k`, so the error is `sqrt(sum_k c_k^2 sigma_k^2)`.
    Energies per particle give the difference per particle.
    """

    betas: np.ndarray
    mean_energies: np.ndarray
    errors: np.ndarray
    trapezoid: float
    trapezoid_err: float
    simpson: float | None
    simpson_err: float | None
    value: float
    error: float
    method: str
    discretisation_error: float | None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict (the grid as lists)."""
        return plain_dict(self)


def _grid_vector(values: Any, name: str, length: int | None = None) -> np.ndarray:
    out = as_vector(values, name)
    if length is not None and out.shape[0] != length:
        raise ValueError(
            f"`{name}` has {out.shape[0]} entries but `betas` has {length}; pass one value per "
            "inverse temperature, in the same order."
        )
    if not np.all(np.isfinite(out)):
        raise ValueError(
            f"`{name}` has non-finite entries ({out.tolist()}); every grid point needs a "
            "finite value. Rerun or drop the broken temperature."
        )
    return out


def thermodynamic_integration(
    betas: Real[ArrayLike, " k"] | Sequence[float],
    mean_energies: Real[ArrayLike, " k"] | Sequence[float],
    errors: Real[ArrayLike, " k"] | Sequence[float],
) -> ThermodynamicIntegration:
    """`beta_2 F_2 - beta_1 F_1 = integral_{beta_1}^{beta_2} <U> d beta` by quadrature of
    mean energies measured on a grid of inverse temperatures.

    Uses `d(beta F) / d beta = <U>_beta`. The trapezoid rule and (from three points) composite
    Simpson are both reported; their difference estimates the discretisation error. Place
    points densely where `<U>` changes fast (it changes fastest at low temperature, large
    `beta`, in most systems) and check that `discretisation_error` is well below `error`.

    **Arguments:**

    - `betas`: `1 / T` of each point, strictly increasing or strictly decreasing; the
      integral runs from `betas[0]` to `betas[-1]`.
    - `mean_energies`: `<U>` at each point (total, or per particle for the difference per
      particle).
    - `errors`: the standard error of each mean (from chains as independent units for Monte
      Carlo data, e.g. `energy_per_particle(..., chains=...).raw_err`), `>= 0`; the points
      must come from independent runs.

    **Returns:**

    A `ThermodynamicIntegration`.
    """
    b = _grid_vector(betas, "betas")
    if b.shape[0] < 2:
        raise ValueError("`betas` needs at least two inverse temperatures to integrate between.")
    u = _grid_vector(mean_energies, "mean_energies", length=b.shape[0])
    s = _grid_vector(errors, "errors", length=b.shape[0])
    if np.any(b <= 0):
        raise ValueError(f"`betas` must be positive (beta = 1 / T); got {b.tolist()}.")
    steps = np.diff(b)
    if not (np.all(steps > 0) or np.all(steps < 0)):
        raise ValueError(
            f"`betas` must be strictly increasing or strictly decreasing; got {b.tolist()}. "
            "Sort the grid (and the energies with it) and merge repeated temperatures."
        )
    if np.any(s < 0):
        raise ValueError(f"`errors` must be non-negative standard errors; got {s.tolist()}.")

    def rule(integrate) -> tuple[float, float]:
        # linear in the energies: the coefficients are the integrals of the unit vectors
        coefficients = np.array([integrate(unit, x=b) for unit in np.eye(b.shape[0])])
        return float(coefficients @ u), float(math.sqrt(np.sum((coefficients * s) ** 2)))

    trap, trap_err = rule(trapezoid)
    simp = simp_err = gap = None
    if b.shape[0] >= 3:
        simp, simp_err = rule(simpson)
        gap = abs(simp - trap)
    use_simpson = simp is not None
    return ThermodynamicIntegration(
        betas=b,
        mean_energies=u,
        errors=s,
        trapezoid=trap,
        trapezoid_err=trap_err,
        simpson=simp,
        simpson_err=simp_err,
        value=simp if use_simpson else trap,
        error=simp_err if use_simpson else trap_err,
        method="simpson" if use_simpson else "trapezoid",
        discretisation_error=gap,
    )


def power_law_quadrature(
    beta_0: float, beta_1: float, nodes: int, *, power: int = 6
) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights for `integral_{beta_0}^{beta_1} <U>_beta d beta` when `<U>` diverges
    like a power of `beta` at small `beta`: Gauss-Legendre in `s = beta^(1 / power)`.

    With a pair repulsion `r^-n` in `d` dimensions, `<U>_beta` grows like `beta^(d/n - 1)` as
    `beta -> 0` (close pairs get rarer only like `beta^(d/n)`), which a rule uniform in `beta`
    resolves badly near the ideal-gas end. In `s`, `d beta = power s^(power - 1) ds`, and with
    `power = n / d` (6 for `r^-12` in two dimensions; use the smallest such ratio of the
    system's pairs) the integrand `power s^(power-1) <U>(s^power)` stays finite, so
    Gauss-Legendre converges fast. Run independent Monte Carlo at each returned `beta` and form
    `weights @ mean_energies`; the statistical error is `sqrt(sum (weights * errors)^2)`.
    Rerunning with about half the nodes (independent runs) bounds the quadrature error.

    **Arguments:**

    - `beta_0`, `beta_1`: the ends, `0 <= beta_0 < beta_1` (`beta_0 = 0` is allowed: the nodes
      stay inside the interval).
    - `nodes`: Gauss-Legendre nodes, `>= 1`.
    - `power`: the substitution's exponent, `>= 1` (1 is plain Gauss-Legendre in `beta`).

    **Returns:**

    `(betas, weights)`, each of shape `(nodes,)`, betas increasing.
    """
    if not (math.isfinite(beta_0) and math.isfinite(beta_1) and 0 <= beta_0 < beta_1):
        raise ValueError(
            f"power_law_quadrature needs 0 <= beta_0 < beta_1; got beta_0 = {beta_0}, "
            f"beta_1 = {beta_1}. Pass the ideal-gas end first."
        )
    if int(nodes) != nodes or nodes < 1:
        raise ValueError(f"`nodes` must be a positive integer; got {nodes}.")
    if int(power) != power or power < 1:
        raise ValueError(
            f"`power` must be a positive integer (n / d of an r^-n pair); got {power}."
        )
    s_0, s_1 = beta_0 ** (1.0 / power), beta_1 ** (1.0 / power)
    t, c = np.polynomial.legendre.leggauss(int(nodes))
    s = 0.5 * (s_1 - s_0) * t + 0.5 * (s_1 + s_0)
    weights = 0.5 * (s_1 - s_0) * c * power * s ** (power - 1)
    return s**power, weights
