"""STYLE.md rule 1 (abstract or final), enforced over every `eqx.Module` of the package.

Equinox no longer enforces the abstract/final pattern, so this test walks every module of
`manifold_flows`, collects every `eqx.Module` subclass defined there and checks that

- each class is abstract (named `Abstract*`) or final (concrete): an unnamed class with
  unimplemented abstract methods or `AbstractVar`s is a violation, and so is an `Abstract*`
  class whose name lies about what it is not (it must not be used as a concrete base);
- no concrete class is subclassed (final classes only subclass abstract ones);
- abstract classes define no `__init__` and no concrete (non-`AbstractVar`) fields;
- no concrete method overrides a concrete method of a base class (only abstract members are
  implemented).

It also checks that `import manifold_flows` does not import Typer (STYLE.md rule 17).
"""

import abc
import ast
import importlib
import inspect
import pkgutil
import subprocess
import sys
import textwrap
import typing

import equinox as eqx
import pytest

import manifold_flows

_ABSTRACT_VAR_ORIGINS = (eqx.AbstractVar, eqx.AbstractClassVar, typing.ClassVar)


def _package_modules() -> list[str]:
    names = [manifold_flows.__name__]
    prefix = f"{manifold_flows.__name__}."
    for info in pkgutil.walk_packages(manifold_flows.__path__, prefix=prefix):
        names.append(info.name)
    return names


def _package_module_classes() -> list[type]:
    """Every eqx.Module subclass defined in the package (imports every module)."""
    seen: dict[str, type] = {}
    for name in _package_modules():
        module = importlib.import_module(name)
        for obj in vars(module).values():
            if (
                isinstance(obj, type)
                and issubclass(obj, eqx.Module)
                and obj is not eqx.Module
                and obj.__module__.startswith(manifold_flows.__name__)
            ):
                seen[f"{obj.__module__}.{obj.__qualname__}"] = obj
    return list(seen.values())


def _is_abstract_var(annotation) -> bool:
    return typing.get_origin(annotation) in _ABSTRACT_VAR_ORIGINS or annotation in (
        _ABSTRACT_VAR_ORIGINS
    )


def _own_annotations(cls: type) -> dict:
    return dict(inspect.get_annotations(cls))


def _abstract_vars(cls: type) -> set[str]:
    """Names declared `AbstractVar` somewhere in the MRO."""
    names = set()
    for klass in cls.__mro__:
        for name, ann in _own_annotations(klass).items():
            if typing.get_origin(ann) in (eqx.AbstractVar, eqx.AbstractClassVar):
                names.add(name)
    return names


def _unresolved_abstract_vars(cls: type) -> set[str]:
    """AbstractVars that no class in the MRO turns into a concrete field/attribute."""
    unresolved = set()
    for name in _abstract_vars(cls):
        resolved = False
        for klass in cls.__mro__:
            ann = _own_annotations(klass).get(name)
            if (ann is not None and not _is_abstract_var(ann)) or (
                name in klass.__dict__ and not _is_abstract_var(klass.__dict__[name])
            ):
                resolved = True
                break
        if not resolved:
            unresolved.add(name)
    return unresolved


def _named_abstract(cls: type) -> bool:
    return cls.__name__.lstrip("_").startswith("Abstract")


def _is_abstract(cls: type) -> bool:
    return (
        _named_abstract(cls)
        or bool(getattr(cls, "__abstractmethods__", ()))
        or bool(_unresolved_abstract_vars(cls))
    )


def _defines_init(cls: type) -> bool:
    """Whether the class body itself defines `__init__` (read from the source: Equinox/the
    dataclass machinery generate an `__init__` for every Module, so the class dict cannot
    tell)."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):  # pragma: no cover - no source available
        return False
    tree = ast.parse(source)
    class_def = next(node for node in ast.walk(tree) if isinstance(node, ast.ClassDef))
    return any(
        isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == "__init__"
        for node in class_def.body
    )


def _members(cls: type) -> dict[str, object]:
    """Methods and properties written in the class body (generated dunders excluded)."""
    out = {}
    for name, obj in cls.__dict__.items():
        if name.startswith("__") and name.endswith("__") and name != "__call__":
            continue
        if isinstance(obj, property | staticmethod | classmethod) or callable(obj):
            out[name] = obj
    return out


def _is_abstract_member(obj) -> bool:
    return bool(getattr(obj, "__isabstractmethod__", False))


def find_violations(classes: list[type]) -> list[str]:
    """Every violation of the abstract/final rule among `classes`, one message each."""
    problems = []
    for cls in classes:
        name = f"{cls.__module__}.{cls.__qualname__}"
        abstract = _is_abstract(cls)
        named_abstract = _named_abstract(cls)
        if abstract and not named_abstract:
            missing = sorted(
                set(getattr(cls, "__abstractmethods__", ())) | _unresolved_abstract_vars(cls)
            )
            problems.append(
                f"{name} has abstract members {missing} but is not named Abstract*: implement "
                "them (final class) or rename it AbstractX."
            )
        bases = [b for b in cls.__mro__[1:] if issubclass(b, eqx.Module) and b is not eqx.Module]
        for base in bases:
            if not _is_abstract(base):
                problems.append(
                    f"{name} subclasses the concrete class {base.__module__}.{base.__qualname__}"
                    ": concrete classes are final; wrap it (composition) or subclass its "
                    "abstract base."
                )
        if named_abstract:
            if _defines_init(cls):
                problems.append(
                    f"{name} is abstract but defines __init__ (it belongs on the final class)."
                )
            fields = [
                field for field, ann in _own_annotations(cls).items() if not _is_abstract_var(ann)
            ]
            if fields:
                problems.append(
                    f"{name} is abstract but declares concrete fields {fields}: declare them as "
                    "eqx.AbstractVar or move them to the final class."
                )
        for member, obj in _members(cls).items():
            if _is_abstract_member(obj):
                continue
            for base in bases:
                if member in base.__dict__ and not _is_abstract_member(base.__dict__[member]):
                    problems.append(
                        f"{name}.{member} overrides the concrete {base.__qualname__}.{member}: "
                        "only abstract members may be overridden."
                    )
                    break
    return problems


def test_package_modules_import_and_define_modules():
    classes = _package_module_classes()
    names = {cls.__name__ for cls in classes}
    # The walker must see the interfaces and their implementations (guards against an empty
    # walk that would make the rule test vacuous).
    assert {"AbstractManifold", "FlatTorus", "AbstractGroupAction", "BoxPointGroup"} <= names


def test_every_module_is_abstract_or_final():
    violations = find_violations(_package_module_classes())
    assert not violations, "STYLE.md rule 1 violations:\n" + "\n".join(violations)


class _AbstractGood(eqx.Module):
    tag: eqx.AbstractVar[int]

    @abc.abstractmethod
    def f(self) -> int: ...

    def helper(self) -> int:
        return self.f() + 1


class _Good(_AbstractGood):
    tag: int

    def __init__(self, tag: int):
        self.tag = tag

    def f(self) -> int:
        return self.tag


def test_walker_accepts_a_correct_pair():
    assert find_violations([_AbstractGood, _Good]) == []


def test_walker_flags_subclassing_a_concrete_class():
    class _Sub(_Good):
        def extra(self) -> int:
            return 0

    (problem,) = find_violations([_Sub])
    assert "subclasses the concrete class" in problem and "_Good" in problem


def test_walker_flags_overriding_a_concrete_method():
    class _Overrider(_AbstractGood):
        tag: int = 0

        def f(self) -> int:
            return 0

        def helper(self) -> int:  # overrides a concrete method of the abstract base
            return 2

    (problem,) = find_violations([_Overrider])
    assert "helper" in problem and "overrides the concrete" in problem


def test_walker_flags_abstract_class_with_init_and_fields():
    class AbstractWithState(eqx.Module):
        size: int

        def __init__(self, size: int):
            self.size = size

        @abc.abstractmethod
        def g(self) -> int: ...

    problems = find_violations([AbstractWithState])
    assert any("defines __init__" in p for p in problems)
    assert any("concrete fields ['size']" in p for p in problems)


def test_walker_flags_unnamed_abstract_class():
    class HalfDone(_AbstractGood):  # neither implements `f` nor is named Abstract*
        tag: int = 0

    problems = find_violations([HalfDone])
    assert any("not named Abstract" in p and "'f'" in p for p in problems)


def test_import_does_not_import_typer():
    code = (
        "import sys, manifold_flows; "
        "bad = sorted(m for m in sys.modules if m == 'typer' or m.startswith('typer.')); "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, f"import manifold_flows imported {result.stdout.strip()}"


@pytest.mark.parametrize("module", ["manifold_flows._group", "manifold_flows.testing"])
def test_public_names_are_listed_in_all(module):
    mod = importlib.import_module(module)
    for name in mod.__all__:
        assert hasattr(mod, name), f"{module}.__all__ lists {name!r}, which does not exist"


_SUBPACKAGES = sorted(
    f"manifold_flows.{info.name}"
    for info in pkgutil.iter_modules(importlib.import_module("manifold_flows").__path__)
    if info.ispkg and info.name.startswith("_")
)


@pytest.mark.parametrize("module", _SUBPACKAGES)
def test_top_level_re_exports_every_public_name(module):
    # The top-level package lists its re-exports one by one (STYLE.md rule 4); a public name
    # added to a subpackage's __all__ but not to manifold_flows/__init__.py fails here.
    import manifold_flows

    mod = importlib.import_module(module)
    missing = [
        name
        for name in mod.__all__
        if getattr(manifold_flows, name, None) is not getattr(mod, name)
    ]
    assert not missing, f"manifold_flows does not re-export {missing} from {module}"
