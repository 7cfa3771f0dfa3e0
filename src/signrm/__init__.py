"""signrm: reward models that represent a population, from pairwise preferences.

The sign estimator replaces cross-entropy with a smoothed 0-1 loss and is consistent for the
population-average ordering under heterogeneous annotators; Bradley–Terry (RLHF), Thurstone,
classification reward models and latent-class BT share its scikit-learn-style API.
"""

__version__ = "0.1.0"

from signrm import losses, metrics  # noqa: E402
from signrm.data import PreferenceData  # noqa: E402
from signrm.estimators import *  # noqa: E402,F403
from signrm.estimators import __all__ as _estimators_all  # noqa: E402
from signrm.feature_select import FeatureSelection, select_features  # noqa: E402
from signrm.persistence import load  # noqa: E402

__all__ = [
    "PreferenceData",
    "FeatureSelection",
    "select_features",
    "load",
    "losses",
    "metrics",
    "__version__",
    *_estimators_all,
]
