"""``diagnose(data)``: does heterogeneity bias RLHF on this data, and which estimator to use?

The report gathers, for comparisons with (optional) annotator ids:

1. comparisons per annotator;
2. each annotator's agreement with the others: order consistency of their labels with a
   Bradley-Terry fit on the *other* annotators (leave-one-annotator-out when there are at most
   ``loao_folds`` annotators, otherwise ``loao_folds`` folds of whole annotators);
3. decisiveness across annotators: annotator u answers like ``sigmoid(c_u m_i)`` with ``m_i`` the
   pooled BT margin, ``c_u`` fitted per annotator (MAP under a weak N(1, 3^2) prior, so it stays
   finite for annotators who never disagree) and shrunk by empirical Bayes toward a normal prior
   ``N(mu, tau^2)`` fitted to all ``c_u`` (method of moments with the per-annotator standard
   errors); ``tau / mu`` is how much decisiveness varies;
4. BT vs sign estimator: angle and disagreement with subsampling intervals
   (:func:`signrm.inference.subsampling_inference`);
5. latent-class BT BIC for K = 1..5 when ids exist (K = 1 is plain BT), on at most about
   ``bic_max_comparisons`` comparisons of whole users;
6. a recommendation with its reason: the sign estimator when the disagreement interval excludes 0
   (BT is biased beyond sampling noise), plain BT otherwise.

Plots are written by :mod:`signrm.diagnose_plots` (matplotlib), which this module never imports.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

import numpy as np
from scipy import special
from sklearn.base import clone
from tqdm.auto import tqdm

from signrm.data import PreferenceData
from signrm.engine.linear import single_threaded_blas
from signrm.inference import SubsamplingResult, sharp_sign_estimator, subsampling_inference

__all__ = ["DiagnosisReport", "diagnose", "annotator_agreement", "decisiveness"]


@dataclass
class DiagnosisReport:
    """What :func:`diagnose` found. Arrays are per annotator, in the order of ``users``.

    Attributes
    ----------
    n_comparisons, n_features : the data's size.
    users : (U,) annotator ids or None (no ids: per-annotator parts are skipped).
    counts : (U,) comparisons per annotator.
    agreement : (U,) order consistency of each annotator with BT fitted on the others.
    decisiveness_raw, decisiveness_se, decisiveness : (U,) per-annotator scale ``c_u`` (MAP),
        its standard error, and the empirical-Bayes shrunken value.
    decisiveness_mean, decisiveness_sd : mu and tau of the fitted normal prior.
    inference : SubsamplingResult (BT = reference, sign = estimator).
    bic : {K: BIC} of latent-class BT (K = 1 is plain BT), empty without ids;
        ``bic_comparisons`` comparisons it was computed on.
    recommendation, reason : the advice and why.
    timings : seconds per part.
    """

    n_comparisons: int
    n_features: int
    users: np.ndarray | None
    counts: np.ndarray | None
    agreement: np.ndarray | None
    decisiveness_raw: np.ndarray | None
    decisiveness_se: np.ndarray | None
    decisiveness: np.ndarray | None
    decisiveness_mean: float | None
    decisiveness_sd: float | None
    inference: SubsamplingResult
    bic: dict[int, float] = field(default_factory=dict)
    bic_comparisons: int = 0
    recommendation: str = ""
    reason: str = ""
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def bias_detected(self) -> bool:
        """The BT-vs-sign disagreement interval excludes 0."""
        return self.inference.bias_detected

    @property
    def best_k(self) -> int | None:
        return min(self.bic, key=self.bic.get) if self.bic else None

    def to_dict(self) -> dict:
        """JSON-ready summary (per-annotator arrays as lists)."""

        def listed(a):
            return None if a is None else np.asarray(a).tolist()

        return {
            "n_comparisons": self.n_comparisons,
            "n_features": self.n_features,
            "recommendation": self.recommendation,
            "reason": self.reason,
            "bias_detected": self.bias_detected,
            "inference": self.inference.to_dict(),
            "bic": {str(k): v for k, v in self.bic.items()},
            "bic_comparisons": self.bic_comparisons,
            "decisiveness_mean": self.decisiveness_mean,
            "decisiveness_sd": self.decisiveness_sd,
            "annotators": {
                "users": listed(self.users),
                "counts": listed(self.counts),
                "agreement": listed(self.agreement),
                "decisiveness": listed(self.decisiveness),
            },
            "timings": self.timings,
        }

    def to_markdown(self, plots: dict[str, str] | None = None) -> str:
        """The report as Markdown; ``plots`` maps a title to a PNG path to link."""
        from signrm._diagnose_text import report_markdown

        return report_markdown(self, plots or {})


def _user_index(data: PreferenceData) -> tuple[np.ndarray, np.ndarray]:
    users = data.require_users("per-annotator diagnostics")
    return np.unique(users, return_inverse=True)


def annotator_agreement(
    data: PreferenceData,
    reference=None,
    n_folds: int = 10,
    random_state: int = 0,
    show_progress: bool = False,
) -> np.ndarray:
    """(U,) order consistency of each annotator's labels with a model fitted on the others.

    Exact leave-one-annotator-out when there are at most ``n_folds`` annotators; otherwise the
    annotators are split into ``n_folds`` random folds and each fold is scored by a fit on the
    rest. ``reference`` defaults to ``BradleyTerry()``. Ties count half (order consistency).
    """
    from signrm.estimators import BradleyTerry

    reference = BradleyTerry() if reference is None else reference
    uniq, inv = _user_index(data)
    n_users = len(uniq)
    if n_users < 2:
        raise ValueError("annotator agreement needs at least 2 annotators")
    k = min(n_folds, n_users)
    fold_of_user = np.random.default_rng(random_state).permutation(n_users) % k
    fold = fold_of_user[inv]
    s = data.signs
    hit = np.zeros(len(data))
    for f in tqdm(range(k), desc="annotator folds", leave=False, disable=not show_progress):
        test = fold == f
        model = clone(reference).fit(data.subset(~test))
        m = model.decision_function(data.subset(test))
        hit[test] = np.where(s[test] == 0, 0.5, np.where(m == 0, 0.5, (np.sign(m) == s[test])))
    counts = np.bincount(inv, minlength=n_users)
    return np.bincount(inv, weights=hit, minlength=n_users) / counts


#: Variance of the weak N(1, 3^2) prior that keeps per-annotator scales finite.
_SCALE_PRIOR_VAR = 9.0


def _scale_map(
    margins: np.ndarray, y: np.ndarray, inv: np.ndarray, n_users: int, n_iter: int = 50
) -> tuple[np.ndarray, np.ndarray]:
    """Per-annotator MAP of ``c`` in ``P(y=1) = sigmoid(c m)`` under N(1, 3^2), with its se.

    Damped Newton (steps clipped to +/- 1) on a concave objective, all annotators at once.
    """
    prior_var = _SCALE_PRIOR_VAR
    c = np.ones(n_users)
    for _ in range(n_iter):
        p = special.expit(c[inv] * margins)
        grad = np.bincount(inv, weights=(y - p) * margins, minlength=n_users) - (c - 1) / prior_var
        hess = np.bincount(inv, weights=p * (1 - p) * margins**2, minlength=n_users) + 1 / prior_var
        step = np.clip(grad / hess, -1.0, 1.0)
        c = c + step
        if np.max(np.abs(step)) < 1e-6:
            break
    p = special.expit(c[inv] * margins)
    info = np.bincount(inv, weights=p * (1 - p) * margins**2, minlength=n_users) + 1 / prior_var
    return c, 1.0 / np.sqrt(info)


def decisiveness(
    data: PreferenceData, margins: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float]:
    """Shrunken per-annotator scale of the pooled margins ``margins`` (n,).

    Returns ``(raw, se, shrunk, mu, tau)``: per-annotator MAP scales and standard errors (U,),
    their empirical-Bayes posterior means under ``N(mu, tau^2)``, and the prior's mean and sd,
    fitted by weighted moments (Morris 1983): ``mu`` weighted by ``1 / (se^2 + tau^2)``,
    ``tau^2`` = weighted mean of ``(raw - mu)^2 - se^2`` (at least 0).
    A pooled BT fit has ``mu`` near 1; ``tau / mu`` of 0.5 means annotators' decisiveness
    typically differs by half the average.
    """
    uniq, inv = _user_index(data)
    raw, se = _scale_map(np.asarray(margins, dtype=np.float64), data.y, inv, len(uniq))
    tau2 = max(0.0, float(np.var(raw) - np.mean(se**2)))
    for _ in range(20):  # Morris (1983): mu weighted by 1 / (se^2 + tau^2), tau^2 by moments
        w = 1.0 / (se**2 + tau2)
        mu = float(np.sum(w * raw) / np.sum(w))
        tau2 = max(0.0, float(np.sum(w * ((raw - mu) ** 2 - se**2)) / np.sum(w)))
    shrunk = mu + tau2 / (tau2 + se**2) * (raw - mu)
    return raw, se, shrunk, mu, float(np.sqrt(tau2))


def _users_subset(data: PreferenceData, max_comparisons: int, random_state: int) -> PreferenceData:
    """Whole users drawn at random until about ``max_comparisons`` comparisons (all if fewer)."""
    if len(data) <= max_comparisons:
        return data
    uniq, inv = _user_index(data)
    order = np.random.default_rng(random_state).permutation(len(uniq))
    counts = np.bincount(inv, minlength=len(uniq))[order]
    keep = order[: int(np.searchsorted(np.cumsum(counts), max_comparisons)) + 1]
    return data.subset(np.isin(inv, keep))


def _latent_class_bic(
    data: PreferenceData,
    k_max: int,
    max_comparisons: int,
    random_state: int,
    show_progress: bool = False,
) -> tuple[dict[int, float], int]:
    """({K: BIC} of LatentClassBT for K = 1..k_max, comparisons used): whole users, at most
    about ``max_comparisons``."""
    from signrm.estimators import LatentClassBT

    data = _users_subset(data, max_comparisons, random_state)
    ks = range(1, min(k_max, len(np.unique(data.user))) + 1)
    out = {}
    for k in tqdm(ks, desc="latent classes", leave=False, disable=not show_progress):
        model = LatentClassBT(n_classes=k, n_init=1, max_iter=30, random_state=random_state)
        out[k] = float(model.fit(data).bic_)
    return out, len(data)


def _recommend(report: DiagnosisReport) -> tuple[str, str]:
    inf = report.inference
    dis = inf.disagreement
    where = f"{100 * dis.estimate:.1f} % of your pairs (95 % interval {100 * dis.low:.1f}-"
    where += f"{100 * dis.high:.1f} %)"
    if inf.bias_detected:
        rec = "SignEstimator"
        reason = (
            f"Bradley-Terry (RLHF) and the sign estimator order {where} differently, and the "
            "interval excludes 0: the difference is beyond sampling noise, so heterogeneity biases "
            "the pooled BT reward on this data. The sign estimator targets the population-average "
            "ordering."
        )
    else:
        rec = "BradleyTerry"
        reason = (
            f"Bradley-Terry and the sign estimator differ on {where}, an interval that includes 0: "
            "no heterogeneity bias is detectable beyond sampling noise, and BT has the lower "
            "variance."
        )
    k = report.best_k
    if k is not None and k > 1:
        reason += (
            f" Latent-class BT prefers K = {k} classes by BIC: there are distinct taste groups "
            f"(LatentClassBT(n_classes={k}) describes them). With enough comparisons per "
            "annotator the default SignEstimator() shrinks towards the population mean of a "
            "mixture of annotators, NonparametricMixtureBT (its panel step: panel_weight_, "
            "panel_status_)."
        )
    if report.users is None:
        reason += " No annotator ids: comparisons were treated as independent."
    return rec, reason


def diagnose(
    data: PreferenceData,
    *,
    estimator=None,
    reference=None,
    n_subsamples: int = 100,
    level: float = 0.95,
    k_max: int = 5,
    loao_folds: int = 10,
    bic_max_comparisons: int = 5_000,
    random_state: int = 0,
    show_progress: bool | None = False,
) -> DiagnosisReport:
    """Diagnose heterogeneity in ``data`` (module docstring); returns a :class:`DiagnosisReport`.

    ``estimator`` (default :func:`signrm.inference.sharp_sign_estimator`) and ``reference``
    (default ``BradleyTerry()``) are compared with :func:`signrm.inference.subsampling_inference`
    (``n_subsamples``, ``level``); per-annotator parts and the latent-class BIC
    (K = 1..``k_max``) need ``data.user``; the latent-class fits (one EM start, at most 30
    iterations each, :func:`_latent_class_bic`) use whole users drawn at random up to about
    ``bic_max_comparisons`` comparisons, to bound the time. ``random_state`` seeds folds,
    subsamples and EM.
    ``show_progress``: tqdm bars over the long steps (None: when stderr is a terminal).
    BLAS runs single-threaded inside (:func:`signrm.engine.linear.single_threaded_blas`).
    """
    from signrm.estimators import BradleyTerry

    if int(k_max) != k_max or k_max < 0:
        raise ValueError(f"k_max must be an integer >= 0 (0 skips the latent classes), got {k_max}")
    show = sys.stderr.isatty() if show_progress is None else bool(show_progress)
    estimator = sharp_sign_estimator() if estimator is None else estimator
    reference = BradleyTerry() if reference is None else reference
    timings: dict[str, float] = {}
    users = counts = agreement = raw = se = shrunk = None
    mu = tau = None
    bic: dict[int, float] = {}
    report_bic_n = 0
    with single_threaded_blas():
        t0 = time.perf_counter()
        ref_full = clone(reference).fit(data)
        est_full = clone(estimator).fit(data)
        timings["full fits"] = time.perf_counter() - t0
        if data.user is not None:
            t0 = time.perf_counter()
            users, inv = _user_index(data)
            counts = np.bincount(inv, minlength=len(users))
            agreement = annotator_agreement(
                data, reference, loao_folds, random_state, show_progress=show
            )
            timings["annotator agreement"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            raw, se, shrunk, mu, tau = decisiveness(data, ref_full.decision_function(data))
            timings["decisiveness"] = time.perf_counter() - t0
            if k_max >= 1 and len(users) >= 2:
                t0 = time.perf_counter()
                bic, report_bic_n = _latent_class_bic(
                    data, k_max, bic_max_comparisons, random_state, show
                )
                timings["latent-class BIC"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        inference = subsampling_inference(
            data,
            estimator,
            reference,
            n_subsamples=n_subsamples,
            level=level,
            random_state=random_state,
            show_progress=show,
            fitted=(est_full, ref_full),
        )
        timings["subsampling"] = time.perf_counter() - t0
    report = DiagnosisReport(
        n_comparisons=len(data),
        n_features=data.n_features,
        users=users,
        counts=counts,
        agreement=agreement,
        decisiveness_raw=raw,
        decisiveness_se=se,
        decisiveness=shrunk,
        decisiveness_mean=mu,
        decisiveness_sd=tau,
        inference=inference,
        bic=bic,
        bic_comparisons=report_bic_n,
        timings=timings,
    )
    report.recommendation, report.reason = _recommend(report)
    return report
