"""Preference losses as plain PyTorch functions, usable in any training loop.

Conventions (all functions):
- ``margins``: tensor (n,) of r(a) - r(b), in reward units.
- ``y``: tensor (n,) of labels, 1 = a preferred, 0 = b preferred, 0.5 = tie.
- ``weight``: optional tensor (n,) of non-negative per-comparison weights.
Each returns the weighted mean loss, a scalar tensor.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "bt_loss",
    "probit_loss",
    "sign_loss",
    "clf_loss",
    "zero_one_agreement",
    "lambda_schedule",
    "centering_penalty",
]


def _weighted_mean(values: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    if weight is None:
        return values.mean()
    total = weight.sum()
    return (values * weight).sum() / total.clamp_min(torch.finfo(values.dtype).tiny)


def bt_loss(
    margins: torch.Tensor,
    y: torch.Tensor,
    weight: torch.Tensor | None = None,
    margin_offset: torch.Tensor | None = None,
) -> torch.Tensor:
    """Bradley–Terry / RLHF cross-entropy: ``y softplus(-m) + (1 - y) softplus(m)``.

    A tie (y = 0.5) counts as half a win each way. ``margin_offset`` follows TRL's ``margin``
    column: the loss is taken on ``m - offset`` for a preferred-a label (and ``m + offset`` for b),
    i.e. the model must beat the pair's margin.
    """
    m = margins
    if margin_offset is not None:
        s = 2.0 * y - 1.0
        m = m - s * margin_offset
    values = y * F.softplus(-m) + (1.0 - y) * F.softplus(m)
    return _weighted_mean(values, weight)


def _log_ndtr(x: torch.Tensor) -> torch.Tensor:
    return torch.special.log_ndtr(x)


def probit_loss(
    margins: torch.Tensor,
    y: torch.Tensor,
    weight: torch.Tensor | None = None,
    margin_offset: torch.Tensor | None = None,
) -> torch.Tensor:
    """Thurstone (probit) negative log-likelihood: ``-y log Phi(m) - (1 - y) log Phi(-m)``.

    ``margin_offset`` as in :func:`bt_loss`: the loss is taken on ``m - (2y - 1) offset``.
    """
    m = margins
    if margin_offset is not None:
        m = m - (2.0 * y - 1.0) * margin_offset
    values = -(y * _log_ndtr(m) + (1.0 - y) * _log_ndtr(-m))
    return _weighted_mean(values, weight)


def sign_loss(
    margins: torch.Tensor,
    y: torch.Tensor,
    lam: float,
    weight: torch.Tensor | None = None,
    scale: float | torch.Tensor | None = None,
) -> torch.Tensor:
    """Smoothed 0-1 loss of the sign estimator: ``-(2y - 1) tanh(lam * m / (2 scale))``.

    ``tanh(lam t / 2) = 2 sigmoid(lam t) - 1`` is the smooth stand-in for ``sign(t)``; the loss is
    minus the smoothed agreement, in [-1, 1]. Ties (y = 0.5) carry zero weight automatically.
    ``scale`` makes ``lam`` dimensionless: pass the standard deviation of the margins at the start
    of an annealing stage (or a running estimate), so that lam = 15 means the same sharpness on any
    feature scale. With ``scale=None`` the margins are used as they are.
    """
    s = 2.0 * y - 1.0
    t = margins if scale is None else margins / scale
    values = -s * torch.tanh(0.5 * lam * t)
    return _weighted_mean(values, weight)


def clf_loss(logits: torch.Tensor, labels: torch.Tensor, weight: torch.Tensor | None = None):
    """Pointwise classification loss of the CLF reward model (seed 003).

    ``logits``: (m,) reward of single alternatives; ``labels``: (m,) 1 = chosen, 0 = rejected
    (0.5 for an alternative in a tie). Binary cross-entropy with logits.
    """
    values = F.binary_cross_entropy_with_logits(logits, labels, reduction="none")
    return _weighted_mean(values, weight)


def zero_one_agreement(margins: torch.Tensor, y: torch.Tensor, weight=None) -> torch.Tensor:
    """Exact sign agreement ``mean((2y - 1) sign(m))`` in [-1, 1] (the maximum-score objective)."""
    return _weighted_mean((2.0 * y - 1.0) * torch.sign(margins), weight)


def centering_penalty(
    rewards_a: torch.Tensor, rewards_b: torch.Tensor, coef: float
) -> torch.Tensor:
    """TRL's reward centring term: ``coef * mean((r(a) + r(b))^2)``."""
    return coef * ((rewards_a + rewards_b) ** 2).mean()


def lambda_schedule(
    start: float = 1.0, stop: float = 15.0, n_stages: int = 5, kind: str = "geometric"
) -> np.ndarray:
    """Annealing schedule for the smoothing parameter lambda, shape (n_stages,).

    ``kind="geometric"`` spaces the stages evenly in log lambda (sharpness doubles at a steady
    rate), ``"linear"`` evenly in lambda. ``n_stages=1`` gives ``[stop]``.
    """
    if n_stages < 1:
        raise ValueError(f"n_stages must be >= 1, got {n_stages}")
    if not (start > 0 and stop > 0):
        raise ValueError(f"lambda start and stop must be > 0, got {start} and {stop}")
    if n_stages == 1:
        return np.array([float(stop)])
    if kind == "geometric":
        return np.geomspace(start, stop, n_stages)
    if kind == "linear":
        return np.linspace(start, stop, n_stages)
    raise ValueError(f"kind must be 'geometric' or 'linear', got {kind!r}")


def resolve_lambdas(lambdas: Sequence[float], n_stages: int) -> np.ndarray:
    """``(start, stop)`` -> geometric schedule of ``n_stages``; a longer sequence is used as given."""
    values = [float(v) for v in lambdas]
    if any(not math.isfinite(v) or v <= 0 for v in values):
        raise ValueError(f"lambdas must be finite and > 0, got {lambdas}")
    if len(values) == 1:
        return np.array(values)
    if len(values) == 2:
        return lambda_schedule(values[0], values[1], n_stages)
    return np.array(values)
