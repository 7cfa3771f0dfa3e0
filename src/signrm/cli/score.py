"""``signrm score MODEL_DIR TEXTS --out SCORES``: reward of each (prompt, response).

TEXTS is JSONL/CSV/Parquet with a ``response`` column and an optional ``prompt`` column (text or
chat messages); other columns are passed through. SCORES is JSONL: each input row plus ``reward``.
"""

from __future__ import annotations

import argparse

import numpy as np

from signrm.cli.common import add_format_arg, add_runtime_args, load_model, rewards_of, say
from signrm.errors import UserError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "score",
        help="score texts with a model fitted by `signrm fit`",
        description="Reward of each (prompt, response) row of TEXTS, written as JSONL.",
    )
    p.add_argument("model_dir", help="directory written by `signrm fit`")
    p.add_argument("texts", help="file with a response column (+ optional prompt)")
    p.add_argument("--out", required=True, help="JSONL file to write")
    add_format_arg(p, "TEXTS")
    add_runtime_args(p)
    p.set_defaults(func=run)


def load_rows(
    path: str, require: tuple[str, ...], format: str | None = None
) -> tuple[list[dict], list[str] | None]:
    """Rows of a texts file and their prompts (None when the file has no prompt column)."""
    from signrm.textdata import read_texts_table

    rows = read_texts_table(path, format=format, require=require)
    has = ["prompt" in r and r["prompt"] is not None for r in rows]
    if any(has) and not all(has):
        where = rows[has.index(False)]["_where"]
        raise UserError(f"{where}: missing value in column 'prompt' (other rows have one)")
    return rows, ([r["prompt"] for r in rows] if all(has) else None)


def run(args: argparse.Namespace) -> int:
    from signrm.textdata import write_jsonl

    model = load_model(args)
    rows, prompts = load_rows(args.texts, require=("response",), format=args.format)
    responses = []
    for r in rows:
        if not isinstance(r["response"], str) or not r["response"].strip():
            raise UserError(f"{r['_where']}: empty or missing 'response'")
        responses.append(r["response"])
    rewards = rewards_of(model, responses, prompts, args)
    out = []
    for r, v in zip(rows, rewards):
        rec = {k: val for k, val in r.items() if k != "_where"}
        rec["reward"] = float(v)
        out.append(rec)
    write_jsonl(args.out, out)
    say(
        f"scored {len(out)} texts: reward mean {np.mean(rewards):.4f}, sd {np.std(rewards):.4f}"
        f" -> {args.out}"
    )
    return 0
