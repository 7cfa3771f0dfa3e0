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
    noise_tol: float = 0.0,
    patience: int = 1,
    slack: float = 1.0,
) -> BandwidthChoice:
    """Cross-fit the sign path on ``n_folds`` folds and pick the best held-out candidate.

    ``theta_bt`` (d,): the BT fit on all rows (warm start of the folds' BT fits); ``lambdas``
    (J,) increasing; ``blends`` (B,) in [0, 1] with 0 first. The choice follows the
    one-standard-error rule (:func:`one_standard_error_choice`, ``slack`` standard errors).
    ``max_iter``, ``tol``, ``noise_tol``: each stage's stopping rules (:func:`sign_stage`).
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
    sum_w2 = np.zeros(len(folds))  # sum of squared normalised weights of each held-out fold
    rows = []
    best, since_best = -np.inf, 0
    for j, lam in enumerate(lambdas):
        score = np.zeros(blends.size)
        for i, (train, t_train, val, t_val, u_bt) in enumerate(folds):
            prev = paths[i][-1] if paths[i] else None
            stage = sign_stage(
                train, t_train, prev.theta if prev else u_bt, float(lam), max_iter=max_iter,
                tol=tol, noise_tol=noise_tol, scale=prev.end_scale if prev else None,
                label=f"fold {i + 1} stage {j + 1}/{len(lambdas)} (lambda {lam:.3g})",
            )  # fmt: skip
            paths[i].append(stage)
            sc, _, sum_w2[i] = blend_agreements(val, t_val, u_bt, stage.theta[:, None], blends)
            score += share[i] * sc[0]
        rows.append(score)
        top = float(score.max())
        if top > best + 1e-12:
            best, since_best = top, 0
        else:
            since_best += 1
            if since_best >= patience:
                break
    scores = np.array(rows)
    standard_errors = _gap_standard_errors(folds, paths, share, sum_w2, scores, blends, slack)
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


def paired_sums(hits: np.ndarray, wn: np.ndarray, best: int | None = None) -> np.ndarray:
    """Row sums behind :func:`paired_errors`, additive over blocks of rows and processes.

    ``hits`` (n, C) in {-1, 0, 1}, ``wn`` (n,) normalised weights, ``best`` a column or None.
    Returns (3 C + 1,): ``sum wn h_c``, ``sum wn g_c``, ``sum wn^2 g_c^2`` with
    ``g_c = h_best - h_c`` (zeros when ``best`` is None), and ``sum wn^2``.
    """
    C = hits.shape[1]
    out = np.zeros(3 * C + 1)
    out[:C] = wn @ hits
    if best is not None:
        gap = hits[:, best : best + 1] - hits
        out[C : 2 * C] = wn @ gap
        out[2 * C : 3 * C] = (wn * wn) @ (gap * gap)
    out[-1] = float(wn @ wn)
    return out


def paired_errors(sums: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """``(scores (C,), se (C,), sum wn^2)`` from :func:`paired_sums`: each candidate's score and
    the paired standard error of the best's score minus its own,
    ``sqrt(sum wn^2 (h_best - h_c)^2 - gap^2 sum wn^2)``."""
    C = (sums.size - 1) // 3
    gap, gap_sq, w2 = sums[C : 2 * C], sums[2 * C : 3 * C], float(sums[-1])
    return sums[:C], np.sqrt(np.maximum(gap_sq - gap**2 * w2, 0.0)), w2


def blend_agreements(
    passes: Passes,
    totals: WeightTotals,
    u_bt: np.ndarray,
    stages: np.ndarray,
    blends: np.ndarray,
    *,
    best: tuple[int, int] | None = None,
    label: str = "agreement",
) -> tuple[np.ndarray, np.ndarray | None, float]:
    """Exact agreements ``sum wn s sign(D u)`` of the candidates ``u = (1 - a) u_bt + a u_j``.

    ``u_bt`` (d,), ``stages`` (d, J) unit vectors, ``blends`` (B,). The margins of a blend are
    the blend of the two margins, so a pass costs ``1 + J`` matrix-vector products, not ``J B``.
    Returns ``scores`` (J, B), with ``best = (j, b)`` the paired standard errors (J, B) of
    ``best``'s score minus each candidate's (else None), and the fold's ``sum wn^2``.
    """
    J, B = stages.shape[1], blends.size
    dirs = np.column_stack([u_bt, stages])
    col = None if best is None else best[0] * B + best[1]
    acc = np.zeros(3 * J * B + 1)
    for blk in passes.blocks(label):
        wn = blk.w / totals.wsum
        for r in range(0, len(wn), 65_536):  # rows x candidates temporaries stay small
            rows = slice(r, r + 65_536)
            M = np.asarray(blk.D[rows] @ dirs.astype(blk.D.dtype), dtype=np.float64)
            m = M[:, :1, None] * (1.0 - blends) + M[:, 1:, None] * blends  # (rows, J, B)
            hit = (blk.s[rows, None, None] * np.sign(m)).reshape(m.shape[0], J * B)
            acc += paired_sums(hit, wn[rows], col)
    scores, se, sum_w2 = paired_errors(passes.allreduce(acc))
    return scores.reshape(J, B), None if col is None else se.reshape(J, B), sum_w2


def _gap_standard_errors(folds, paths, share, sum_w2, scores, blends, slack) -> np.ndarray:
    """Pooled paired standard errors (J, B) of the best candidate's score minus each one's.

    A candidate further than ``slack`` times the largest possible standard error below the
    best (``|h_best - h_c| <= 2``, so ``se <= 2 sqrt(sum share^2 sum wn^2)``) can never be
    chosen by :func:`one_standard_error_choice`: its error is not computed (NaN), and only the
    stages holding a candidate that can be are scored again (none, often, at large n).
    """
    best = np.unravel_index(int(np.argmax(scores)), scores.shape)
    bound = 2.0 * float(np.sqrt(np.sum(share**2 * sum_w2)))
    possible = scores.max() - scores <= slack * bound + 1e-12
    possible[best] = False  # its own gap is 0
    out = np.full(scores.shape, np.nan)
    out[best] = 0.0
    stages = sorted({int(best[0])} | set(np.flatnonzero(possible.any(axis=1)).tolist()))
    if not possible.any():
        return out
    var = np.zeros((len(stages), blends.size))
    for i, (_, _, val, t_val, u_bt) in enumerate(folds):
        U = np.column_stack([paths[i][j].theta for j in stages])
        _, se, _ = blend_agreements(
            val, t_val, u_bt, U, blends, best=(stages.index(int(best[0])), int(best[1])),
            label="held-out standard errors",
        )  # fmt: skip
        var += (share[i] * se) ** 2
    rows = np.sqrt(var)
    for k, j in enumerate(stages):
        keep = possible[j] | (np.arange(blends.size) == best[1]) & (j == best[0])
        out[j, keep] = rows[k, keep]
    return out


def one_standard_error_choice(
    scores: np.ndarray, gap_se: np.ndarray, slack: float = 1.0
) -> tuple[int, int]:
    """``(stage, blend)`` indices: the candidate closest to BT that is within ``slack`` standard
    errors of the best.

    ``scores`` (J, B) held-out agreements, blend column 0 the BT candidate; ``gap_se`` (J, B) the
    paired standard error of the best candidate's score minus each candidate's (NaN: not
    computed, the candidate cannot qualify). A candidate qualifies when
    ``best - score <= slack * gap_se``: the data cannot tell it from the best. The
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
