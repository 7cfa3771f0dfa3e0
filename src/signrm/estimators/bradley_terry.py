"""Bradley–Terry / RLHF (cross-entropy) and Thurstone (probit) reward models."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import special

from signrm.data import PreferenceData
from signrm.estimators._linear import fit_bt_linear
from signrm.estimators._torch_head import TorchHeadMixin
from signrm.estimators._torch_train import train_pairwise
from signrm.estimators.base import PreferenceEstimator

_LINKS = ("logit", "probit")
_HEADS = ("linear", "mlp")


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
    max_iter, tol : L-BFGS settings of the linear head (tol: projected-gradient tolerance on
        the mean loss; 1e-4 as scikit-learn's LogisticRegression, lower it for a polished
        optimum).
    random_state : int or None
    verbose : bool
        Progress bar for MLP training.
    """

    _saved = ("coef_", "n_iter_", "objective_")

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
        random_state: int | None = None,
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

    def _validate_params(self) -> None:
        if self.head not in _HEADS:
            raise ValueError(f"head must be one of {_HEADS}, got {self.head!r}")
        if self.link not in _LINKS:
            raise ValueError(f"link must be one of {_LINKS}, got {self.link!r}")
        if not self.l2 >= 0:
            raise ValueError(f"l2 must be >= 0, got {self.l2}")
        if not self.center_rewards_coef >= 0:
            raise ValueError(f"center_rewards_coef must be >= 0, got {self.center_rewards_coef}")

    def fit(self, data: PreferenceData) -> BradleyTerry:
        """Fit on comparisons (or a ``signrm.streaming`` source, out of core); returns self."""
        from signrm.streaming import fit_streaming, is_streaming_source

        if is_streaming_source(data):
            return fit_streaming(self, data)
        self._validate_params()
        data = self._check_data(data)
        offset = data.margin if self.use_margin else None
        self.n_features_in_ = data.n_features
        if self.head == "linear":
            S = None
            if self.center_rewards_coef > 0:
                data.require_alternatives("reward centring")
                S = data.xa + data.xb
            theta, info = fit_bt_linear(
                data.differences,
                data.y,
                data.weight,
                l2=self.l2,
                link=self.link,
                margin_offset=offset,
                S=S,
                center_coef=self.center_rewards_coef,
                max_iter=self.max_iter,
                tol=self.tol,
            )
            self.coef_ = theta
            self.n_iter_ = info["n_iter"]
            self.objective_ = info["objective"]
            self.head_module_ = None
        else:
            data.require_alternatives("BradleyTerry(head='mlp')")
            self.head_module_ = self._new_head(data.n_features)
            self.history_ = train_pairwise(
                self.head_module_,
                data.xa,
                data.xb,
                data.y,
                data.weight,
                self._train_config(),
                loss="bt" if self.link == "logit" else "probit",
                margin_offset=offset,
                center_coef=self.center_rewards_coef,
            )
            self.coef_ = None
            self.n_iter_ = len(self.history_.epochs)
            self.objective_ = None
        return self

    def _reward(self, X: np.ndarray) -> np.ndarray:
        if self.head == "linear":
            return np.asarray(X @ self.coef_.astype(X.dtype), dtype=np.float64)
        return self._torch_reward(X)

    def predict_proba(self, data: PreferenceData) -> np.ndarray:
        m = self.decision_function(data)
        return special.ndtr(m) if self.link == "probit" else special.expit(m)
