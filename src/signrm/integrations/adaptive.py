"""The sign loss's bandwidth chosen during fine-tuning, phase by phase, from held-out agreement.

The linear :class:`signrm.SignEstimator` chooses lambda by cross-fitting the annealed path over a
grid (:mod:`signrm.engine.bandwidth`). An LLM cannot be refitted once per fold and candidate, but
its training run *is* a warm-started path: :class:`AdaptiveLambda` walks the same grid (the
estimator's default, 1 -> 64 in doublings), one phase between two evaluations per lambda, and
scores each phase's end state by its exact agreement ``mean w sign(m)`` on the evaluation split
(the chosen response is the preferred one, so ``s = +1``):

1. the model at the first evaluation after the BT warm-up is the BT candidate;
2. each later evaluation scores the phase just trained at the current lambda; while the score
   improves the next phase moves one step up the grid;
3. once it has not improved for ``patience`` phases (or the grid is exhausted) lambda is frozen
   for the rest of training at the one-standard-error choice of
   :func:`signrm.engine.bandwidth.one_standard_error_choice` (the candidate closest to BT within
   ``slack`` paired standard errors of the best; the BT candidate means the BT loss again).

Unlike the estimator's folds, the phases differ in training time as well as in lambda, so the
choice is "how sharp a loss still pays on held-out data at this point of training".
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from signrm.engine.bandwidth import one_standard_error_choice, paired_errors, paired_sums

__all__ = ["AdaptiveLambda", "default_grid", "paired_scores"]


def default_grid() -> tuple[np.ndarray, int, float]:
    """The linear estimator's candidate grid (J,), patience and slack (``SignEstimator()``
    defaults: lambda 1 -> 64 in 7 geometric stages, patience 1, slack 0.5)."""
    from signrm.estimators.sign import SignEstimator
    from signrm.losses import resolve_lambdas

    est = SignEstimator()
    return resolve_lambdas(est.lambdas, est.n_stages), est.cv_patience, est.cv_slack


def paired_scores(hits: np.ndarray, weight: np.ndarray | None = None):
    """Scores (C,) ``sum wn h_c`` of candidates and the paired standard errors (C,) of the best
    one's score minus each one's; ``hits`` (n, C) in {-1, 0, 1}, ``weight`` (n,) >= 0."""
    hits = np.asarray(hits, dtype=np.float64)
    w = np.ones(hits.shape[0]) if weight is None else np.asarray(weight, dtype=np.float64)
    wn = w / w.sum()
    scores, se, _ = paired_errors(paired_sums(hits, wn, int(np.argmax(wn @ hits))))
    return scores, se


@dataclass
class AdaptiveLambda:
    """Phase-by-phase lambda (see the module docstring).

    ``grid`` (J,) increasing candidate lambdas. After each :meth:`observe`, :attr:`current` is
    the lambda of the next phase (``None`` = the BT loss); :attr:`candidates` lists the lambdas
    scored so far (``None`` for BT) and :attr:`scores` their held-out agreements.
    """

    grid: np.ndarray
    patience: int = 1
    slack: float = 0.5
    current: float | None = None
    frozen: bool = False
    candidates: list[float | None] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    _hits: list[np.ndarray] = field(default_factory=list, repr=False)
    _weight: np.ndarray | None = field(default=None, repr=False)
    _stage: int = -1
    _since_best: int = 0

    def observe(self, agreement: np.ndarray, weight: np.ndarray | None = None) -> float | None:
        """Score the phase just trained (``agreement`` (n,) = ``sign(m)`` on the evaluation
        split, the same rows in the same order each time) and return the next phase's lambda."""
        agreement = np.asarray(agreement, dtype=np.float64).reshape(-1)
        if self._hits and agreement.size != self._hits[0].size:
            raise ValueError(
                f"the evaluation split changed size ({self._hits[0].size} -> {agreement.size} "
                "rows): adaptive lambda scores every phase on the same rows"
            )
        if self.frozen:
            return self.current
        self._weight = weight if weight is None else np.asarray(weight, dtype=np.float64)
        self._hits.append(agreement)
        self.candidates.append(self.current)
        score = float(paired_scores(agreement[:, None], self._weight)[0][0])
        self.scores.append(score)
        if len(self.scores) > 1 and score <= max(self.scores[:-1]) + 1e-12:
            self._since_best += 1
        else:
            self._since_best = 0
        if self._since_best >= self.patience or self._stage + 1 >= len(self.grid):
            self.current, self.frozen = self.choice(), True
        else:
            self._stage += 1
            self.current = float(self.grid[self._stage])
        return self.current

    def choice(self) -> float | None:
        """The one-standard-error choice among the candidates scored so far (None = BT)."""
        hits = np.stack(self._hits, axis=1)  # (n, 1 + J): BT, then the sign phases
        scores, se = paired_scores(hits, self._weight)
        if hits.shape[1] == 1:
            return None
        # rows = sign phases, column 0 = the BT candidate, column 1 = the phase (the blend grid
        # of engine.bandwidth with blends {0, 1})
        table = np.stack([np.full(scores.size - 1, scores[0]), scores[1:]], axis=1)
        errors = np.stack([np.full(se.size - 1, se[0]), se[1:]], axis=1)
        j, b = one_standard_error_choice(table, errors, self.slack)
        return None if b == 0 else self.candidates[1 + j]

    def record(self) -> dict:
        """JSON-ready summary: grid, candidates, scores, current lambda, frozen."""
        return {
            "grid": [float(v) for v in self.grid],
            "candidates": self.candidates,
            "scores": self.scores,
            "lambda": self.current,
            "frozen": self.frozen,
        }
