"""Subsampling inference: does heterogeneity bias RLHF on my data, beyond sampling noise?

The sign estimator is a maximum-score estimator: it converges at the cube-root rate
``n^(-1/3)`` to a non-normal limit (Kim & Pollard 1990), where Efron's bootstrap is inconsistent
(Abrevaya & Huang 2005). Subsampling (Politis, Romano & Wolf 1999, *Subsampling*, ch. 2) is valid
whenever the estimator has *some* limit law at a known rate ``tau_n``:

1. draw ``B`` subsamples of size ``m`` **without replacement** (``m -> inf``, ``m / n -> 0``;
   default ``m = n^(2/3)``); when user ids exist the independent units are the users, so whole
   users are drawn (``m = U^(2/3)`` of the ``U`` users) and ``m`` counts comparisons of the
   drawn users;
2. refit both estimators on each subsample and compute the statistic ``T_m``;
3. approximate the law of ``tau_n (T_n - T)`` by that of ``tau_m (T_m - T_n)``; with
   ``tau_k = k^rate`` the roots on the full-sample scale are ``R_b = (m_b / n)^rate (T_m,b - T_n)``
   and the equal-tailed interval of level ``1 - alpha`` is
   ``[T_n - q_{1 - alpha/2}(R), T_n - q_{alpha/2}(R)]``.

For the estimator's direction the root is the angle itself, ``(m_b / n)^rate angle(theta_m,b,
theta_n)``, and its ``1 - alpha`` quantile is an angular confidence radius around the full fit.

Rate assumption: ``rate = 1/3`` (the sign estimator's, which dominates any statistic that
involves it; Bradley-Terry alone converges at ``n^(-1/2)``). If the statistic in fact converges
faster (e.g. many comparisons per user, where between-user variation of BT is root-n), using
``1/3`` only widens the interval (by a factor of about ``(n/m)^(1/6)``): the test is conservative.
The disagreement and the angle are norm-like: 0 when both rewards order every pair alike, and
pushed up by noise near 0, where the centred roots of step 3 are unreliable (a boundary
parameter). So 0 is kept in their intervals unless a subsampling *test* of equality rejects at
level ``alpha``: the statistic is the RMS over the data's pairs of the difference ``delta`` of the
two standardised margin vectors (``margins / rms(margins)``, zero exactly when the rewards agree up
to scale), and its root ``(m_b / n)^rate rms(delta_m,b - delta_n)`` is centred as a *vector*, so
noise does not bias it; equality is rejected when ``rms(delta_n)`` exceeds the roots' ``1 - alpha``
quantile. When the test rejects, the lower end is the centred PRW one (clipped at 0). Under
homogeneous BT data both estimators are consistent for one direction and the interval contains 0
with probability about ``1 - alpha``; when the two disagree in the population it excludes 0 once
``n`` is large enough. ``bias_detected`` is "the disagreement interval excludes 0".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
from sklearn.base import clone

from signrm.data import PreferenceData
from signrm.engine.linear import single_threaded_blas
from signrm.metrics import angular_error, disagreement_rate

__all__ = [
    "Interval",
    "SubsamplingResult",
    "subsampling_inference",
    "subsample_size",
    "sharp_sign_estimator",
]


def sharp_sign_estimator():
    """The sign estimator annealed to its sharp end (lambda 1 -> 15, the paper's schedule).

    The default of the comparison: it is consistent for the population ordering under symmetric
    heterogeneity. The adaptive default ``SignEstimator()`` can choose the Bradley-Terry solution
    itself when the data do not contradict it, which makes "BT vs sign" zero by construction;
    its panel step (off here) estimates another target, theta_bar from a nonparametric mixture
    of BT annotators (``NonparametricMixtureBT``).
    """
    from signrm.estimators import SignEstimator

    return SignEstimator(lambdas=(1.0, 15.0), n_stages=5, select_stage="last", panel="off")


@dataclass(frozen=True)
class Interval:
    """A point estimate with a confidence interval ``[low, high]`` (same units)."""

    estimate: float
    low: float
    high: float

    def excludes(self, value: float = 0.0) -> bool:
        """True when ``value`` lies outside ``[low, high]``."""
        return not self.low <= value <= self.high

    def __str__(self) -> str:
        return f"{self.estimate:.4g} [{self.low:.4g}, {self.high:.4g}]"


@dataclass(frozen=True)
class SubsamplingResult:
    """Estimates and subsampling intervals for two estimators fitted on the same data.

    ``estimator`` is the one whose direction gets a confidence radius (default the sign
    estimator), ``reference`` the one it is compared with (default Bradley-Terry/RLHF).

    Attributes
    ----------
    disagreement : Interval
        Share of the data's comparisons that the two fitted rewards order differently, in [0, 1].
    angle : Interval or None
        Angle (degrees) between the two linear directions ``coef_`` (None without ``coef_``).
    direction_radius : float or None
        Angular radius (degrees) of a ``level`` confidence cone around ``estimator.coef_``.
    n_samples : comparisons in the data; ``n_units`` users (or comparisons) subsampled from;
    unit : "user" or "comparison"; ``subsample_units``: m, units per subsample;
    ``mean_subsample_size``: comparisons per subsample on average; n_subsamples; level; rate;
    estimator_name, reference_name.
    """

    disagreement: Interval
    angle: Interval | None
    direction_radius: float | None
    n_samples: int
    n_units: int
    unit: str
    subsample_units: int
    mean_subsample_size: float
    n_subsamples: int
    level: float
    rate: float
    estimator_name: str
    reference_name: str

    @property
    def bias_detected(self) -> bool:
        """True when the disagreement interval excludes 0: the two rewards differ beyond noise."""
        return self.disagreement.low > 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["bias_detected"] = self.bias_detected
        return d


def subsample_size(n_units: int, exponent: float = 2.0 / 3.0) -> int:
    """Default ``m = round(n_units^exponent)``, clipped to ``[2, n_units - 1]``."""
    if n_units < 3:
        raise ValueError(f"subsampling needs at least 3 independent units, got {n_units}")
    return int(np.clip(round(n_units**exponent), 2, n_units - 1))


def _units(data: PreferenceData, by: str) -> tuple[str, list[np.ndarray]]:
    """Independent units: row indices of each user (by="user"), or one row each."""
    if by not in ("auto", "user", "comparison"):
        raise ValueError(f"by={by!r} is not allowed; choose auto, user or comparison")
    if by == "user" or (by == "auto" and data.user is not None):
        users = data.require_users("subsampling by user")
        _, inverse = np.unique(users, return_inverse=True)
        order = np.argsort(inverse, kind="stable")
        bounds = np.flatnonzero(np.diff(inverse[order])) + 1
        return "user", np.split(order, bounds)
    return "comparison", [np.array([i]) for i in range(len(data))]


def _direction(est) -> np.ndarray | None:
    coef = getattr(est, "coef_", None)
    return None if coef is None else np.asarray(coef, dtype=np.float64).ravel()


def _standardised(margins: np.ndarray) -> np.ndarray:
    """Margins divided by their root mean square (the sign of a reward ignores its scale)."""
    rms = float(np.sqrt(np.mean(np.square(margins))))
    return margins / rms if rms > 0 else margins


def _linear_coef(model) -> np.ndarray | None:
    """``coef_`` when ``model``'s margins are ``D coef_`` (a signrm linear head), else None.

    The same condition under which :meth:`PreferenceEstimator.decision_function` scores data
    that hold only differences: a linear reward is a function of ``phi(a) - phi(b)``.
    """
    from signrm.estimators.base import PreferenceEstimator

    coef = getattr(model, "coef_", None)
    own = type(model).decision_function is PreferenceEstimator.decision_function
    if coef is None or not own or getattr(model, "head", "linear") != "linear":
        return None
    return np.asarray(coef).ravel()


def _margins(models: list, data: PreferenceData) -> np.ndarray:
    """(n, k) margins of ``k`` fitted models on ``data``: the linear ones in one matrix
    product with the differences (one read of the data for all of them), the others through
    ``decision_function``."""
    coefs = [_linear_coef(model) for model in models]
    out = np.empty((len(data), len(models)))
    linear = [j for j, c in enumerate(coefs) if c is not None]
    if linear:
        D = data.differences
        C = np.column_stack([coefs[j] for j in linear]).astype(D.dtype)
        out[:, linear] = D @ C
    for j, c in enumerate(coefs):
        if c is None:
            out[:, j] = models[j].decision_function(data)
    return out


def _statistics(est, ref, m_est: np.ndarray, m_ref: np.ndarray) -> dict:
    """Statistics of two fitted estimators from their margins (n,) on the evaluation pairs.

    ``dis``: disagreement rate; ``ang``: angle of ``coef_`` (nan without); ``dir``: the
    estimator's ``coef_`` or None; ``delta`` (n,): difference of the standardised margins,
    zero exactly when both rewards are equal up to scale on the evaluation pairs.
    """
    a, b = _direction(est), _direction(ref)
    return {
        "dis": disagreement_rate(m_est, m_ref),
        "ang": angular_error(a, b) if a is not None and b is not None else float("nan"),
        "dir": a,
        "delta": _standardised(m_est) - _standardised(m_ref),
    }


def _rms(v: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(v))))


def _roots(
    batch: list[tuple[int, int, object, object]], data: PreferenceData, full: dict, rate: float
) -> list[tuple[float, float, float, float, int]]:
    """Per subsample ``(index, size, estimator, reference)`` fitted on it: ``(disagreement,
    angle, delta root, direction root, size)`` on all of ``data`` (roots on the full-sample
    scale, module docstring; the direction root is nan without ``coef_``). The margins of the
    whole batch come from one pass over the data (:func:`_margins`)."""
    margins = _margins([model for _, _, est, ref in batch for model in (est, ref)], data)
    n, out = len(data), []
    for j, (_, size, est, ref) in enumerate(batch):
        st = _statistics(est, ref, margins[:, 2 * j], margins[:, 2 * j + 1])
        scale = (size / n) ** rate
        radius = float("nan")
        if full["dir"] is not None and st["dir"] is not None:
            radius = scale * angular_error(st["dir"], full["dir"])
        out.append((st["dis"], st["ang"], scale * _rms(st["delta"] - full["delta"]), radius, size))
    return out


def _prw_interval(
    estimate: float, values: np.ndarray, scales: np.ndarray, level: float, upper: float, equal: bool
) -> Interval:
    """Politis-Romano-Wolf interval for a statistic in ``[0, upper]`` that is 0 at equality.

    ``values`` (B,) are the subsample statistics, ``scales`` (B,) their ``(m_b / n)^rate``:
    the equal-tailed interval from the centred roots ``scales * (values - estimate)``. A
    norm-like statistic is biased upward by noise near 0, where these roots are unreliable, so
    the lower end is 0 unless the vector test of equality rejects (``equal`` False).
    """
    alpha = 1.0 - level
    q_lo, q_hi = np.quantile(scales * (values - estimate), [alpha / 2, 1 - alpha / 2])
    low = 0.0 if equal else float(np.clip(estimate - q_hi, 0.0, upper))
    high = float(np.clip(estimate - q_lo, 0.0, upper))
    return Interval(float(estimate), low, max(high, low, float(estimate) if equal else low))


def _progress(iterable, show: bool, total: int):
    if not show:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc="subsamples", leave=False)


def subsampling_inference(
    data: PreferenceData,
    estimator=None,
    reference=None,
    *,
    n_subsamples: int = 100,
    subsample_units: int | None = None,
    by: str = "auto",
    level: float = 0.95,
    rate: float = 1.0 / 3.0,
    random_state: int | np.random.Generator | None = 0,
    show_progress: bool = False,
    fitted: tuple | None = None,
    callback: Callable[[int], None] | None = None,
) -> SubsamplingResult:
    """Subsampling (m-out-of-n) confidence intervals comparing two reward estimators.

    Parameters
    ----------
    data : the comparisons; the disagreement is measured on all of them.
    estimator : default :func:`sharp_sign_estimator`; gets the angular confidence radius.
    reference : default ``BradleyTerry()`` (RLHF).
        Both are cloned (``sklearn.base.clone``) and refitted on every subsample; any estimator
        with ``fit`` and ``decision_function`` works, ``coef_`` adds the angle and the radius.
    n_subsamples : B, the number of subsamples.
    subsample_units : m, users (or comparisons) per subsample; default ``n_units^(2/3)``.
    by : "auto" (users when ``data.user`` exists), "user" or "comparison".
    level : confidence level of every interval.
    rate : convergence exponent of ``tau_n = n^rate`` (module docstring).
    random_state : seeds the subsamples (the estimators keep their own seeds).
    show_progress : tqdm bar over subsamples.
    fitted : optional ``(estimator, reference)`` already fitted on ``data`` (saves two fits).
    callback : called with the subsample index after each subsample.

    BLAS runs single-threaded inside (:func:`signrm.engine.linear.single_threaded_blas`).

    Returns
    -------
    SubsamplingResult; ``.bias_detected`` says whether the disagreement interval excludes 0.
    """
    from signrm.estimators import BradleyTerry

    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if n_subsamples < 10:
        raise ValueError(f"n_subsamples must be >= 10 for quantiles, got {n_subsamples}")
    if rate <= 0:
        raise ValueError(f"rate must be > 0, got {rate}")
    estimator = sharp_sign_estimator() if estimator is None else estimator
    reference = BradleyTerry() if reference is None else reference
    unit, groups = _units(data, by)
    n_units, n = len(groups), len(data)
    m = subsample_size(n_units) if subsample_units is None else int(subsample_units)
    if not 2 <= m < n_units:
        raise ValueError(f"subsample_units must be in [2, {n_units - 1}] ({unit}s), got {m}")

    with single_threaded_blas():
        if fitted is None:
            est_n, ref_n = clone(estimator).fit(data), clone(reference).fit(data)
        else:
            est_n, ref_n = fitted
        full = _statistics(est_n, ref_n, *_margins([est_n, ref_n], data).T)
        rng = np.random.default_rng(random_state)
        rows: list[tuple[float, float, float, float, int]] = []
        batch: list[tuple[int, int, object, object]] = []
        # linear models: the margins of up to 16 subsamples' fits (<= 2^23 floats) in one pass
        linear = _linear_coef(est_n) is not None and _linear_coef(ref_n) is not None
        per_batch = int(np.clip(2**22 // max(n, 1), 1, 16)) if linear else 1
        for b in _progress(range(n_subsamples), show_progress, n_subsamples):
            pick = rng.choice(n_units, size=m, replace=False)
            idx = np.concatenate([groups[i] for i in pick])
            sub = data.subset(idx)
            if np.any(sub.signs != 0):  # an all-tie subsample carries no information: skipped
                batch.append((b, len(idx), clone(estimator).fit(sub), clone(reference).fit(sub)))
            if batch and (len(batch) == per_batch or b == n_subsamples - 1):
                rows += _roots(batch, data, full, rate)
                if callback is not None:
                    for k, *_ in batch:
                        callback(k)
                batch.clear()
    if len(rows) < 10:
        raise ValueError(f"only {len(rows)} subsamples had a non-tie label: too few to infer")
    dis, ang, delta_roots, radii, sizes = (np.asarray(v, dtype=np.float64) for v in zip(*rows))
    radii = radii[np.isfinite(radii)]

    scales = (sizes / n) ** rate
    distance = _rms(full["delta"])
    equal = distance <= float(np.quantile(delta_roots, level))
    angle = None
    if np.isfinite(full["ang"]):
        angle = _prw_interval(full["ang"], ang, scales, level, 180.0, equal)
    return SubsamplingResult(
        disagreement=_prw_interval(full["dis"], dis, scales, level, 1.0, equal),
        angle=angle,
        direction_radius=float(np.quantile(radii, level)) if len(radii) else None,
        n_samples=n,
        n_units=n_units,
        unit=unit,
        subsample_units=m,
        mean_subsample_size=float(np.mean(sizes)),
        n_subsamples=len(sizes),
        level=level,
        rate=rate,
        estimator_name=type(estimator).__name__,
        reference_name=type(reference).__name__,
    )
