"""Estimator classes by class name, filled as the classes are defined.

:class:`signrm.estimators.base.PreferenceEstimator` registers each of its subclasses defined in
the ``signrm`` package here (``__init_subclass__``), so :func:`signrm.load` can find a saved
model's class without importing the estimators (which import persistence to save themselves).
A leaf module: it imports nothing from signrm.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

_CLASSES: dict[str, type] = {}

__all__ = ["register", "estimator_classes"]


def register(cls: type) -> type:
    """Record ``cls`` under its class name; returns it."""
    _CLASSES[cls.__name__] = cls
    return cls


def estimator_classes() -> Mapping[str, type]:
    """Read-only view of the registered classes, by class name."""
    return MappingProxyType(_CLASSES)
