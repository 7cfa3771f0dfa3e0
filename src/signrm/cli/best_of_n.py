"""``signrm best-of-n MODEL_DIR CANDIDATES --out PICKS``: the highest-reward response per prompt.

CANDIDATES is JSONL/CSV/Parquet with either one row per candidate (``prompt``, ``response``) or
one row per prompt with a ``responses`` list. PICKS is JSONL, one line per prompt in order of first
appearance: ``prompt``, ``response`` (the pick), ``reward``, ``index`` (the pick's position among
that prompt's candidates), ``n_candidates``, ``rewards`` (all candidates' rewards, in order).
Ties go to the earliest candidate.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from signrm.cli.fit import add_format_arg, add_runtime_args, say
from signrm.cli.score import load_model, rewards_of
from signrm.errors import UserError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "best-of-n",
        help="pick the highest-reward response for each prompt",
        description="For each prompt, the candidate response with the highest reward (JSONL).",
    )
    p.add_argument("model_dir", help="directory written by `signrm fit`")
    p.add_argument("candidates", help="prompt/response rows, or prompt + responses list")
    p.add_argument("--out", required=True, help="JSONL file to write")
    add_format_arg(p, "CANDIDATES")
    add_runtime_args(p)
    p.set_defaults(func=run)


def _candidates(path: str, format: str | None = None) -> dict[str, list[str]]:
    from signrm.textdata import read_texts_table

    rows = read_texts_table(path, format=format, require=("prompt",))
    groups: dict[str, list[str]] = {}
    for r in rows:
        where = r["_where"]
        prompt = r["prompt"]
        if not isinstance(prompt, str):
            raise UserError(f"{where}: missing value in column 'prompt'")
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
            texts = many
        elif "response" in r and isinstance(r["response"], str):
            texts = [r["response"]]
        else:
            raise UserError(f"{where}: needs a 'response' text or a 'responses' list")
        for t in texts:
            if not t.strip():
                raise UserError(f"{where}: empty response")
        groups.setdefault(prompt, []).extend(texts)
    return groups


def run(args: argparse.Namespace) -> int:
    from signrm.textdata import write_jsonl

    model = load_model(args)
    groups = _candidates(args.candidates, args.format)
    prompts = [p for p, texts in groups.items() for _ in texts]
    responses = [t for texts in groups.values() for t in texts]
    rewards = rewards_of(model, responses, prompts, args)
    picks, start = [], 0
    for prompt, texts in groups.items():
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
