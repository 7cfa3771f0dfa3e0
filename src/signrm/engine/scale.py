"""The running margin scale that makes the sign loss's lambda dimensionless in torch training."""

from __future__ import annotations

import math

import torch

from signrm.engine.group import ProcessGroup, current_group


class RunningScale:
    """Exponential moving average of the standard deviation of margins over (global) batches.

    ``momentum`` follows ``torch.nn.BatchNorm``'s convention: the weight of the NEW batch,
    ``value <- (1 - momentum) * value + momentum * batch_sd``; the first batch sets the value.
    With several processes the batch standard deviation is that of the global batch (sums of
    ``1, m, m^2`` all-reduced), so every process uses the same scale.
    """

    def __init__(self, momentum: float = 0.05, group: ProcessGroup | None = None) -> None:
        if not 0.0 < momentum <= 1.0:
            raise ValueError(f"momentum must be in (0, 1], got {momentum}")
        self.momentum = momentum
        self.group = group
        self.value: float | None = None

    def update(self, margins: torch.Tensor) -> float:
        """Fold in a batch of margins (any shape, detached); returns the current scale (> 0)."""
        m = margins.detach().double().reshape(-1)
        sums = [float(m.numel()), float(m.sum()), float((m * m).sum())]
        group = self.group or current_group()
        n, s1, s2 = (float(v) for v in group.allreduce_sum(sums))
        sd = math.sqrt(max(s2 - s1 * s1 / n, 0.0) / (n - 1)) if n > 1 else float("nan")
        if not math.isfinite(sd) or sd <= 0:
            sd = self.value or 1.0
        self.value = (
            sd if self.value is None else (1 - self.momentum) * self.value + self.momentum * sd
        )
        return self.value
