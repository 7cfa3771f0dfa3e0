"""The ``signrm`` command. Each sub-command is a module here with ``register(subparsers)``."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Sub-command modules, in the order `signrm --help` lists them.
_COMMAND_MODULES = (
    "demo",
    "experiment",
    "simulate",
    "fit",
    "score",
    "best_of_n",
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
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, FileExistsError, KeyError, ImportError) as exc:
        if args.debug:
            raise
        msg = str(exc) if not isinstance(exc, KeyError) else f"missing key {exc}"
        print(f"error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
