"""The exact-likelihood flow of a trained run."""

from typing import Any

from .._flow import AbstractLikelihood, BoxUniformBase, ContinuousFlow, UniformBase
from .._flow.augmented import AbstractAugmentedLikelihood
from .._manifold import FlatTorus, ParticleSpace
from .._train import TrainedRun
from .._train.state import cast_floating

#: Precisions accepted by the sampling entry points.
DTYPES = ("float32", "float64")


def flow_for_run(
    run: TrainedRun,
    *,
    solver: str = "dopri5",
    rtol: float = 1e-5,
    atol: float = 1e-5,
    num_steps: int | None = None,
    max_steps: int = 4096,
    dtype: str = "float64",
) -> AbstractLikelihood:
    """The continuous normalizing flow of a trained run, with an exact divergence: the
    field's closed form where it has one (`KernelField`: `FieldDivergence`), otherwise
    `ExactDivergence`.

    The base is the uniform distribution on the run's box for every particle (normalised):
    on the torus (`UniformBase`) for torus flows (eRSI, RSI), or on the box seen as a region
    of R^(n d) (`BoxUniformBase`) for Euclidean flows (eFM), whose log q is then the density
    of the unwrapped end point in R^(n d).

    **Arguments:**

    - `run`: a `TrainedRun` (`load_run`); its EMA field is used.
    - `solver`, `rtol`, `atol`, `num_steps`, `max_steps`: the ODE solver (see
      `ContinuousFlow`); `num_steps` switches to that many fixed steps.
    - `dtype`: `"float64"` (default: likelihoods for importance weights) or `"float32"`.

    **Returns:**

    A `ContinuousFlow` on `run.space`; for a run of the augmented coupling flow, the trained
    flow itself (EMA weights) in `dtype` (the solver arguments do not apply).
    """
    if not isinstance(run, TrainedRun):
        raise TypeError(f"flow_for_run needs a TrainedRun (load_run(dir)); got {type(run)}.")
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}; got {dtype!r}.")
    if is_coupling_flow(run):
        # One pass, no solver: the trained flow itself, in the sampling precision.
        return cast_floating(run.field, dtype)
    base = _base(run)
    return ContinuousFlow(
        run.space,
        run.field,
        base=base,
        divergence=None,  # the flow's default: closed form if the field has one, else exact
        solver=solver,
        rtol=rtol,
        atol=atol,
        num_steps=num_steps,
        max_steps=max_steps,
        dtype=dtype,
    )


def transferred_flow(
    run: TrainedRun, flow: AbstractLikelihood, box, species
) -> tuple[AbstractLikelihood, dict[str, Any]]:
    """Size transfer: the coupling flow of `run` (as `flow_for_run` returned it) on a system of
    the same density and composition with another number of particles.

    The conditioners are local (a cutoff, minimum-image differences), so the trained model
    defines the flow at any size (`AugmentedCouplingFlow.resized`); the neighbour list is the
    one the run's `[model] neighbours` setting gives at the new size (a cell list in a large
    box). Continuous flows do not transfer.

    **Arguments:**

    - `run`, `flow`: the trained run and its flow.
    - `box`: the new box lengths `(d,)`; `species`: the new sorted species vector `(n,)`.

    **Returns:**

    `(flow, info)`: the resized flow and a JSON record of the transfer.

    **Raises:**

    `ValueError` for a continuous flow, another dimension, density or composition.
    """
    import math

    import numpy as np

    from .._train.config import neighbour_list_for

    box = np.asarray(box, dtype=np.float64).reshape(-1)
    species = np.asarray(species)
    trained_box = np.asarray(run.torus.lengths, dtype=np.float64)
    trained_species = np.asarray(run.species)
    if not is_coupling_flow(run):
        raise ValueError(
            f"the run in {run.run_dir} is a continuous flow, trained at N = "
            f"{trained_species.size}: only coupling flows (local by construction) transfer to "
            "another size; sample the system the run was trained on."
        )
    if box.size != trained_box.size:
        raise ValueError(
            f"the run is {trained_box.size}D but the new box {box.tolist()} is {box.size}D."
        )
    density = species.size / math.prod(box)
    trained_density = trained_species.size / math.prod(trained_box)
    if not math.isclose(density, trained_density, rel_tol=1e-6):
        raise ValueError(
            f"size transfer keeps the density: the run was trained at N/V = "
            f"{trained_density:.6g}, the new system has {density:.6g}; choose the box "
            f"(N / {trained_density:.6g})^(1/d) per side."
        )
    counts = np.bincount(species, minlength=len(run.species_names))
    trained = np.bincount(trained_species, minlength=len(run.species_names))
    if counts.size != trained.size or not np.allclose(
        counts / species.size, trained / trained_species.size, rtol=0, atol=1e-9
    ):
        raise ValueError(
            f"size transfer keeps the composition: the run was trained with {trained.tolist()} "
            f"particles per species, the new system has {counts.tolist()}; scale every count "
            "by the same factor."
        )
    space = ParticleSpace(FlatTorus(box.tolist()), int(species.size))
    model = run.info.get("model") or {}
    first = flow.position_conditioners[0]
    neighbours = neighbour_list_for(
        str(model.get("neighbours", "auto")), space.manifold, species.size, first.cutoff
    )
    resized = flow.resized(space, neighbour_list=neighbours)
    info = {
        "trained_num_particles": int(trained_species.size),
        "trained_box": trained_box.tolist(),
        "num_particles": int(species.size),
        "box": box.tolist(),
        "cutoff": first.cutoff,
        "neighbour_list": type(neighbours).__name__,
        "note": "the run's coupling flow, unchanged, on the larger (or smaller) box",
    }
    return resized, info


def is_coupling_flow(run: TrainedRun) -> bool:
    """Whether the run trained a flow with a one-pass likelihood (an `AugmentedCouplingFlow`)
    rather than a vector field; its solver settings then mean nothing."""
    return isinstance(run.field, AbstractAugmentedLikelihood)


def is_euclidean(run: TrainedRun) -> bool:
    """Whether the run's flow moves particles in R^(n d) (eFM) rather than on the torus."""
    space = run.space
    return not (isinstance(space, ParticleSpace) and isinstance(space.manifold, FlatTorus))


def _base(run: TrainedRun):
    if is_euclidean(run):
        return BoxUniformBase(run.space, run.torus)
    return UniformBase(run.space)


def describe_density(run: TrainedRun) -> dict[str, Any]:
    """What the log q of the run's flow is a density of (recorded in sample metadata)."""
    if is_coupling_flow(run):
        return {
            "space": "torus",
            "base": "UniformBase and the auxiliary wrapped normal",
            "base_normalized": True,
            "log_q": (
                "aux-corrected density of the augmented coupling flow on the torus (T^d)^n: "
                "log q(x, a) - log p_aux(a | x) with a drawn jointly with x; its exponential "
                "is an unbiased estimate of q(x), so the importance weights and log Z are exact "
                "in expectation"
            ),
        }
    if is_euclidean(run):
        return {
            "space": "euclidean",
            "base": "BoxUniformBase",
            "base_normalized": True,
            "log_q": (
                "Euclidean density of the unwrapped flow output in R^(n d) (base: uniform in the "
                "box); it ignores periodic images: the density of the wrapped configuration on "
                "the torus would sum over every unwrapped point that wraps onto it. Samples are "
                "wrapped onto the torus after the flow."
            ),
        }
    return {
        "space": "torus",
        "base": "UniformBase",
        "base_normalized": True,
        "log_q": "density on the torus (T^d)^n w.r.t. the volume of the box, base uniform",
    }
