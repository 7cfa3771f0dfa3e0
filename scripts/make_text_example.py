"""Build the real-text preference example: chatterbot-corpus texts, simulated twin-panel annotators.

    python scripts/make_text_example.py                       # writes examples/text/*
    python scripts/make_text_example.py --evaluate DIR [DIR ...]   # score fitted models vs truth

Texts are the shipped twin panel's prompt–response pairs (questions and styled answers from the
chatterbot-corpus, BSD-3). Annotators are its ~200 personas (signrm.simulate, "symmetric" variant:
heterogeneous taste direction and confidence over all-MiniLM-L6-v2 embeddings,
``phi = (e_prompt + e_response) / 2``). Each comparison shows two responses to the same prompt to
one persona, who answers with Bradley–Terry probabilities on theta_u . (phi(a) - phi(b)); each
persona answers ``--per-user`` consecutive comparisons. Output (pair convention, gzipped JSONL):

- ``examples/text/twin_prefs.jsonl.gz``: prompt, response_a, response_b, label, annotator_id;
- ``examples/text/candidates.jsonl``: prompts with all their candidate responses (best-of-n);
- ``examples/text/truth.json``: the population utility direction theta_bar (384 floats) and the
  evaluation protocol, so that fitted models can be checked against the population ordering.

``--evaluate`` loads model directories written by ``signrm fit`` and reports, on ``--n-pairs``
random same-prompt pairs drawn from *all* the panel's prompts, the disagreement rate with the
population-average utility (METHODS.md §4), and the golden-reward gain of best-of-N over a random
pick on every prompt. These are not held-out prompts: the example file draws from the same prompts
(and may contain some of the same pairs), so the numbers measure how well a model recovers the
population ordering on the texts it was trained around, not generalisation to unseen prompts
(for that, look at the held-out order consistency that ``signrm fit --split prompt`` prints).
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent.parent
OUT = HERE / "examples" / "text"


def build(n: int, per_user: int, seed: int, out: Path) -> None:
    from signrm.simulate import load_twin_panel, simulate_comparisons

    panel = load_twin_panel("symmetric")
    data = simulate_comparisons(
        panel.population,
        panel.embeddings,
        n,
        pairing="same_prompt",
        prompt_ids=panel.prompt_ids,
        per_user=per_user,
        random_state=seed,
    )
    rows = []
    for ia, ib, y, u in zip(data.item_a, data.item_b, data.y, data.user):
        rows.append(
            {
                "prompt": panel.prompts[ia],
                "response_a": panel.responses[ia],
                "response_b": panel.responses[ib],
                "label": "a" if y == 1 else "b",
                "annotator_id": f"persona-{int(u):03d}",
            }
        )
    out.mkdir(parents=True, exist_ok=True)
    body = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()
    tmp = out / ".twin_prefs.jsonl.gz.tmp"
    tmp.write_bytes(gzip.compress(body, mtime=0))
    tmp.replace(out / "twin_prefs.jsonl.gz")

    # best-of-n candidates: 100 prompts, all their responses
    rng = np.random.default_rng(seed + 1)
    chosen = rng.choice(np.unique(panel.prompt_ids), size=100, replace=False)
    cand = []
    for p in chosen:
        idx = np.flatnonzero(panel.prompt_ids == p)
        cand.append(
            {"prompt": panel.prompts[idx[0]], "responses": [panel.responses[i] for i in idx]}
        )
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in cand)
    (out / "candidates.jsonl").write_text(text, encoding="utf-8")

    theta_bar = panel.population.mean_utility()
    truth = {
        "source": "signrm.simulate.load_twin_panel('symmetric')",
        "n": n,
        "per_user": per_user,
        "seed": seed,
        "pairing": "same_prompt",
        "features": "MiniLM (e_prompt + e_response) / 2  (signrm fit --mode average)",
        "theta_bar": [round(float(v), 6) for v in theta_bar],
    }
    (out / "truth.json").write_text(json.dumps(truth), encoding="utf-8")
    n_users = len(np.unique(data.user))
    agree = np.mean(
        (np.sign(data.differences @ theta_bar) == data.signs)[data.differences @ theta_bar != 0]
    )
    size = (out / "twin_prefs.jsonl.gz").stat().st_size
    print(
        f"wrote {out / 'twin_prefs.jsonl.gz'}: {n} comparisons, {n_users} annotators, "
        f"{len(np.unique(data.prompt))} prompts, {size / 1e6:.2f} MB; labels agree with the "
        f"population ordering on {agree:.3f} of pairs"
    )


def evaluate(model_dirs: list[str], seed: int, n_pairs: int) -> None:
    """Disagreement with the population ordering on random same-prompt pairs over all prompts
    (the prompts of the example file, not held-out ones), and best-of-N gain on every prompt."""
    from signrm.simulate import load_twin_panel
    from signrm.textdata import TextRewardModel

    panel = load_twin_panel("symmetric")
    theta_bar = panel.population.mean_utility()
    u_bar = panel.embeddings.astype(np.float64) @ theta_bar
    golden = panel.golden(panel.alt_prompt, panel.alt_response)
    rng = np.random.default_rng(seed + 7)
    prompts = np.unique(panel.prompt_ids)
    a, b = [], []
    for _ in range(n_pairs):
        p = rng.choice(prompts)
        idx = np.flatnonzero(panel.prompt_ids == p)
        i, j = rng.choice(idx, size=2, replace=False)
        a.append(i)
        b.append(j)
    a, b = np.array(a), np.array(b)
    keep = u_bar[a] != u_bar[b]
    print(f"{'model':<28} {'disagree(u_bar)':>15} {'best-of-10 golden gain':>23}")
    for d in model_dirs:
        model = TextRewardModel.load(d, show_progress=False)
        r = model.reward(panel.responses, panel.prompts, show_progress=False)
        dis = np.mean(np.sign(r[a] - r[b])[keep] != np.sign(u_bar[a] - u_bar[b])[keep])
        gains = []
        for p in prompts:
            idx = np.flatnonzero(panel.prompt_ids == p)
            gains.append(golden[idx[np.argmax(r[idx])]] - golden[idx].mean())
        print(f"{Path(d).name:<28} {dis:>15.4f} {np.mean(gains):>23.4f}")
    oracle = [golden[np.flatnonzero(panel.prompt_ids == p)[np.argmax(u_bar[panel.prompt_ids == p])]]
              - golden[panel.prompt_ids == p].mean() for p in prompts]  # fmt: skip
    print(f"{'(population utility)':<28} {0.0:>15.4f} {np.mean(oracle):>23.4f}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20000, help="comparisons")
    ap.add_argument("--per-user", type=int, default=100, help="consecutive answers per persona")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--evaluate", nargs="+", metavar="MODEL_DIR", help="evaluate fitted models")
    ap.add_argument("--n-pairs", type=int, default=20000, help="evaluation pairs")
    args = ap.parse_args(argv)
    if args.evaluate:
        evaluate(args.evaluate, args.seed, args.n_pairs)
    else:
        build(args.n, args.per_user, args.seed, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
