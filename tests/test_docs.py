"""Every code block of the documentation runs, so a broken example fails the suite.

- ```python blocks: each page's blocks run in order, in one namespace, in a fresh Python
  process (default JAX settings, as a user has them; working directory: a temporary folder;
  pages run side by side, one per CPU core).
  A failure reports the page, the block's line and the traceback.
- ```bash blocks: cheap commands (`--help`, `mflows generate --list-systems`) run for real;
  every other `mflows ...` command line is parsed by the command's own parser without being
  invoked, so a renamed or removed option fails here. Scripts run with `python path.py` and
  test files given to `pytest` must exist.
- The API reference names every public object of the package, and the site's navigation lists
  exactly the pages that exist.
"""

import ast
import json
import os
import re
import shlex
import subprocess
import sys
import textwrap
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = [*sorted(p for p in DOCS.rglob("*.md") if "_hooks" not in p.parts), ROOT / "README.md"]

# Seconds one page's python blocks may take: a guard against hangs (a page takes 5-20 s of CPU).
PAGE_TIMEOUT = 300

_FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})\s*(?P<lang>[\w+-]*)")


@dataclass(frozen=True)
class Block:
    lang: str
    code: str
    line: int  # 1-based line of the opening fence


def code_blocks(path: Path) -> list[Block]:
    """The fenced code blocks of a markdown file, dedented (blocks inside admonitions or
    lists are indented)."""
    blocks, lines = [], path.read_text().splitlines()
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if m is None:
            i += 1
            continue
        fence, start = m.group("fence"), i
        body, i = [], i + 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            body.append(lines[i])
            i += 1
        if i == len(lines):
            raise AssertionError(f"{path}:{start + 1}: code fence is never closed")
        blocks.append(Block(m.group("lang").lower(), textwrap.dedent("\n".join(body)), start + 1))
        i += 1
    return blocks


def _page_id(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _pages_with(lang: str) -> list[Path]:
    return [p for p in PAGES if any(b.lang == lang for b in code_blocks(p))]


# ----------------------------------------------------------------------------- python blocks

_RUNNER = """
import json, sys, traceback
blocks = json.loads(sys.stdin.read())
namespace = {"__name__": "__main__"}
for line, code in blocks:
    try:
        exec(compile(code, f"{sys.argv[1]}:{line}", "exec"), namespace)
    except BaseException:
        print(f"python block at {sys.argv[1]}:{line} failed:", file=sys.stderr)
        traceback.print_exc()
        sys.exit(1)
"""


def _run_page(page: Path, workdir: Path) -> subprocess.CompletedProcess:
    """Run a page's python blocks in order, in one namespace, in a fresh interpreter."""
    blocks = [(b.line, b.code) for b in code_blocks(page) if b.lang == "python"]
    return subprocess.run(
        [sys.executable, "-c", _RUNNER, _page_id(page)],
        input=json.dumps(blocks),
        capture_output=True,
        text=True,
        cwd=workdir,
        timeout=PAGE_TIMEOUT,
    )


@pytest.fixture(scope="module")
def page_runs(request, tmp_path_factory) -> dict[Path, Future]:
    """Start every selected page at once, one interpreter per CPU core at a time: most of a
    page's time is JAX compiling, single-threaded, so pages run side by side. Each test then
    waits for its own page."""
    pages = [
        item.callspec.params["page"]
        for item in request.session.items
        if item.originalname == "test_python_blocks_run"
    ]
    pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 2)
    request.addfinalizer(lambda: pool.shutdown(cancel_futures=True))
    return {
        page: pool.submit(_run_page, page, tmp_path_factory.mktemp(page.stem)) for page in pages
    }


@pytest.mark.parametrize("page", _pages_with("python"), ids=_page_id)
def test_python_blocks_run(page: Path, page_runs: dict[Path, Future]):
    result = page_runs[page].result()
    if result.returncode != 0:
        pytest.fail(f"{result.stderr[-4000:]}\n(stdout: {result.stdout[-1000:]})", pytrace=False)


# ----------------------------------------------------------------------------- shell blocks

# Commands cheap enough to run for real (no compile, no training): help pages and listings.
_CHEAP = ({"--help"}, {"--list-systems"})


_SEPARATORS = {"&&", "||", ";", "|", "&"}
_REDIRECTS = {">", ">>", "<", ">&", "&>", "<<"}


def shell_commands(code: str) -> list[list[str]]:
    """Simple commands of a bash block: continuations joined, comments dropped, split on
    `&&`, `||`, `;`, `|` and `&`, redirections and leading `VAR=value` assignments removed."""
    commands = []
    text = re.sub(r"\\\n", " ", code)
    for line in text.splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        try:
            tokens = list(lexer)
        except ValueError as exc:
            raise AssertionError(f"cannot parse the shell line {line!r}: {exc}") from exc
        current: list[str] = []
        skip_next = False
        for token in [*tokens, ";"]:
            if skip_next:
                skip_next = False
            elif token in _REDIRECTS:
                skip_next = True  # the redirection's target
                if current and current[-1].isdigit():
                    current.pop()  # the file descriptor of `2>`
            elif token in _SEPARATORS:
                while current and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", current[0]):
                    current.pop(0)
                if current:
                    commands.append(current)
                current = []
            else:
                current.append(token)
    return commands


def _mflows_group():
    import typer
    import typer.main

    from cli.main import app

    group = typer.main.get_command(app)
    return app, group, typer.Context(group, info_name="mflows")


def check_mflows_command(args: list[str]) -> None:
    """Run a cheap `mflows` command line; parse any other one without invoking it. Raises
    AssertionError naming the problem."""
    from typer.testing import CliRunner

    app, group, ctx = _mflows_group()
    if any(set(args) >= cheap for cheap in _CHEAP) or not args:
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, (
            f"`mflows {shlex.join(args)}` exited {result.exit_code}: {result.output[-2000:]}"
        )
        return
    name, rest = args[0], args[1:]
    command = group.get_command(ctx, name)
    assert command is not None, (
        f"`mflows {name}` is not a command; commands: {', '.join(group.list_commands(ctx))}"
    )
    try:
        command.make_context(name, list(rest), parent=ctx, resilient_parsing=False)
    except Exception as exc:  # click's UsageError (vendored by recent Typer)
        raise AssertionError(f"`mflows {shlex.join(args)}` does not parse: {exc}") from exc


def _shell_pages() -> list[Path]:
    return sorted({*_pages_with("bash"), *_pages_with("sh"), *_pages_with("shell")})


@pytest.mark.parametrize("page", _shell_pages(), ids=_page_id)
def test_shell_commands_exist(page: Path):
    checked = 0
    for block in code_blocks(page):
        if block.lang not in {"bash", "sh", "shell"}:
            continue
        for command in shell_commands(block.code):
            where = f"{_page_id(page)}:{block.line}"
            if command[0] == "mflows":
                try:
                    check_mflows_command(command[1:])
                except AssertionError as exc:
                    raise AssertionError(f"{where}: {exc}") from None
                checked += 1
            elif command[0] in {"python", "python3"} and len(command) > 1:
                if command[1].endswith(".py"):
                    assert (ROOT / command[1]).is_file(), f"{where}: no script {command[1]}"
                    checked += 1
            elif command[0] == "pytest":
                for arg in command[1:]:
                    path = arg.split("::")[0]
                    if path.endswith(".py"):
                        assert (ROOT / path).is_file(), f"{where}: no test file {path}"
                        checked += 1
    if checked == 0:
        pytest.skip("no mflows command or script in this page's shell blocks")


def test_shell_parser_catches_a_renamed_option():
    """The check above is not vacuous: a misspelt option and an unknown command fail."""
    check_mflows_command(["sample", "--run", "r", "--num-samples", "4", "--out", "s.npz"])
    with pytest.raises(AssertionError, match="does not parse"):
        check_mflows_command(["sample", "--run", "r", "--num-sample", "4", "--out", "s.npz"])
    with pytest.raises(AssertionError, match="not a command"):
        check_mflows_command(["smaple", "--run", "r"])
    assert shell_commands("A=1 mflows train \\\n  --epochs 2 && pytest -q # note") == [
        ["mflows", "train", "--epochs", "2"],
        ["pytest", "-q"],
    ]
    assert shell_commands("mflows doctor --quick 2>&1 > log.txt & echo started") == [
        ["mflows", "doctor", "--quick"],
        ["echo", "started"],
    ]


# ----------------------------------------------------------------------------- API and nav


def _reexported_names() -> list[str]:
    """Names the package re-exports explicitly (`from ._x import A as A`)."""
    tree = ast.parse((ROOT / "src/manifold_flows/__init__.py").read_text())
    return sorted(
        alias.name
        for node in tree.body
        if isinstance(node, ast.ImportFrom) and node.level == 1
        for alias in node.names
        if alias.asname == alias.name
    )


def _directives() -> list[str]:
    """The targets of every `::: name` directive of the API pages, with repetitions."""
    found = []
    for page in sorted((DOCS / "api").glob("*.md")):
        found += re.findall(r"^:::\s*([\w.]+)\s*$", page.read_text(), flags=re.M)
    return found


def _documented() -> set[str]:
    return set(_directives())


def test_api_reference_documents_each_object_once():
    targets = _directives()
    twice = sorted({t for t in targets if targets.count(t) > 1})
    assert not twice, f"documented on more than one API page (or twice on one): {twice}"


def test_api_reference_covers_every_public_name():
    documented = _documented()
    names = _reexported_names()
    assert len(names) > 50  # the parse found the re-exports
    missing = [n for n in names if f"manifold_flows.{n}" not in documented]
    assert not missing, f"add these to a page in docs/api/: {missing}"
    import inspect

    import manifold_flows.testing as kit

    # Modules are skipped: the jaxtyping import hook of the test run adds `jaxtyping` to the
    # kit's namespace, from which its `__all__` is built.
    public = [n for n in kit.__all__ if not inspect.ismodule(getattr(kit, n))]
    missing_kit = [n for n in public if f"manifold_flows.testing.{n}" not in documented]
    assert not missing_kit, f"add these to docs/api/testing.md: {missing_kit}"


def test_api_reference_targets_exist():
    import importlib

    for target in sorted(_documented()):
        module, _, name = target.rpartition(".")
        assert hasattr(importlib.import_module(module), name), f"docs/api: no {target}"


def _nav_files(node) -> list[str]:
    if isinstance(node, str):
        return [node] if node.endswith(".md") else []
    if isinstance(node, dict):
        return [f for v in node.values() for f in _nav_files(v)]
    if isinstance(node, list):
        return [f for v in node for f in _nav_files(v)]
    return []


def test_nav_lists_exactly_the_pages():
    import yaml  # PyYAML is in the test extra: this check runs in every test environment

    config = yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=yaml.BaseLoader)
    in_nav = set(_nav_files(config["nav"]))
    on_disk = {str(p.relative_to(DOCS)) for p in PAGES if DOCS in p.parents}
    assert in_nav - on_disk == set(), f"nav names missing pages: {sorted(in_nav - on_disk)}"
    assert on_disk - in_nav == set(), f"pages not in the nav: {sorted(on_disk - in_nav)}"
