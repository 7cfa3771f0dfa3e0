"""Choice models: the probability that an annotator prefers a over b.

- ``"bt"`` (logit, Gumbel utility noise): ``P(y=1) = sigmoid(delta)``.
- ``"thurstone"`` (probit, Gaussian noise): ``P(y=1) = Phi(delta)``.
- ``"bottleneck"`` (seed 003's cognitive-bottleneck annotator): the label is *correct* (agrees with
  ``sign(delta)``) with probability ``sigmoid(beta |delta| / scale)``; ``scale`` is the standard
  deviation of the utilities (of the golden rewards in seed 003), so ``beta`` means the same on any
  reward scale. ``beta`` in {0.5, 1, 3, 10} gives roughly 38 % to 5 % wrong labels there.
  ``scale`` is one number or one per comparison (each annotator's own utility sd, as
  ``simulate_comparisons`` passes for a population).

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
    scale: float | np.ndarray | None = None,
) -> np.ndarray:
    """``P(y = 1 | delta)`` of shape (n,) for utility differences ``delta`` (n,).

    ``beta`` (a positive number) and ``scale`` (a positive number or an (n,) array of positive
    numbers, default 1) are used by ``choice="bottleneck"`` only.
    """
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
    if not _is_positive_number(beta):
        raise ValueError(
            f"beta={beta!r} is not allowed; expected a positive number (e.g. 0.5, 1, 3, 10)"
        )
    sc = _check_scale(scale, d.shape)
    correct = expit(float(beta) * np.abs(d) / sc)
    # delta == 0: a coin flip
    return np.where(d > 0, correct, np.where(d < 0, 1.0 - correct, 0.5))


def _is_positive_number(value) -> bool:
    return (
        isinstance(value, (int, float, np.integer, np.floating))
        and not isinstance(value, (bool, np.bool_))
        and bool(np.isfinite(value))
        and value > 0
    )


def _check_scale(scale, shape: tuple[int, ...]) -> float | np.ndarray:
    """``scale`` as a positive float or a positive float64 array of ``shape``."""
    if scale is None:
        return 1.0
    if np.ndim(scale) == 0:
        if not _is_positive_number(scale if not isinstance(scale, np.ndarray) else scale[()]):
            raise ValueError(
                f"scale={scale!r} is not allowed; expected a positive number (the sd of the "
                "annotator's utilities)"
            )
        return float(scale)
    try:
        sc = np.asarray(scale, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(
            "scale: expected a positive number or an array of positive numbers, got "
            f"{type(scale).__name__}"
        ) from None
    if sc.shape != shape:
        raise ValueError(f"scale: expected one value per comparison, shape {shape}, got {sc.shape}")
    bad = ~(np.isfinite(sc) & (sc > 0))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"scale must be finite and > 0 (the sd of each annotator's utilities); "
            f"{int(bad.sum())} of {sc.size} values are not, e.g. {sc[i]!r} at position {i}"
        )
    return sc


def sample_choices(
    delta: np.ndarray,
    rng: np.random.Generator,
    *,
    choice: str = "bt",
    beta: float | None = None,
    scale: float | np.ndarray | None = None,
) -> np.ndarray:
    """Labels ``y`` in {0, 1} (float64, shape (n,)) drawn from ``choice_probability``."""
    p = choice_probability(delta, choice=choice, beta=beta, scale=scale)
    return (rng.random(p.shape[0]) < p).astype(np.float64)
