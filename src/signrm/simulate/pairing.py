"""Which alternatives are shown together (METHODS.md section 5).

- ``"cross_prompt"``: two alternatives drawn uniformly from X (pairs from X^2). When prompt ids are
  given the two come from different prompts (seed 003's cross-prompt annotation).
- ``"same_prompt"``: a prompt drawn uniformly among those with >= 2 alternatives, then two of its
  alternatives.
- ``"similar"``: per drawn prompt, the alternatives ranked at the middle by the golden reward
  (5th and 6th of 10).
- ``"diversified"``: per drawn prompt, the best and the worst by the golden reward (1st and 10th).

The order within a pair is random (a coin flip), so position carries no information.
"""

from __future__ import annotations

import numpy as np

__all__ = ["PAIRINGS", "pair_indices", "group_by_prompt"]

PAIRINGS = ("cross_prompt", "same_prompt", "similar", "diversified")


def group_by_prompt(prompt_ids: np.ndarray) -> list[np.ndarray]:
    """Item indices of each prompt, in order of first appearance of sorted ids."""
    p = np.asarray(prompt_ids).ravel()
    _, inverse = np.unique(p, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    bounds = np.flatnonzero(np.diff(inverse[order])) + 1
    return np.split(order, bounds)


def _shuffle_sides(a: np.ndarray, b: np.ndarray, rng: np.random.Generator):
    swap = rng.random(a.shape[0]) < 0.5
    return np.where(swap, b, a), np.where(swap, a, b)


def pair_indices(
    n: int,
    *,
    n_items: int,
    pairing: str = "cross_prompt",
    prompt_ids: np.ndarray | None = None,
    golden: np.ndarray | None = None,
    random_state: int | np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` pairs of item indices ``(a, b)``, each of shape (n,) int64, ``a != b``.

    ``prompt_ids`` (n_items,) is needed for every pairing but ``cross_prompt``; ``golden``
    (n_items,) for ``similar`` and ``diversified``.
    """
    if pairing not in PAIRINGS:
        raise ValueError(f"pairing={pairing!r} is not allowed; choose one of {', '.join(PAIRINGS)}")
    if n_items < 2:
        raise ValueError(f"need at least 2 items to pair, got {n_items}")
    rng = np.random.default_rng(random_state)
    n = int(n)
    if pairing == "cross_prompt":
        a = rng.integers(0, n_items, n)
        b = rng.integers(0, n_items - 1, n)
        b = b + (b >= a)  # uniform over items != a
        if prompt_ids is not None:
            p = np.asarray(prompt_ids).ravel()
            if np.unique(p).size < 2:
                raise ValueError("cross_prompt pairing needs at least 2 distinct prompts")
            bad = p[a] == p[b]
            while bad.any():
                b[bad] = rng.integers(0, n_items, int(bad.sum()))
                bad = p[a] == p[b]
        return _shuffle_sides(a.astype(np.int64), b.astype(np.int64), rng)

    if prompt_ids is None:
        raise ValueError(f"pairing={pairing!r} needs prompt_ids")
    groups = [g for g in group_by_prompt(prompt_ids) if g.size >= 2]
    if not groups:
        raise ValueError(f"pairing={pairing!r}: no prompt has 2 or more alternatives")
    pick = rng.integers(0, len(groups), n)
    if pairing == "same_prompt":
        sizes = np.array([g.size for g in groups])
        i = (rng.random(n) * sizes[pick]).astype(np.int64)
        j = (rng.random(n) * (sizes[pick] - 1)).astype(np.int64)
        j = j + (j >= i)
        a = np.array([groups[g][k] for g, k in zip(pick, i)], dtype=np.int64)
        b = np.array([groups[g][k] for g, k in zip(pick, j)], dtype=np.int64)
        return _shuffle_sides(a, b, rng)

    if golden is None:
        raise ValueError(f"pairing={pairing!r} needs golden rewards to rank the alternatives")
    g_true = np.asarray(golden, dtype=np.float64).ravel()
    firsts = np.empty(len(groups), dtype=np.int64)
    seconds = np.empty(len(groups), dtype=np.int64)
    for t, g in enumerate(groups):
        ranked = g[np.argsort(-g_true[g], kind="stable")]
        if pairing == "similar":  # middle two: 5th and 6th of 10
            mid = ranked.size // 2
            firsts[t], seconds[t] = ranked[mid - 1], ranked[mid]
        else:  # diversified: 1st and last
            firsts[t], seconds[t] = ranked[0], ranked[-1]
    return _shuffle_sides(firsts[pick], seconds[pick], rng)
