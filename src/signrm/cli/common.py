"""Helpers shared by the ``signrm`` sub-commands: common options, stderr notes, model loading.

Option vocabulary (the same meaning in every sub-command):

- ``--batch-size``: comparisons per optimiser step when training (``signrm train``);
- ``--embed-batch-size``: texts per encoder forward pass when embedding (``fit``, ``score``,
  ``best-of-n``);
- ``--head``: the reward head, ``linear`` or ``mlp`` (:data:`HEADS`);
- ``--format``: the input file's format when its suffix does not say it.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import warnings
from collections.abc import Iterator

import numpy as np

#: values of ``--head`` (the estimators' ``head`` parameter)
HEADS = ("linear", "mlp")

__all__ = [
    "HEADS",
    "add_format_arg",
    "add_runtime_args",
    "load_model",
    "positive_int",
    "rewards_of",
    "runtime_kwargs",
    "say",
    "warnings_as_lines",
]


def say(msg: str) -> None:
    """A note for the user on stderr (stdout carries the results)."""
    print(msg, file=sys.stderr, flush=True)


@contextlib.contextmanager
def warnings_as_lines() -> Iterator[None]:
    """Show library warnings as ``warning: ...`` lines on stderr (no source lines)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        warnings.simplefilter("always", RuntimeWarning)
        try:
            yield
        finally:
            for w in caught:
                if issubclass(w.category, UserWarning | RuntimeWarning):
                    say(f"warning: {w.message}")


def positive_int(text: str) -> int:
    """argparse ``type``: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


def add_runtime_args(p: argparse.ArgumentParser) -> None:
    """Options shared by the text sub-commands (cache, embedding batches, progress)."""
    p.add_argument(
        "--cache-dir",
        default=None,
        help="cache root, embeddings in DIR/embeddings (default: $SIGNRM_CACHE, else ~/.cache/signrm)",
    )
    p.add_argument("--no-cache", action="store_true", help="do not read or write the cache")
    p.add_argument(
        "--embed-batch-size",
        type=positive_int,
        default=None,
        metavar="N",
        help="texts per encoder forward pass (default: the encoder's own)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def add_format_arg(p: argparse.ArgumentParser, what: str) -> None:
    """``--format``: read ``what`` as JSONL, CSV or Parquet whatever its suffix."""
    p.add_argument(
        "--format",
        default=None,
        choices=("jsonl", "csv", "parquet"),
        help=f"format of {what} (default: from the suffix; .gz allowed for jsonl/csv)",
    )


def runtime_kwargs(args: argparse.Namespace) -> dict:
    """Encoder keyword arguments from :func:`add_runtime_args`' options (cache, progress)."""
    kw: dict = {"cache_dir": False if args.no_cache else args.cache_dir}
    if args.no_progress:
        kw["show_progress"] = False
    return kw


def load_model(args: argparse.Namespace):
    """The ``TextRewardModel`` in ``args.model_dir``, with the runtime options applied."""
    from signrm.text_model import TextRewardModel

    with warnings_as_lines():
        model = TextRewardModel.load(args.model_dir, **runtime_kwargs(args))
    if args.embed_batch_size is not None:
        model.encoder.batch_size = args.embed_batch_size
    return model


def rewards_of(model, responses: list[str], prompts, args: argparse.Namespace) -> np.ndarray:
    """``model.reward`` with library warnings (e.g. a corrupt cache chunk) as one-line notes."""
    with warnings_as_lines():
        return model.reward(responses, prompts, show_progress=False if args.no_progress else None)
