"""MkDocs hook: the CLI reference, generated from the `mflows` Typer app at build time.

`docs/cli.md` holds the marker line `<!-- mflows-cli-reference -->`; this hook replaces it with
one section per command (help text, usage line, table of options) read from the click command
that Typer builds. The reference therefore cannot drift from the code: a renamed option or a
new command shows up at the next build. A missing marker, or a command without help text,
fails the build.
"""

import re

import typer
import typer.main
from mkdocs.exceptions import PluginError

MARKER = "<!-- mflows-cli-reference -->"
PAGE = "cli.md"

# The trailing "[default: x]" / "[required]" notes that click appends to an option's help.
_NOTE = re.compile(r"\s*\[(default: [^\]]*|required)\]\s*$")


def _cell(text: str) -> str:
    """Text safe inside a markdown table cell: one line, pipes escaped, rich escapes removed."""
    return " ".join(str(text).split()).replace("\\[", "[").replace("|", "\\|")


def _option_row(param, ctx) -> str:
    """One table row `| flags <metavar> | default | help |` from the option's help record,
    the same text `mflows <command> --help` prints."""
    record = param.get_help_record(ctx)
    if record is None:
        return ""
    flags, help_text = record
    default = ""
    while (match := _NOTE.search(help_text)) is not None:
        note = match.group(1)
        default = "**required**" if note == "required" else f"`{note.removeprefix('default: ')}`"
        help_text = help_text[: match.start()]
    # Pipes inside a code span do not split a table cell, so the flags stay unescaped.
    flags = " ".join(flags.split())
    return f"| `{flags}` | {default} | {_cell(help_text)} |"


def _command_section(name: str, command, parent) -> str:
    ctx = typer.Context(command, info_name=name, parent=parent)
    if not command.help:
        raise PluginError(f"mflows {name} has no help text; give its function a docstring.")
    usage = " ".join(command.collect_usage_pieces(ctx))
    lines = [f"## `mflows {name}`", "", command.help.strip(), ""]
    lines += ["```text", f"Usage: {ctx.command_path} {usage}", "```", ""]
    lines += ["| option | default | description |", "|---|---|---|"]
    for param in command.get_params(ctx):
        if param.hidden or list(param.opts) == ["--help"]:
            continue
        row = _option_row(param, ctx)
        if row:
            lines.append(row)
    return "\n".join(lines) + "\n"


def cli_reference() -> str:
    """The markdown reference of every `mflows` command, in registration order."""
    from cli.main import app

    group = typer.main.get_command(app)
    ctx = typer.Context(group, info_name="mflows")
    sections = [f"{group.help.strip()}\n" if group.help else ""]
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if command is None or command.hidden:
            continue
        sections.append(_command_section(name, command, ctx))
    return "\n".join(sections)


def on_page_markdown(markdown: str, page, config, files) -> str:
    if page.file.src_uri != PAGE:
        return markdown
    if MARKER not in markdown:
        raise PluginError(f"docs/{PAGE} lost its marker line {MARKER!r}; put it back.")
    return markdown.replace(MARKER, cli_reference())
