"""The panel step of the sign estimator: the population-average utility from annotator ids.

The sign estimator is consistent for the *majority* ordering ``P(a preferred) > 1/2``, which is
the ordering of the population-average utility theta_bar only under symmetric heterogeneity.
When a decisive group has its own taste, that majority ordering is biased too (the battery's
population sign bias, ``signrm.simulate.diagnostics.population_sign_bias``, is 47-108 % of BT's
on its asymmetric panels), and no estimator that only orders pooled answers can remove it: the
welfare weights people by the scale of their utilities, which only a model of each annotator
reveals. With panel data (user ids, several comparisons each) a mixture of BT annotators
estimates theta_bar directly: by default the nonparametric one
(:mod:`signrm.engine.npmle`, ``sum_u (n_u / n) E[theta_u | data_u]``), or
:class:`~signrm.LatentClassBT` (``sum_k pi_k theta_k``).

The step blends that estimate with a pooled fit, positive-part James-Stein style (the noisy
panel estimate shrunk towards the sign fit or the BT fit, whichever is closer to it,
:func:`shrinkage_target`): with ``u`` that target's direction, ``e`` the panel model's
direction fitted on all rows and ``e_1``, ``e_2`` the same fit on two halves of each
annotator's rows (unit vectors),

    alpha = clip(1 - V / |u - e|^2, 0, 1),   V = |e_1 - e_2|^2 / 4,

where ``V`` estimates the sampling variance of ``e`` (the two halves' fits differ by twice a
half-sample error; a full-sample fit has half a half-sample fit's variance). ``alpha`` is near 1
where the two directions differ by much more than the panel fit's noise, near 0 where they
agree up to it. ``V`` ignores the noise of ``u``, so a noisy sign fit moves ``alpha`` towards 1
(towards the panel estimate, then the more precise of the two). All functions read the
comparisons from a source, so in-memory, streaming and multi-process fits (every rank reads
every chunk) compute the same step.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from signrm.data import PreferenceData
from signrm.engine.linear import fold_of, unit

#: Largest panel (comparisons x features) the automatic step holds in memory. The NPMLE model's
#: cost is n x (at most 1281) log-sigmoids: on one core at d = 8, 200 annotators, the default
#: fit takes 1.0 s at n = 43,834 and 2.3 s at 1e5 (0.11 / 0.24 s without the step).
PANEL_MAX_VALUES = 1 << 22
#: Fewest annotators for the automatic step (``2 K`` for the latent-class model with ``K``
#: classes, each of which needs several people).
PANEL_MIN_USERS = 10


def panel_is_rich(
    n: int, d: int, n_users: int, n_classes: int, min_per_feature: float
) -> tuple[bool, str]:
    """Whether the automatic panel step runs, and why not: ``(runs, reason)``.

    It runs with at least ``max(PANEL_MIN_USERS, 2 K)`` annotators, on average at least
    ``min_per_feature * d`` comparisons each (each annotator's own fit makes the NPMLE grid; the
    latent-class model must place each annotator in a class) and ``n * d <= PANEL_MAX_VALUES``.
    ``n_classes``: 1 for the NPMLE model.
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


def informative_rows(y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The comparisons a panel model learns from, (n,) bool: not ties, positive weight."""
    return (y != 0.5) & (w > 0)


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
        keep = informative_rows(y, w)
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


#: Models the panel step can fit from annotator ids.
PANEL_MODELS = ("npmle", "latent_class")


def panel_estimates(
    data: PreferenceData, rows: np.ndarray, model: str, n_classes: int, seed: int
) -> tuple[np.ndarray, list[np.ndarray]]:
    """The panel model's unit direction on all rows and on the two halves of
    :func:`panel_halves`: ``(e (d,), [e_1, e_2])``.

    ``model="npmle"``: :func:`signrm.engine.npmle.fit_npmle` (one grid, from every annotator's
    own fit on all rows; the halves' likelihood tables sum to the whole one, so the halves cost
    two EM runs on the table and no further likelihoods). ``"latent_class"``:
    ``LatentClassBT(n_classes, n_init=1)`` fitted three times.
    """
    if model == "npmle":
        from signrm.engine.npmle import annotator_index, fit_npmle

        _, codes = annotator_index(np.asarray(data.user))
        w = np.ones(data.n_samples) if data.weight is None else np.asarray(data.weight, float)
        out = fit_npmle(
            np.asarray(data.differences, dtype=np.float64), np.asarray(data.y, dtype=np.float64),
            w, codes, int(codes.max()) + 1, seed=seed,
            splits=fold_of(rows, None, 2, seed, by_user=False),
        )  # fmt: skip
        fits = [out["coef"], *out["split_coefs"]]
    else:
        from signrm.estimators.latent_class import LatentClassBT

        fits = [
            LatentClassBT(n_classes, n_init=1, random_state=seed).fit(part).coef_
            for part in [data, *panel_halves(data, rows, seed)]
        ]
    fits = [unit(f, "the panel model's estimate") for f in fits]
    return fits[0], fits[1:]


def shrinkage_target(candidates: dict[str, np.ndarray], e: np.ndarray) -> str:
    """The name of the candidate direction (d,) closest to the panel estimate ``e``: the target
    the panel estimate is shrunk towards.

    With ``e`` unbiased and of variance ``V``, the blend ``(1 - alpha) c + alpha e`` at the
    weight of :func:`shrinkage_weight` has an estimated risk ``V alpha``, which grows with
    ``|c - e|^2``: the closer candidate gives the smaller risk.
    """
    e = unit(e)
    return min(candidates, key=lambda name: float(np.sum((unit(candidates[name]) - e) ** 2)))


def shrinkage_weight(u: np.ndarray, e: np.ndarray, e_halves: list[np.ndarray]) -> float:
    """``alpha = clip(1 - |e_1 - e_2|^2 / (4 |u - e|^2), 0, 1)`` (unit vectors, shape (d,))."""
    u, e = unit(u), unit(e)
    gap = float(np.sum((u - e) ** 2))
    if gap <= 0.0:
        return 1.0
    diff = unit(e_halves[0]) - unit(e_halves[1])
    return float(np.clip(1.0 - float(diff @ diff) / (4.0 * gap), 0.0, 1.0))


@dataclass(frozen=True)
class PanelStep:
    """What the panel step returns: ``coef`` (d,) the final unit direction, ``weight`` (alpha),
    ``panel_coef`` (the panel model's unit direction or None), ``target`` ("sign", "bt" or
    None) and ``status`` (whether it ran, and why not)."""

    coef: np.ndarray
    weight: float
    panel_coef: np.ndarray | None
    target: str | None
    status: str


#: The pooled fits the panel estimate can be shrunk towards, by ``panel_target_`` value.
_TARGET_NAMES = {"sign": "sign fit", "bt": "BT fit"}


def panel_step(
    source,
    u: np.ndarray,
    u_bt: np.ndarray,
    *,
    n: int,
    d: int,
    n_users: int,
    panel: str,
    model: str,
    n_classes: int,
    min_per_feature: float,
    seed: int,
) -> PanelStep:
    """The sign estimator's panel step (``panel`` "auto" or "on"): the panel model's estimate
    of theta_bar shrunk towards the sign fit ``u`` or the BT fit ``u_bt`` (both (d,)), whichever
    is closer to it. ``n``, ``d``, ``n_users``: the source's comparisons, features and
    annotators. With ``"on"`` the step raises where ``"auto"`` skips with a status.
    """
    K = n_classes if model == "latent_class" else 1
    runs, why = panel_is_rich(n, d, n_users, K, min_per_feature)
    if panel == "on" and n_users < K:
        need = f"at least panel_classes={K} annotators" if K > 1 else "annotator ids"
        raise ValueError(f"panel='on' needs user ids and {need}, got {n_users} annotators")
    if panel == "on" and n * d > PANEL_MAX_VALUES:
        warnings.warn(
            f"SignEstimator(panel='on'): the panel step holds {n} x {d} feature values in "
            "memory (every process) and fits the panel model on them and on two halves",
            stacklevel=5,
        )
    if not runs and panel == "auto":
        return PanelStep(u, 0.0, None, None, f"skipped: {why}")
    data, rows = read_panel(source)
    name = "NPMLE" if model == "npmle" else "latent-class"
    try:
        e, halves = panel_estimates(data, rows, model, K, seed)
    except ValueError as exc:  # e.g. a half with fewer annotators than classes
        if panel == "on":
            raise
        warnings.warn(f"SignEstimator: panel step skipped ({exc})", stacklevel=5)
        return PanelStep(u, 0.0, None, None, f"skipped: the {name} fit failed ({exc})")
    targets = {"sign": u, "bt": u_bt}
    target = shrinkage_target(targets, e)
    c = unit(targets[target], "the shrinkage target")
    alpha = shrinkage_weight(c, e, halves)
    what = "NPMLE mixture" if model == "npmle" else f"latent classes ({K})"
    status = (
        f"ran: weight {alpha:.2f} on the {what} estimate, shrunk towards the "
        f"{_TARGET_NAMES[target]}"
    )
    return PanelStep(unit((1.0 - alpha) * c + alpha * e, "the panel-step direction"), alpha, e,
                     target, status)  # fmt: skip
