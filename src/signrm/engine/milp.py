"""The sign estimator's 0-1 objective solved exactly as a mixed-integer program (HiGHS via scipy).

Maximum score: ``max_theta sum_i w_i s_i sign(D_i theta)`` over comparisons with ``s_i != 0`` and
``w_i > 0``. With a binary ``z_i = 1`` when comparison i is classified in its observed direction,
the agreement of a direction with no zero margin is ``sum_i w_i (2 z_i - 1)``, so the MILP is::

    max  sum_i w_i z_i
    s.t. s_i u_i . theta >= eps - M (1 - z_i),   M = 1 + eps,   z_i in {0, 1}
         -1 <= theta_j <= 1

with ``u_i = D_i / |D_i|_1`` (rows scaled to unit L1 norm: a positive scaling changes no sign, and
makes every big-M the same, ``|u_i . theta| <= 1`` on the box).

**Normalisation.** ``sign(D theta)`` is invariant to positive scaling, so every unit direction
``v`` has the representative ``v / |v|_inf`` in the box with the same signs: the box loses no
direction, and its bound gives a valid big-M. (Fixing ``theta_1 = +/-1`` would miss every
direction with ``theta_1 = 0`` and leave the other coordinates unbounded, with no valid big-M.)

**Exactness.** The margin ``eps`` (relative to ``|D_i|_1``, at ``|theta|_inf = 1``) makes the
classification strict: the optimum is exact over directions that classify each comparison either
wrongly or with relative margin at least ``eps`` (default 1e-5, ten times HiGHS' integrality
tolerance, so a reported ``z_i = 1`` is a true positive margin). Comparisons can only be excluded
from the optimal cell if that cell is thinner than ``eps`` in relative margin. The solution is then
polished by a linear program that moves theta to the centre of its cell (maximises the smallest
margin of the comparisons it classifies correctly), and the agreement is recomputed exactly.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator

import numpy as np
from scipy import sparse
from scipy.optimize import Bounds, LinearConstraint, linprog, milp

from signrm.errors import UserError

__all__ = ["fit_sign_milp", "MILP_MAX_COMPARISONS", "MILP_MAX_FEATURES"]

#: Default size limits: beyond them branch and bound rarely closes its gap within minutes.
MILP_MAX_COMPARISONS = 5000
MILP_MAX_FEATURES = 15

_STATUS = {0: "optimal", 1: "limit", 2: "infeasible", 3: "unbounded", 4: "error"}


def _check_inputs(
    D: np.ndarray, y: np.ndarray, weight: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(D (n, d) float64, s (n,) in {-1, 0, 1}, w (n,) summing to 1)`` or a one-line error."""
    D = np.asarray(D, dtype=np.float64)
    if D.ndim != 2 or D.shape[0] < 1 or D.shape[1] < 1:
        raise UserError(f"D: expected a non-empty (n, d) array of differences, got {D.shape}")
    n = D.shape[0]
    y = np.asarray(y, dtype=np.float64).ravel()
    if y.shape[0] != n:
        raise UserError(f"y: {y.shape[0]} labels for {n} comparisons")
    bad = ~np.isin(y, (0.0, 0.5, 1.0))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise UserError(f"y: labels must be 0, 0.5 or 1; row {i} has {float(y[i])!r}")
    if not np.isfinite(D).all():
        i, j = np.argwhere(~np.isfinite(D))[0]
        raise UserError(f"D: non-finite value {float(D[i, j])!r} at row {i}, column {j}")
    if weight is None:
        w = np.ones(n)
    else:
        w = np.asarray(weight, dtype=np.float64).ravel()
        if w.shape[0] != n:
            raise UserError(f"weight: {w.shape[0]} values for {n} comparisons")
        bad = ~(np.isfinite(w) & (w >= 0))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise UserError(f"weight: must be finite and >= 0; row {i} has {float(w[i])!r}")
    if w.sum() <= 0:
        raise UserError("weight: all weights are zero")
    return D, 2.0 * y - 1.0, w / w.sum()


def _agreement(D: np.ndarray, s: np.ndarray, w: np.ndarray, theta: np.ndarray) -> float:
    """``sum_i w_i s_i sign(D_i theta)`` (the estimator's ``agreement_``)."""
    return float(w @ (s * np.sign(D @ theta)))


@contextlib.contextmanager
def _quiet_stdout(quiet: bool) -> Iterator[None]:
    """Silence file descriptor 1 while HiGHS runs: its MIP solver prints debug lines
    ("transformNewIntegerFeasibleSolution ...") to stdout even with its output turned off."""
    if not quiet:
        yield
        return
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def _centre_of_cell(U: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Theta in the box maximising the smallest margin of the rows of ``U`` it classifies right.

    ``U`` (n, d) are signed, L1-normalised rows; returns ``theta`` unchanged if the LP fails.
    """
    right = U @ theta > 0
    if not right.any():
        return theta
    d = U.shape[1]
    A = np.hstack([-U[right], np.ones((int(right.sum()), 1))])  # t - u_i . theta <= 0
    res = linprog(
        np.r_[np.zeros(d), -1.0],
        A_ub=A,
        b_ub=np.zeros(A.shape[0]),
        bounds=[(-1.0, 1.0)] * d + [(None, 1.0)],
        method="highs",
    )
    if res.status != 0 or res.x[-1] <= 0:
        return theta
    return res.x[:d]


def _face_milp(
    U: np.ndarray,
    w: np.ndarray,
    face: tuple[int, float],
    eps: float,
    options: dict,
) -> tuple[np.ndarray | None, float, str]:
    """Best theta on the face ``theta_j = sign`` of the box: the most weight of rows with margin
    >= eps. Returns ``(theta (d,) or None, upper bound on that weight, status)``.

    Big-M per row: ``M_i = eps - min_face u_i . theta``, the tightest valid one on the face.
    """
    j, sign = face
    n, d = U.shape
    others = np.r_[0:j, j + 1 : d]
    fixed = sign * U[:, j]
    big_m = np.maximum(eps - fixed + np.abs(U[:, others]).sum(axis=1), 0.0)
    # u_o . theta_o + fixed >= eps - M (1 - z)
    A = sparse.hstack([sparse.csr_array(U[:, others]), sparse.diags_array(-big_m)])
    lb = eps - big_m - fixed
    with _quiet_stdout(not options.get("disp", False)):
        res = milp(
            np.r_[np.zeros(d - 1), -w],
            integrality=np.r_[np.zeros(d - 1), np.ones(n)],
            bounds=Bounds(np.r_[-np.ones(d - 1), np.zeros(n)], np.ones(d - 1 + n)),
            constraints=LinearConstraint(A, lb, np.inf),
            options=options,
        )
    status = _STATUS.get(res.status, "error")
    dual = getattr(res, "mip_dual_bound", None)
    bound = -float(dual) if dual is not None and np.isfinite(dual) else float(w.sum())
    if res.x is None:
        return None, bound, status
    theta = np.empty(d)
    theta[others], theta[j] = res.x[: d - 1], sign
    return theta, bound, status


def _qualified_weight(U: np.ndarray, w: np.ndarray, theta: np.ndarray, eps: float) -> float:
    """Weight of rows classified with relative margin >= eps at ``|theta|_inf = 1``."""
    scale = np.abs(theta).max()
    if scale == 0:
        return 0.0
    return float(w[U @ (theta / scale) >= eps].sum())


def fit_sign_milp(
    D: np.ndarray,
    y: np.ndarray,
    weight: np.ndarray | None = None,
    *,
    time_limit: float = 60.0,
    theta0: np.ndarray | None = None,
    eps: float = 1e-5,
    mip_rel_gap: float = 1e-6,
    max_comparisons: int = MILP_MAX_COMPARISONS,
    max_features: int = MILP_MAX_FEATURES,
    disp: bool = False,
) -> tuple[np.ndarray, dict]:
    """Globally optimal linear sign direction by mixed-integer programming.

    The box ``|theta|_inf <= 1`` is searched face by face (``theta_j = +1`` or ``-1``: every
    direction's representative ``v / |v|_inf`` lies on one), which gives a much stronger LP
    relaxation than the whole box, whose relaxation is nearly 1 at ``theta = 0`` (z = 0 is always
    feasible, so HiGHS reports a dual bound even when stopped early). The time limit is shared:
    each face gets the remaining time divided by the remaining faces.

    Parameters
    ----------
    D : (n, d) differences ``phi(a) - phi(b)``.
    y : (n,) labels in {0, 0.5, 1} (1 = a preferred; 0.5 = tie, which counts 0 in the agreement).
    weight : (n,) non-negative comparison weights, or None (equal).
    time_limit : total seconds given to HiGHS; on reaching it the best direction found is returned
        with ``info["status"] == "limit"`` and its gap.
    theta0 : (d,) incumbent (e.g. the annealed fit) returned if no face beats it; default the
        least-squares direction of ``s`` on ``D``. Its largest coordinate's face is solved first.
    eps : strictness margin relative to ``|D_i|_1`` at ``|theta|_inf = 1`` (module docstring).
    mip_rel_gap : HiGHS' relative gap at which a face counts as solved.
    max_comparisons, max_features : size limits (comparisons after dropping ties, zero weights
        and zero rows; features ``d``), raised on purpose: larger problems rarely close.
    disp : print HiGHS' log.

    Returns
    -------
    theta : (d,) unit vector.
    info : dict with ``agreement`` (exact, of ``theta``, normalised like the estimator's
        ``agreement_``: weights summing to 1 over all comparisons), ``bound`` (upper bound on the
        agreement over directions with margins >= eps), ``gap`` (``bound - agreement``, agreement
        units; 0 when proved optimal), ``status`` ("optimal" or "limit"), ``faces`` (per face:
        ``(j, sign, status)``), ``seconds``, ``n_used`` (comparisons in the program), ``eps``.
    """
    D, s, w = _check_inputs(D, y, weight)
    if not (np.isfinite(eps) and 0 < eps < 0.1):
        raise UserError(f"eps={eps!r} is not allowed; expected a small positive number (1e-5)")
    if not (np.isfinite(time_limit) and time_limit > 0):
        raise UserError(f"time_limit={time_limit!r} is not allowed; expected seconds > 0")
    l1 = np.abs(D).sum(axis=1)
    used = (s != 0) & (w > 0) & (l1 > 0)
    n_used, d = int(used.sum()), D.shape[1]
    if n_used > max_comparisons or d > max_features:
        raise UserError(
            f"fit_sign_milp: {n_used} comparisons x {d} features is beyond the exact solver's "
            f"limits ({max_comparisons} comparisons, {max_features} features); raise "
            "max_comparisons / max_features to try anyway, or use the annealed solver"
        )
    if n_used == 0:
        raise UserError("fit_sign_milp: no comparison with a non-tie label, weight > 0 and D != 0")
    U = (s[used, None] * D[used]) / l1[used, None]
    wu = w[used]
    if theta0 is None:
        theta0 = np.linalg.lstsq(U * np.sqrt(wu)[:, None], np.sqrt(wu), rcond=None)[0]
    theta0 = np.asarray(theta0, dtype=np.float64).ravel()
    if theta0.shape[0] != d or not np.isfinite(theta0).all():
        raise UserError(f"theta0: expected {d} finite values, got shape {theta0.shape}")
    start = time.perf_counter()
    best, best_z = theta0, _qualified_weight(U, wu, theta0, eps)
    j0 = int(np.argmax(np.abs(theta0)))
    first = (j0, 1.0 if theta0[j0] >= 0 else -1.0)
    faces = [first] + [(j, sg) for j in range(d) for sg in (1.0, -1.0) if (j, sg) != first]
    bounds, log = [], []
    for k, face in enumerate(faces):
        left = time_limit - (time.perf_counter() - start)
        options = {
            "time_limit": max(left / (len(faces) - k), 0.05),
            "mip_rel_gap": float(mip_rel_gap),
            "disp": bool(disp),
        }
        theta, bound, status = _face_milp(U, wu, face, eps, options)
        if theta is not None and _qualified_weight(U, wu, theta, eps) > best_z:
            best, best_z = theta, _qualified_weight(U, wu, theta, eps)
        bounds.append(bound)
        log.append((face[0], face[1], status))
    theta = _centre_of_cell(U, best / np.abs(best).max())
    theta = theta / np.linalg.norm(theta)
    agreement = _agreement(D, s, w, theta)
    w_used = float(wu.sum())
    bound_z = max(best_z, *bounds)
    proved = all(st == "optimal" for _, _, st in log)
    bound = agreement if proved else min(2.0 * bound_z - w_used, w_used)
    return theta, {
        "agreement": agreement,
        "bound": max(bound, agreement),
        "gap": max(bound - agreement, 0.0),
        "status": "optimal" if proved else "limit",
        "faces": log,
        "seconds": time.perf_counter() - start,
        "n_used": n_used,
        "eps": float(eps),
    }
