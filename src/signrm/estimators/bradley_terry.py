"""Bradley–Terry / RLHF (cross-entropy) and Thurstone (probit) reward models."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
from scipy import special

from signrm.data import PreferenceData
from signrm.engine.linear import Passes, fit_bt, weight_totals
from signrm.estimators._params import (
    HEAD_CONSTRAINT,
    TORCH_HEAD_CONSTRAINTS,
    Choice,
    non_negative_real,
    positive_int,
)
from signrm.estimators._torch_head import TorchHeadMixin
from signrm.estimators.base import PreferenceEstimator


class BradleyTerry(TorchHeadMixin, PreferenceEstimator):
    """Pooled maximum likelihood of a BT (logit, = RLHF reward modelling) or Thurstone (probit) model.

    Minimises the weighted mean of ``y softplus(-m) + (1 - y) softplus(m)`` (logit) or
    ``-log Phi(s m)`` (probit) plus ``l2/2 |theta|^2``, with margins ``m = r(a) - r(b)``.
    A tie counts as half a win each way.

    Parameters
    ----------
    head : "linear" or "mlp"
        ``r(x) = theta . x`` (fitted by full-batch L-BFGS, deterministic) or an MLP trained by Adam
        with early stopping on a held-out ``validation_fraction``.
    link : "logit" or "probit"
    l2 : float
        Ridge penalty on theta (linear head) per unit of mean loss.
    use_margin : bool
        Use the data's per-comparison ``margin`` (TRL convention: loss on ``m - margin``).
    center_rewards_coef : float
        TRL's reward centring: adds ``coef * mean((r(a) + r(b))^2)`` (needs alternatives).
    hidden_sizes, learning_rate, batch_size, max_epochs, patience, validation_fraction,
    weight_decay : MLP-head training settings.
    max_iter, tol : L-BFGS settings of the linear head: at most ``max_iter`` iterations, stopped
        when the projected gradient of the mean loss falls below ``tol`` (1e-4 as
        scikit-learn's LogisticRegression; lower it for a polished optimum). The MLP head uses
        ``max_epochs`` and ``patience`` instead.
    random_state : int or None
        Seeds the validation split and MLP training (the linear fit is deterministic). Defaults
        to 0 (not None), as in every signrm estimator, so that the default fit is reproducible.
    verbose : bool
        Progress bar for MLP training.
    """

    _saved = ("coef_", "n_iter_", "objective_")
    _parameter_constraints: dict = {
        **TORCH_HEAD_CONSTRAINTS,
        "head": HEAD_CONSTRAINT,
        "link": [Choice("logit", "probit")],
        "l2": [non_negative_real()],
        "use_margin": ["boolean"],
        "center_rewards_coef": [non_negative_real()],
        "max_iter": [positive_int()],
        "tol": [non_negative_real()],
    }

    def __init__(
        self,
        head: str = "linear",
        link: str = "logit",
        l2: float = 1e-4,
        use_margin: bool = True,
        center_rewards_coef: float = 0.0,
        hidden_sizes: Sequence[int] = (1024, 512),
        learning_rate: float = 1e-3,
        batch_size: int = 256,
        max_epochs: int = 50,
        patience: int = 3,
        validation_fraction: float = 0.2,
        weight_decay: float = 0.0,
        max_iter: int = 500,
        tol: float = 1e-4,
        random_state: int | None = 0,
        verbose: bool = False,
    ) -> None:
        self.head = head
        self.link = link
        self.l2 = l2
        self.use_margin = use_margin
        self.center_rewards_coef = center_rewards_coef
        self.hidden_sizes = hidden_sizes
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.weight_decay = weight_decay
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state
        self.verbose = verbose

    def fit(self, data) -> BradleyTerry:
        """Fit on comparisons; returns self.

        ``data``: a :class:`~signrm.PreferenceData`, or (linear head) a streaming source or a
        path of Parquet shards / ``.npy`` files, fitted out of core by the same engine.
        """
        self._validate_params()
        if self.head == "linear":
            return self._fit_linear(self._linear_source(data))
        data = self._check_data(data)
        self._fit_pairwise_head(
            data,
            loss="bt" if self.link == "logit" else "probit",
            margin_offset=data.margin if self.use_margin else None,
            center_coef=self.center_rewards_coef,
        )
        self.coef_ = None
        self.n_iter_ = len(self.history_.epochs)
        self.objective_ = None
        return self

    def _fit_linear(self, source) -> BradleyTerry:
        """Full-batch L-BFGS over the source's chunks (signrm.engine.linear)."""
        if self.center_rewards_coef > 0 and not source.has_alternatives:
            raise ValueError(
                "reward centring (center_rewards_coef > 0) needs each alternative's features "
                "(xa, xb), not only their differences"
            )
        t0 = time.perf_counter()
        passes = Passes(
            source, progress=bool(self.verbose), desc="BradleyTerry", limit_threads=True
        )
        try:
            totals = weight_totals(passes)
            theta, info = fit_bt(
                passes,
                totals,
                int(source.n_features),
                l2=self.l2,
                link=self.link,
                use_margin=self.use_margin,
                center_coef=self.center_rewards_coef,
                max_iter=self.max_iter,
                tol=self.tol,
            )
        finally:
            passes.close()
        self.coef_ = theta
        self.n_iter_ = info["n_iter"]
        self.objective_ = info["objective"]
        self.head_module_ = None
        self.n_features_in_ = int(source.n_features)
        self.n_passes_ = passes.state.n_passes
        self.fit_seconds_ = time.perf_counter() - t0
        return self

    def _reward(self, X: np.ndarray) -> np.ndarray:
        if self.head == "linear":
            return np.asarray(X @ self.coef_.astype(X.dtype), dtype=np.float64)
        return self._torch_reward(X)

    def predict_proba(self, data: PreferenceData) -> np.ndarray:
        m = self.decision_function(data)
        return special.ndtr(m) if self.link == "probit" else special.expit(m)
