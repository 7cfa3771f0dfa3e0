"""Choosing the sign estimator's bandwidth (1 / lambda) and its blend with Bradley–Terry.

The smoothed 0-1 objective is Horowitz's smoothed maximum score with bandwidth ``1 / lambda`` on
margins in units of their spread: a small lambda has low variance but tends to a
confidence-weighted average like BT's (and inherits its bias); a large lambda is consistent but
noisy, the more so in many dimensions. The right lambda depends on n, d and the label noise, so it
is chosen from the data:

1. the data are cut into ``n_folds`` folds (by user when user ids exist, else by row), by a hash
   of the user id or row index, so the folds are the same in memory, on shards and on any number
   of processes;
2. on each training part (the other folds), BT is fitted (warm-started from the full BT fit) and
   the sign path is annealed over the lambda grid, each stage warm-started from the previous one;
3. every candidate ``(stage j, blend a)`` — direction ``(1 - a) u_BT + a u_j``, with ``a = 0`` the
   BT solution itself — is scored by its exact agreement ``mean s sign(m)`` on the held-out fold.
   Under symmetric heterogeneity that agreement is maximised by the population ordering, so the
   criterion is consistent; and since BT is a candidate, the choice falls back to RLHF wherever
   the sign path does not beat it out of sample.

The path stops early once the best held-out score has not improved for ``patience`` stages.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from signrm.engine.linear import (
    Passes,
    SignStage,
    WeightTotals,
    agreement_scores,
    fit_bt,
    fold_of,
    sign_stage,
    unit,
    weight_totals,
)


@dataclass
class BandwidthChoice:
    """The outcome of :func:`select_bandwidth`.

    ``scores`` (n_stages_run, n_blends): held-out agreement of each candidate, pooled over folds;
    ``standard_errors``: paired standard errors of the best candidate's score minus each one's;
    ``stage`` index into ``lambdas`` of the choice (``-1`` when the choice is BT, ``blend = 0``);
    ``fold_bt`` (n_folds, d) and ``fold_paths[k][j]`` the fold fits.
    """

    lambdas: np.ndarray
    blends: np.ndarray
    scores: np.ndarray
    standard_errors: np.ndarray
    stage: int
    blend: float
    by_user: bool
    fold_bt: list[np.ndarray] = field(default_factory=list)
    fold_paths: list[list[SignStage]] = field(default_factory=list)

    @property
    def lam(self) -> float:
        """The chosen lambda (0.0 when BT is chosen)."""
        return 0.0 if self.stage < 0 else float(self.lambdas[self.stage])

    def averaged_direction(self) -> np.ndarray | None:
        """Unit mean of the folds' sign directions at the chosen stage (``None`` for BT)."""
        if self.stage < 0:
            return None
        return unit(np.mean([path[self.stage].theta for path in self.fold_paths], axis=0))

    def fold_objective(self) -> float:
        """Mean smoothed agreement of the fold fits at the chosen stage (NaN for BT)."""
        if self.stage < 0:
            return float("nan")
        return float(np.mean([path[self.stage].objective for path in self.fold_paths]))


def blend_directions(u_bt: np.ndarray, u_sign: np.ndarray, blends: np.ndarray) -> np.ndarray:
    """Columns ``(1 - a) u_bt + a u_sign`` for each blend ``a`` (unit inputs), shape (d, k)."""
    return np.outer(u_bt, 1.0 - blends) + np.outer(u_sign, blends)


def select_bandwidth(
    passes: Passes,
    totals: WeightTotals,
    theta_bt: np.ndarray,
    lambdas: np.ndarray,
    blends: np.ndarray,
    *,
    n_folds: int,
    seed: int,
    by_user: bool,
    bt_l2: float,
    max_iter: int,
    tol: float,
    patience: int = 1,
    slack: float = 1.0,
) -> BandwidthChoice:
    """Cross-fit the sign path on ``n_folds`` folds and pick the best held-out candidate.

    ``theta_bt`` (d,): the BT fit on all rows (warm start of the folds' BT fits); ``lambdas``
    (J,) increasing; ``blends`` (B,) in [0, 1] with 0 first. The choice follows the
    one-standard-error rule (:func:`one_standard_error_choice`, ``slack`` standard errors).
    """
    d = theta_bt.size
    blends = np.asarray(blends, dtype=np.float64)
    folds = []
    held_out = [
        passes.restrict(_fold_filter(k, n_folds, seed, by_user, True)) for k in range(n_folds)
    ]
    for k in range(n_folds):
        # with two folds each training part is the other held-out part (one copy in memory)
        train = (
            held_out[1 - k]
            if n_folds == 2
            else passes.restrict(_fold_filter(k, n_folds, seed, by_user, held_out=False))
        )
        val = held_out[k]
        t_train, t_val = _totals_or_none(train), _totals_or_none(val)
        if t_train is None or t_val is None:
            continue
        bt_k, _ = fit_bt(train, t_train, d, l2=bt_l2, theta0=theta_bt, label=f"fold {k + 1} BT")
        folds.append((train, t_train, val, t_val, unit(bt_k if np.any(bt_k) else theta_bt)))
    if not folds:
        raise ValueError(
            "cannot cross-validate the bandwidth: no fold has both training and held-out "
            "comparisons that are not ties (too few comparisons or users); pass "
            "select_stage='last' for the fixed schedule"
        )
    val_weight = np.array([f[3].wsum for f in folds])
    share = val_weight / val_weight.sum()
    paths: list[list[SignStage]] = [[] for _ in folds]
    rows = []
    best, since_best = -np.inf, 0
    for j, lam in enumerate(lambdas):
        score = np.zeros(blends.size)
        for i, (train, t_train, val, t_val, u_bt) in enumerate(folds):
            prev = paths[i][-1] if paths[i] else None
            stage = sign_stage(
                train, t_train, prev.theta if prev else u_bt, float(lam), max_iter=max_iter,
                tol=tol, scale=prev.end_scale if prev else None,
                label=f"fold {i + 1} stage {j + 1}/{len(lambdas)} (lambda {lam:.3g})",
            )  # fmt: skip
            paths[i].append(stage)
            sc, _ = agreement_scores(val, t_val, blend_directions(u_bt, stage.theta, blends))
            score += share[i] * sc
        rows.append(score)
        top = float(score.max())
        if top > best + 1e-12:
            best, since_best = top, 0
        else:
            since_best += 1
            if since_best >= patience:
                break
    scores = np.array(rows)
    J = scores.shape[0]
    gap_se = np.zeros(scores.shape)
    for i, (_, _, val, t_val, u_bt) in enumerate(folds):
        dirs = np.hstack([blend_directions(u_bt, paths[i][j].theta, blends) for j in range(J)])
        gap = _gaps_to_best(val, t_val, dirs, scores.ravel()).reshape(scores.shape)
        gap_se += (share[i] * gap) ** 2
    standard_errors = np.sqrt(gap_se).reshape(scores.shape)
    j, b = one_standard_error_choice(scores, standard_errors, slack)
    stage = -1 if blends[b] == 0 else j
    return BandwidthChoice(
        lambdas=np.asarray(lambdas[: scores.shape[0]], dtype=np.float64),
        blends=blends,
        scores=scores,
        standard_errors=standard_errors,
        stage=stage,
        blend=float(blends[b]),
        by_user=by_user,
        fold_bt=[f[4] for f in folds],
        fold_paths=paths,
    )


def _gaps_to_best(val: Passes, totals: WeightTotals, dirs: np.ndarray, pooled: np.ndarray):
    """Standard errors, on one held-out fold, of each candidate's score minus the best pooled
    candidate's (paired over rows): ``sqrt(sum wn^2 (h_best - h_c)^2 - gap^2 sum wn^2)``."""
    best = int(np.argmax(pooled))
    acc = np.zeros(2 * dirs.shape[1] + 1)
    k = dirs.shape[1]
    for blk in val.blocks("held-out standard errors"):
        wn = blk.w / totals.wsum
        hit = blk.s[:, None] * np.sign(
            np.asarray(blk.D @ dirs.astype(blk.D.dtype), dtype=np.float64)
        )
        gap = hit[:, best : best + 1] - hit
        acc[:k] += wn @ gap
        acc[k : 2 * k] += (wn * wn) @ (gap * gap)
        acc[-1] += float(wn @ wn)
    acc = val.allreduce(acc)
    return np.sqrt(np.maximum(acc[k : 2 * k] - acc[:k] ** 2 * acc[-1], 0.0))


def one_standard_error_choice(
    scores: np.ndarray, gap_se: np.ndarray, slack: float = 1.0
) -> tuple[int, int]:
    """``(stage, blend)`` indices: the candidate closest to BT that is within ``slack`` standard
    errors of the best.

    ``scores`` (J, B) held-out agreements, blend column 0 the BT candidate; ``gap_se`` (J, B) the
    paired standard error of the best candidate's score minus each candidate's. A candidate
    qualifies when ``best - score <= slack * gap_se``: the data cannot tell it from the best. The
    qualifier with the smallest blend, then the smallest stage, wins, so where the sign path does
    not beat RLHF out of sample by more than noise the estimate stays at (or near) RLHF's
    direction, and where it does (a paired difference is precise even when each score is not)
    the sharper candidate is kept.
    """
    best = float(scores.max())
    for b in range(scores.shape[1]):
        for j in range(scores.shape[0]):
            if best - scores[j, b] <= slack * gap_se[j, b] + 1e-12:
                return j, b
    jb, bb = np.unravel_index(int(np.argmax(scores)), scores.shape)  # pragma: no cover
    return int(jb), int(bb)


def _fold_filter(k: int, n_folds: int, seed: int, by_user: bool, held_out: bool):
    def keep(rows: np.ndarray, user) -> np.ndarray:
        f = fold_of(rows, user, n_folds, seed, by_user)
        return f == k if held_out else f != k

    return keep


def _totals_or_none(passes: Passes) -> WeightTotals | None:
    try:
        return weight_totals(passes, "fold sizes")
    except ValueError:  # an empty or all-tie fold: skipped
        return None
