"""Declared parameter constraints shared by the estimators (scikit-learn's mechanism).

Each estimator lists one constraint per hyper-parameter in its ``_parameter_constraints`` class
attribute and calls scikit-learn's ``self._validate_params()`` at the start of ``fit``; a value
that cannot work raises ``sklearn.utils._param_validation.InvalidParameterError`` (a
``ValueError``) as one line naming the parameter, the allowed values and the value given:
``"l2 must be >= 0, got -1"`` (see ``PreferenceEstimator._validate_params``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from numbers import Integral, Real
from typing import Any

import numpy as np
from sklearn.utils._param_validation import (
    HasMethods,
    Interval,
    InvalidParameterError,
    StrOptions,
    validate_parameter_constraints,
)

__all__ = [
    "HEAD_CONSTRAINT",
    "RANDOM_STATE_CONSTRAINT",
    "TORCH_HEAD_CONSTRAINTS",
    "Choice",
    "HasMethods",
    "Integral",
    "Interval",
    "IntervalSequence",
    "InvalidParameterError",
    "Real",
    "check_parameters",
    "described",
    "non_negative_real",
    "positive_int",
]


class Choice(StrOptions):
    """One of a few strings, listed in the order given (``StrOptions`` keeps a set)."""

    def __init__(self, *options: str) -> None:
        super().__init__(set(options))
        self.ordered = options


class IntervalSequence(Interval):
    """A sequence (list, tuple or 1-d array) of at least ``min_length`` finite numbers in an interval.

    Built on :class:`Interval` so that scikit-learn's ``make_constraint`` accepts it; a single
    number or a string is not a sequence.
    """

    def __init__(self, type, left, right, *, closed, min_length: int = 1) -> None:
        super().__init__(type, left, right, closed=closed)
        self.min_length = min_length

    def is_satisfied_by(self, val) -> bool:
        if isinstance(val, np.ndarray):
            if val.ndim != 1:
                return False
            val = val.tolist()
        if isinstance(val, (str, bytes)) or not isinstance(val, Sequence):
            return False
        return len(val) >= self.min_length and all(
            super(IntervalSequence, self).is_satisfied_by(v)
            and not isinstance(v, bool)
            and math.isfinite(v)
            for v in val
        )

    def __str__(self) -> str:
        sizes = {0: "a sequence", 1: "a non-empty sequence"}
        size = sizes.get(self.min_length, f"a sequence of at least {self.min_length} values")
        kind = "integers" if self.type is Integral else "finite numbers"
        return f"{size} of {kind} {_bounds(self)}"


def positive_int() -> Interval:
    """An int >= 1 (counts: iterations, epochs, stages, folds, batch sizes)."""
    return Interval(Integral, 1, None, closed="left")


def non_negative_real() -> Interval:
    """A float >= 0 (penalties, coefficients, tolerances)."""
    return Interval(Real, 0, None, closed="left")


def described(constraint, text: str):
    """``constraint`` whose error message reads ``text`` instead of the generated description."""
    constraint.description = text
    return constraint


def _bounds(c: Interval) -> str:
    """``">= 0"``, ``"> 0"`` or ``"in [0, 1)"`` for an interval constraint."""
    lo_closed = c.closed in ("left", "both")
    hi_closed = c.closed in ("right", "both")
    if c.right is None:
        return f"{'>=' if lo_closed else '>'} {c.left}"
    if c.left is None:
        return f"{'<=' if hi_closed else '<'} {c.right}"
    return f"in {'[' if lo_closed else '('}{c.left}, {c.right}{']' if hi_closed else ')'}"


def _parts(constraint) -> list[str]:
    """The allowed values of one constraint, as phrases to join with commas and "or"."""
    text = getattr(constraint, "description", None)
    if text is not None:
        return [text]
    if constraint is None:
        return ["None"]
    if isinstance(constraint, Choice):
        return [repr(o) for o in constraint.ordered]
    if isinstance(constraint, StrOptions):
        return [repr(o) for o in sorted(constraint.options)]
    if constraint == "boolean":
        return ["True or False"]
    if isinstance(constraint, IntervalSequence):
        return [str(constraint)]
    if isinstance(constraint, Interval):
        prefix = "an integer " if constraint.type is Integral else ""
        return [prefix + _bounds(constraint)]
    if isinstance(constraint, HasMethods):
        return ["an object with " + " and ".join(constraint.methods)]
    return [str(constraint)]


def describe(constraints: Sequence) -> str:
    """Phrase a parameter's list of constraints: ``"'linear' or 'mlp'"``, ``">= 0"``."""
    parts = [p for c in constraints for p in _parts(c)]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " or " + parts[-1]


def check_parameters(constraints: Mapping[str, list], params: Mapping[str, Any]) -> None:
    """Check ``params`` against ``constraints`` with scikit-learn's validator.

    Raises ``InvalidParameterError`` (a ``ValueError``) for the first failing parameter in the
    order of ``params``, as one line: ``"l2 must be >= 0, got -1"``.
    """
    for name, value in params.items():
        if name not in constraints:
            continue
        try:
            validate_parameter_constraints({name: constraints[name]}, {name: value}, "")
        except InvalidParameterError:
            raise InvalidParameterError(
                f"{name} must be {describe(constraints[name])}, got {value!r}"
            ) from None


HEAD_CONSTRAINT = [described(Choice("linear", "mlp"), "one of the reward heads 'linear' or 'mlp'")]

#: seeds: None or an int that numpy, torch and LightGBM all accept
RANDOM_STATE_CONSTRAINT = [None, Interval(Integral, 0, 2**32 - 1, closed="both")]

#: settings of the Adam trainer shared by every estimator with a torch head
TORCH_HEAD_CONSTRAINTS: dict[str, list] = {
    "hidden_sizes": [IntervalSequence(Integral, 1, None, closed="left", min_length=0)],
    "learning_rate": [Interval(Real, 0, None, closed="neither")],
    "batch_size": [positive_int()],
    "max_epochs": [positive_int()],
    "patience": [positive_int()],
    "validation_fraction": [Interval(Real, 0, 1, closed="left")],
    "weight_decay": [non_negative_real()],
    "random_state": RANDOM_STATE_CONSTRAINT,
    "verbose": ["boolean"],
}
