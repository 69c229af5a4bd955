"""Entry point of the `mflows` console script.

Each command lives in its own module (`cli/_<command>.py`) and is registered here. The CLI
is a thin shell: it parses options, builds config objects and calls library functions. Every
user mistake ends in one clear line on stderr and a non-zero exit code, never a traceback.
"""

import sys

import typer

from ._errors import UserError, run_guarded

app = typer.Typer(
    name="mflows",
    help=(
        "Equivariant flow matching on manifolds: generate data, train, sample, evaluate; "
        "`mflows quickstart` runs them all."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register() -> None:
    from . import _doctor, _evaluate, _generate, _mcmc, _quickstart, _sample, _train

    for module in (_doctor, _generate, _train, _sample, _evaluate, _quickstart, _mcmc):
        module.register(app)


_register()


def main() -> None:
    """Console-script entry: run the app, turning user mistakes into one line and exit 2."""
    sys.exit(run_guarded(app))


__all__ = ["UserError", "app", "main"]
