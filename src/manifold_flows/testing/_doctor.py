"""The geometry self-check behind `mflows doctor`: the JAX set-up, then every law on every
registry entry, precision and device."""

import concurrent.futures
import dataclasses
import os
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp

from ._law_result import LawResult
from ._manifold_laws import check_manifold_laws
from ._registry import manifold_registry

__all__ = ["DoctorCheck", "DoctorReport", "run_doctor"]

_PRECISIONS = ("float32", "float64")
#: The registry entries `quick=True` keeps: one per kind of manifold.
_QUICK_MANIFOLDS = ("torus_2d_rectangle", "euclidean_2d", "sphere_2", "particles_torus_2d")
#: The group-action entries `quick=True` keeps (those that exist in the registry).
_QUICK_ACTIONS = ("full_symmetry_2d", "point_group_rectangle", "orthogonal_3d")


@dataclasses.dataclass(frozen=True)
class DoctorCheck:
    """One law checked on one registry entry, in one precision, on one device.

    - `kind`: `"manifold"` or `"group action"`.
    - `subject`: the registry name of the manifold or action.
    - `precision`: `"float32"` or `"float64"`.
    - `device`: the JAX device, e.g. `"cpu:0"`.
    - `law`: the `LawResult`. A check that crashed is reported as the law `"runs"`, failed,
      with the exception in `note`.
    - `note`: extra information (empty for ordinary results).
    """

    kind: str
    subject: str
    precision: str
    device: str
    law: LawResult
    note: str = ""


@dataclasses.dataclass(frozen=True)
class DoctorReport:
    """What `run_doctor` found.

    - `jax_version`, `backend`, `devices`: the JAX set-up.
    - `x64_enabled`: whether 64-bit floats were enabled when the doctor started (the default
      precision of the user's programs: float64 if so, float32 otherwise).
    - `checks`: every `DoctorCheck`, in a deterministic order.
    - `notes`: remarks, e.g. checks that were skipped and why.
    """

    jax_version: str
    backend: str
    devices: tuple[str, ...]
    x64_enabled: bool
    checks: tuple[DoctorCheck, ...]
    notes: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        """True when at least one check ran and every check passed."""
        return bool(self.checks) and all(c.law.passed for c in self.checks)

    @property
    def default_precision(self) -> str:
        return "float64" if self.x64_enabled else "float32"


def _device_name(device) -> str:
    return f"{device.platform}:{device.id}"


def _group_kit():
    """`(check_group_laws, group_action_registry)` if the testing kit provides them, else a
    note saying why not."""
    try:
        from . import _group_laws
    except ImportError as exc:  # e.g. hypothesis is not installed
        return None, f"group-action laws skipped: cannot import them ({exc})."
    check = getattr(_group_laws, "check_group_laws", None)
    registry = getattr(_group_laws, "group_action_registry", None)
    if check is None or registry is None:
        return None, "group-action laws skipped: this version has no check_group_laws."
    return (check, registry), ""


def _crash(kind, subject, precision, device, exc: BaseException) -> list[DoctorCheck]:
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    law = LawResult("runs", False, float("nan"), 0.0)
    note = f"{type(exc).__name__}: {message}"
    return [DoctorCheck(kind, subject, precision, device, law, note)]


def _no_backend_report(x64_enabled: bool, exc: Exception) -> DoctorReport:
    """What the doctor says when JAX cannot start a backend (e.g. `JAX_PLATFORMS` names a
    platform this installation lacks): no check ran, and the note says why and what to do."""
    message = " ".join(str(exc).split())
    reason = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    platforms = os.environ.get("JAX_PLATFORMS", "")
    if platforms:
        fix = (
            f"JAX_PLATFORMS={platforms!r} asks for a platform this installation cannot start; "
            "unset it (or set JAX_PLATFORMS=cpu), or install JAX's plugin for that platform"
        )
    else:
        fix = "check the JAX installation (pip install -U jax) and its accelerator plugin"
    return DoctorReport(
        jax_version=jax.__version__,
        backend="none",
        devices=(),
        x64_enabled=x64_enabled,
        checks=(),
        notes=(f"JAX could not start a backend ({reason}); {fix}.",),
    )


def run_doctor(
    *,
    precisions: Sequence[str] = _PRECISIONS,
    quick: bool = False,
    devices: Sequence | None = None,
    seed: int = 0,
    workers: int | None = None,
    on_check: Callable[[str], None] | None = None,
) -> DoctorReport:
    """Check the geometry and symmetry kit on this machine.

    Runs `check_manifold_laws` on every entry of `manifold_registry()` and, when the testing
    kit provides `check_group_laws`, the group-action laws on every entry of
    `group_action_registry()`, in each requested precision on each device. float32 runs
    with 64-bit JAX disabled and float64 with it enabled (each inside its own
    `jax.enable_x64` context), so both the default and the 64-bit configuration are
    exercised.

    **Arguments:**

    - `precisions`: any of `"float32"`, `"float64"`.
    - `quick`: check one representative entry per kind of manifold (and a few group
      actions): a fast smoke test.
    - `devices`: the JAX devices to run on (default: all of `jax.devices()`).
    - `seed`: seed of the PRNG keys.
    - `workers`: how many checks compile concurrently (default: the number of CPU cores;
      compilation dominates the run time and releases the GIL).
    - `on_check`: called with a short label when a check finishes (progress reporting).

    **Returns:**

    A `DoctorReport`; `report.passed` says whether every law held.
    """
    precisions = tuple(precisions)
    bad = [p for p in precisions if p not in _PRECISIONS]
    if bad or not precisions:
        raise ValueError(
            f"run_doctor: precisions must be a non-empty selection of {_PRECISIONS}; got "
            f"{precisions}."
        )
    x64_at_start = bool(jax.config.jax_enable_x64)
    if devices is None:
        try:
            devices = jax.devices()
        except Exception as exc:  # no backend starts: a report that says why, not a crash
            return _no_backend_report(x64_at_start, exc)
    devices = tuple(devices)
    notes: list[str] = []
    # Compilation dominates the cost, so quick mode checks fewer entries, not fewer points.
    num_points, num_samples, num_elements = 32, 2048, 8

    manifolds = manifold_registry()
    if quick:
        kept = [name for name in _QUICK_MANIFOLDS if name in manifolds] or list(manifolds)[:1]
        manifolds = {name: manifolds[name] for name in kept}
    group_kit, note = _group_kit()
    if note:
        notes.append(note)
    action_names: list[str] = []
    if group_kit is not None:
        # The registry is rebuilt inside each precision context (its arrays take the dtype
        # of that context); here only the names are needed.
        with jax.enable_x64(True):
            action_names = list(group_kit[1]())
        if quick:
            action_names = [n for n in _QUICK_ACTIONS if n in action_names] or action_names[:2]

    def manifold_unit(name, precision, device):
        dev = _device_name(device)
        try:
            with jax.enable_x64(precision == "float64"), jax.default_device(device):
                key = jax.random.key(seed)
                results = check_manifold_laws(
                    manifolds[name],
                    key,
                    num_points=num_points,
                    num_samples=num_samples,
                    dtype=jnp.dtype(precision),
                )
        except Exception as exc:
            return _crash("manifold", name, precision, dev, exc)
        return [DoctorCheck("manifold", name, precision, dev, r) for r in results.values()]

    def action_unit(name, precision, device):
        dev = _device_name(device)
        check, registry = group_kit
        try:
            with jax.enable_x64(precision == "float64"), jax.default_device(device):
                case = registry()[name]
                k_point, k_laws = jax.random.split(jax.random.key(seed))
                x = case.make_point(k_point, jnp.dtype(precision))
                results = check(
                    case.action, x, k_laws, num_elements=num_elements, manifold=case.manifold
                )
        except Exception as exc:
            return _crash("group action", name, precision, dev, exc)
        return [DoctorCheck("group action", name, precision, dev, r) for r in results.values()]

    units = [
        (manifold_unit, name, precision, device)
        for device in devices
        for precision in precisions
        for name in manifolds
    ] + [
        (action_unit, name, precision, device)
        for device in devices
        for precision in precisions
        for name in action_names
    ]
    workers = max(1, os.cpu_count() or 1) if workers is None else max(1, int(workers))

    def run(unit):
        fn, name, precision, device = unit
        checks = fn(name, precision, device)
        if on_check is not None:
            on_check(f"{name} ({precision}, {_device_name(device)})")
        return checks

    if workers == 1:
        outcomes = [run(u) for u in units]
    else:
        with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
            outcomes = list(pool.map(run, units))
    checks = tuple(c for outcome in outcomes for c in outcome)
    return DoctorReport(
        jax_version=jax.__version__,
        backend=jax.default_backend(),
        devices=tuple(_device_name(d) for d in devices),
        x64_enabled=x64_at_start,
        checks=checks,
        notes=tuple(notes),
    )
