"""The panel step of the sign estimator: the population-average utility from annotator ids.

The sign estimator is consistent for the *majority* ordering ``P(a preferred) > 1/2``, which is
the ordering of the population-average utility theta_bar only under symmetric heterogeneity.
When a decisive group has its own taste, that majority ordering is biased too (the battery's
population sign bias, ``signrm.simulate.diagnostics.population_sign_bias``, is 47-108 % of BT's
on its asymmetric panels), and no estimator that only orders pooled answers can remove it: the
welfare weights people by the scale of their utilities, which only a model of each annotator
reveals. With panel data (user ids, several comparisons each) the latent-class BT model
(:class:`~signrm.LatentClassBT`, ``coef_ = sum_k pi_k theta_k``) estimates theta_bar directly.

The step blends that estimate with the sign fit, positive-part James-Stein style (the noisy
latent-class estimate shrunk towards the sign fit): with ``u`` the sign estimator's direction,
``e`` the latent-class direction fitted on all rows and ``e_1``, ``e_2`` the same fit on two
halves of each annotator's rows (unit vectors),

    alpha = clip(1 - V / |u - e|^2, 0, 1),   V = |e_1 - e_2|^2 / 4,

where ``V`` estimates the sampling variance of ``e`` (the two halves' fits differ by twice a
half-sample error; a full-sample fit has half a half-sample fit's variance). ``alpha`` is near 1
where the two directions differ by much more than the latent-class fit's noise, near 0 where
they agree up to it. ``V`` ignores the noise of ``u``, so a noisy sign fit moves ``alpha``
towards 1 (towards the latent-class estimate, then the more precise of the two). All functions
read the comparisons from a source, so in-memory, streaming and multi-process fits (every rank
reads every chunk) compute the same step.
"""

from __future__ import annotations

import numpy as np

from signrm.data import PreferenceData
from signrm.engine.linear import fold_of, unit

#: Largest panel (comparisons x features) the automatic step holds in memory and fits by EM
#: (three latent-class fits). On one core at d = 8 the step takes 1.4 s at n = 43,834 and 5.8 s
#: at n = 1e5.
PANEL_MAX_VALUES = 1 << 22
#: Fewest annotators for the automatic step (each of the ``K`` classes needs several people).
PANEL_MIN_USERS = 10


def panel_is_rich(
    n: int, d: int, n_users: int, n_classes: int, min_per_feature: float
) -> tuple[bool, str]:
    """Whether the automatic panel step runs, and why not: ``(runs, reason)``.

    It runs with at least ``max(PANEL_MIN_USERS, 2 K)`` annotators, on average at least
    ``min_per_feature * d`` comparisons each (the model must place each annotator in a class) and
    ``n * d <= PANEL_MAX_VALUES``.
    """
    if n_users == 0:
        return False, "no user ids"
    if n_users < max(PANEL_MIN_USERS, 2 * n_classes):
        return False, f"{n_users} annotators (fewer than {max(PANEL_MIN_USERS, 2 * n_classes)})"
    per_user = n / n_users
    if per_user < min_per_feature * d:
        return False, (
            f"{per_user:.1f} comparisons per annotator (fewer than {min_per_feature:g} x {d} "
            "features)"
        )
    if n * d > PANEL_MAX_VALUES:
        return False, f"{n} x {d} feature values (more than {PANEL_MAX_VALUES})"
    return True, ""


def read_panel(source) -> tuple[PreferenceData, np.ndarray]:
    """Every non-tie comparison of ``source`` with a positive weight, with its user id, in memory,
    and the comparisons' global row indices (n,).

    Reads all chunks (on every process), so the result does not depend on the entry point.
    """
    parts: dict[str, list] = {"D": [], "y": [], "w": [], "user": [], "row": []}
    for chunk in source:
        if chunk.user is None:
            raise ValueError(f"{chunk.where}: the panel step needs a user id for every comparison")
        y = np.asarray(chunk.y, dtype=np.float64)
        w = np.ones(y.size) if chunk.weight is None else np.asarray(chunk.weight, np.float64)
        keep = (y != 0.5) & (w > 0)
        parts["D"].append(np.asarray(chunk.differences[keep], dtype=np.float64))
        parts["y"].append(y[keep])
        parts["w"].append(w[keep])
        parts["user"].append(np.asarray(chunk.user)[keep])
        parts["row"].append(np.arange(chunk.start, chunk.start + y.size)[keep])
    data = PreferenceData.from_differences(
        np.concatenate(parts["D"]), np.concatenate(parts["y"]),
        user=np.concatenate(parts["user"]), weight=np.concatenate(parts["w"]),
    )  # fmt: skip
    return data, np.concatenate(parts["row"])


def panel_halves(data: PreferenceData, rows: np.ndarray, seed: int) -> list[PreferenceData]:
    """Two halves of the comparisons, split by a hash of the global row index ``rows`` (n,): an
    annotator with several comparisons is in both; the same split on every entry point."""
    half = fold_of(rows, None, 2, seed, by_user=False)
    return [data.subset(np.flatnonzero(half == k)) for k in (0, 1)]


def shrinkage_weight(u: np.ndarray, e: np.ndarray, e_halves: list[np.ndarray]) -> float:
    """``alpha = clip(1 - |e_1 - e_2|^2 / (4 |u - e|^2), 0, 1)`` (unit vectors, shape (d,))."""
    u, e = unit(u), unit(e)
    gap = float(np.sum((u - e) ** 2))
    if gap <= 0.0:
        return 1.0
    diff = unit(e_halves[0]) - unit(e_halves[1])
    return float(np.clip(1.0 - float(diff @ diff) / (4.0 * gap), 0.0, 1.0))
