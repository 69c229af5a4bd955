"""Importance reweighting of generated samples to the Boltzmann distribution."""

import dataclasses
import math
from typing import Any

import numpy as np
from jaxtyping import ArrayLike, Real
from scipy.special import logsumexp

from ._weights import as_positive_scalar, as_vector, normalized_weights
from .pareto import pareto_khat


@dataclasses.dataclass(frozen=True)
class ReweightResult:
    """Importance weights of `R` samples drawn from a model density `q`, for the Boltzmann
    target `p(x) = exp(-U(x) / T) / Z`.

    **Fields:**

    - `log_w`: `log w_i = -U_i / T - log q_i`, shape `(R,)`, exactly as computed (non-finite
      entries kept, so they can be inspected).
    - `weights`: self-normalised weights `softmax(log_w)`, shape `(R,)`, summing to one; a
      sample with non-finite `log_w` has weight exactly 0.
    - `num_samples`: `R`, every sample drawn, including those with non-finite `log_w`.
    - `num_nonfinite`: how many samples had NaN or infinite `log_w` (weight 0). They stay in
      `R`: a sampler that produces broken samples is charged for them in `ess_fraction`.
    - `ess`: Kish's effective sample size `1 / sum(weights^2)` (0 if no weight is finite).
    - `ess_fraction`: `ess / R`, in `[1/R, 1]` (1 for a perfect sampler; 0 if no weight is
      finite).
    - `max_weight`: the largest normalised weight.
    - `khat`, `khat_threshold`, `khat_status`, `khat_note`: the Pareto tail diagnostic of the
      weights (see `ParetoDiagnostic`): `khat < 0.5` fine, `0.5 .. 0.7` usable,
      `> 0.7` unreliable.
    - `log_z`: estimate of `log Z = log ∫ exp(-U / T) dx`, namely `log mean_i exp(log w_i)`
      (non-finite `log w_i` count as `w_i = 0`), or `None` when it is not identified.
    - `log_z_err`: its delta-method standard error,
      `sqrt((R / ess - 1) / (R - 1)) = std(w) / (sqrt(R) mean(w))`. It is a first-order error
      that trusts the ESS: meaningful only when `khat` is not `"bad"`. (`log_z` is also biased
      low by about `log_z_err^2 / 2`, Jensen's inequality.)
    - `log_z_note`: why `log_z` is `None`, or `""`.
    - `free_energy`, `free_energy_err`: `F = -T log Z` and `T * log_z_err`, or `None`.
    - `temperature`: `T`.
    - `base_normalized`: whether `log q` was a normalised log-density.
    """

    log_w: np.ndarray
    weights: np.ndarray
    num_samples: int
    num_nonfinite: int
    ess: float
    ess_fraction: float
    max_weight: float
    khat: float
    khat_threshold: float
    khat_status: str
    khat_note: str
    log_z: float | None
    log_z_err: float | None
    log_z_note: str
    free_energy: float | None
    free_energy_err: float | None
    temperature: float
    base_normalized: bool

    def as_dict(self) -> dict[str, Any]:
        """The scalar fields as a JSON-friendly dict (no per-sample arrays)."""
        out = {}
        for field in dataclasses.fields(self):
            if field.name in ("log_w", "weights"):
                continue
            out[field.name] = getattr(self, field.name)
        return out


#: Importance weights as accepted by the estimators: log weights `(R,)` (non-finite entries
#: mean weight 0) or the `ReweightResult` holding them.
LogWeights = ReweightResult | Real[ArrayLike, " r"]


def reweight(
    energy: Real[ArrayLike, " r"],
    log_q: Real[ArrayLike, " r"],
    temperature: float | int | Real[ArrayLike, ""],
    *,
    base_normalized: bool = True,
) -> ReweightResult:
    """Importance weights that turn samples of a model `q` into Boltzmann averages at `T`.

    `log w_i = -U_i / T - log q_i`; the self-normalised weights `w_i / sum_j w_j` give
    consistent estimates of any Boltzmann average (`estimators.summarize_observable`). A sample
    whose `log w` is NaN or infinite (broken energy, `log q = -inf`, ...) gets weight 0 and is
    counted in `num_nonfinite`; it is never dropped from `num_samples`. The weights are computed
    in float64 with a max-shifted softmax, so log weights spread over thousands of nats are fine.

    **Arguments:**

    - `energy`: total potential energy `U` of each sample, shape `(R,)` (total, not per
      particle: the package's convention).
    - `log_q`: log-density of each sample under the model, shape `(R,)`.
    - `temperature`: `T > 0` of the target, in the energy's units (`k_B = 1`).
    - `base_normalized`: whether `log_q` is a normalised log-density (true for a flow started
      from the uniform distribution on the torus). When it is not (e.g. a base distribution
      `exp(-U / T_base)` known only up to its partition function), the weights are still
      right, but `log_z` and the free energy are reported as `None` with the reason.

    **Returns:**

    A `ReweightResult`.
    """
    u = as_vector(energy, "energy")
    lq = as_vector(log_q, "log_q", length=u.shape[0])
    t = as_positive_scalar(temperature, "temperature")
    num = int(u.shape[0])
    with np.errstate(invalid="ignore", over="ignore"):
        log_w = -u / t - lq
    finite = np.isfinite(log_w)
    num_nonfinite = int(num - np.count_nonzero(finite))
    weights = normalized_weights(log_w)
    sum_sq = float(np.sum(weights**2))
    ess = 1.0 / sum_sq if sum_sq > 0 else 0.0
    tail = pareto_khat(log_w)

    log_z = log_z_err = free = free_err = None
    if not base_normalized:
        note = (
            "log q is not a normalised density (base_normalized=False): log w is known only up to "
            "an additive constant, so log Z and the free energy are not identified."
        )
    elif num_nonfinite == num:
        note = "every log weight is non-finite: no estimate of log Z exists."
    else:
        note = ""
        log_z = float(logsumexp(log_w[finite]) - math.log(num))
        log_z_err = math.sqrt(max(num / ess - 1.0, 0.0) / (num - 1)) if num > 1 else math.inf
        free = -t * log_z
        free_err = t * log_z_err
    return ReweightResult(
        log_w=log_w,
        weights=weights,
        num_samples=num,
        num_nonfinite=num_nonfinite,
        ess=float(ess),
        ess_fraction=float(ess / num),
        max_weight=float(np.max(weights)),
        khat=tail.khat,
        khat_threshold=tail.khat_threshold,
        khat_status=tail.status,
        khat_note=tail.note,
        log_z=log_z,
        log_z_err=log_z_err,
        log_z_note=note,
        free_energy=free,
        free_energy_err=free_err,
        temperature=t,
        base_normalized=bool(base_normalized),
    )
