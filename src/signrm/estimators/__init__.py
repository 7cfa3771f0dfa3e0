"""Preference estimators with one scikit-learn-style API."""

from signrm.estimators.base import NotFittedError, PreferenceEstimator
from signrm.estimators.bradley_terry import BradleyTerry
from signrm.estimators.sign import SignEstimator

__all__ = ["PreferenceEstimator", "NotFittedError", "BradleyTerry", "SignEstimator"]

try:  # filled in as the modules land
    from signrm.estimators.classification import ClassificationRM  # noqa: F401

    __all__.append("ClassificationRM")
except ModuleNotFoundError:  # pragma: no cover
    pass
try:
    from signrm.estimators.latent_class import LatentClassBT  # noqa: F401

    __all__.append("LatentClassBT")
except ModuleNotFoundError:  # pragma: no cover
    pass
from signrm.estimators.mixture_bt import NonparametricMixtureBT  # noqa: E402,F401

__all__.append("NonparametricMixtureBT")
