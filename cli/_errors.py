"""How the CLI reports mistakes: one line on stderr, a non-zero exit, no traceback.

Exit codes (documented in docs/cli.md): 0 success; 1 a check that ran and failed
(`mflows doctor`) or an internal error; 2 a mistake in the command or its input (bad option,
unknown option, unreadable file, output that cannot be written); 130 interrupted.

Only Typer's public API is used: Typer vendors its own click (`click` itself may not be
installed), and its usage errors all derive from `typer.TyperException`.
"""

import errno
import sys
import warnings

import typer


class UserError(Exception):
    """A mistake the user can fix (bad option, bad file); printed as one line, exit code 2."""


#: Exceptions that mean "the input was wrong", raised by the library with a message that names
#: the argument and the fix.
_USER_MISTAKES = (UserError, ValueError, TypeError, FileNotFoundError, FileExistsError, KeyError)
#: Exit codes.
USAGE = 2
INTERRUPTED = 130
_INTERRUPTED_TEXT = "mflows: interrupted; finished work was kept (rerun with --resume to go on)."


def _first_line(text: str, fallback: str) -> str:
    text = text.strip()
    return text.splitlines()[0].strip() if text else fallback


def _usage_line(exc: typer.TyperException) -> str:
    """One line for a Typer usage error (bad or unknown option, missing option, extra
    argument), with the command's `--help` as the fix."""
    message = _first_line(exc.format_message(), type(exc).__name__)
    ctx = getattr(exc, "ctx", None)  # set on usage errors: the command being parsed
    command = getattr(ctx, "command_path", None) or "mflows"
    return f"{message.rstrip('.')} (see `{command} --help`)."


def _os_error_line(exc: OSError) -> str:
    """One line for an operating-system error: the message of an up-front check, or the
    reason and path of one that no check caught."""
    if exc.errno is None:  # raised by the library with a message of its own
        return _first_line(str(exc), type(exc).__name__)
    where = exc.filename if exc.filename is not None else "a file"
    reason = exc.strerror or errno.errorcode.get(exc.errno or 0, type(exc).__name__)
    return (
        f"cannot access {where}: {reason}; check that the path exists, is a folder where one is "
        "expected, and that you may write there."
    )


def show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Print a warning as one line on stderr (`warnings.showwarning` of the CLI)."""
    print(f"mflows: warning: {' '.join(str(message).split())}", file=sys.stderr)


def run_guarded(app: typer.Typer) -> int:
    """Run a Typer app; map user mistakes to one stderr line and exit code 2."""
    try:
        with warnings.catch_warnings():
            warnings.showwarning = show_warning
            code = app(standalone_mode=False, prog_name="mflows")
    except SystemExit as exc:
        return int(exc.code or 0)
    except KeyboardInterrupt:
        code = INTERRUPTED
    except typer.TyperException as exc:  # usage errors, raised by Typer's parser
        if exc.format_message().strip():  # empty: `mflows` alone, whose help Typer has shown
            print(f"mflows: error: {_usage_line(exc)}", file=sys.stderr)
        return exc.exit_code
    except typer.Abort:
        print("mflows: aborted.", file=sys.stderr)
        return 1
    except _USER_MISTAKES as exc:
        print(f"mflows: error: {_first_line(str(exc), type(exc).__name__)}", file=sys.stderr)
        return USAGE
    except OSError as exc:
        print(f"mflows: error: {_os_error_line(exc)}", file=sys.stderr)
        return USAGE
    except Exception as exc:  # last resort: still one line, but say it is a bug
        text = _first_line(str(exc), "")
        print(
            f"mflows: internal error ({type(exc).__name__}: {text}). This is a bug; please "
            "report it with the command you ran.",
            file=sys.stderr,
        )
        return 1
    # Outside standalone mode Typer returns the code of `typer.Exit` (and turns Ctrl-C inside a
    # command into `Exit(130)`); a command that returns normally gives None.
    code = code if isinstance(code, int) else 0
    if code == INTERRUPTED:
        print(_INTERRUPTED_TEXT, file=sys.stderr)
    return code
