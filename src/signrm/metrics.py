"""Evaluation metrics (METHODS.md section 4). Plain functions over numpy arrays."""

from __future__ import annotations

import numpy as np
from scipy import stats

__all__ = [
    "angular_error",
    "disagreement_rate",
    "order_consistency",
    "best_of_n",
    "spearman",
    "mean_ci",
]


def angular_error(theta_hat, theta_true) -> float:
    """Angle in degrees, in [0, 180], between two vectors of shape (d,)."""
    a = np.asarray(theta_hat, dtype=np.float64).ravel()
    b = np.asarray(theta_true, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        raise ValueError("angular_error is undefined for a zero vector")
    cos = np.clip(a @ b / (na * nb), -1.0, 1.0)
    return float(np.degrees(np.arccos(cos)))


def disagreement_rate(margin_hat, margin_true) -> float:
    """Share of pairs where ``sign(margin_hat) != sign(margin_true)``; ties in the truth excluded.

    Both arrays have shape (n,): margins r(a) - r(b) of the model and of the population utility.
    A zero model margin counts as a disagreement (the model failed to order the pair).
    """
    mh = np.asarray(margin_hat, dtype=np.float64).ravel()
    mt = np.asarray(margin_true, dtype=np.float64).ravel()
    if mh.shape != mt.shape:
        raise ValueError(f"shapes differ: {mh.shape} vs {mt.shape}")
    keep = mt != 0
    if not keep.any():
        raise ValueError("every true margin is zero: disagreement is undefined")
    return float(np.mean(np.sign(mh[keep]) != np.sign(mt[keep])))


def order_consistency(margin, y, weight=None) -> float:
    """Share of observed labels that the margin's sign agrees with (ties in ``y`` excluded).

    ``margin``: (n,) r(a) - r(b); ``y``: (n,) in {0, 0.5, 1}. A zero margin counts half.
    """
    m = np.asarray(margin, dtype=np.float64).ravel()
    yy = np.asarray(y, dtype=np.float64).ravel()
    if m.shape != yy.shape:
        raise ValueError(f"shapes differ: {m.shape} vs {yy.shape}")
    s = 2.0 * yy - 1.0
    keep = s != 0
    if not keep.any():
        raise ValueError("every label is a tie: order consistency is undefined")
    hit = np.where(m[keep] == 0, 0.5, (np.sign(m[keep]) == s[keep]).astype(float))
    if weight is None:
        return float(hit.mean())
    w = np.asarray(weight, dtype=np.float64).ravel()[keep]
    return float((hit * w).sum() / w.sum())


def best_of_n(
    reward_hat,
    reward_true,
    group,
    n: int,
    n_repeats: int = 10,
    random_state=None,
) -> float:
    """Best-of-N golden reward improvement (seed 003).

    For each group (prompt) with at least ``n`` candidates, sample ``n`` candidates without
    replacement, pick the argmax of ``reward_hat`` and record its golden reward minus the mean
    golden reward of the ``n`` sampled candidates. Returns the mean over groups and repeats.
    ``reward_hat``, ``reward_true``, ``group``: arrays of shape (m,) over candidates.
    """
    rh = np.asarray(reward_hat, dtype=np.float64).ravel()
    rt = np.asarray(reward_true, dtype=np.float64).ravel()
    g = np.asarray(group).ravel()
    if not (rh.shape == rt.shape == g.shape):
        raise ValueError(f"shapes differ: {rh.shape}, {rt.shape}, {g.shape}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    rng = np.random.default_rng(random_state)
    _, inverse = np.unique(g, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    bounds = np.flatnonzero(np.diff(inverse[order])) + 1
    gains = []
    for idx in np.split(order, bounds):
        if len(idx) < n:
            continue
        for _ in range(n_repeats):
            pick = rng.choice(idx, size=n, replace=False)
            best = pick[np.argmax(rh[pick])]
            gains.append(rt[best] - rt[pick].mean())
    if not gains:
        raise ValueError(f"no group has at least n={n} candidates")
    return float(np.mean(gains))


def spearman(a, b) -> float:
    """Spearman rank correlation of two arrays of shape (n,)."""
    rho = stats.spearmanr(np.asarray(a).ravel(), np.asarray(b).ravel()).statistic
    return float(rho)


def mean_ci(values, level: float = 0.95) -> tuple[float, float, float]:
    """Mean and a t-based ``level`` interval ``(mean, low, high)`` of values over seeds."""
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        return (float("nan"),) * 3
    m = float(v.mean())
    if v.size == 1:
        return m, m, m
    half = float(stats.t.ppf(0.5 + level / 2, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size))
    return m, m - half, m + half
