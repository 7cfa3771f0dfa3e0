"""Nonparametric mixture of Bradley–Terry annotators (needs user ids).

Each annotator answers by BT with their own utility; the distribution of utilities is estimated
without assuming its shape (Kiefer–Wolfowitz NPMLE on a grid of every annotator's own fit at a
few scales, :mod:`signrm.engine.npmle`), and the population utility is the comparison-weighted
mean of the annotators' posterior utilities. The panel-data estimator of theta_bar, and the
model of the sign estimator's panel step.
"""

from __future__ import annotations

import numpy as np
from scipy import special

from signrm.data import PreferenceData
from signrm.engine.npmle import DEFAULT_MAX_ATOMS, DEFAULT_SCALES, annotator_index, fit_npmle
from signrm.estimators._panel import informative_rows
from signrm.estimators._params import (
    RANDOM_STATE_CONSTRAINT,
    IntervalSequence,
    Real,
    non_negative_real,
    positive_int,
)
from signrm.estimators.base import PreferenceEstimator


class NonparametricMixtureBT(PreferenceEstimator):
    """BT annotators with utilities from an unrestricted distribution, fitted by NPMLE.

    ``coef_ = sum_u (n_u / n) E[theta_u | u's comparisons]``, with ``n_u`` the weighted number
    of annotator ``u``'s comparisons and the posterior under the fitted mixing distribution
    ``sum_k weights_k delta(atoms_k)``. Unlike :class:`~signrm.LatentClassBT` there is no number
    of classes to choose and no local optimum (the grid is fixed, the weights' problem concave).
    Needs several comparisons per annotator (each annotator's own fit makes the grid). As the
    panel model of the default :class:`~signrm.SignEstimator` it brings the phase diagram (d = 8,
    200 annotators, 15 panel-coupling cells, 2 seeds) to 0.38x RLHF's angular error on average at
    n = 43,834 (docs/adaptive.md).

    ``predict``, ``score``, ``decision_function`` and ``reward`` use ``coef_`` (the population
    utility); ``predict_proba`` is the mixture's probability ``sum_k weights_k
    sigmoid(atoms_k . D)`` that a random annotator prefers a (the two can disagree, as for
    :class:`~signrm.LatentClassBT`).

    Parameters
    ----------
    l2 : float
        Ridge penalty of each annotator's own BT fit, ``l2/2 theta^T M theta`` with ``M`` the
        second moment of the feature differences (unit-free; the identity for standardised,
        uncorrelated features), in units of one comparison.
    scales : sequence of float
        Multiples of each annotator's fit in the grid (the ridge shrinks a decisive annotator's
        fit, a few comparisons inflate it).
    max_atoms : int
        Largest grid; with more annotators than ``(max_atoms - 1) / len(scales)`` the grid is
        built on k-means centres of their fits. Cost: n x atoms log-sigmoids.
    max_iter, tol : EM on the mixing weights: at most ``max_iter`` iterations, stopped when the
        mean log-likelihood per annotator rises by less than ``tol``.
    random_state : int or None
        Seeds the k-means grid (used only above ``max_atoms``). Defaults to 0, as in every
        signrm estimator.
    verbose : bool
        Progress bar over the three phases (own fits, likelihood table, mixing weights).

    Attributes
    ----------
    coef_ : (d,) population utility.   atoms_ : (K, d) grid.   weights_ : (K,) mixing weights.
    users_ : (U,) annotator ids in the order of ``user_coefs_`` (U, d), each annotator's
    posterior mean utility.   log_likelihood_ : float.   n_iter_ : EM iterations.
    """

    _saved = ("coef_", "atoms_", "weights_", "users_", "user_coefs_", "log_likelihood_", "n_iter_")
    _parameter_constraints: dict = {
        "l2": [non_negative_real()],
        "scales": [IntervalSequence(Real, 0, None, closed="neither")],
        "max_atoms": [positive_int()],
        "max_iter": [positive_int()],
        "tol": [non_negative_real()],
        "random_state": RANDOM_STATE_CONSTRAINT,
        "verbose": ["boolean"],
    }

    def __init__(
        self,
        l2: float = 1.0,
        scales: tuple[float, ...] = DEFAULT_SCALES,
        max_atoms: int = DEFAULT_MAX_ATOMS,
        max_iter: int = 3000,
        tol: float = 1e-6,
        random_state: int | None = 0,
        verbose: bool = False,
    ) -> None:
        self.l2 = l2
        self.scales = scales
        self.max_atoms = max_atoms
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state
        self.verbose = verbose

    def fit(self, data: PreferenceData) -> NonparametricMixtureBT:
        """Fit on comparisons with user ids (ties carry no information and are dropped);
        returns self."""
        self._validate_params()
        if int(self.max_atoms) <= len(self.scales):
            raise ValueError(
                f"max_atoms={self.max_atoms} must exceed len(scales)={len(self.scales)} (the grid "
                "holds at least one fit at every scale, and zero)"
            )
        data = self._check_data(data)
        users = data.require_users("NonparametricMixtureBT")
        y = np.asarray(data.y, dtype=np.float64)
        w = np.ones(y.size) if data.weight is None else np.asarray(data.weight, np.float64)
        keep = informative_rows(y, w)
        if not keep.any():
            raise ValueError("NonparametricMixtureBT needs at least one non-tie comparison")
        uniq, codes = annotator_index(np.asarray(users)[keep])
        from tqdm.auto import tqdm

        bar = tqdm(total=3, desc="NonparametricMixtureBT", disable=not self.verbose)

        def advance(phase: str) -> None:
            bar.set_postfix_str(phase)
            bar.update(1)

        out = fit_npmle(
            np.asarray(data.differences[keep], dtype=np.float64), y[keep], w[keep],
            codes, uniq.size, l2=float(self.l2),
            scales=tuple(float(c) for c in self.scales), max_atoms=int(self.max_atoms),
            max_iter=int(self.max_iter), tol=float(self.tol), seed=int(self.random_state or 0),
            progress=advance,
        )  # fmt: skip
        bar.close()
        self.n_features_in_ = data.n_features
        self.coef_ = out["coef"]
        self.atoms_, self.weights_ = out["atoms"], out["weights"]
        self.users_ = uniq
        self.user_coefs_ = out["posterior"] @ out["atoms"]
        self.log_likelihood_ = float(out["log_likelihood"])
        self.n_iter_ = int(out["n_iter"])
        return self

    def _reward(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(X @ self.coef_.astype(X.dtype), dtype=np.float64)

    def predict_proba(self, data: PreferenceData) -> np.ndarray:
        """Mixture choice probability ``sum_k weights_k sigmoid(atoms_k . D)`` (n,)."""
        self._check_fitted()
        if data.n_features != self.n_features_in_:
            raise ValueError(
                f"data have {data.n_features} features, the model was fitted on {self.n_features_in_}"
            )
        m = np.asarray(data.differences @ self.atoms_.T.astype(data.differences.dtype))
        return special.expit(m) @ self.weights_
