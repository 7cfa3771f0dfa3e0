"""``signrm best-of-n MODEL_DIR CANDIDATES --out PICKS``: the highest-reward response per prompt.

CANDIDATES is JSONL/CSV/Parquet with either one row per candidate (``prompt``, ``response``) or
one row per prompt with a ``responses`` list (at least one text).

- One-candidate rows are grouped by prompt: every row with the same ``prompt`` is one candidate of
  that prompt (that is the only way this layout forms groups).
- A ``responses`` row is one question on its own: two such rows with the same prompt (say, two
  sampling runs) are kept apart, each gets its own pick, and the summary notes how many rows share
  a prompt.
- A prompt that has both a ``responses`` row and one-candidate rows is ambiguous and refused.

PICKS is JSONL, one line per group in order of first appearance: ``prompt``, ``response`` (the
pick), ``reward``, ``index`` (the pick's position among that group's candidates),
``n_candidates``, ``rewards`` (all candidates' rewards, in order). Ties go to the earliest
candidate.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from signrm.cli.common import add_format_arg, add_runtime_args, load_model, rewards_of, say
from signrm.errors import UserError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "best-of-n",
        help="pick the highest-reward response for each prompt",
        description=(
            "For each prompt, the candidate response with the highest reward (JSONL). Rows with "
            "one 'response' are grouped by prompt; each row with a 'responses' list is its own "
            "group, even when another such row has the same prompt (a note says so); a prompt "
            "with both layouts is refused."
        ),
    )
    p.add_argument("model_dir", help="directory written by `signrm fit`")
    p.add_argument("candidates", help="prompt/response rows, or prompt + responses list")
    p.add_argument("--out", required=True, help="JSONL file to write")
    add_format_arg(p, "CANDIDATES")
    add_runtime_args(p)
    p.set_defaults(func=run)


def _row_texts(r: dict, where: str) -> tuple[list[str], bool]:
    """The candidates of one row, and whether they came from a ``responses`` list."""
    if "responses" in r and r["responses"] is not None:
        many = r["responses"]
        if isinstance(many, str):
            try:
                many = json.loads(many)
            except json.JSONDecodeError:
                raise UserError(f"{where}: 'responses' must be a JSON list of texts") from None
        if isinstance(many, np.ndarray):
            many = many.tolist()
        if not isinstance(many, list) or not all(isinstance(t, str) for t in many):
            raise UserError(f"{where}: 'responses' must be a list of texts")
        if not many:
            raise UserError(f"{where}: 'responses' is empty; give at least one candidate")
        texts, listed = many, True
    elif "response" in r and isinstance(r["response"], str):
        texts, listed = [r["response"]], False
    else:
        raise UserError(f"{where}: needs a 'response' text or a 'responses' list")
    for t in texts:
        if not t.strip():
            raise UserError(f"{where}: empty response")
    return texts, listed


def _candidates(path: str, format: str | None = None) -> tuple[list[tuple[str, list[str]]], int]:
    """Groups ``(prompt, candidates)`` in order of first appearance, and the number of
    ``responses`` rows whose prompt another ``responses`` row has too (kept apart)."""
    from signrm.textdata import read_texts_table

    rows = read_texts_table(path, format=format, require=("prompt",))
    groups: list[tuple[str, list[str]]] = []
    single: dict[str, int] = {}  # prompt -> its group of one-candidate rows
    listed_at: dict[str, list[str]] = {}  # prompt -> where its ``responses`` rows are
    for r in rows:
        where = r["_where"]
        prompt = r["prompt"]
        if not isinstance(prompt, str):
            raise UserError(f"{where}: missing value in column 'prompt'")
        texts, listed = _row_texts(r, where)
        if (prompt in single) if listed else (prompt in listed_at):
            raise UserError(
                f"{where}: prompt {prompt[:40]!r} has both a 'responses' list and one-candidate "
                "'response' rows; put all its candidates in one layout"
            )
        if listed:
            listed_at.setdefault(prompt, []).append(where)
            groups.append((prompt, list(texts)))
        elif prompt in single:
            groups[single[prompt]][1].extend(texts)
        else:
            single[prompt] = len(groups)
            groups.append((prompt, list(texts)))
    shared = sum(len(w) for w in listed_at.values() if len(w) > 1)
    return groups, shared


def run(args: argparse.Namespace) -> int:
    from signrm.textdata import write_jsonl

    model = load_model(args)
    groups, shared = _candidates(args.candidates, args.format)
    prompts = [p for p, texts in groups for _ in texts]
    responses = [t for _, texts in groups for t in texts]
    rewards = rewards_of(model, responses, prompts, args)
    picks, start = [], 0
    for prompt, texts in groups:
        r = rewards[start : start + len(texts)]
        start += len(texts)
        best = int(np.argmax(r))
        picks.append(
            {
                "prompt": prompt,
                "response": texts[best],
                "reward": float(r[best]),
                "index": best,
                "n_candidates": len(texts),
                "rewards": [float(v) for v in r],
            }
        )
    write_jsonl(args.out, picks)
    if shared:
        say(
            f"note: {shared} 'responses' rows share their prompt with another such row; each "
            "row is picked on its own (merge them into one row to compare all candidates)"
        )
    gain = float(np.mean([p["reward"] - np.mean(p["rewards"]) for p in picks]))
    say(
        f"picked the best of {_count_text([len(p['rewards']) for p in picks])} candidates for "
        f"{len(picks)} prompts "
        f"(mean reward gain over a random pick {gain:.4f}) -> {args.out}"
    )
    return 0


def _count_text(counts: list[int]) -> str:
    """``"10"`` when every prompt has the same number of candidates, else ``"4-12 (mean 9.5)"``."""
    lo, hi = min(counts), max(counts)
    return str(lo) if lo == hi else f"{lo}-{hi} (mean {np.mean(counts):.1f})"
