"""Reward heads: torch modules mapping features ``(n, d)`` to rewards ``(n,)``."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["LinearHead", "MLPHead", "make_head"]


class LinearHead(nn.Module):
    """``r(x) = theta . x`` with no intercept (it cancels in margins)."""

    def __init__(self, n_features: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(n_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.weight


class MLPHead(nn.Module):
    """``r(x) = f(x)``: ``d -> hidden[0] -> ... -> 1`` with ReLU (default 1024, 512 as seed 003)."""

    def __init__(self, n_features: int, hidden: Sequence[int] = (1024, 512), dropout: float = 0.0):
        super().__init__()
        layers: list[nn.Module] = []
        width = n_features
        for h in hidden:
            layers += [nn.Linear(width, int(h)), nn.ReLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = int(h)
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)


def make_head(kind: str, n_features: int, hidden: Sequence[int] = (1024, 512)) -> nn.Module:
    """Build a head by name: ``"linear"`` or ``"mlp"``."""
    if kind == "linear":
        return LinearHead(n_features)
    if kind == "mlp":
        return MLPHead(n_features, hidden)
    raise ValueError(f"head must be 'linear' or 'mlp', got {kind!r}")
