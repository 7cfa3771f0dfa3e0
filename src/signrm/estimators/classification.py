"""Classification reward models (seed 003, "CLF"): drop the pairing, classify alternatives.

Each alternative shown is a labelled example — the preferred one 1, the other 0 (a tied pair gives
each alternative half a 1 and half a 0) — and a probabilistic binary classifier is fitted on its
features. The reward is the logit of the predicted win probability.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy import special
from sklearn.base import clone

from signrm.data import PreferenceData
from signrm.engine.torch_train import seed_everything, train_pointwise
from signrm.estimators._params import (
    TORCH_HEAD_CONSTRAINTS,
    Choice,
    HasMethods,
    Integral,
    Interval,
    Real,
    described,
    positive_int,
)
from signrm.estimators._torch_head import TorchHeadMixin
from signrm.estimators.base import PreferenceEstimator

_BUILTIN = ("mlp", "lightgbm")


def pointwise_examples(data: PreferenceData):
    """Unpair comparisons: returns ``X`` (m, d), ``labels`` (m,), ``weights`` (m,), ``pair`` (m,).

    Rows with zero weight (e.g. the "loser" copy of a strict preference) are not emitted; ``pair``
    is the index of the comparison each row came from.
    """
    n = data.n_samples
    y = data.y
    w = np.ones(n) if data.weight is None else data.weight
    idx = np.arange(n)
    X = np.concatenate([data.xa, data.xa, data.xb, data.xb])
    labels = np.concatenate([np.ones(n), np.zeros(n), np.ones(n), np.zeros(n)])
    weights = np.concatenate([w * y, w * (1 - y), w * (1 - y), w * y])
    pair = np.concatenate([idx, idx, idx, idx])
    keep = weights > 0
    return X[keep], labels[keep], weights[keep], pair[keep]


class ClassificationRM(TorchHeadMixin, PreferenceEstimator):
    """Classification reward model: ``r(x) = logit P(x is the preferred alternative)``.

    Parameters
    ----------
    backend : "mlp", "lightgbm", or a scikit-learn classifier with ``predict_proba``
        ``"mlp"``: the MLP head trained with binary cross-entropy (CLF-MLP); ``"lightgbm"``: a
        gradient-boosted classifier (CLF-LGB); any other classifier is cloned and fitted with
        ``sample_weight`` when it accepts one.
    hidden_sizes, learning_rate, batch_size, max_epochs, patience, validation_fraction,
    weight_decay : MLP settings (early stopping on the held-out comparisons).
    n_estimators, num_leaves, lgb_learning_rate : LightGBM settings.
    early_stopping_rounds : int or None
        LightGBM stops after this many rounds without improvement on the held-out share of
        comparisons (``validation_fraction``); 0 or None: no early stopping, all
        ``n_estimators`` rounds.
    n_jobs : int or None
        LightGBM threads (None: all cores; use 1 inside parallel experiment workers).
    random_state : int or None
        Seeds the validation split, the MLP initialisation and training, and LightGBM. Defaults
        to 0 (not None), as in every signrm estimator, so that the default fit is reproducible.
    verbose : bool
        Progress bar for MLP training.
    """

    _saved = ("n_train_examples_", "best_iteration_")
    _parameter_constraints: dict = {
        **TORCH_HEAD_CONSTRAINTS,
        "backend": [Choice(*_BUILTIN), described(HasMethods("fit"), "a scikit-learn classifier")],
        "n_estimators": [positive_int()],
        "num_leaves": [Interval(Integral, 2, None, closed="left")],
        "lgb_learning_rate": [Interval(Real, 0, None, closed="neither")],
        "early_stopping_rounds": [None, Interval(Integral, 0, None, closed="left")],
        "n_jobs": [None, Integral],
    }

    def __init__(
        self,
        backend="mlp",
        hidden_sizes: Sequence[int] = (1024, 512),
        learning_rate: float = 1e-3,
        batch_size: int = 256,
        max_epochs: int = 50,
        patience: int = 3,
        validation_fraction: float = 0.2,
        weight_decay: float = 0.0,
        n_estimators: int = 500,
        num_leaves: int = 31,
        lgb_learning_rate: float = 0.05,
        early_stopping_rounds: int = 20,
        n_jobs: int | None = None,
        random_state: int | None = 0,
        verbose: bool = False,
    ) -> None:
        self.backend = backend
        self.hidden_sizes = hidden_sizes
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.weight_decay = weight_decay
        self.n_estimators = n_estimators
        self.num_leaves = num_leaves
        self.lgb_learning_rate = lgb_learning_rate
        self.early_stopping_rounds = early_stopping_rounds
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.verbose = verbose

    @property
    def head(self) -> str:  # the torch mixin builds an MLP head for the "mlp" backend
        return "mlp"

    def fit(self, data: PreferenceData) -> ClassificationRM:
        """Fit on comparisons (needs each alternative's features); returns self."""
        self._validate_params()
        backend = self.backend
        if not isinstance(backend, str) and not hasattr(backend, "predict_proba"):
            raise ValueError(
                f"backend {type(backend).__name__} has no predict_proba: a probabilistic "
                "classifier is needed"
            )
        data = self._check_data(data)
        data.require_alternatives(
            "ClassificationRM",
            hint="it classifies single alternatives and has no linear head: fit "
            "BradleyTerry or SignEstimator with head='linear' on differences instead",
        )
        self.n_features_in_ = data.n_features
        X, labels, weights, pair = pointwise_examples(data)
        self.n_train_examples_ = int(len(labels))
        self.head_module_ = None
        self.booster_ = None
        self.classifier_ = None
        self.best_iteration_ = None
        if backend == "mlp":
            self.head_module_ = self._new_head(data.n_features)
            self.history_ = train_pointwise(
                self.head_module_, X, labels, weights, self._train_config(), groups=pair
            )
        elif backend == "lightgbm":
            self._fit_lightgbm(X, labels, weights, pair)
        else:
            clf = clone(backend)
            try:
                clf.fit(X, labels, sample_weight=weights)
            except TypeError:
                if not np.allclose(weights, weights[0]):
                    raise ValueError(
                        f"{type(backend).__name__}.fit takes no sample_weight, but these data have "
                        "weights or ties"
                    ) from None
                clf.fit(X, labels)
            self.classifier_ = clf
        return self

    def _fit_lightgbm(self, X, labels, weights, pair) -> None:
        import lightgbm as lgb

        gen = np.random.default_rng(self.random_state)
        n_pairs = int(pair.max()) + 1
        val_pairs = gen.random(n_pairs) < self.validation_fraction
        val = val_pairs[pair]
        model = lgb.LGBMClassifier(
            n_estimators=self.n_estimators,
            num_leaves=self.num_leaves,
            learning_rate=self.lgb_learning_rate,
            random_state=None if self.random_state is None else int(self.random_state),
            n_jobs=-1 if self.n_jobs is None else int(self.n_jobs),
            verbose=-1,
        )
        fit_kw = {}
        if val.any() and (~val).any() and self.early_stopping_rounds:
            import inspect

            if "eval_X" in inspect.signature(model.fit).parameters:  # lightgbm >= 4.6
                fit_kw = dict(eval_X=(X[val],), eval_y=(labels[val],))
            else:
                fit_kw = dict(eval_set=[(X[val], labels[val])])
            fit_kw.update(
                eval_sample_weight=[weights[val]],
                callbacks=[lgb.early_stopping(self.early_stopping_rounds, verbose=False)],
            )
            train = ~val
        else:
            train = np.ones(len(labels), dtype=bool)
        model.fit(X[train], labels[train], sample_weight=weights[train], **fit_kw)
        self.booster_ = model.booster_
        self.best_iteration_ = int(model.best_iteration_ or model.n_estimators)

    def _reward(self, X: np.ndarray) -> np.ndarray:
        if self.head_module_ is not None:
            return self._torch_reward(X)
        if self.booster_ is not None:
            return np.asarray(
                self.booster_.predict(X, raw_score=True, num_iteration=self.best_iteration_),
                dtype=np.float64,
            )
        proba = self.classifier_.predict_proba(X)[:, list(self.classifier_.classes_).index(1.0)]
        return special.logit(np.clip(proba, 1e-7, 1 - 1e-7))

    def _save_extra(self, directory: Path) -> None:
        if self.classifier_ is not None:
            raise ValueError(
                f"cannot save a ClassificationRM with a custom backend "
                f"({type(self.classifier_).__name__}): signrm stores no pickles; use backend "
                "'mlp' or 'lightgbm', or save the classifier yourself"
            )
        if self.booster_ is not None:
            (directory / "booster.txt").write_text(self.booster_.model_to_string())
        super()._save_extra(directory)

    def _load_extra(self, directory: Path) -> None:
        self.classifier_ = None
        self.booster_ = None
        self.head_module_ = None
        booster = directory / "booster.txt"
        if booster.exists():
            import lightgbm as lgb

            self.booster_ = lgb.Booster(model_str=booster.read_text())
        super()._load_extra(directory)


__all__ = ["ClassificationRM", "pointwise_examples", "seed_everything"]
