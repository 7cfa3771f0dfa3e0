"""The sign estimator: smoothed maximum-score (0-1 loss) fit of a reward model.

Maximises the agreement ``(1/n) sum_i s_i sign(m_i)`` between the observed answers
``s_i = 2 y_i - 1`` and the sign of the margins — Manski's maximum-score estimator on preference
pairs. Under symmetric heterogeneity P(a preferred) > 1/2 exactly when the population-average
utility prefers a, so the sign estimator is consistent for the population ordering, while
cross-entropy (Bradley–Terry/RLHF) weights annotators by their confidence and is biased.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np
from scipy import optimize, special

from signrm.data import PreferenceData
from signrm.estimators._linear import exact_agreement, fit_bt_linear, fit_sign_linear
from signrm.estimators._torch_head import TorchHeadMixin
from signrm.estimators._torch_train import train_pairwise
from signrm.estimators.base import PreferenceEstimator
from signrm.losses import resolve_lambdas

_HEADS = ("linear", "mlp")


class SignEstimator(TorchHeadMixin, PreferenceEstimator):
    """Sign estimator with lambda annealing (METHODS.md section 3.2).

    The 0-1 loss is replaced by ``-s tanh(lam m / (2 sd))`` (``2 sigmoid(lam t) - 1 = tanh(lam t/2)``),
    with ``sd`` the standard deviation of the margins at the start of each stage, so lambda is
    dimensionless. Lambda grows over the stages; each stage is warm-started from the previous one
    and the first from the normalised Bradley–Terry solution.

    Parameters
    ----------
    head : "linear" or "mlp"
        Linear: ``r(x) = theta . x`` with ``|theta| = 1`` (the sign ignores scale), optimised by
        L-BFGS on the sphere — deterministic. MLP: BT warm start, then the smoothed sign loss with
        lambda annealed over epochs on margins normalised by a running std.
    lambdas : sequence of float
        ``(start, stop)``: a geometric schedule of ``n_stages`` values (default 1 -> 15, as in
        the paper); a longer sequence is used as the schedule itself.
    n_stages : int
        Number of annealing stages when ``lambdas`` is ``(start, stop)``.
    n_restarts : int
        Linear head: number of starting points (the BT solution, then random perturbations of it);
        the fit with the highest exact agreement on the training data is kept.
    bt_l2 : float
        Ridge penalty of the BT warm start.
    calibrate : bool
        Fit a scalar temperature ``a`` so that ``predict_proba = sigmoid(a m)`` is calibrated on
        the training data (the sign estimator itself only orders).
    select_stage : "last" or "cv"
        Linear head: ``"last"`` anneals to the last lambda (the paper's schedule). ``"cv"``
        treats lambda as a smoothing bandwidth chosen from the data: the schedule is run on
        ``cv_folds`` folds (whole users when user ids are given), the stage with the best mean
        held-out exact agreement is kept, and all data are refitted up to it. Use it for
        high-dimensional features with noisy answers, where the sharp 0-1 surrogate overfits
        (costs about ``cv_folds`` extra fits).
    cv_folds : int
        Folds of ``select_stage="cv"``.
    stage_epochs : int
        MLP head: epochs per annealing stage before the last (the last runs to early stopping).
    max_iter, tol : L-BFGS iterations and projected-gradient tolerance per stage (linear head).
        The 0-1 landscape is flat at the scale of its sampling noise, so polishing a stage beyond
        ~30 iterations changes the training agreement by < 0.5 % and the direction by less than
        its standard error; raise them for exact maximum-score solutions.
    hidden_sizes, learning_rate, batch_size, max_epochs, patience, validation_fraction,
    weight_decay : MLP-head training settings.
    random_state : int or None
        Seeds the validation split, restarts and MLP training. Defaults to 0 (not None) so that
        the default fit is reproducible.
    verbose : bool

    Attributes
    ----------
    coef_ : (d,) unit vector (linear head).
    objective_ : float
        Final smoothed agreement ``mean s tanh(lam m / 2 sd)`` at the last lambda (linear head).
    agreement_ : float
        Exact agreement ``mean s sign(m)`` on the training data, in [-1, 1].
    zero_one_loss_ : float
        ``(1 - agreement_) / 2``: the training 0-1 loss over non-tie comparisons' weight.
    stages_ : list of dict
        Per-stage lambda, margin scale, smoothed objective and iterations (linear head).
    calibration_scale_ : float
        Temperature of ``predict_proba``.
    selected_lambda_ : float
        The last lambda of the schedule actually used (linear head).
    validation_agreement_ : list of float or None
        Held-out exact agreement after each stage (``select_stage="cv"``).
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
        "validation_agreement_",
    )

    def __init__(
        self,
        head: str = "linear",
        lambdas: Sequence[float] = (1.0, 15.0),
        n_stages: int = 5,
        n_restarts: int = 1,
        bt_l2: float = 1e-4,
        calibrate: bool = True,
        select_stage: str = "last",
        cv_folds: int = 3,
        stage_epochs: int = 2,
        max_iter: int = 30,
        tol: float = 1e-4,
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
        self.n_restarts = n_restarts
        self.bt_l2 = bt_l2
        self.calibrate = calibrate
        self.select_stage = select_stage
        self.cv_folds = cv_folds
        self.stage_epochs = stage_epochs
        self.max_iter = max_iter
        self.tol = tol
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
        if self.head not in _HEADS:
            raise ValueError(f"head must be one of {_HEADS}, got {self.head!r}")
        if self.select_stage not in ("last", "cv"):
            raise ValueError(f"select_stage must be 'last' or 'cv', got {self.select_stage!r}")
        if int(self.n_restarts) < 1:
            raise ValueError(f"n_restarts must be >= 1, got {self.n_restarts}")
        return resolve_lambdas(self.lambdas, int(self.n_stages))

    def fit(self, data: PreferenceData) -> SignEstimator:
        """Fit on comparisons (or a ``signrm.streaming`` source); returns self. Ties: zero weight."""
        from signrm.streaming import fit_streaming, is_streaming_source

        if is_streaming_source(data):
            return fit_streaming(self, data)
        lambdas = self._schedule()
        data = self._check_data(data)
        self.n_features_in_ = data.n_features
        D = data.differences
        y, w = data.y, data.weight
        wn = np.full(len(y), 1.0 / len(y)) if w is None else w / w.sum()
        s = data.signs
        if self.head == "linear":
            self.validation_agreement_ = None
            if self.select_stage == "cv" and len(lambdas) > 1:
                lambdas = self._select_stages(data, lambdas)
            agree, theta, stages, theta_bt = self._fit_linear(D, y, w, lambdas)
            self.bt_coef_ = theta_bt
            self.coef_ = theta
            self.stages_ = [{k: v for k, v in vars(st).items() if k != "theta"} for st in stages]
            self.selected_lambda_ = float(lambdas[-1])
            self.objective_ = stages[-1].objective
            self.margin_scale_ = stages[-1].scale
            self.head_module_ = None
            margins = np.asarray(D @ theta.astype(D.dtype), dtype=np.float64)
        else:
            data.require_alternatives("SignEstimator(head='mlp')")
            self.head_module_ = self._new_head(data.n_features)
            self.history_ = train_pairwise(
                self.head_module_,
                data.xa,
                data.xb,
                y,
                w,
                self._train_config(),
                loss="sign",
                lambdas=lambdas,
                stage_epochs=int(self.stage_epochs),
            )
            self.coef_ = None
            self.bt_coef_ = None
            self.stages_ = None
            self.selected_lambda_ = float(lambdas[-1])
            self.validation_agreement_ = None
            margins = self._torch_reward(data.xa) - self._torch_reward(data.xb)
            self.margin_scale_ = float(np.std(margins)) or 1.0
            self.objective_ = float(
                wn @ (s * np.tanh(0.5 * lambdas[-1] * margins / self.margin_scale_))
            )
            agree = float(wn @ (s * np.sign(margins)))
        self.agreement_ = float(agree)
        nontie = float(wn[s != 0].sum())
        self.zero_one_loss_ = float((nontie - agree) / (2 * nontie))
        self.calibration_scale_ = (
            _fit_temperature(margins, y, wn) if self.calibrate else 1.0 / self.margin_scale_
        )
        return self

    def _fit_linear(self, D, y, w, lambdas):
        """BT warm start, then annealing from each start; keeps the best exact agreement."""
        wn = np.full(len(y), 1.0 / len(y)) if w is None else w / w.sum()
        s = 2.0 * y - 1.0
        # Only a starting point: solved to scikit-learn's default tolerance, not polished.
        theta_bt, _ = fit_bt_linear(D, y, w, l2=self.bt_l2, tol=1e-4)
        if not np.any(theta_bt):
            theta_bt = D.T @ (wn * s)  # all-zero BT fit: start from the mean signed difference
        if not np.any(theta_bt):
            informative = (s != 0) & (wn > 0)
            if not np.any(D[informative]):
                raise ValueError(
                    "the sign estimator has no starting point: every non-tie comparison with "
                    "non-zero weight has a zero feature difference phi(a) - phi(b), so the "
                    "data carry no information on the ordering"
                )
            raise ValueError(
                "the sign estimator has no starting point: the Bradley-Terry fit and the "
                "weighted mean signed difference sum_i w_i (2 y_i - 1) (phi(a_i) - phi(b_i)) "
                "are both zero (the labels carry no signal along any feature)"
            )
        rng = np.random.default_rng(self.random_state)
        starts = [theta_bt / np.linalg.norm(theta_bt)]
        for _ in range(int(self.n_restarts) - 1):
            z = rng.standard_normal(D.shape[1])
            starts.append(starts[0] + z / np.linalg.norm(z))
        best = None
        for start in starts:
            theta, stages = fit_sign_linear(
                D, y, start, lambdas, w, max_iter=self.max_iter, tol=self.tol
            )
            agree = exact_agreement(D, s, wn, theta)
            if best is None or agree > best[0] + 1e-12:
                best = (agree, theta, stages)
        return (*best, theta_bt)

    def _select_stages(self, data: PreferenceData, lambdas: np.ndarray) -> np.ndarray:
        """Pick how far to anneal by cross-validated exact agreement; returns the schedule.

        Lambda is a smoothing bandwidth: a sharper surrogate fits the 0-1 loss better but has
        more variance, which in many dimensions with noisy answers can cost more than it gains.
        Held-out agreement ``mean s sign(m)`` is itself maximised by the population ordering
        under symmetric heterogeneity, so it is a consistent selection criterion. Folds keep
        users whole when user ids are given.
        """
        n_folds = int(self.cv_folds)
        if n_folds < 2:
            raise ValueError(f"cv_folds must be >= 2, got {self.cv_folds}")
        rng = np.random.default_rng(self.random_state)
        if data.user is not None and len(np.unique(data.user)) >= n_folds:
            uniq, inverse = np.unique(data.user, return_inverse=True)
            fold = rng.permutation(len(uniq)) % n_folds
            fold = fold[inverse]
        else:
            fold = rng.permutation(data.n_samples) % n_folds
        w = np.ones(data.n_samples) if data.weight is None else data.weight
        total = np.zeros(len(lambdas))
        for k in range(n_folds):
            train, val = data.subset(fold != k), data.subset(fold == k)
            if not np.any(train.signs != 0):
                continue
            _, _, stages, _ = self._fit_linear(train.differences, train.y, train.weight, lambdas)
            wv = w[fold == k]
            for j, st in enumerate(stages):
                m = val.differences @ st.theta.astype(val.differences.dtype)
                total[j] += float(wv @ (val.signs * np.sign(m)))
        scores = total / w.sum()
        self.validation_agreement_ = [float(v) for v in scores]
        best = int(np.argmax(scores))
        return lambdas[: best + 1]

    def _reward(self, X: np.ndarray) -> np.ndarray:
        if self.head == "linear":
            return np.asarray(X @ self.coef_.astype(X.dtype), dtype=np.float64)
        return self._torch_reward(X)

    def predict_proba(self, data: PreferenceData) -> np.ndarray:
        """``sigmoid(a m)`` with the temperature ``a`` fitted on the training data."""
        return special.expit(self.calibration_scale_ * self.decision_function(data))


def _fit_temperature(margins: np.ndarray, y: np.ndarray, wn: np.ndarray) -> float:
    """Scalar ``a >= 0`` minimising the weighted cross-entropy of ``sigmoid(a m)``."""
    sd = float(np.std(margins)) or 1.0
    return temperature_from_chunks(lambda: [(margins, y, wn)], sd)


def temperature_from_chunks(
    chunks: Callable[[], Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]]], sd: float
) -> float:
    """Temperature ``a / sd`` minimising ``sum w (softplus(a m / sd) - y a m / sd)`` over a in [0, 100].

    ``chunks()`` yields ``(margins, labels, normalised weights)`` blocks anew at each call, so
    the margins need not be in memory at once (streaming fits read them back from disk).
    """

    def nll(a):
        total = 0.0
        for m, y, wn in chunks():
            z = a * (m / sd)
            total += float(wn @ (np.logaddexp(0.0, z) - y * z))
        return total

    res = optimize.minimize_scalar(nll, bounds=(0.0, 100.0), method="bounded")
    return float(res.x) / sd
