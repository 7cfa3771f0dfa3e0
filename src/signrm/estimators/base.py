"""Common base of all preference estimators (scikit-learn conventions)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from scipy import special
from sklearn.base import BaseEstimator

from signrm.catalog import register
from signrm.data import PreferenceData
from signrm.estimators._params import check_parameters
from signrm.metrics import order_consistency


class NotFittedError(ValueError, AttributeError):
    """The estimator is used before ``fit``."""


class PreferenceEstimator(BaseEstimator):
    """Base class: subclasses implement ``fit`` and ``_reward``.

    Learned state ends in ``_``. Linear heads set ``coef_`` (d,) and may serve data that only hold
    differences; other heads need each alternative's features.
    """

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__module__.startswith("signrm.") and not cls.__name__.startswith("_"):
            register(cls)  # the class signrm.load may name (signrm.catalog)

    #: learned attributes saved by ``save`` (beyond those listed by subclasses)
    _saved: tuple[str, ...] = ()
    #: one scikit-learn constraint list per hyper-parameter (``sklearn.utils._param_validation``)
    _parameter_constraints: dict = {}

    def _validate_params(self) -> None:
        """scikit-learn's check of ``_parameter_constraints``, run at the start of ``fit``.

        Raises ``InvalidParameterError`` (a ``ValueError``) for the first parameter, in the
        order of the signature, that no fit can use, as one line: ``"l2 must be >= 0, got -1"``.
        """
        check_parameters(self._parameter_constraints, self.get_params(deep=False))

    # -------------------------------------------------------------- helpers for subclasses
    def _refuse_path(self, data, action: str, note: str = "") -> None:
        """A path where data are expected: say how to load it (``action``: "fit expects" ...)."""
        if isinstance(data, (str, os.PathLike)):
            raise TypeError(
                f"{type(self).__name__}{action} a signrm.PreferenceData, got the path "
                f"{str(data)!r}; load it with PreferenceData.read(path){note}"
            )

    def _check_data(self, data) -> PreferenceData:
        self._refuse_path(
            data,
            ".fit expects",
            " (only linear BradleyTerry and SignEstimator fit a path of Parquet shards or .npy "
            "files out of core)",
        )
        from signrm.data.sources import StreamingSource

        if isinstance(data, StreamingSource):
            head = getattr(self, "head", None)
            raise ValueError(
                f"{type(self).__name__}"
                + (f"(head={head!r})" if head else "")
                + ": streaming fits are for linear heads (BradleyTerry, SignEstimator); load "
                "small data with source.to_data(), or train torch heads on several processes "
                "with `signrm train` (see docs/scale.md)"
            )
        if not isinstance(data, PreferenceData):
            raise TypeError(
                f"{type(self).__name__}.fit expects a signrm.PreferenceData, got "
                f"{type(data).__name__}; build one with PreferenceData.from_arrays(xa, xb, y)"
            )
        if not np.any(data.signs != 0):
            raise ValueError("every comparison is a tie: there is nothing to learn")
        return data

    def _linear_source(self, data):
        """``data`` as a source of chunks for the linear engine: in-memory data are one chunk;
        streaming sources pass through; a path is opened with ``signrm.data.open_source``."""
        from signrm.data.sources import MemorySource, StreamingSource, as_source

        if isinstance(data, PreferenceData):
            return MemorySource(self._check_data(data))
        if isinstance(data, StreamingSource):
            return data
        if isinstance(data, (str, os.PathLike)):
            return as_source(data)
        return MemorySource(self._check_data(data))  # raises the usual type error

    def _check_fitted(self) -> None:
        if not hasattr(self, "n_features_in_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet: call fit(data)")

    def _check_X(self, X) -> np.ndarray:
        X = np.asarray(X)
        if X.ndim == 1:
            X = X[None, :]
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X: expected shape (n, {self.n_features_in_}), got {np.asarray(X).shape}"
            )
        if not np.all(np.isfinite(X)):
            raise ValueError("X: NaN or inf in the features")
        return X

    def _state_attributes(self) -> tuple[str, ...]:
        return ("n_features_in_",) + tuple(self._saved)

    def _save_extra(self, directory: Path) -> None:
        """Write extra files (torch heads, boosters) into the model directory."""

    def _load_extra(self, directory: Path) -> None:
        """Read what ``_save_extra`` wrote."""

    # -------------------------------------------------------------- public API
    def reward(self, X) -> np.ndarray:
        """Reward (utility) of alternatives ``X`` (n, d) -> (n,)."""
        self._check_fitted()
        return self._reward(self._check_X(X))

    def _reward(self, X: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def decision_function(self, data: PreferenceData) -> np.ndarray:
        """Margins ``r(a) - r(b)`` of each comparison, shape (n,)."""
        self._check_fitted()
        self._refuse_path(data, " scores")
        if not isinstance(data, PreferenceData):
            raise TypeError(f"expected a signrm.PreferenceData, got {type(data).__name__}")
        if data.n_features != self.n_features_in_:
            raise ValueError(
                f"data have {data.n_features} features, the model was fitted on {self.n_features_in_}"
            )
        if data.has_alternatives:
            return self._reward(data.xa) - self._reward(data.xb)
        coef = getattr(self, "coef_", None)
        if coef is None or getattr(self, "head", "linear") != "linear":
            data.require_alternatives(
                type(self).__name__ + " with a non-linear head",
                hint="a non-linear reward is not a function of phi(a) - phi(b): score data built "
                "with from_arrays(xa, xb, y) or call reward(X) on each alternative's features",
            )
        return np.asarray(
            data.differences @ np.asarray(coef, dtype=data.differences.dtype), dtype=np.float64
        )

    def predict_proba(self, data: PreferenceData) -> np.ndarray:
        """P(a preferred) of each comparison, shape (n,)."""
        return special.expit(self.decision_function(data))

    def predict(self, data: PreferenceData) -> np.ndarray:
        """Predicted label (1 = a preferred, 0 = b), shape (n,)."""
        return (self.decision_function(data) > 0).astype(np.int64)

    def score(self, data: PreferenceData) -> float:
        """Order consistency: share of (non-tie) labels the margin's sign agrees with."""
        return order_consistency(self.decision_function(data), data.y, data.weight)

    def save(self, path: str | os.PathLike, metadata: dict | None = None) -> Path:
        """Save to a directory (JSON + npz/safetensors, no pickle). Reload with ``signrm.load``.

        ``path`` must be missing, empty or a signrm model directory (anything else raises); the
        replacement is crash-safe (see :mod:`signrm.persistence`). ``metadata``: provenance to
        record with the model (reloaded as ``metadata_``).
        """
        from signrm.persistence import save

        return save(self, path, metadata=metadata)
