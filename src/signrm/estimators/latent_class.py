"""Latent-class Bradley–Terry by EM (panel-data baseline; needs user ids).

K classes with weights ``pi_k`` and utilities ``theta_k``; every user belongs to one class for all
their comparisons. The E-step computes each user's class posterior from the product of that user's
BT likelihoods (in log space); the M-step runs K weighted logistic regressions and updates ``pi``.
The population utility estimate is ``sum_k pi_k theta_k``.
"""

from __future__ import annotations

import numpy as np
from scipy import special

from signrm.data import PreferenceData
from signrm.engine.linear import fit_bt_arrays
from signrm.engine.newton import NEWTON_MAX_FEATURES, fit_bt_newton
from signrm.estimators._params import RANDOM_STATE_CONSTRAINT, non_negative_real, positive_int
from signrm.estimators.base import PreferenceEstimator


def _comparison_loglik(D: np.ndarray, y: np.ndarray, thetas: np.ndarray) -> np.ndarray:
    """BT log-likelihood of each comparison under each class: (n, K)."""
    m = np.asarray(D @ thetas.T.astype(D.dtype), dtype=np.float64)
    return y[:, None] * special.log_expit(m) + (1 - y[:, None]) * special.log_expit(-m)


class LatentClassBT(PreferenceEstimator):
    """Finite mixture of linear BT models over users, fitted by EM.

    Two targets, two kinds of prediction (``D = phi(a) - phi(b)``):

    - ``decision_function``, ``predict``, ``score`` and ``reward`` use the population utility
      ``coef_ = sum_k pi_k theta_k``, the estimator's target: ``predict`` is 1 when the
      population ordering puts a first, ``coef_ . D > 0``.
    - ``predict_proba`` is the probability ``sum_k pi_k sigmoid(theta_k . D)`` that a random
      user drawn from the fitted mixture prefers a.

    The two can disagree: the mixture can give a better-than-even chance to a while the
    population utility prefers b. So here ``predict`` is not ``predict_proba > 0.5`` (unlike the
    other estimators); threshold ``predict_proba`` yourself for the mixture's more likely answer.

    Parameters
    ----------
    n_classes : int
        Number of latent classes K (the sign-estimator paper compares K in {2, 3, 5}).
    n_init : int
        EM restarts from random soft assignments; the best log-likelihood is kept.
    max_iter, tol : EM settings of each restart: at most ``max_iter`` EM iterations, stopped when
        the log-likelihood improves by less than ``tol * n_comparisons`` (the mean log-likelihood
        by less than ``tol``).
    l2 : float
        Ridge penalty of each class's logistic regression (per unit of mean loss).
    m_step_iter : int
        Iterations per class and M-step, warm-started from the previous M-step: Newton steps
        with up to 64 features (:func:`signrm.engine.newton.fit_bt_newton`), L-BFGS iterations
        above. A generalised EM step (the likelihood still rises) that avoids solving every
        weighted regression to convergence while the responsibilities are still moving.
    random_state : int or None
        Seeds the EM restarts. Defaults to 0 (not None), as in every signrm estimator, so that
        the default fit is reproducible.
    verbose : bool
        Progress bar over the restarts.

    Attributes
    ----------
    weights_ : (K,) class weights pi_k.   coefs_ : (K, d) class utilities theta_k.
    coef_ : (d,) population utility ``sum_k weights_k coefs_k``.
    users_ : (U,) user ids in the order of ``responsibilities_`` (U, K) (posterior class of each
    user); ``labels_`` (U,) their most probable class.
    log_likelihood_, bic_ (``-2 LL + (K d + K - 1) log n`` with n comparisons), n_iter_,
    converged_.
    """

    _saved = (
        "weights_",
        "coefs_",
        "coef_",
        "users_",
        "responsibilities_",
        "labels_",
        "log_likelihood_",
        "bic_",
        "n_iter_",
        "converged_",
    )
    _parameter_constraints: dict = {
        "n_classes": [positive_int()],
        "n_init": [positive_int()],
        "max_iter": [positive_int()],
        "tol": [non_negative_real()],
        "l2": [non_negative_real()],
        "m_step_iter": [positive_int()],
        "random_state": RANDOM_STATE_CONSTRAINT,
        "verbose": ["boolean"],
    }

    def __init__(
        self,
        n_classes: int = 2,
        n_init: int = 5,
        max_iter: int = 100,
        tol: float = 1e-6,
        l2: float = 1e-4,
        m_step_iter: int = 20,
        random_state: int | None = 0,
        verbose: bool = False,
    ) -> None:
        self.n_classes = n_classes
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.l2 = l2
        self.m_step_iter = m_step_iter
        self.random_state = random_state
        self.verbose = verbose

    def fit(self, data: PreferenceData) -> LatentClassBT:
        """Fit by EM on comparisons with user ids; returns self."""
        self._validate_params()
        K = int(self.n_classes)
        data = self._check_data(data)
        users = data.require_users("LatentClassBT")
        uniq, user_idx = np.unique(users, return_inverse=True)
        if len(uniq) < K:
            raise ValueError(
                f"LatentClassBT(n_classes={K}) needs at least {K} users, got {len(uniq)}"
            )
        D, y = data.differences, data.y
        n, d = D.shape
        w = np.ones(n) if data.weight is None else data.weight
        rng = np.random.default_rng(self.random_state)
        from tqdm.auto import tqdm

        best = None
        for _ in tqdm(range(int(self.n_init)), desc="EM restarts", disable=not self.verbose):
            resp = rng.dirichlet(np.ones(K), size=len(uniq))
            result = self._em(D, y, w, user_idx, len(uniq), resp)
            if best is None or result["ll"] > best["ll"]:
                best = result
        self.n_features_in_ = d
        self.users_ = uniq
        self.weights_ = best["pi"]
        self.coefs_ = best["thetas"]
        self.coef_ = self.weights_ @ self.coefs_
        self.responsibilities_ = best["resp"]
        self.labels_ = best["resp"].argmax(axis=1)
        self.log_likelihood_ = float(best["ll"])
        n_params = K * d + K - 1
        self.bic_ = float(-2 * best["ll"] + n_params * np.log(n))
        self.n_iter_ = int(best["n_iter"])
        self.converged_ = bool(best["converged"])
        return self

    def _em(self, D, y, w, user_idx, n_users, resp) -> dict:
        K = resp.shape[1]
        d = D.shape[1]
        D64 = np.asarray(D, dtype=np.float64) if d <= NEWTON_MAX_FEATURES else None
        thetas = np.zeros((K, d))
        ll_old = -np.inf
        converged = False
        n_iter = 0
        for it in range(1, int(self.max_iter) + 1):
            n_iter = it
            # M-step: class weights, then one weighted logistic regression per class.
            pi = np.clip(resp.mean(axis=0), 1e-12, None)
            pi /= pi.sum()
            for k in range(K):
                wk = w * resp[user_idx, k]
                if wk.sum() <= 1e-12:
                    continue
                if d <= NEWTON_MAX_FEATURES:
                    thetas[k] = fit_bt_newton(
                        D64, y, wk, l2=self.l2, theta0=thetas[k], max_iter=int(self.m_step_iter)
                    )
                    continue
                thetas[k], _ = fit_bt_arrays(
                    D,
                    y,
                    wk,
                    l2=self.l2,
                    theta0=thetas[k],
                    max_iter=int(self.m_step_iter),
                    tol=1e-7,
                )
            # E-step in log space: user log-likelihoods summed over their comparisons.
            comp_ll = _comparison_loglik(D, y, thetas) * w[:, None]
            user_ll = np.stack(
                [np.bincount(user_idx, weights=comp_ll[:, k], minlength=n_users) for k in range(K)],
                axis=1,
            )
            log_post = user_ll + np.log(pi)
            norm = special.logsumexp(log_post, axis=1, keepdims=True)
            resp = np.exp(log_post - norm)
            ll = float(norm.sum())
            if ll - ll_old < self.tol * len(y):
                converged = True
                break
            ll_old = ll
        pi = resp.mean(axis=0)
        return {
            "ll": ll,
            "pi": pi,
            "thetas": thetas.copy(),
            "resp": resp,
            "n_iter": n_iter,
            "converged": converged,
        }

    def _reward(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(X @ self.coef_.astype(X.dtype), dtype=np.float64)

    def predict_proba(self, data: PreferenceData) -> np.ndarray:
        """Population-average choice probability ``sum_k pi_k sigmoid(theta_k . D)``."""
        self._check_fitted()
        if data.n_features != self.n_features_in_:
            raise ValueError(
                f"data have {data.n_features} features, the model was fitted on {self.n_features_in_}"
            )
        m = np.asarray(data.differences @ self.coefs_.T.astype(data.differences.dtype))
        return special.expit(m) @ self.weights_

    def predict_user_class(self, users) -> np.ndarray:
        """Most probable class of known users, shape (len(users),)."""
        self._check_fitted()
        lookup = {u: i for i, u in enumerate(self.users_.tolist())}
        missing = [u for u in np.asarray(users).tolist() if u not in lookup]
        if missing:
            raise ValueError(f"unknown user id(s) {missing[:5]}: not seen in fit")
        return self.labels_[[lookup[u] for u in np.asarray(users).tolist()]]
