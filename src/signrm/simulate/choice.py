"""Choice models: the probability that an annotator prefers a over b.

- ``"bt"`` (logit, Gumbel utility noise): ``P(y=1) = sigmoid(delta)``.
- ``"thurstone"`` (probit, Gaussian noise): ``P(y=1) = Phi(delta)``.
- ``"bottleneck"`` (seed 003's cognitive-bottleneck annotator): the label is *correct* (agrees with
  ``sign(delta)``) with probability ``sigmoid(beta |delta| / scale)``; ``scale`` is the standard
  deviation of the utilities (of the golden rewards in seed 003), so ``beta`` means the same on any
  reward scale. ``beta`` in {0.5, 1, 3, 10} gives roughly 38 % to 5 % wrong labels there.

``delta`` is the utility difference ``u(a) - u(b)`` in the annotator's own units.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit, ndtr

__all__ = ["CHOICE_MODELS", "choice_probability", "sample_choices"]

CHOICE_MODELS = ("bt", "thurstone", "bottleneck")


def choice_probability(
    delta: np.ndarray,
    *,
    choice: str = "bt",
    beta: float | None = None,
    scale: float | None = None,
) -> np.ndarray:
    """``P(y = 1 | delta)`` of shape (n,) for utility differences ``delta`` (n,)."""
    if choice not in CHOICE_MODELS:
        raise ValueError(
            f"choice={choice!r} is not allowed; choose one of {', '.join(CHOICE_MODELS)}"
        )
    d = np.asarray(delta, dtype=np.float64)
    if choice == "bt":
        return expit(d)
    if choice == "thurstone":
        return ndtr(d)
    if beta is None:
        raise ValueError("choice='bottleneck' needs beta (annotation quality, e.g. 0.5, 1, 3, 10)")
    sc = float(scale) if scale is not None else 1.0
    if not sc > 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    correct = expit(float(beta) * np.abs(d) / sc)
    # delta == 0: a coin flip
    return np.where(d > 0, correct, np.where(d < 0, 1.0 - correct, 0.5))


def sample_choices(
    delta: np.ndarray,
    rng: np.random.Generator,
    *,
    choice: str = "bt",
    beta: float | None = None,
    scale: float | None = None,
) -> np.ndarray:
    """Labels ``y`` in {0, 1} (float64, shape (n,)) drawn from ``choice_probability``."""
    p = choice_probability(delta, choice=choice, beta=beta, scale=scale)
    return (rng.random(p.shape[0]) < p).astype(np.float64)
