"""Stability ablation of the sign loss in SignRewardTrainer: ``bench_llm.py --ablation``.

Each seed's comparisons are split into a training part and an evaluation part (``--eval-share``,
by row: the comparisons are independent draws). Every variant trains on the same training part,
is evaluated on the evaluation part every ``--eval-every`` steps (its held-out accuracy curve;
the adaptive lambda also chooses its phases from it) and is scored on the held-out prompts
against the population ordering as in the main benchmark. Recorded per run: final training loss
(mean of the last 5 logged steps), maximum gradient norm (before clipping), any non-finite loss,
gradient or reward, the largest rise of the training loss within a stretch of constant lambda
(``loss_rise``: smoothed loss at the stretch's end minus its minimum; the sign loss is only
comparable at a fixed lambda), the held-out accuracy's drop from its best to its final value,
and the population disagreement.

Writes ``OUT/NAME.{json,md}`` (``--ablation-name``, default ``bench_llm_ablation``).
"""

from __future__ import annotations

import copy
import json
import os
import platform
import shlex
import sys
import time

import numpy as np
from _runinfo import commit, write_text_atomic

#: variant name -> (loss_type, SignRewardConfig overrides; ``no_scale`` = raw margins)
VARIANTS = {
    "bt": ("bt", {}),
    "sign (default: normalised, BT warm-up 0.1, lambda 1 -> 15)": ("sign", {}),
    "sign, no margin normalisation": ("sign", {"no_scale": True}),
    "sign, no BT warm-up": ("sign", {"sign_warmup_ratio": 0.0}),
    "sign, fixed lambda 15": ("sign", {"lambda_stages": 1}),
    "sign, no normalisation, no warm-up, fixed lambda 15": (
        "sign",
        {"no_scale": True, "sign_warmup_ratio": 0.0, "lambda_stages": 1},
    ),
    "sign, adaptive lambda (grid 1 -> 64, held-out choice)": (
        "sign",
        {"lambda_schedule": "adaptive"},
    ),
}

#: margins far from unit scale: the reward head's initial weights multiplied by ``head_scale``
SCALE_VARIANTS = {
    f"{name}, reward head x {k:g}": (loss_type, {**extra, "head_scale": k})
    for k in (100.0, 0.01)
    for name, (loss_type, extra) in (
        ("bt", ("bt", {})),
        ("sign (default)", ("sign", {})),
        ("sign, no margin normalisation", ("sign", {"no_scale": True})),
    )
}
VARIANT_SETS = {"stability": VARIANTS, "scale": SCALE_VARIANTS}


def split_pairs(pairs, share: float, seed: int):
    """(train, eval) parts of ``pairs`` = (chosen, rejected, annotator) arrays, ``share`` of the
    rows (at random, fixed by ``seed``) held out for evaluation."""
    held = np.random.default_rng(7 + seed).random(len(pairs[0])) < share
    return tuple(v[~held] for v in pairs), tuple(v[held] for v in pairs)


def loss_rise(losses, lambdas, window: int = 5) -> float:
    """Largest rise of the ``window``-step mean training loss within a stretch of constant
    lambda: the stretch's final mean minus its minimum mean (0 = never rose); (n,) inputs."""
    losses, lambdas = np.asarray(losses, dtype=np.float64), np.asarray(lambdas)
    rise = 0.0
    cuts = np.flatnonzero(np.diff(lambdas) != 0) + 1
    for part in np.split(np.arange(losses.size), cuts):
        if part.size < 2 * window:
            continue
        smooth = np.convolve(losses[part], np.ones(window) / window, mode="valid")
        rise = max(rise, float(smooth[-1] - smooth.min()))
    return rise


def stability(rec: dict) -> dict:
    """The stability figures of one run record of ``bench_llm.run_reward``."""
    c = rec["curves"]
    loss, grad = np.asarray(c["loss"]), np.asarray(c["grad_norm"])
    acc = np.asarray(rec.get("eval_curve", {}).get("accuracy", [np.nan]))
    return {
        "final_loss": float(np.mean(loss[-5:])),
        "max_grad_norm": float(np.max(grad)),
        "finite": bool(rec["finite"] and np.all(np.isfinite(loss)) and np.all(np.isfinite(grad))),
        "loss_rise": loss_rise(loss, c["lambda"]),
        "eval_acc_final": float(acc[-1]),
        "eval_acc_best": float(np.max(acc)),
        "eval_acc_drop": float(np.max(acc) - acc[-1]),
        "lambda_final": float(c["lambda"][-1]),
    }


def _cell(vals, fmt="{:.3f}") -> str:
    vals = [float(v) for v in vals]
    sd = float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0
    per = ", ".join(fmt.format(v) for v in vals)
    return f"{fmt.format(np.mean(vals))} ± {fmt.format(sd)} ({per})"


def ablation_table(records: list[dict]) -> str:
    """Markdown table, one row per variant (mean ± sd over seeds, per-seed values)."""
    head = (
        "| variant | disagree (population) | held-out acc. final | held-out acc. drop "
        "from best | final loss | max grad norm | loss rise at fixed lambda | final lambda "
        "| finite |"
    )
    lines = [head, "|---|---|---|---|---|---|---|---|---|"]
    for name in dict.fromkeys(r["variant"] for r in records):
        g = [r for r in records if r["variant"] == name]
        cols = [_cell([r[k] for r in g]) for k in ("disagree", "eval_acc_final", "eval_acc_drop",
                                                    "final_loss")]  # fmt: skip
        cols.append(_cell([r["max_grad_norm"] for r in g], "{:.2f}"))
        cols.append(_cell([r["loss_rise"] for r in g]))
        cols.append(", ".join(f"{r['lambda_final']:g}" for r in g))
        cols.append("yes" if all(r["finite"] for r in g) else "NO")
        lines.append(f"| {name} | " + " | ".join(cols) + " |")
    return "\n".join(lines)


def run_ablation(args, data, tok, work, start: float, load0) -> None:
    """Train every variant on every seed and write the ablation's results."""
    import torch
    from bench_llm import run_reward

    run_args = copy.copy(args)
    run_args.log_every = 1
    evaluation = {"eval_strategy": "steps", "eval_steps": args.eval_every,
                  "per_device_eval_batch_size": 4 * args.batch}  # fmt: skip
    records = []
    for seed in args.seeds:
        train, held = split_pairs(data["train"][seed], args.eval_share, seed)
        for name, (loss_type, extra) in VARIANT_SETS[args.ablation_set].items():
            rec = run_reward(run_args, loss_type, seed, data, tok, work, {**extra, **evaluation},
                             pairs=train, eval_pairs=held)  # fmt: skip
            rec.update(variant=name, **stability(rec))
            records.append(rec)
            print(f"{name} seed {seed}: disagree {rec['disagree']:.3f}, final lambda "
                  f"{rec['lambda_final']:g}, max grad {rec['max_grad_norm']:.2f} "
                  f"({rec['wall_s']:.0f} s)", flush=True)  # fmt: skip
    cmd = "python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *sys.argv[1:]])
    meta = {"command": cmd, "commit": commit(), "wall_s_total": time.time() - start,
            "loadavg_start": load0, "loadavg_end": os.getloadavg(),
            "platform": platform.platform(), "torch": torch.__version__,
            "args": {k: str(v) for k, v in vars(args).items()}}  # fmt: skip
    if int(os.environ.get("RANK", "0")) != 0:
        return
    args.out.mkdir(parents=True, exist_ok=True)
    result = {"meta": meta, "runs": records}
    write_text_atomic(
        args.out / f"{args.ablation_name}.json", json.dumps(result, indent=1, default=float)
    )
    n_train = len(split_pairs(data["train"][args.seeds[0]], args.eval_share, args.seeds[0])[0][0])
    md = [
        "# bench_llm ablation: stability of the sign loss in SignRewardTrainer",
        "",
        f"`{cmd}` at commit {meta['commit']}, {meta['wall_s_total']:.0f} s in all, load "
        f"average {load0[0]:.1f} -> {meta['loadavg_end'][0]:.1f}, {args.threads} threads.",
        f"Panel {args.panel}; {n_train} training comparisons per seed (seed 0), "
        f"{args.eval_share:.0%} held out for evaluation every {args.eval_every} steps; "
        f"batch {args.batch}, lr {args.lr}, {args.epochs} epoch(s), gradient clipping at "
        f"{args.max_grad_norm}; top layers {args.top_layers} on cached activations. "
        "Mean ± sd over seeds (per-seed values in brackets).",
        "",
        ablation_table(records),
        "",
    ]
    write_text_atomic(args.out / f"{args.ablation_name}.md", "\n".join(md))
    print("\n".join(md))
