"""The ``signrm`` command. Each sub-command is a module here with ``register(subparsers)``."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from signrm.errors import SignrmError, cli_option_style

# Sub-command modules, in the order `signrm --help` lists them.
_COMMAND_MODULES = (
    "demo",
    "experiment",
    "simulate",
    "fit",
    "train",
    "score",
    "best_of_n",
    "diagnose",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="signrm",
        description="Population reward models from pairwise preferences (sign estimator, BT, CLF, EM).",
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on error")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(f"signrm.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"signrm.cli.{name}":
                continue
            raise
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from signrm import __version__

        print(__version__)
        return 0
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        with cli_option_style():
            return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (SignrmError, ValueError, OSError, KeyError, ImportError) as exc:
        # signrm's own errors, bad input and unavailable files/models: one line. Anything else
        # (a RuntimeError, TypeError, ...) is a bug and keeps its traceback.
        if args.debug:
            raise
        print(f"error: {error_line(exc)}", file=sys.stderr)
        return 2
    except Exception:
        # A bug: ``main()`` re-raises it for Python callers, but the `signrm` command prints one
        # line (exit code 1) instead of the traceback unless --debug.
        if not args.debug:
            sys.excepthook = _bug_hook
        raise


def _bug_hook(exc_type, exc, tb) -> None:
    print(
        f"error: internal error ({exc_type.__name__}: {error_line(exc)}); this is a bug in "
        "signrm: rerun with --debug for the traceback and report it",
        file=sys.stderr,
    )


def error_line(exc: BaseException) -> str:
    """The message of ``exc`` on one line."""
    if isinstance(exc, SignrmError):
        msg = str(exc)
    elif isinstance(exc, KeyError):
        msg = f"missing key {exc}"
    elif isinstance(exc, OSError) and exc.strerror and exc.filename is not None:
        msg = f"{exc.filename}: {exc.strerror}"
        if exc.filename2 is not None:
            msg += f" (-> {exc.filename2})"
    else:
        msg = str(exc) or type(exc).__name__
    return " ".join(line.strip() for line in msg.splitlines() if line.strip())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
