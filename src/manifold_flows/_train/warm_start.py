"""Warm starts: a training run whose model begins from another run's trained weights
(`TrainConfig.init_from`, `[train] init_from` of `mflows train`).

A warm start is how a run continues another one with other settings: a maximum-likelihood run
fine-tuned on the energy, with several auxiliary draws, at a lower learning rate or at another
temperature. The new run is a run like any other (its own record, checkpoints and resume), and
it records its `ModelConfig`, so `load_run` and `mflows sample` read it without help.
"""

import dataclasses
import math
from pathlib import Path

import equinox as eqx
import jax
import numpy as np

from .config import ModelConfig

#: `[model]` lengths whose defaults follow the box: compared as the built models use them.
_LENGTHS = {"cutoff", "aux_scale"}


def _fail(source: Path, what: str) -> ValueError:
    return ValueError(f"[train] init_from = {str(source)!r}: {what}")


def warm_start(model, source, *, model_config: ModelConfig | None):
    """`model` (built for this run's data) with the trained EMA weights of the run in `source`.

    The source must hold a finished checkpoint of the same model: the same `[model]` settings
    when both are known, and in any case the same parameter shapes and the same fixed settings
    (box, cutoff, auxiliary scale, ...). An augmented coupling flow may come from a run at
    another size (same dimension): its conditioners are local, so its weights define the flow
    at this run's size (`AugmentedCouplingFlow.resized`), provided the cutoff in effect is the
    same (set `[model] cutoff` to the source's when the default, half the box, differs). A
    model with `learned_aux` may start from one without: its learned target starts as the
    fixed one.

    **Raises:**

    `FileNotFoundError` when `source` holds no run or no checkpoint; `ValueError` naming what
    differs, and how to fix it, when the source's model is not this one's.
    """
    from .._flow.augmented import AugmentedCouplingFlow
    from .run import load_run

    source = Path(source)
    check_init_from(source, model_config)
    field = load_run(source).field
    if isinstance(field, AugmentedCouplingFlow) and isinstance(model, AugmentedCouplingFlow):
        field = _resized_like(field, model, source)
        if field.learned_aux is None and model.learned_aux is not None:
            # It starts as the fixed target (its last layer is zero): the flow's density and
            # its importance weights are those of the source at the start.
            field = eqx.tree_at(
                lambda f: f.learned_aux, field, model.learned_aux, is_leaf=lambda n: n is None
            )
    elif not _same_space(field, model):
        raise _fail(
            source,
            f"that run's model lives on {field.space!r}, this one on {model.space!r}; only an "
            "augmented coupling flow starts from a run at another size.",
        )
    return _weights_into(field, model, source)


def check_init_from(source, model_config: ModelConfig | None) -> None:
    """Check, from its record alone, that the run in `source` can start this one: a finished
    checkpoint of a model built from a `[model]` table equal to `model_config` (when given;
    the lengths `cutoff` and `aux_scale` are compared later, as the built models use them).
    `mflows train` calls this before any training compute."""
    from .run import CHECKPOINT, read_run_info

    source = Path(source)
    try:
        info = read_run_info(source)
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"[train] init_from = {str(source)!r}: {exc}") from None
    if not (source / CHECKPOINT).is_file():
        raise FileNotFoundError(
            f"[train] init_from = {str(source)!r}: that run has no checkpoint ({CHECKPOINT}) "
            "yet; let it train at least one epoch (or resume it) first."
        )
    saved = info.get("model")
    if not saved:
        raise _fail(
            source,
            f"that run trained a model passed from Python ({info.get('field_class')}), so it "
            "records no [model] to check this one against; start from a run trained from a "
            "config (mflows train), or load its flow with load_run(..., like=...) and pass it "
            "to the training function.",
        )
    if model_config is not None:
        now = model_config.to_dict()
        # lengths (default: from the box) are compared in effect, on the built models
        keys = (set(saved) | set(now)) - _LENGTHS
        if now.get("learned_aux") and not saved.get("learned_aux"):
            keys -= {"learned_aux"}  # a learned auxiliary target may join a trained flow
        # an option a record leaves out is at its default (`ModelConfig.to_dict`)
        defaults = {f.name: f.default for f in dataclasses.fields(ModelConfig)}

        def there(k):
            return saved.get(k, defaults.get(k))

        def here(k):
            return now.get(k, defaults.get(k))

        differ = sorted(k for k in keys if there(k) != here(k))
        if differ:
            listed = "; ".join(f"{k} = {there(k)!r} there, {here(k)!r} here" for k in differ)
            raise _fail(
                source, f"that run has another [model] ({listed}); use the same [model] table."
            )


def _same_space(a, b) -> bool:
    sa, sb = getattr(a, "space", None), getattr(b, "space", None)
    if sa is None or sb is None:
        return True  # a vector field without a space: its shapes and settings decide
    return (
        sa.num_particles == sb.num_particles
        and type(sa.manifold) is type(sb.manifold)
        and np.allclose(getattr(sa.manifold, "lengths", ()), getattr(sb.manifold, "lengths", ()))
    )


def _resized_like(field, model, source: Path):
    """The source's coupling flow on this run's particle space, with this run's neighbour
    list (checked: the same cutoff and auxiliary scale)."""
    have = field.position_conditioners[0].cutoff
    want = model.position_conditioners[0].cutoff
    if not math.isclose(have, want, rel_tol=1e-9):
        raise _fail(
            source,
            f"that run's flow has the cutoff {have:g} and this one {want:g} (the default cutoff "
            f"is half the box, which changes with the size); set [model] cutoff = {have!r}.",
        )
    if not math.isclose(field.aux_scale, model.aux_scale, rel_tol=1e-9):
        raise _fail(
            source,
            f"that run's flow has aux_scale {field.aux_scale:g} and this one "
            f"{model.aux_scale:g} (the default follows the density); set [model] aux_scale = "
            f"{field.aux_scale!r}.",
        )
    if _same_space(field, model):
        return field
    return field.resized(model.space, neighbour_list=model.neighbour_list)


def _weights_into(field, model, source: Path):
    """`model` with the arrays of `field` (cast to `model`'s dtypes): the two must have the
    same structure, the same array shapes and the same fixed (non-array) settings."""
    src, dst = eqx.filter(field, eqx.is_array), eqx.filter(model, eqx.is_array)
    src_rest = eqx.filter(field, eqx.is_array, inverse=True)
    dst_rest = eqx.filter(model, eqx.is_array, inverse=True)
    if jax.tree.structure(src) != jax.tree.structure(dst) or jax.tree.structure(
        src_rest
    ) != jax.tree.structure(dst_rest):
        raise _fail(
            source,
            f"that run's model ({type(field).__name__}) is built differently from this one "
            f"({type(model).__name__}); use the same [model] table.",
        )
    pairs = zip(jax.tree.leaves(src), jax.tree.leaves(dst), strict=True)
    if any(a.shape != b.shape for a, b in pairs):
        raise _fail(source, "its parameters have other shapes than this model's; use its [model].")
    settings = zip(jax.tree.leaves(src_rest), jax.tree.leaves(dst_rest), strict=True)
    if not all(_same_setting(a, b) for a, b in settings):
        raise _fail(
            source,
            "its model's fixed settings (box, cutoff, scales) differ from this one's; train "
            "on data of the same box, or use its [model].",
        )
    cast = jax.tree.map(lambda a, b: a.astype(b.dtype), src, dst)
    return eqx.combine(cast, dst_rest)


def _same_setting(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        try:
            return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
        except (TypeError, ValueError):
            return False
    try:
        return bool(a == b)
    except Exception:
        return False
