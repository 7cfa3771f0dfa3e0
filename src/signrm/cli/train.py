"""``signrm train``: fit a reward model on comparisons on one process or N (torchrun).

The options and the work are those of :mod:`signrm.train` (also run as ``python -m signrm.train``
and by torchrun on each process); this module only registers the sub-command.
"""

from __future__ import annotations

import argparse

from signrm.train import DESCRIPTION, add_arguments, run


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help="fit BT / Thurstone / sign / CLF-MLP on comparisons, on one or N processes",
        description=DESCRIPTION,
    )
    add_arguments(p)
    p.set_defaults(func=run)
