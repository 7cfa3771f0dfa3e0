"""Deterministic full-batch solvers for linear heads (scipy L-BFGS on numpy arrays).

``D``: (n, d) differences phi(a) - phi(b); ``y``: (n,) labels in {0, 0.5, 1}; ``w``: (n,) weights
summing to anything positive (objectives are weighted means).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize, special


def _expit(x):
    return special.expit(x)


def _normalise_weights(w: np.ndarray | None, n: int) -> np.ndarray:
    if w is None:
        return np.full(n, 1.0 / n)
    return w / w.sum()


def fit_bt_linear(
    D: np.ndarray,
    y: np.ndarray,
    w: np.ndarray | None = None,
    l2: float = 1e-4,
    link: str = "logit",
    margin_offset: np.ndarray | None = None,
    S: np.ndarray | None = None,
    center_coef: float = 0.0,
    theta0: np.ndarray | None = None,
    max_iter: int = 500,
    tol: float = 1e-7,
) -> tuple[np.ndarray, dict]:
    """Penalised maximum likelihood of the BT (logit) or Thurstone (probit) model.

    Objective: ``sum_i w_i nll(m_i) + l2/2 |theta|^2 (+ center_coef * sum_i w_i (theta.S_i)^2)``
    with ``m_i = D_i theta - s_i offset_i``; ``S`` = phi(a) + phi(b) for reward centring.
    Returns ``(theta, info)`` with the final objective and iteration count.
    """
    n, d = D.shape
    wn = _normalise_weights(w, n)
    s = 2.0 * y - 1.0
    offset = None if margin_offset is None else s * margin_offset
    dt = D.dtype

    def fun(theta):
        th = theta.astype(dt, copy=False)
        m = (D @ th).astype(np.float64)
        if offset is not None:
            m = m - offset
        if link == "logit":
            # y softplus(-m) + (1-y) softplus(m) = softplus(m) - y m
            nll = np.logaddexp(0.0, m) - y * m
            dm = _expit(m) - y
        else:
            lp, lq = special.log_ndtr(m), special.log_ndtr(-m)
            nll = -(y * lp + (1.0 - y) * lq)
            logpdf = -0.5 * m * m - 0.5 * np.log(2 * np.pi)
            dm = -y * np.exp(logpdf - lp) + (1.0 - y) * np.exp(logpdf - lq)
        f = float(wn @ nll) + 0.5 * l2 * float(theta @ theta)
        g = (D.T @ (wn * dm).astype(dt)).astype(np.float64) + l2 * theta
        if center_coef > 0 and S is not None:
            r = (S @ th).astype(np.float64)
            f += center_coef * float(wn @ (r * r))
            g += 2.0 * center_coef * (S.T @ (wn * r).astype(dt)).astype(np.float64)
        return f, g

    x0 = np.zeros(d) if theta0 is None else np.asarray(theta0, dtype=np.float64)
    res = optimize.minimize(
        fun,
        x0,
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": max_iter, "gtol": tol, "ftol": 1e-12},
    )
    return res.x, {
        "objective": float(res.fun),
        "n_iter": int(res.nit),
        "converged": bool(res.success),
    }


@dataclass
class SignStageResult:
    lam: float
    scale: float
    objective: float
    n_iter: int
    theta: np.ndarray | None = None


def smoothed_agreement(D, s, wn, u, lam, scale) -> float:
    """``sum_i w_i s_i tanh(lam (D_i u) / (2 scale))`` for a unit vector ``u``."""
    m = (D @ u.astype(D.dtype, copy=False)).astype(np.float64)
    return float(wn @ (s * np.tanh(0.5 * lam * m / scale)))


def exact_agreement(D, s, wn, theta) -> float:
    """Maximum-score objective ``sum_i w_i s_i sign(D_i theta)`` in [-1, 1]."""
    m = D @ np.asarray(theta, dtype=D.dtype)
    return float(wn @ (s * np.sign(m)))


def fit_sign_linear(
    D: np.ndarray,
    y: np.ndarray,
    theta0: np.ndarray,
    lambdas: np.ndarray,
    w: np.ndarray | None = None,
    max_iter: int = 200,
    tol: float = 1e-6,
) -> tuple[np.ndarray, list[SignStageResult]]:
    """Anneal the smoothed maximum-score objective over ``lambdas``, on the unit sphere.

    Each stage fixes ``scale`` = standard deviation of the margins ``D u`` at the stage's start
    (so lambda is dimensionless) and maximises ``sum_i w_i s_i tanh(lam D_i u / (2 scale))`` over
    ``u = theta / |theta|`` by L-BFGS, warm-started from the previous stage. Returns the unit
    vector and the per-stage record.
    """
    n, d = D.shape
    wn = _normalise_weights(w, n)
    s = 2.0 * y - 1.0
    ws = wn * s
    dt = D.dtype
    theta = np.asarray(theta0, dtype=np.float64)
    norm = np.linalg.norm(theta)
    if norm == 0 or not np.isfinite(norm):
        raise ValueError("the sign estimator's starting point is zero or not finite")
    theta = theta / norm
    stages: list[SignStageResult] = []
    for lam in lambdas:
        m0 = (D @ theta.astype(dt)).astype(np.float64)
        scale = float(np.sqrt(wn @ (m0 - wn @ m0) ** 2))
        if not scale > 0:
            scale = 1.0
        c = 0.5 * float(lam) / scale

        def fun(v, c=c):
            nv = np.linalg.norm(v)
            u = v / nv
            m = (D @ u.astype(dt)).astype(np.float64)
            th = np.tanh(c * m)
            f = -float(ws @ th)
            gu = -(D.T @ (ws * c * (1.0 - th * th)).astype(dt)).astype(np.float64)
            g = (gu - (gu @ u) * u) / nv
            return f, g

        res = optimize.minimize(
            fun,
            theta,
            jac=True,
            method="L-BFGS-B",
            options={"maxiter": max_iter, "gtol": tol, "ftol": 1e-10},
        )
        theta = res.x / np.linalg.norm(res.x)
        stages.append(SignStageResult(float(lam), scale, -float(res.fun), int(res.nit), theta))
    return theta, stages
