"""Features chosen from the data: a cross-validated choice among text encoders (and heads).

:func:`select_features` scores each candidate encoder (each sentence-encoder mode, each model)
and, when several estimators are given, each head, by held-out order consistency over folds that
keep every prompt on one side, and returns the scores and the best candidate.

>>> from signrm import SignEstimator, select_features
>>> from signrm.embed import SentenceEncoder
>>> from signrm.feature_select import mode_candidates
>>> sel = select_features(texts, mode_candidates(SentenceEncoder()), SignEstimator())  # doctest: +SKIP
>>> print("\\n".join(sel.lines()))  # doctest: +SKIP
>>> data = texts.to_preference_data(sel.encoder)  # doctest: +SKIP

Cost: the selection runs on a seeded prompt-grouped subsample of at most ``max_comparisons``
comparisons. The four modes of one sentence model cost two embeddings per (prompt, response)
item (the response alone and prompt + response) plus one per distinct prompt: ``separate`` and
``average`` are built from the response and prompt vectors exactly as
:class:`~signrm.embed.SentenceEncoder` builds them, bit for bit. Then ``n_folds`` fits per
candidate and estimator, on ``(n_folds - 1) / n_folds`` of the subsample each.
"""

from __future__ import annotations

import copy
import math
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from signrm.errors import UserError, option_hint

__all__ = [
    "MODES",
    "DEFAULT_MAX_COMPARISONS",
    "DEFAULT_SLACK",
    "CandidateScore",
    "FeatureSelection",
    "mode_candidates",
    "prompt_folds",
    "grouped_subsample",
    "choose",
    "paired_gap_se",
    "select_features",
]

#: the sentence-encoder modes, in the order in which exact ties are broken
MODES = ("concat", "response", "separate", "average")
#: comparisons the selection runs on by default (docs/text.md: about a minute on 2 CPU cores)
DEFAULT_MAX_COMPARISONS = 2000
#: tolerance of the choice in paired standard errors (:func:`choose`; 0 = the best mean)
DEFAULT_SLACK = 0.0


# ------------------------------------------------------------------------------ candidates
def _with_mode(encoder, mode: str):
    """A copy of a sentence ``encoder`` in another ``mode``, sharing its loaded model."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    enc = copy.copy(encoder)
    enc.mode = mode
    enc._cache = None  # the cache identity holds the mode
    enc._prompt_memo = {}
    return enc


def mode_candidates(encoder, modes: Sequence[str] = MODES) -> list:
    """One copy of the sentence ``encoder`` per mode of ``modes``, sharing its model (loaded
    here, once)."""
    if getattr(encoder, "kind", None) != "sentence":
        raise ValueError(
            f"modes apply to sentence encoders; {encoder!r} is a {getattr(encoder, 'kind', '?')}"
        )
    encoder.st  # noqa: B018 - load the model once, so that the copies share it
    return [_with_mode(encoder, m) for m in modes]


def encoder_label(encoder) -> str:
    """Short name of a candidate encoder: the model's file/folder name plus its mode or layer."""
    name = Path(str(encoder.describe()).split("@")[0]).name or encoder.describe()
    if getattr(encoder, "kind", None) == "sentence":
        return f"{name} {encoder.mode}"
    layer = getattr(encoder, "layer", -1)
    return name if layer == -1 else f"{name} layer {layer}"


def estimator_label(estimator) -> str:
    head = estimator.get_params().get("head")
    return type(estimator).__name__ + ("" if head is None else f" head={head}")


# ----------------------------------------------------------------------------------- folds
def grouped_subsample(groups: np.ndarray, max_n: int, random_state: int | None = 0) -> np.ndarray:
    """Sorted row indices of at most ``max_n`` rows made of whole groups in a seeded random
    order (all rows when there are at most ``max_n``); random rows when the first group alone
    is larger than ``max_n``. ``groups``: ``(n,)`` ids (e.g. prompt codes)."""
    groups = np.asarray(groups)
    n = len(groups)
    if n <= max_n:
        return np.arange(n)
    rng = np.random.default_rng(random_state)
    uniq, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    order = rng.permutation(len(uniq))
    keep = order[np.cumsum(counts[order]) <= max_n]
    if len(keep) == 0:
        return np.sort(rng.choice(n, size=max_n, replace=False))
    return np.flatnonzero(np.isin(inverse, keep))


def prompt_folds(
    groups: np.ndarray, n_folds: int = 5, random_state: int | None = 0
) -> tuple[list[np.ndarray], str]:
    """Test rows of ``n_folds`` folds, each group (prompt) in one fold, and how they were made.

    Groups go, largest first (ties in a seeded random order), to the fold with the fewest rows
    (scikit-learn's GroupKFold, seeded); with fewer distinct groups than folds the folds are
    seeded random rows instead, and the description says so.
    """
    groups = np.asarray(groups)
    n = len(groups)
    if n_folds < 2 or n < n_folds:
        raise ValueError(
            f"{n_folds}-fold cross-validation needs >= {max(n_folds, 2)} rows, got {n}"
        )
    rng = np.random.default_rng(random_state)
    uniq, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    if len(uniq) < n_folds:
        fold_of = rng.permutation(n) % n_folds
        how = f"random folds (only {len(uniq)} distinct prompts for {n_folds} folds)"
    else:
        order = rng.permutation(len(uniq))
        order = order[np.argsort(-counts[order], kind="stable")]
        sizes = np.zeros(n_folds, dtype=np.int64)
        fold_of_group = np.empty(len(uniq), dtype=np.int64)
        for g in order:
            f = int(np.argmin(sizes))
            fold_of_group[g] = f
            sizes[f] += counts[g]
        fold_of = fold_of_group[inverse]
        how = "folds by prompt" if len(uniq) < n else "random folds (every prompt distinct)"
    return [np.flatnonzero(fold_of == f) for f in range(n_folds)], how


# --------------------------------------------------------------------------------- features
class _Lookup:
    """Encoder stand-in that returns precomputed rows of ``(prompt, response)`` items."""

    def __init__(self, rows: dict[tuple[str, str], int], features: np.ndarray):
        self.rows, self.features = rows, features

    def encode(self, texts, prompts=None, *, show_progress=None) -> np.ndarray:
        prompts = [""] * len(texts) if prompts is None else prompts
        return self.features[[self.rows[(p, t)] for p, t in zip(prompts, texts)]]


def _model_key(encoder) -> tuple:
    ident = encoder.identity
    if ident is None:
        return (id(encoder.st), encoder.normalize)
    return (ident["model"], encoder.normalize)


def _prompt_vectors(enc, texts: list[str], prompts: list[str]) -> np.ndarray:
    """Prompt vectors ``(m, d)`` of ``m`` distinct items, computed in the batches in which a
    ``separate``/``average`` SentenceEncoder without a cache computes them (its items longest
    first, ``batch_size`` at a time, each new prompt once), so that the features are the same to
    the bit (padding to another length changes the last bits)."""
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]) - len(prompts[i]))
    vectors: dict[str, np.ndarray] = {}
    for start in range(0, len(order), enc.batch_size):
        batch = [prompts[i] for i in order[start : start + enc.batch_size]]
        new = [p for p in dict.fromkeys(batch) if p not in vectors]
        if new:
            vectors.update(zip(new, enc._embed(new)))
    return np.stack([vectors[p] for p in prompts])


def _sentence_features(enc, texts, prompts, memo: dict, progress) -> np.ndarray:
    """Features of ``enc``'s mode from at most two embeddings per item and one per prompt,
    shared through ``memo`` by the candidates of one model (built as SentenceEncoder does)."""
    key = _model_key(enc)
    if enc.mode == "concat" and prompts is not None:  # without prompts, concat = response
        k = (key, "concat", enc.separator)
        if k not in memo:
            memo[k] = enc.encode(texts, prompts, show_progress=progress)
        return memo[k]
    if (key, "response") not in memo:
        memo[(key, "encoder")] = _with_mode(enc, "response")
        memo[(key, "response")] = memo[(key, "encoder")].encode(
            texts, prompts, show_progress=progress
        )
    resp = memo[(key, "response")]
    if enc.mode in ("response", "concat") or (prompts is None and enc.mode == "average"):
        return resp
    if prompts is None:
        return np.concatenate([np.zeros_like(resp), resp], axis=1)
    if (key, "prompt") not in memo:
        memo[(key, "prompt")] = _prompt_vectors(memo[(key, "encoder")], texts, prompts)
    pemb = memo[(key, "prompt")]
    if enc.mode == "average":
        return 0.5 * (pemb + resp)
    return np.concatenate([pemb, resp], axis=1)


def candidate_features(texts, candidates: Sequence, *, show_progress=None) -> list[_Lookup]:
    """For each candidate encoder, an encoder stand-in serving its features of the items of
    ``texts`` (:class:`~signrm.data.TextPreferences`); sentence encoders of one model share
    their embeddings (see the module docstring)."""
    pairs = list(zip(texts.prompts, texts.text_a)) + list(zip(texts.prompts, texts.text_b))
    items = list(dict.fromkeys(pairs))
    rows = {it: i for i, it in enumerate(items)}
    item_texts = [t for _, t in items]
    item_prompts = [p for p, _ in items] if texts.has_prompts else None
    memo: dict = {}
    out = []
    for enc in candidates:
        if getattr(enc, "kind", None) == "sentence":
            feats = _sentence_features(enc, item_texts, item_prompts, memo, show_progress)
        else:
            feats = enc.encode(item_texts, item_prompts, show_progress=show_progress)
        out.append(_Lookup(rows, np.asarray(feats, dtype=np.float32)))
    return out


# ---------------------------------------------------------------------------------- result
@dataclass(frozen=True)
class CandidateScore:
    """Held-out order consistency of one (encoder, estimator) candidate over the folds.

    ``mean``: mean over the scored folds (fraction in [0, 1]; NaN when no fold could be scored),
    ``se``: its standard error (sample sd / sqrt(folds); NaN with fewer than 2 folds),
    ``fold_scores``: the scored folds' values (folds whose test labels are all ties are skipped).
    """

    encoder: str
    estimator: str
    mean: float
    se: float
    fold_scores: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        def num(v):
            return None if math.isnan(v) else round(float(v), 6)

        return {
            "encoder": self.encoder,
            "estimator": self.estimator,
            "mean": num(self.mean),
            "se": num(self.se),
            "fold_scores": [round(float(v), 6) for v in self.fold_scores],
        }


@dataclass
class FeatureSelection:
    """What :func:`select_features` found.

    ``scores``: one :class:`CandidateScore` per (encoder, estimator), encoder-major;
    ``best``: index of the chosen one in ``scores`` (see :func:`choose`); ``encoder`` / ``estimator``: the chosen
    encoder and (unfitted) estimator; ``n_used`` of ``n_total`` comparisons were cross-validated
    with ``n_folds`` folds made as ``folds`` says; ``seconds``: wall time (embedding included);
    ``slack``: the tolerance of the choice, in paired standard errors.
    """

    scores: tuple[CandidateScore, ...]
    best: int
    encoder: Any
    estimator: Any
    n_used: int
    n_total: int
    n_folds: int
    folds: str
    seconds: float
    slack: float = DEFAULT_SLACK

    @property
    def several_estimators(self) -> bool:
        return len({s.estimator for s in self.scores}) > 1

    def label(self, i: int) -> str:
        s = self.scores[i]
        return f"{s.encoder}, {s.estimator}" if self.several_estimators else s.encoder

    def lines(self) -> list[str]:
        """The summary: one line per candidate, ``mean ± se`` held-out order consistency."""
        width = max(len(self.label(i)) for i in range(len(self.scores)))
        rule = "best mean" if self.slack == 0 else f"first within {self.slack:g} SE of the best"
        out = [
            f"{self.n_folds}-fold cross-validation ({self.folds}) on {self.n_used} of "
            f"{self.n_total} comparisons, {self.seconds:.1f} s; {rule}"
        ]
        for i, s in enumerate(self.scores):
            val = "n/a (all ties)" if math.isnan(s.mean) else f"{s.mean:.4f}"
            if not math.isnan(s.se):
                val += f" ± {s.se:.4f}"
            out.append(
                f"{self.label(i):<{width}}  {val}" + ("   <- chosen" if i == self.best else "")
            )
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (what ``signrm fit`` stores in the model's metadata)."""
        return {
            "chosen": self.label(self.best),
            "chosen_index": self.best,
            "candidates": [s.to_dict() for s in self.scores],
            "n_used": self.n_used,
            "n_total": self.n_total,
            "n_folds": self.n_folds,
            "folds": self.folds,
            "slack": self.slack,
            "seconds": round(self.seconds, 2),
        }


# ------------------------------------------------------------------------------- selection
def _cv_scores(data, folds: list[np.ndarray], estimator, bar) -> list[float]:
    """Held-out order consistency of a clone of ``estimator`` on each fold (all-tie folds and
    folds whose training part is all ties are skipped)."""
    from sklearn.base import clone

    y = np.asarray(data.y)
    n = len(y)
    scores = []
    for test in folds:
        train = np.setdiff1d(np.arange(n), test, assume_unique=True)
        if np.all(y[test] == 0.5) or np.all(y[train] == 0.5):
            bar.update(1)
            continue
        est = clone(estimator).fit(data.subset(train))
        scores.append(float(est.score(data.subset(test))))
        bar.update(1)
    return scores


def paired_gap_se(scores: Sequence[CandidateScore], best: int) -> np.ndarray:
    """``(c,)`` standard errors of the best candidate's mean score minus each one's, paired over
    the folds (sample sd of the per-fold gaps / sqrt(folds)); 0 for the best itself, NaN with
    fewer than 2 folds."""
    ref = np.asarray(scores[best].fold_scores, dtype=np.float64)
    out = np.full(len(scores), np.nan)
    for i, s in enumerate(scores):
        gap = ref - np.asarray(s.fold_scores, dtype=np.float64)
        if len(gap) > 1 and len(gap) == len(ref):
            out[i] = gap.std(ddof=1) / math.sqrt(len(gap))
    return out


def choose(scores: Sequence[CandidateScore], slack: float = DEFAULT_SLACK) -> int:
    """Index of the chosen candidate: the first (in order) whose mean is within ``slack`` paired
    standard errors (:func:`paired_gap_se`) of the best mean, the one-standard-error rule of
    :func:`signrm.engine.bandwidth.one_standard_error_choice`: a later candidate replaces an
    earlier one only when the folds show it better by more than noise. ``slack=0``: the best
    mean, exact ties to the first."""
    from signrm.engine.bandwidth import one_standard_error_choice

    means = np.array([-np.inf if math.isnan(s.mean) else s.mean for s in scores])
    best = int(np.argmax(means))
    if slack == 0 or not np.isfinite(means[best]):
        return best
    gap_se = np.nan_to_num(paired_gap_se(scores, best), nan=0.0)
    return one_standard_error_choice(means[:, None], gap_se[:, None], slack)[0]


def _mean_se(values: Sequence[float]) -> tuple[float, float]:
    if not values:
        return math.nan, math.nan
    v = np.asarray(values, dtype=np.float64)
    se = float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else math.nan
    return float(v.mean()), se


def select_features(
    texts,
    candidates: Sequence,
    estimator,
    *,
    n_folds: int = 5,
    max_comparisons: int = DEFAULT_MAX_COMPARISONS,
    random_state: int | None = 0,
    slack: float = DEFAULT_SLACK,
    show_progress: bool | None = None,
) -> FeatureSelection:
    """Choose the encoder (and estimator) whose features predict held-out comparisons best.

    Parameters
    ----------
    texts : :class:`~signrm.data.TextPreferences` (``n`` comparisons; nothing embedded yet).
    candidates : encoders to compare, e.g. :func:`mode_candidates` of a ``SentenceEncoder``
        and/or other models; exact ties are broken by this order.
    estimator : an unfitted estimator, or a sequence of them (e.g. linear and MLP heads);
        every candidate is scored with a ``sklearn.base.clone`` of each.
    n_folds : folds of the cross-validation (see :func:`prompt_folds`).
    max_comparisons : the selection runs on a seeded prompt-grouped subsample of at most this
        many comparisons (see :func:`grouped_subsample`).
    random_state : seed of the subsample, the folds and the label balancing of TRL files.
    slack : the first candidate (in the given order) whose mean is within ``slack`` paired
        standard errors of the best mean is chosen (:func:`choose`); ``0`` = the best mean.
    show_progress : progress bars (embedding and fits); ``None`` = when stderr is a terminal.

    Returns a :class:`FeatureSelection`; its ``encoder`` then embeds the full data, e.g.
    ``texts.to_preference_data(selection.encoder)``. Score = order consistency
    (``estimator.score``), a fraction in [0, 1].
    """
    from tqdm.auto import tqdm

    candidates = list(candidates)
    estimators = list(estimator) if isinstance(estimator, Sequence) else [estimator]
    if not candidates or not estimators:
        raise ValueError("select_features needs at least one candidate encoder and estimator")
    if max_comparisons < 2 * n_folds:
        raise ValueError(f"max_comparisons must be >= 2 * n_folds = {2 * n_folds}")
    t0 = time.perf_counter()
    codes, _ = texts.prompt_codes()
    idx = grouped_subsample(codes, max_comparisons, random_state)
    sub = texts.subset(idx)
    if len(sub) < 2 * n_folds:
        raise UserError(
            f"choosing features by {n_folds}-fold cross-validation needs >= {2 * n_folds} "
            f"comparisons, got {len(sub)}; fix the features instead (e.g. "
            f"{option_hint('mode', 'concat')})"
        )
    folds, how = prompt_folds(codes[idx], n_folds, random_state)
    progress = sys.stderr.isatty() if show_progress is None else bool(show_progress)
    lookups = candidate_features(sub, candidates, show_progress=show_progress)

    scores: list[CandidateScore] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with tqdm(
            total=len(candidates) * len(estimators) * n_folds,
            desc="feature selection",
            unit="fit",
            disable=not progress,
            leave=False,
        ) as bar:
            for enc, lookup in zip(candidates, lookups):
                data = sub.to_preference_data(lookup, random_state=random_state)
                for est in estimators:
                    vals = _cv_scores(data, folds, est, bar)
                    mean, se = _mean_se(vals)
                    scores.append(
                        CandidateScore(
                            encoder_label(enc), estimator_label(est), mean, se, tuple(vals)
                        )
                    )
    seen: set[tuple[type, str]] = set()
    for w in caught:  # each distinct warning once, not once per fold
        if (w.category, str(w.message)) not in seen:
            seen.add((w.category, str(w.message)))
            warnings.warn(w.message, w.category, stacklevel=2)
    best = choose(scores, slack)
    return FeatureSelection(
        scores=tuple(scores),
        best=best,
        encoder=candidates[best // len(estimators)],
        estimator=estimators[best % len(estimators)],
        n_used=len(sub),
        n_total=len(texts),
        n_folds=n_folds,
        folds=how,
        seconds=time.perf_counter() - t0,
        slack=slack,
    )
