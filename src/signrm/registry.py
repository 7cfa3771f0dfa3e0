"""One vocabulary of estimator names, used by the CLI, the torchrun entry point, experiment configs
and ``signrm.load``.

Each name maps to an estimator class and the parameters the name fixes (``"thurstone"`` is
``BradleyTerry(link="probit")``). The class names themselves (``"BradleyTerry"``, ...) are
accepted as aliases with nothing fixed, so that experiment configs and saved models can name a
class directly::

    make_estimator("thurstone", head="mlp")        # BradleyTerry(head="mlp", link="probit")
    make_estimator("ClassificationRM", backend="lightgbm")
    estimator_class("clf-lgb")                      # ClassificationRM
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from signrm.catalog import estimator_classes
from signrm.errors import UserError
from signrm.estimators import (
    BradleyTerry,
    ClassificationRM,
    LatentClassBT,
    NonparametricMixtureBT,
    PreferenceEstimator,
    SignEstimator,
)
from signrm.estimators.sign import PAPER_SCHEDULE

__all__ = [
    "CLASSES",
    "EstimatorSpec",
    "check_estimator_params",
    "estimator_class",
    "estimator_names",
    "estimator_spec",
    "make_estimator",
    "name_of",
    "parameter_names",
]

#: every estimator class a name, a config or a saved model may refer to, by class name
#: (filled by the estimator classes themselves as they are defined: ``signrm.catalog``)
CLASSES: Mapping[str, type[PreferenceEstimator]] = estimator_classes()


@dataclass(frozen=True)
class EstimatorSpec:
    """What an estimator name stands for.

    ``fixed``: the parameters the name sets (they may be passed again only with the same value);
    ``heads``: the ``head`` values it takes (``()``: it has no ``head`` parameter);
    ``streaming``: fits a Parquet/``.npy`` feature directory out of core (linear head);
    ``distributed``: trains a torch head on several processes (``signrm.train``).
    """

    name: str
    cls: type[PreferenceEstimator]
    summary: str
    fixed: Mapping[str, Any] = field(default_factory=dict)
    heads: tuple[str, ...] = ()
    streaming: bool = False
    distributed: bool = False


_HEADS = ("linear", "mlp")
_LINEAR_OR_MLP = dict(heads=_HEADS, streaming=True, distributed=True)
_SPECS = (
    EstimatorSpec(
        "sign",
        SignEstimator,
        "sign estimator (smoothed maximum score), bandwidth chosen by cross-fitting",
        **_LINEAR_OR_MLP,
    ),
    EstimatorSpec(
        "sign-paper",
        SignEstimator,
        "sign estimator with the paper's fixed schedule (lambda 1 -> 15, 5 stages)",
        dict(PAPER_SCHEDULE),
        **_LINEAR_OR_MLP,
    ),
    EstimatorSpec(
        "bt",
        BradleyTerry,
        "Bradley-Terry / RLHF (cross-entropy)",
        {"link": "logit"},
        **_LINEAR_OR_MLP,
    ),
    EstimatorSpec(
        "thurstone", BradleyTerry, "Thurstone (probit)", {"link": "probit"}, **_LINEAR_OR_MLP
    ),
    EstimatorSpec(
        "clf-mlp",
        ClassificationRM,
        "classification reward model, MLP",
        {"backend": "mlp"},
        distributed=True,
    ),
    EstimatorSpec(
        "clf-lgb",
        ClassificationRM,
        "classification reward model, LightGBM",
        {"backend": "lightgbm"},
    ),
    EstimatorSpec("em", LatentClassBT, "latent-class Bradley-Terry by EM (needs user ids)"),
    EstimatorSpec(
        "npmle",
        NonparametricMixtureBT,
        "nonparametric mixture of Bradley-Terry annotators (needs user ids)",
    ),
)
_BY_NAME: Mapping[str, EstimatorSpec] = MappingProxyType({s.name: s for s in _SPECS})


def estimator_names(*, streaming: bool = False, distributed: bool = False) -> tuple[str, ...]:
    """The canonical names (``"sign"``, ``"bt"``, ...), optionally only those that can stream
    out of core or train on several processes."""
    return tuple(
        s.name
        for s in _SPECS
        if (s.streaming or not streaming) and (s.distributed or not distributed)
    )


def _unknown(name: object) -> UserError:
    return UserError(
        f"unknown estimator {name!r}; choose from {', '.join(_BY_NAME)} "
        f"(or a class name: {', '.join(CLASSES)})"
    )


def estimator_spec(name: str) -> EstimatorSpec:
    """The spec of a canonical name or of a class name (which fixes nothing)."""
    if isinstance(name, str) and name in _BY_NAME:
        return _BY_NAME[name]
    if isinstance(name, str) and name in CLASSES:
        cls = CLASSES[name]
        named = [s for s in _SPECS if s.cls is cls]
        return EstimatorSpec(
            name,
            cls,
            " or ".join(s.summary for s in named),
            heads=named[0].heads,
            streaming=any(s.streaming for s in named),
            distributed=any(s.distributed for s in named),
        )
    raise _unknown(name)


def estimator_class(name: str) -> type[PreferenceEstimator]:
    """The class of a canonical name (``"clf-lgb"``) or of a class name (``"ClassificationRM"``).

    Any other string, including the name of a non-estimator in ``signrm``, raises ``UserError``.
    """
    return estimator_spec(name).cls


def parameter_names(name_or_class: str | type) -> tuple[str, ...]:
    """The hyper-parameters an estimator's constructor takes, in signature order."""
    cls = name_or_class if isinstance(name_or_class, type) else estimator_class(name_or_class)
    return tuple(p for p in inspect.signature(cls.__init__).parameters if p != "self")


def make_estimator(name: str, **params: Any) -> PreferenceEstimator:
    """An unfitted estimator for ``name`` with ``params`` (checked at ``fit``).

    Raises ``UserError`` for an unknown name, a parameter the class does not take, or a value
    that contradicts what the name fixes (``make_estimator("bt", link="probit")``).
    """
    spec = estimator_spec(name)
    accepted = parameter_names(spec.cls)
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise UserError(
            f"estimator {name!r} ({spec.cls.__name__}) takes no parameter(s) {unknown}; "
            f"it accepts: {', '.join(accepted)}"
        )
    for key, value in spec.fixed.items():
        if key in params and params[key] != value:
            raise UserError(
                f"estimator {name!r} is {spec.cls.__name__}({key}={value!r}); got "
                f"{key}={params[key]!r} (use the class name {spec.cls.__name__!r} to choose it)"
            )
    return spec.cls(**{**params, **spec.fixed})


def check_estimator_params(name: str, **params: Any) -> None:
    """Check ``params`` for ``name`` as ``fit`` would, without data: raises ``UserError`` (unknown
    name or parameter, a contradiction of a fixed one) or ``InvalidParameterError`` (a
    ``ValueError``: a value no fit can use)."""
    make_estimator(name, **params)._validate_params()


def name_of(estimator: PreferenceEstimator) -> str:
    """The canonical name of an estimator instance (its class name if no name fits)."""
    params = estimator.get_params(deep=False)
    fits = [
        s
        for s in _SPECS
        if type(estimator) is s.cls and all(params.get(k) == v for k, v in s.fixed.items())
    ]  # the name that fixes the most of its parameters ("sign-paper" before "sign")
    return max(fits, key=lambda s: len(s.fixed)).name if fits else type(estimator).__name__
