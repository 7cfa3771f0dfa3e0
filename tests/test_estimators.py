"""Statistical behaviour of the estimators on data with a known answer (fixed seeds)."""

import numpy as np
import pytest
from scipy import special
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import adjusted_rand_score

import signrm
from signrm.estimators.sign import PAPER_SCHEDULE
from signrm.losses import resolve_lambdas
from signrm.metrics import angular_error, spearman
from tests._sim import homogeneous_bt, item_bt, planted_classes, symmetric_heterogeneity


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sign_consistent_bt_biased_under_symmetric_heterogeneity(seed):
    # METHODS.md section 2: BT is 11-14 degrees off, the sign estimator within 3-5.
    data, theta_bar = symmetric_heterogeneity(seed)
    # The default (cross-fitted bandwidth) is held to the RLHF-relative bar of the adaptive
    # estimator: at most 0.6x BT's error where BT's error is its population bias; the paper's
    # fixed schedule to METHODS.md's absolute figure.
    bt = signrm.BradleyTerry().fit(data)
    sign = signrm.SignEstimator().fit(data)
    paper = signrm.SignEstimator(**PAPER_SCHEDULE).fit(data)
    assert angular_error(bt.coef_, theta_bar) >= 9.0
    assert angular_error(sign.coef_, theta_bar) < 0.6 * angular_error(bt.coef_, theta_bar)
    assert angular_error(paper.coef_, theta_bar) < 6.0
    assert sign.selected_blend_ > 0  # the sign path, not the BT candidate, was chosen
    for est in (sign, paper):
        assert np.linalg.norm(est.coef_) == pytest.approx(1.0)
        assert -1 <= est.agreement_ <= 1 and est.zero_one_loss_ == pytest.approx(
            (1 - est.agreement_) / 2
        )
    assert len(paper.stages_) == 5 and paper.stages_[-1]["lam"] == pytest.approx(15)


def test_both_estimators_recover_homogeneous_bt():
    errs_bt, errs_sign, errs_default = [], [], []
    for seed in range(3):
        data, theta = homogeneous_bt(seed)
        errs_bt.append(angular_error(signrm.BradleyTerry().fit(data).coef_, theta))
        errs_sign.append(
            angular_error(signrm.SignEstimator(**PAPER_SCHEDULE).fit(data).coef_, theta)
        )
        errs_default.append(angular_error(signrm.SignEstimator().fit(data).coef_, theta))
    assert max(errs_bt) < 5 and max(errs_sign) < 5 and max(errs_default) < 5
    assert np.mean(errs_bt) < np.mean(errs_sign)  # MLE is efficient when BT is true
    # the default's BT candidate keeps it at RLHF's level there (not the pure sign fit's)
    assert np.mean(errs_default) < 1.1 * np.mean(errs_bt)


def test_linear_bt_matches_sklearn_logistic_regression():
    data, _ = homogeneous_bt(3, n=5000)
    D, s = data.differences, data.signs
    C = 10.0
    ref = LogisticRegression(C=C, fit_intercept=False, tol=1e-10, max_iter=1000).fit(D, s)
    # sklearn: C * sum(loss) + |w|^2/2  <=>  mean(loss) + |w|^2 / (2 C n)
    ours = signrm.BradleyTerry(l2=1.0 / (C * len(s)), tol=1e-10).fit(data)
    np.testing.assert_allclose(ours.coef_, ref.coef_.ravel(), rtol=1e-4, atol=1e-5)


def test_thurstone_link_and_probabilities():
    data, theta = homogeneous_bt(4, n=8000)
    probit = signrm.BradleyTerry(link="probit").fit(data)
    logit = signrm.BradleyTerry().fit(data)
    assert angular_error(probit.coef_, theta) < 5
    # probit coefficients are smaller by about pi/sqrt(3)/1.7 ~ 1/1.6-1.8
    ratio = np.linalg.norm(logit.coef_) / np.linalg.norm(probit.coef_)
    assert 1.4 < ratio < 2.0
    p = probit.predict_proba(data)
    assert np.all((p > 0) & (p < 1))
    assert signrm.metrics.order_consistency(p - 0.5, data.y) == pytest.approx(probit.score(data))


def test_ties_weights_and_margins():
    data, theta = homogeneous_bt(5, n=4000, with_alternatives=True)
    y = data.y.copy()
    y[::10] = 0.5
    tied = signrm.PreferenceData.from_arrays(data.xa, data.xb, y)
    sign = signrm.SignEstimator().fit(tied)
    assert angular_error(sign.coef_, theta) < 8
    # a weight of 0 on half the data is the same as dropping it (sign estimator)
    # (the fixed schedule: the default's folds hash row indices, which dropping rows renumbers)
    w = np.where(np.arange(len(y)) % 2 == 0, 1.0, 0.0)
    weighted = signrm.SignEstimator(**PAPER_SCHEDULE).fit(
        signrm.PreferenceData.from_arrays(data.xa, data.xb, y, weight=w)
    )
    dropped = signrm.SignEstimator(**PAPER_SCHEDULE).fit(tied.subset(np.arange(0, len(y), 2)))
    assert angular_error(weighted.coef_, dropped.coef_) < 0.5
    # a TRL-style margin shrinks nothing when zero, and a positive margin grows the coefficients
    zero = signrm.BradleyTerry().fit(
        signrm.PreferenceData.from_arrays(data.xa, data.xb, data.y, margin=np.zeros(len(y)))
    )
    big = signrm.BradleyTerry().fit(
        signrm.PreferenceData.from_arrays(data.xa, data.xb, data.y, margin=np.ones(len(y)))
    )
    assert np.linalg.norm(big.coef_) > np.linalg.norm(zero.coef_)
    centred = signrm.BradleyTerry(center_rewards_coef=1.0).fit(data)
    assert abs(centred.reward(data.xa).mean()) <= abs(zero.reward(data.xa).mean()) + 1e-3


def test_sign_restarts_keep_the_best_agreement():
    data, theta_bar = symmetric_heterogeneity(7, n=5000)
    one = signrm.SignEstimator(random_state=0).fit(data)
    many = signrm.SignEstimator(n_restarts=4, random_state=0).fit(data)
    assert many.agreement_ >= one.agreement_ - 1e-12


def test_sign_is_scale_free():
    data, _ = symmetric_heterogeneity(8, n=5000)
    scaled = signrm.PreferenceData.from_differences(data.differences * 1000.0, data.y)
    a = signrm.SignEstimator().fit(data).coef_
    b = signrm.SignEstimator(bt_l2=1e-10).fit(scaled).coef_
    assert angular_error(a, b) < 1.0


def test_latent_class_recovers_planted_classes():
    data, cls, thetas = planted_classes(0)
    em = signrm.LatentClassBT(n_classes=2, random_state=0).fit(data)
    order = np.argsort(em.users_)
    assert adjusted_rand_score(cls, em.labels_[order]) >= 0.9
    true_weights = np.bincount(cls, minlength=2) / len(cls)
    match = (
        0 if angular_error(em.coefs_[0], thetas[0]) < angular_error(em.coefs_[0], thetas[1]) else 1
    )
    est = em.weights_ if match == 0 else em.weights_[::-1]
    assert np.abs(est - true_weights).max() <= 0.05
    np.testing.assert_allclose(em.coef_, em.weights_ @ em.coefs_)
    assert em.responsibilities_.shape == (200, 2)
    assert np.isfinite(em.bic_) and em.bic_ > -2 * em.log_likelihood_
    one = signrm.LatentClassBT(n_classes=1, random_state=0).fit(data)
    assert em.bic_ < one.bic_  # BIC prefers the true K over a single class
    assert em.predict_user_class([0, 1]).shape == (2,)


def test_latent_class_needs_users():
    data, _ = homogeneous_bt(0, n=100)
    with pytest.raises(ValueError, match="needs user ids"):
        signrm.LatentClassBT().fit(data)


@pytest.mark.parametrize("backend", ["mlp", "lightgbm"])
def test_classification_rm_recovers_item_utilities(backend):
    data, feats, util = item_bt(0)
    clf = signrm.ClassificationRM(backend=backend, hidden_sizes=(128, 64), random_state=0).fit(data)
    assert spearman(clf.reward(feats), util) >= 0.9
    assert clf.score(data) > 0.6


def test_classification_rm_any_sklearn_classifier():
    data, feats, util = item_bt(1)
    clf = signrm.ClassificationRM(backend=LogisticRegression()).fit(data)
    assert spearman(clf.reward(feats), util) >= 0.9
    with pytest.raises(ValueError, match="no predict_proba"):
        from sklearn.svm import LinearSVC

        signrm.ClassificationRM(backend=LinearSVC()).fit(data)
    with pytest.raises(ValueError, match="backend must be"):
        signrm.ClassificationRM(backend="xgboost").fit(data)


@pytest.mark.parametrize("Est", [signrm.BradleyTerry, signrm.SignEstimator])
def test_mlp_heads_learn_item_utilities(Est):
    data, feats, util = item_bt(2)
    est = Est(head="mlp", hidden_sizes=(64, 32), random_state=0).fit(data)
    assert spearman(est.reward(feats), util) >= 0.9
    assert est.score(data) > 0.6


def test_mlp_heads_reproducible():
    data, feats, _ = item_bt(3, n=2000)
    a = signrm.SignEstimator(head="mlp", hidden_sizes=(16,), random_state=5).fit(data).reward(feats)
    b = signrm.SignEstimator(head="mlp", hidden_sizes=(16,), random_state=5).fit(data).reward(feats)
    np.testing.assert_array_equal(a, b)


def test_differences_only_data_rejected_by_nonlinear_models():
    data, _ = homogeneous_bt(0, n=200)
    for est in (
        signrm.BradleyTerry(head="mlp"),
        signrm.SignEstimator(head="mlp"),
        signrm.ClassificationRM(),
    ):
        with pytest.raises(ValueError, match="only hold differences"):
            est.fit(data)


def test_sklearn_conventions():
    est = signrm.SignEstimator(lambdas=(2, 8), n_stages=3)
    params = est.get_params()
    assert params["lambdas"] == (2, 8) and params["n_stages"] == 3
    est.set_params(n_stages=4)
    assert est.n_stages == 4
    assert not any(k.endswith("_") for k in vars(est))  # no learned state before fit
    data, _ = homogeneous_bt(0, n=500)
    assert est.fit(data) is est
    with pytest.raises(ValueError, match="not fitted"):
        signrm.BradleyTerry().reward(np.zeros((1, 8)))
    with pytest.raises(ValueError, match=r"expected shape \(n, 8\)"):
        est.reward(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="head must be"):
        signrm.BradleyTerry(head="tree").fit(data)
    with pytest.raises(TypeError, match="PreferenceData"):
        signrm.BradleyTerry().fit(np.zeros((3, 3)))
    all_ties = signrm.PreferenceData.from_differences(np.ones((3, 2)), [0.5, 0.5, 0.5])
    with pytest.raises(ValueError, match="every comparison is a tie"):
        signrm.SignEstimator().fit(all_ties)


def test_predict_and_proba_consistent():
    data, _ = homogeneous_bt(1, n=3000, with_alternatives=True)
    for est in (signrm.BradleyTerry(), signrm.SignEstimator()):
        est.fit(data)
        p = est.predict_proba(data)
        np.testing.assert_array_equal(est.predict(data), (p > 0.5).astype(int))
        # calibrated: mean predicted probability tracks the observed share of a-wins
        assert abs(p.mean() - data.y.mean()) < 0.02


def test_sign_cv_stage_selection():
    data, theta_bar = symmetric_heterogeneity(0, n=20_000)
    est = signrm.SignEstimator(cv_folds=3).fit(data)
    scores = np.array(est.cv_scores_)
    assert scores.shape[1] == len(est.blends) and 1 <= scores.shape[0] <= est.n_stages
    assert np.all(scores[:, 0] == scores[0, 0])  # blend 0 is the BT candidate at every stage
    assert est.validation_agreement_ == list(scores[:, -1])
    assert 0 <= est.selected_blend_ <= 1
    if est.selected_blend_ > 0:
        assert est.selected_lambda_ in resolve_lambdas(est.lambdas, est.n_stages)
    bt = signrm.BradleyTerry().fit(data)
    assert angular_error(est.coef_, theta_bar) < 0.8 * angular_error(bt.coef_, theta_bar)
    # the scores do not depend on the rule; the plain argmax (slack 0) takes the best of them
    argmax = signrm.SignEstimator(cv_folds=3, cv_slack=0.0).fit(data)
    assert argmax.cv_scores_ == est.cv_scores_
    lams = list(resolve_lambdas(est.lambdas, est.n_stages))
    b = list(est.blends).index(argmax.selected_blend_)
    j = lams.index(argmax.selected_lambda_) if argmax.selected_blend_ > 0 else 0
    assert scores[j, b] == scores.max()
    assert argmax.selected_blend_ >= est.selected_blend_ or (
        argmax.selected_lambda_ >= est.selected_lambda_
    )
    with pytest.raises(ValueError, match="select_stage must be"):
        signrm.SignEstimator(select_stage="validation").fit(data)


def test_sign_cv_falls_back_to_bt_on_homogeneous_data():
    """Where BT is the true model (and efficient) the default stays at or near RLHF's direction
    on most seeds: the sign path does not beat it out of sample by more than noise."""
    blends = []
    for seed in range(3):
        data, theta = homogeneous_bt(seed)
        est = signrm.SignEstimator().fit(data)
        bt = signrm.BradleyTerry().fit(data)
        assert angular_error(est.coef_, theta) < 1.1 * angular_error(bt.coef_, theta) + 0.5
        blends.append(est.selected_blend_)
    assert np.mean(blends) <= 0.5


def test_sign_estimator_says_why_there_is_no_starting_point():
    y = np.array([1.0, 0.0, 1.0, 0.5, 1.0])
    flat = signrm.PreferenceData.from_differences(np.zeros((5, 3)), y)
    with pytest.raises(ValueError, match="every non-tie comparison .* zero feature difference"):
        signrm.SignEstimator().fit(flat)
    # the same difference answered both ways: BT fit and mean signed difference are both zero
    balanced = signrm.PreferenceData.from_differences(np.ones((4, 2)), [1.0, 0.0, 1.0, 0.0])
    with pytest.raises(ValueError, match="both zero"):
        signrm.SignEstimator().fit(balanced)


def test_probit_mlp_uses_the_margin():
    data, feats, _ = item_bt(6, n=1500)
    margin = np.full(data.n_samples, 2.0)
    with_margin = signrm.PreferenceData.from_arrays(data.xa, data.xb, data.y, margin=margin)

    def fit(d, use_margin=True):
        est = signrm.BradleyTerry(
            head="mlp",
            link="probit",
            use_margin=use_margin,
            hidden_sizes=(8,),
            max_epochs=3,
            random_state=0,
        )
        return est.fit(d).reward(feats)

    plain = fit(data)
    np.testing.assert_array_equal(fit(with_margin, use_margin=False), plain)
    shifted = fit(with_margin)
    assert np.abs(shifted - plain).max() > 1e-3
    # the same in the distributed trainer (one process, no torchrun)
    from signrm.train import fit_distributed

    def fit_ddp(d):
        est = signrm.BradleyTerry(
            head="mlp", link="probit", hidden_sizes=(8,), max_epochs=2, random_state=0
        )
        return fit_distributed(est, d).reward(feats)

    assert np.abs(fit_ddp(with_margin) - fit_ddp(data)).max() > 1e-3


@pytest.mark.parametrize("param", ["max_iter", "n_init", "n_classes"])
def test_latent_class_validates_counts(param):
    data, _, _ = planted_classes(0, n_users=10, per_user=5)
    with pytest.raises(ValueError, match=f"{param} must be an integer >= 1, got 0"):
        signrm.LatentClassBT(**{param: 0}).fit(data)
    with pytest.raises(ValueError, match=f"{param} must be an integer >= 1, got 2.5"):
        signrm.LatentClassBT(**{param: 2.5}).fit(data)


def test_latent_class_predict_is_population_ordering_proba_is_mixture():
    data, _, _ = planted_classes(2, n_users=60, per_user=20)
    em = signrm.LatentClassBT(2, n_init=1, random_state=0).fit(data)
    D = data.differences
    np.testing.assert_array_equal(em.predict(data), (D @ em.coef_ > 0).astype(int))
    mixture = special.expit(D @ em.coefs_.T) @ em.weights_
    np.testing.assert_allclose(em.predict_proba(data), mixture)


def test_classification_rm_message_on_differences_suggests_a_linear_model():
    data, _ = homogeneous_bt(0, n=50)
    with pytest.raises(ValueError, match="BradleyTerry or SignEstimator with head='linear'"):
        signrm.ClassificationRM().fit(data)


def test_nonlinear_model_on_difference_only_data_says_what_to_do():
    rng = np.random.default_rng(5)
    xa, xb = rng.standard_normal((300, 4)), rng.standard_normal((300, 4))
    y = (rng.random(300) < 0.5).astype(float)
    model = signrm.BradleyTerry(head="mlp", hidden_sizes=(8,), max_epochs=2).fit(
        signrm.PreferenceData.from_arrays(xa, xb, y)
    )
    with pytest.raises(ValueError, match=r"non-linear head.*from_arrays\(xa, xb, y\)"):
        model.decision_function(signrm.PreferenceData.from_differences(xa - xb, y))
