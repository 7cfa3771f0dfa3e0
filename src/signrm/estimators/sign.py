"""The sign estimator: smoothed maximum-score (0-1 loss) fit of a reward model.

Maximises the agreement ``(1/n) sum_i s_i sign(m_i)`` between the observed answers
``s_i = 2 y_i - 1`` and the sign of the margins — Manski's maximum-score estimator on preference
pairs. Under symmetric heterogeneity P(a preferred) > 1/2 exactly when the population-average
utility prefers a, so the sign estimator is consistent for the population ordering, while
cross-entropy (Bradley–Terry/RLHF) weights annotators by their confidence and is biased.
Under asymmetric heterogeneity the majority ordering is biased too; with annotator ids the panel
step (:mod:`signrm.estimators._panel`) shrinks towards a mixture model's estimate of theta_bar.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
from scipy import special

from signrm.data import PreferenceData
from signrm.engine.bandwidth import BandwidthChoice, blend_directions, select_bandwidth
from signrm.engine.linear import (
    MarginSpool,
    Passes,
    count_users,
    fit_bt,
    mean_signed_difference,
    sign_stage,
    unit,
    weight_totals,
)
from signrm.estimators._panel import PANEL_MODELS, PanelStep, panel_step
from signrm.estimators._params import (
    HEAD_CONSTRAINT,
    TORCH_HEAD_CONSTRAINTS,
    Choice,
    Integral,
    Interval,
    IntervalSequence,
    Real,
    non_negative_real,
    positive_int,
)
from signrm.estimators._torch_head import TorchHeadMixin
from signrm.estimators.base import PreferenceEstimator
from signrm.losses import resolve_lambdas

#: The sign paper's fixed schedule (seeds 000/001): ``SignEstimator(**PAPER_SCHEDULE)``.
PAPER_SCHEDULE = {
    "lambdas": (1.0, 15.0),
    "n_stages": 5,
    "select_stage": "last",
    "max_iter": 30,
    "noise_tol": 0.1,
    "panel": "off",
}


class SignEstimator(TorchHeadMixin, PreferenceEstimator):
    """Sign estimator: smoothed 0-1 loss with a bandwidth chosen from the data (METHODS.md 3.2).

    The 0-1 loss is replaced by ``-s tanh(lam m / (2 sd))`` (``2 sigmoid(lam t) - 1 = tanh(lam t/2)``),
    with ``sd`` the standard deviation of the margins at the start of each stage, so lambda is
    dimensionless. Lambda grows over the stages; each stage is warm-started from the previous one
    and the first from the normalised Bradley–Terry solution.

    By default (``select_stage="cv"``, linear head) lambda is treated as a smoothing bandwidth and
    chosen by cross-fitting (:mod:`signrm.engine.bandwidth`): the path is annealed on each of
    ``cv_folds`` training parts, every candidate direction ``(1 - a) u_BT + a u_stage`` — the BT
    solution itself is the candidate ``a = 0`` — is scored by its exact held-out agreement, and
    the winner is the average of the folds' fits at the chosen stage blended with the full-data
    BT direction. Where BT is nearly unbiased the choice falls back towards RLHF; where
    heterogeneity biases it, towards the sharp sign estimator. ``select_stage="last"`` with
    ``lambdas=(1, 15), n_stages=5`` (:data:`PAPER_SCHEDULE`) is the paper's fixed schedule.
    With annotator ids and enough comparisons per annotator, a final panel step blends in the
    mixture-of-annotators estimate of theta_bar where the majority ordering is biased (``panel``).

    Parameters
    ----------
    head : "linear" or "mlp"
        Linear: ``r(x) = theta . x`` with ``|theta| = 1`` (the sign ignores scale), optimised by
        L-BFGS on the sphere — deterministic. MLP: BT warm start, then the smoothed sign loss with
        lambda annealed over epochs on margins normalised by a running std.
    lambdas : sequence of float
        ``(start, stop)``: a geometric grid of ``n_stages`` values; a longer sequence is used as
        the grid itself. Default 1 -> 64 in 7 doubling stages (the path searched by ``"cv"``).
    n_stages : int
        Number of stages when ``lambdas`` is ``(start, stop)``.
    select_stage : "cv" or "last"
        ``"cv"`` (default): choose the stage and the blend with BT by cross-fitted held-out
        agreement (linear head; the MLP head anneals to the last stage). ``"last"``: anneal on all
        data to the last lambda (the paper's schedule with ``lambdas=(1, 15), n_stages=5``).
    blends : sequence of float in [0, 1]
        Candidate weights ``a`` of the sign direction in ``(1 - a) u_BT + a u_sign`` for
        ``"cv"`` (0 = RLHF's direction, 1 = the pure sign fit).
    cv_folds : int
        Folds of ``"cv"`` (whole users per fold when user ids are given and there are at least
        ``4 * cv_folds`` users). Two folds: the path is run on two halves, which together cost
        about one full-data path, and the two half fits are averaged (for a cube-root estimator
        the average of two independent halves has less variance than one fit on all the data).
    refit : bool
        ``"cv"``: refit the path on all the data up to the chosen stage instead of averaging the
        fold fits (one more path).
    cv_patience : int
        ``"cv"``: stop the path after this many stages without a better held-out score.
    cv_slack : float
        ``"cv"``: the one-standard-error rule: among the candidates whose held-out agreement is
        within ``cv_slack`` standard errors (of the best candidate's gain over BT) of the best,
        the one closest to BT (smallest blend, then smallest lambda) is chosen. 0 = plain argmax.
    n_restarts : int
        ``"last"``, linear head: number of starting points (the BT solution, then random
        perturbations of it); the fit with the highest exact training agreement is kept.
    solver : "anneal" or "milp"
        Linear head. ``"anneal"``: the smoothed path (default). ``"milp"``: then solve the exact
        0-1 objective on the training data as a mixed-integer program (scipy's HiGHS,
        :func:`signrm.engine.milp.fit_sign_milp`), started from the annealed fit: the global
        maximum-score solution and a certificate of the annealed fit's optimisation gap
        (``milp_info_``). Small problems only (a few thousand comparisons, d up to ~15, in
        memory); measured in docs/milp.md, the exact optimum is often *further* from the
        population direction at small n than the annealed fit (smoothing regularises).
    milp_time_limit : float
        Seconds for ``solver="milp"``; the gap at the limit is reported.
    bt_l2 : float
        Ridge penalty of the BT warm start (and of the BT candidate).
    calibrate : bool
        Fit a scalar temperature ``a`` so that ``predict_proba = sigmoid(a m)`` is calibrated on
        the training data (the sign estimator itself only orders).
    stage_epochs : int
        MLP head: epochs per annealing stage before the last (the last runs to early stopping).
    max_iter, tol : L-BFGS settings of each annealing stage (linear head): at most ``max_iter``
        iterations, stopped when the projected gradient of the smoothed objective falls below
        ``tol``. The 0-1 landscape is flat at the scale of its sampling noise, so polishing a
        stage beyond ~15 iterations on a warm-started path changes the training agreement by
        < 0.5 % and the direction by less than its standard error (measured on the twin panel at
        n = 10,000 and 43,834: 15 and 30 iterations chose the same stage and direction); raise
        them for exact maximum-score solutions.
    noise_tol : float
        Linear head: also end a stage at the first iteration that raises the smoothed objective
        by less than ``noise_tol`` of its standard error over rows (0 = off). The paper's
        schedule uses 0.1: its stages at lambda 7.6 and 15 otherwise run to ``max_iter`` chasing
        gains of a few hundredths of a standard error each while the direction drifts away from
        theta_bar (twin panel, n = 43,834, d = 384: 102 passes and 51.4 degrees off with 0,
        46 passes and 45.0 degrees with 0.1; METHODS.md's worked example, d = 8, seeds 0-2:
        3.6 / 2.9 / 4.2 degrees with 0.1 vs 3.6 / 3.1 / 3.6 with 0). Off by default because the
        cross-validated path needs each stage near its optimum: on the worked example 0.1 made
        the default 7.0 / 6.8 / 11.3 degrees off instead of 4.9 / 2.5 / 7.3 (patience then stops
        the path at a lagging stage).
    panel : "auto", "on" or "off"
        Linear head, ``solver="anneal"``: the panel step (:mod:`signrm.estimators._panel`). The
        sign fit targets the *majority* ordering, which is theta_bar's only under symmetric
        heterogeneity; with annotator ids a panel model's estimate ``e`` of theta_bar (fitted on
        all rows and on two halves of each annotator's rows) is shrunk towards ``c``, the sign
        fit or the BT fit, whichever is closer to ``e``: ``coef_`` is the unit vector along
        ``(1 - alpha) c + alpha e`` with ``alpha = clip(1 - V / |c - e|^2, 0, 1)``, near 1 where
        ``e`` differs from ``c`` by much more than its own noise ``V``, near 0 where the two
        agree up to it (``V`` ignores the noise of ``c``: a noisy sign fit, e.g. the paper's
        schedule, moves ``alpha`` towards 1). ``"auto"`` (default) runs it with at least 10
        annotators (``max(10, 2 panel_classes)`` for the latent-class model), on average at
        least ``panel_min_per_feature * d`` comparisons each and at most 2^22 feature values;
        ``"on"`` whenever there are user ids (an error with the MLP head or
        ``solver="milp"``); ``"off"`` never (the sign estimator alone). Measured with the NPMLE
        model on the phase diagram (d = 8, 200 annotators, 15 panel-coupling cells, 2 seeds):
        mean angle 0.38x RLHF's at n = 43,834 (0.65x with the previous default, three latent
        classes shrunk towards the sign fit; 0.92x without the step), at most 1.005x RLHF's at n >= 10,000; on ten other populations
        (``benchmarks/robustness_sweep.py``, 40 fits) 0.62x on average, above 1.1x in 1
        (docs/adaptive.md). Cost at d = 8, 200 annotators, one process: the default fit takes
        1.0 s at n = 43,834 and 2.3 s at 1e5 (0.11 / 0.24 s with ``panel="off"``, 1.6 / 4.7 s
        with the latent-class model).
    panel_model : "npmle" or "latent_class"
        The panel model: ``"npmle"`` (default), the nonparametric mixture of BT annotators
        (:class:`~signrm.NonparametricMixtureBT`; every annotator's own fit makes the grid, no
        classes to choose, no local optima); ``"latent_class"``,
        ``LatentClassBT(panel_classes, n_init=1)``.
    panel_classes : int
        Latent classes of the ``"latent_class"`` panel model, at least 2 (one EM start each).
    panel_min_per_feature : float
        ``"auto"``: the least mean number of comparisons per annotator, per feature. Measured
        on the phase diagram at n = 3,000 (1.9 per feature, d = 8): 0.97x RLHF on average with
        the step (worst cell 1.14x) against 0.99x with 2 here, which skips it (worst 1.11x);
        at 6.25 per feature (n = 10,000) the step gives 0.58x.
    hidden_sizes, learning_rate, batch_size, max_epochs, patience, validation_fraction,
    weight_decay : MLP-head training settings.
    random_state : int or None
        Seeds the cross-validation folds, restarts, the validation split and MLP training.
        Defaults to 0 (not None), as in every signrm estimator, so that the default fit is
        reproducible.
    verbose : bool
        Progress bar (comparisons read per second, with the current stage).

    Attributes
    ----------
    coef_ : (d,) unit vector (linear head).
    bt_coef_ : (d,) the BT warm start fitted on all the data (linear head).
    objective_ : float
        Smoothed agreement ``mean s tanh(lam m / 2 sd)`` at the last stage run (linear head;
        for ``"cv"`` the mean over the fold fits at the chosen stage, NaN when BT is chosen).
    agreement_ : float
        Exact agreement ``mean s sign(m)`` on the training data, in [-1, 1].
    zero_one_loss_ : float
        ``(1 - agreement_) / 2``: the training 0-1 loss over non-tie comparisons' weight.
    stages_ : list of dict
        Per-stage lambda, margin scale, smoothed objective and iterations (linear head; for
        ``"cv"``, those of the first fold).
    calibration_scale_ : float
        Temperature of ``predict_proba``.
    selected_lambda_ : float
        The lambda of the stage used (0.0 when ``"cv"`` chose the BT direction).
    selected_blend_ : float
        The blend ``a`` used (1.0 for ``"last"``).
    validation_agreement_ : list of float or None
        ``"cv"``: held-out exact agreement of the pure sign fit after each stage run.
    cv_scores_ : list of list of float or None
        ``"cv"``: held-out agreement of each (stage, blend) candidate, rows = stages run.
    margin_scale_ : float
        Standard deviation of the training margins of ``coef_``.
    n_passes_, fit_seconds_ : passes over the data and wall time of the linear fit.
    panel_weight_ : float
        The weight ``alpha`` of the panel model's estimate in ``coef_`` (0.0 when the panel step
        did not run).
    panel_coef_ : (d,) unit vector or None
        The panel model's estimate of theta_bar's direction (None when the step did not run).
    panel_target_ : "sign", "bt" or None
        What the panel estimate was shrunk towards: the sign fit or the BT fit (``bt_coef_``),
        whichever is closer to it (None when the step did not run).
    panel_status_ : str
        Whether the panel step ran, and why not ("skipped: no user ids", ...).

    ``objective_``, ``stages_``, ``selected_lambda_``, ``selected_blend_``, ``cv_scores_`` and
    ``validation_agreement_`` describe the sign fit before the panel step; ``agreement_``,
    ``margin_scale_`` and ``calibration_scale_`` the final ``coef_``.
    """

    _saved = (
        "coef_",
        "objective_",
        "agreement_",
        "zero_one_loss_",
        "calibration_scale_",
        "stages_",
        "bt_coef_",
        "margin_scale_",
        "selected_lambda_",
        "selected_blend_",
        "validation_agreement_",
        "cv_scores_",
        "panel_weight_",
        "panel_coef_",
        "panel_status_",
        "panel_target_",
    )
    _parameter_constraints: dict = {
        **TORCH_HEAD_CONSTRAINTS,
        "head": HEAD_CONSTRAINT,
        "lambdas": [IntervalSequence(Real, 0, None, closed="neither", min_length=1)],
        "n_stages": [positive_int()],
        "select_stage": [Choice("last", "cv")],
        "blends": [IntervalSequence(Real, 0, 1, closed="both", min_length=1)],
        "cv_folds": [Interval(Integral, 2, None, closed="left")],
        "refit": ["boolean"],
        "cv_patience": [positive_int()],
        "cv_slack": [non_negative_real()],
        "n_restarts": [positive_int()],
        "solver": [Choice("anneal", "milp")],
        "milp_time_limit": [Interval(Real, 0, None, closed="neither")],
        "bt_l2": [non_negative_real()],
        "calibrate": ["boolean"],
        "stage_epochs": [positive_int()],
        "max_iter": [positive_int()],
        "tol": [non_negative_real()],
        "noise_tol": [non_negative_real()],
        "panel": [Choice("auto", "on", "off")],
        "panel_model": [Choice(*PANEL_MODELS)],
        "panel_classes": [Interval(Integral, 2, None, closed="left")],
        "panel_min_per_feature": [non_negative_real()],
    }

    def __init__(
        self,
        head: str = "linear",
        lambdas: Sequence[float] = (1.0, 64.0),
        n_stages: int = 7,
        select_stage: str = "cv",
        blends: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0),
        cv_folds: int = 2,
        refit: bool = False,
        cv_patience: int = 1,
        cv_slack: float = 0.5,
        n_restarts: int = 1,
        solver: str = "anneal",
        milp_time_limit: float = 60.0,
        bt_l2: float = 1e-4,
        calibrate: bool = True,
        stage_epochs: int = 2,
        max_iter: int = 15,
        tol: float = 1e-4,
        noise_tol: float = 0.0,
        panel: str = "auto",
        panel_model: str = "npmle",
        panel_classes: int = 3,
        panel_min_per_feature: float = 1.0,
        hidden_sizes: Sequence[int] = (1024, 512),
        learning_rate: float = 1e-3,
        batch_size: int = 256,
        max_epochs: int = 50,
        patience: int = 3,
        validation_fraction: float = 0.2,
        weight_decay: float = 0.0,
        random_state: int | None = 0,
        verbose: bool = False,
    ) -> None:
        self.head = head
        self.lambdas = lambdas
        self.n_stages = n_stages
        self.select_stage = select_stage
        self.blends = blends
        self.cv_folds = cv_folds
        self.refit = refit
        self.cv_patience = cv_patience
        self.cv_slack = cv_slack
        self.n_restarts = n_restarts
        self.solver = solver
        self.milp_time_limit = milp_time_limit
        self.bt_l2 = bt_l2
        self.calibrate = calibrate
        self.stage_epochs = stage_epochs
        self.max_iter = max_iter
        self.tol = tol
        self.noise_tol = noise_tol
        self.panel = panel
        self.panel_model = panel_model
        self.panel_classes = panel_classes
        self.panel_min_per_feature = panel_min_per_feature
        self.hidden_sizes = hidden_sizes
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.weight_decay = weight_decay
        self.random_state = random_state
        self.verbose = verbose

    def _schedule(self) -> np.ndarray:
        """Check the parameters (``_parameter_constraints``); the lambda grid, shape (k,)."""
        self._validate_params()
        return resolve_lambdas(self.lambdas, int(self.n_stages))

    def fit(self, data) -> SignEstimator:
        """Fit on comparisons; returns self. Ties: zero weight.

        ``data``: a :class:`~signrm.PreferenceData`, or (linear head) a streaming source or a
        path of Parquet shards / ``.npy`` files, fitted out of core by the same engine.
        """
        lambdas = self._schedule()
        if self.panel == "on" and (self.head != "linear" or self.solver == "milp"):
            raise ValueError(
                f"panel='on' needs the linear head and solver='anneal', got head={self.head!r}, "
                f"solver={self.solver!r}: the panel step blends linear directions (pass "
                "panel='auto' or 'off')"
            )
        if self.head == "linear":
            return self._fit_linear(data, lambdas)
        data = self._fit_pairwise_head(
            data, loss="sign", lambdas=lambdas, stage_epochs=int(self.stage_epochs)
        )
        self.coef_ = self.bt_coef_ = self.stages_ = None
        self.validation_agreement_ = self.cv_scores_ = None
        self.selected_lambda_, self.selected_blend_ = float(lambdas[-1]), 1.0
        self.panel_weight_, self.panel_coef_, self.panel_status_ = 0.0, None, "off (MLP head)"
        self.panel_target_ = None
        margins = self._torch_reward(data.xa) - self._torch_reward(data.xb)
        w = np.ones(data.n_samples) if data.weight is None else data.weight
        wn, s = w / w.sum(), data.signs
        self.margin_scale_ = float(np.std(margins)) or 1.0
        self.objective_ = float(
            wn @ (s * np.tanh(0.5 * lambdas[-1] * margins / self.margin_scale_))
        )
        agree, nontie = float(wn @ (s * np.sign(margins))), float(wn[s != 0].sum())
        self._set_agreement(agree, nontie)
        self.calibration_scale_ = (
            _temperature(margins, data.y, wn) if self.calibrate else 1.0 / self.margin_scale_
        )
        return self

    # ------------------------------------------------------------------ linear head
    def _fit_linear(self, data, lambdas: np.ndarray) -> SignEstimator:
        source = self._linear_source(data)
        t0 = time.perf_counter()
        passes = Passes(
            source, progress=bool(self.verbose), desc="SignEstimator", limit_threads=True
        )
        try:
            totals = weight_totals(passes)
            d = int(source.n_features)
            theta_bt = self._bt_start(passes, totals, d)
            self.bt_coef_ = theta_bt
            n_users = count_users(passes) if self._wants_users() else 0
            if self.select_stage == "cv":
                theta = self._fit_cv(passes, totals, theta_bt, lambdas, n_users)
            else:
                theta = self._fit_schedule(passes, totals, theta_bt, lambdas)
            if self.solver == "milp":
                theta = self._solve_milp(source, theta)
            theta = self._panel_step(source, theta, totals.n, d, n_users)
            self.coef_ = theta
            spool = MarginSpool(passes, totals, theta, keep=bool(self.calibrate))
            try:
                self._set_agreement(spool.agreement, spool.nontie)
                self.margin_scale_ = spool.sd or 1.0
                self.calibration_scale_ = (
                    spool.temperature() if self.calibrate else 1.0 / self.margin_scale_
                )
            finally:
                spool.close()
        finally:
            passes.close()
        self.head_module_ = None
        self.n_features_in_ = d
        self.n_passes_ = passes.state.n_passes
        self.fit_seconds_ = time.perf_counter() - t0
        return self

    def _bt_start(self, passes: Passes, totals, d: int) -> np.ndarray:
        """The BT fit on all rows (the warm start and the BT candidate)."""
        # Only a starting point: solved to scikit-learn's default tolerance, not polished.
        theta_bt, _ = fit_bt(passes, totals, d, l2=self.bt_l2, use_margin=False,
                             label="BT warm start")  # fmt: skip
        if not np.any(theta_bt):  # all-zero BT fit: start from the mean signed difference
            theta_bt = mean_signed_difference(passes, totals, d)
        if not np.any(theta_bt):
            raise ValueError(
                "the sign estimator has no starting point: the Bradley-Terry fit and the "
                "weighted mean signed difference sum_i w_i (2 y_i - 1) (phi(a_i) - phi(b_i)) "
                "are both zero (every non-tie comparison has a zero feature difference, or the "
                "labels carry no signal along any feature)"
            )
        return theta_bt

    def _fit_schedule(self, passes: Passes, totals, theta_bt, lambdas) -> np.ndarray:
        """Anneal over all of ``lambdas`` from each start; keep the best exact agreement."""
        rng = np.random.default_rng(self.random_state)
        starts = [unit(theta_bt)]
        for _ in range(int(self.n_restarts) - 1):
            z = rng.standard_normal(theta_bt.size)
            starts.append(unit(starts[0] + z / np.linalg.norm(z)))
        best = None
        for start in starts:
            u, stages = start, []
            for k, lam in enumerate(lambdas):
                label = f"stage {k + 1}/{len(lambdas)} (lambda {lam:.3g})"
                scale = stages[-1].end_scale if stages else None
                stages.append(sign_stage(passes, totals, u, float(lam), max_iter=self.max_iter,
                                         tol=self.tol, noise_tol=self.noise_tol, label=label,
                                         scale=scale))  # fmt: skip
                u = stages[-1].theta
            agree = None
            if len(starts) > 1:
                spool = MarginSpool(passes, totals, u, keep=False)
                agree = spool.agreement
            if best is None or agree > best[0] + 1e-12:
                best = (agree, u, stages)
        _, u, stages = best
        self.stages_ = [st.record() for st in stages]
        self.objective_ = stages[-1].objective
        self.selected_lambda_, self.selected_blend_ = float(lambdas[-1]), 1.0
        self.validation_agreement_ = self.cv_scores_ = None
        return u

    def _wants_users(self) -> bool:
        return self.select_stage == "cv" or (self.panel != "off" and self.solver != "milp")

    def _fit_cv(self, passes: Passes, totals, theta_bt, lambdas, n_users: int) -> np.ndarray:
        """Cross-fitted choice of the stage and the blend with BT (engine.bandwidth)."""
        n_folds = int(self.cv_folds)
        by_user = n_users >= 4 * n_folds
        blends = np.unique(np.r_[0.0, np.asarray(self.blends, dtype=np.float64)])
        choice: BandwidthChoice = select_bandwidth(
            passes, totals, theta_bt, lambdas, blends,
            n_folds=n_folds, seed=int(self.random_state or 0), by_user=by_user,
            bt_l2=self.bt_l2, max_iter=self.max_iter, tol=self.tol, noise_tol=self.noise_tol,
            patience=int(self.cv_patience), slack=float(self.cv_slack),
        )  # fmt: skip
        u_bt = unit(theta_bt)
        self.cv_scores_ = choice.scores.tolist()
        self.validation_agreement_ = choice.scores[:, -1].tolist()
        self.stages_ = [st.record() for st in choice.fold_paths[0]]
        self.selected_lambda_, self.selected_blend_ = choice.lam, choice.blend
        self.cv_by_user_ = bool(choice.by_user)
        if choice.stage < 0:
            self.objective_ = float("nan")
            return u_bt
        if self.refit:
            u, st = u_bt, None
            for k, lam in enumerate(choice.lambdas[: choice.stage + 1]):
                st = sign_stage(passes, totals, u, float(lam), max_iter=self.max_iter,
                                tol=self.tol, noise_tol=self.noise_tol,
                                label=f"refit stage {k + 1}",
                                scale=st.end_scale if st else None)  # fmt: skip
                u = st.theta
            self.objective_ = st.objective
        else:
            u = choice.averaged_direction()
            self.objective_ = choice.fold_objective()
        return unit(blend_directions(u_bt, u, np.array([choice.blend]))[:, 0])

    def _panel_step(self, source, u: np.ndarray, n: int, d: int, n_users: int) -> np.ndarray:
        """:func:`._panel.panel_step` with this estimator's settings; sets ``panel_weight_``,
        ``panel_coef_``, ``panel_target_`` and ``panel_status_``."""
        if self.panel == "off" or self.solver == "milp":
            step = PanelStep(
                u, 0.0, None, None, "off" if self.panel == "off" else "off (solver='milp')"
            )
        else:
            step = panel_step(
                source, u, self.bt_coef_, n=n, d=d, n_users=n_users, panel=self.panel,
                model=self.panel_model, n_classes=int(self.panel_classes),
                min_per_feature=float(self.panel_min_per_feature),
                seed=int(self.random_state or 0),
            )  # fmt: skip
        self.panel_weight_, self.panel_coef_ = step.weight, step.panel_coef
        self.panel_target_, self.panel_status_ = step.target, step.status
        return step.coef

    def _solve_milp(self, source, theta0: np.ndarray) -> np.ndarray:
        """The exact maximum-score direction, started from ``theta0`` (sets ``milp_info_``)."""
        from signrm.engine.milp import fit_sign_milp

        if not getattr(source, "in_memory", False):
            raise ValueError(
                "solver='milp' solves small in-memory problems exactly; it cannot stream a "
                "source (use solver='anneal')"
            )
        (chunk,) = list(source)
        theta, info = fit_sign_milp(
            np.asarray(chunk.differences, dtype=np.float64), chunk.y, chunk.weight,
            time_limit=float(self.milp_time_limit), theta0=theta0,
        )  # fmt: skip
        self.milp_info_ = info
        return theta

    def _set_agreement(self, agreement: float, nontie: float) -> None:
        self.agreement_ = float(agreement)
        self.zero_one_loss_ = float((nontie - agreement) / (2 * nontie))

    def _reward(self, X: np.ndarray) -> np.ndarray:
        if self.head == "linear":
            return np.asarray(X @ self.coef_.astype(X.dtype), dtype=np.float64)
        return self._torch_reward(X)

    def predict_proba(self, data: PreferenceData) -> np.ndarray:
        """``sigmoid(a m)`` with the temperature ``a`` fitted on the training data."""
        return special.expit(self.calibration_scale_ * self.decision_function(data))


def _temperature(margins: np.ndarray, y: np.ndarray, wn: np.ndarray) -> float:
    """Scalar ``a >= 0`` minimising the weighted cross-entropy of ``sigmoid(a m)``."""
    from signrm.engine.linear import Passes, WeightTotals, array_source

    passes = Passes(array_source(margins[:, None], y, wn))
    spool = MarginSpool(passes, WeightTotals(len(y), float(wn.sum()), 1.0), np.ones(1), keep=True)
    return spool.temperature()


__all__ = ["PAPER_SCHEDULE", "SignEstimator"]
