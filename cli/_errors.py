"""How the CLI reports mistakes: one line on stderr, a non-zero exit, no traceback."""

import sys

import typer


class UserError(Exception):
    """A mistake the user can fix (bad option, bad file); printed as one line, exit code 2."""


#: Exceptions that mean "the input was wrong", raised by the library with a message that names
#: the argument and the fix.
_USER_MISTAKES = (UserError, ValueError, TypeError, FileNotFoundError, FileExistsError, KeyError)


def run_guarded(app: typer.Typer) -> int:
    """Run a Typer app; map user mistakes to one stderr line and exit code 2."""
    try:
        app(standalone_mode=False)
    except SystemExit as exc:  # typer/click exit paths
        return int(exc.code or 0)
    except KeyboardInterrupt:
        print(
            "mflows: interrupted; finished work was kept (rerun with --resume to go on).",
            file=sys.stderr,
        )
        return 130
    except _USER_MISTAKES as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"mflows: error: {msg}", file=sys.stderr)
        return 2
    except Exception as exc:  # last resort: still one line, but say it is a bug
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            return exc.exit_code
        if isinstance(exc, click.exceptions.Abort):
            print("mflows: aborted.", file=sys.stderr)
            return 1
        print(
            f"mflows: internal error ({type(exc).__name__}: {exc}). This is a bug; please "
            "report it with the command you ran.",
            file=sys.stderr,
        )
        return 1
    return 0
