"""The nonparametric mixture of BT annotators (signrm.engine.npmle)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import log_expit

from signrm.engine.newton import fit_bt_newton
from signrm.engine.npmle import (
    fit_npmle,
    mixing_weights,
    npmle_grid,
    per_user_bt,
    user_loglik,
)
from signrm.metrics import angular_error


def _two_types(seed: int, n_users: int = 120, per_user: int = 150, d: int = 4):
    """A decisive minority with its own taste: a fifth of the annotators have utility 6 e_2,
    the rest 1.5 e_1 + 0.5 e_2 (theta_bar = 1.2 e_1 + 1.6 e_2)."""
    rng = np.random.default_rng(seed)
    thetas = np.zeros((n_users, d))
    decisive = np.arange(n_users) < n_users // 5
    thetas[decisive, 1] = 6.0
    thetas[~decisive, :2] = (1.5, 0.5)
    codes = np.repeat(np.arange(n_users), per_user)
    D = rng.standard_normal((codes.size, d))
    y = rng.random(codes.size) < 1 / (1 + np.exp(-np.einsum("nd,nd->n", D, thetas[codes])))
    return D, y.astype(float), codes, thetas.mean(axis=0)


@pytest.mark.parametrize("block_values", [1 << 22, 40])  # one block; 2-annotator, 2-row blocks
def test_per_user_fits_are_each_annotators_ridge_bt(monkeypatch, block_values):
    import signrm.engine.npmle as npmle

    monkeypatch.setattr(npmle, "_BLOCK_VALUES", block_values)
    D, y, codes, _ = _two_types(0, n_users=6, per_user=80)
    w = np.random.default_rng(1).uniform(0.5, 2.0, y.size)
    fits = per_user_bt(D, y, w, codes, 7, l2=2.0, n_steps=50)
    for u in range(6):
        rows = codes == u
        # fit_bt_newton's loss is per unit of total weight: l2 = 2 / sum(w)
        ref = fit_bt_newton(
            D[rows], y[rows], w[rows], l2=2.0 / w[rows].sum(), theta0=np.zeros(4), max_iter=50,
            tol=1e-10,
        )  # fmt: skip
        np.testing.assert_allclose(fits[u], ref, atol=1e-6)
    np.testing.assert_array_equal(fits[6], 0.0)  # an annotator without rows


def test_loglik_table_matches_the_direct_sum():
    D, y, codes, _ = _two_types(2, n_users=10, per_user=60)
    y[::7] = 0.3  # soft labels
    w = np.random.default_rng(3).uniform(0.0, 2.0, y.size)
    atoms = np.random.default_rng(4).standard_normal((9, 4)) * 3
    table = user_loglik(D, y, w, codes, 10, atoms)
    m = D @ atoms.T
    direct = w[:, None] * (y[:, None] * log_expit(m) + (1 - y[:, None]) * log_expit(-m))
    ref = np.stack([direct[codes == u].sum(axis=0) for u in range(10)])
    np.testing.assert_allclose(table, ref, rtol=1e-5, atol=1e-3)  # float32 terms


def test_mixing_weights_reach_the_npmle_optimality_condition():
    # The NPMLE's weights pi are optimal exactly when no atom's gradient exceeds the number of
    # annotators: mean_u lik_uk / sum_j pi_j lik_uj <= 1 for every atom k, = 1 on the support.
    rng = np.random.default_rng(5)
    loglik = rng.normal(0.0, 3.0, (80, 25))
    pi, posterior, ll, n_iter = mixing_weights(loglik, max_iter=20_000, tol=1e-13)
    lik = np.exp(loglik - loglik.max(axis=1, keepdims=True))
    grad = (lik / (lik @ pi)[:, None]).mean(axis=0)
    assert grad.max() < 1.0 + 1e-3
    assert np.all(np.abs(grad[pi > 1e-3] - 1.0) < 1e-3)
    np.testing.assert_allclose(posterior.sum(axis=1), 1.0)
    assert ll == pytest.approx(np.log(np.exp(loglik) @ pi).sum())
    assert pi.sum() == pytest.approx(1.0) and 1 < n_iter < 20_000


def test_grid_uses_every_fit_or_kmeans_centres():
    fits = np.random.default_rng(6).standard_normal((30, 3))
    grid = npmle_grid(fits, scales=(0.5, 2.0))
    assert grid.shape == (61, 3)
    np.testing.assert_allclose(grid[30:60], 2.0 * fits)
    np.testing.assert_array_equal(grid[-1], 0.0)
    small = npmle_grid(fits, scales=(0.5, 2.0), max_atoms=21, seed=0)
    assert small.shape == (21, 3)
    np.testing.assert_array_equal(small, npmle_grid(fits, scales=(0.5, 2.0), max_atoms=21, seed=0))


@pytest.mark.parametrize("seed", [0, 1])
def test_npmle_recovers_theta_bar_where_pooled_bt_is_biased(seed):
    # Pooled BT leans towards the crowd (the decisive minority's labels saturate); the mixture
    # weights each annotator by their own utility. Measured on seeds 0-3: NPMLE 1.9 / 2.0 / 2.6 /
    # 1.7 degrees, pooled BT 17.5 / 17.6 / 16.9 / 18.3.
    D, y, codes, theta_bar = _two_types(seed)
    w = np.ones(y.size)
    out = fit_npmle(D, y, w, codes, int(codes.max()) + 1)
    pooled = fit_bt_newton(D, y, w, l2=1e-6, theta0=np.zeros(4), max_iter=50)
    assert angular_error(pooled, theta_bar) > 12.0
    assert angular_error(out["coef"], theta_bar) < 0.3 * angular_error(pooled, theta_bar)
    assert out["weights"].sum() == pytest.approx(1.0)


def test_split_estimates_share_the_grid_and_leave_the_full_fit_unchanged():
    D, y, codes, theta_bar = _two_types(3)
    w = np.ones(y.size)
    halves = np.random.default_rng(7).integers(0, 2, y.size)
    whole = fit_npmle(D, y, w, codes, int(codes.max()) + 1)
    split = fit_npmle(D, y, w, codes, int(codes.max()) + 1, splits=halves)
    np.testing.assert_allclose(split["coef"], whole["coef"], rtol=1e-9, atol=1e-12)
    for part, coef in enumerate(split["split_coefs"]):
        rows = halves == part
        alone = fit_npmle(D[rows], y[rows], w[rows], codes[rows], int(codes.max()) + 1)
        # the same estimate on the part's rows, up to the grid (built from all rows here)
        assert angular_error(coef, alone["coef"]) < 5.0
        assert angular_error(coef, theta_bar) < 10.0


def test_estimator_fits_saves_and_predicts(tmp_path):
    import signrm

    D, y, codes, theta_bar = _two_types(4, n_users=60)
    y[:50] = 0.5  # ties carry no information
    names = np.array([f"annotator-{c}" for c in codes])
    data = signrm.PreferenceData.from_differences(D, y, user=names)
    est = signrm.NonparametricMixtureBT().fit(data)
    keep = y != 0.5
    ref = fit_npmle(D[keep], y[keep], np.ones(keep.sum()), codes[keep], 60)
    np.testing.assert_allclose(est.coef_, ref["coef"])
    assert est.users_.shape == (60,) and est.user_coefs_.shape == (60, 4)
    assert angular_error(est.coef_, theta_bar) < 10.0
    p = est.predict_proba(data)
    assert p.shape == (y.size,) and np.all((p > 0) & (p < 1))
    back = signrm.load(est.save(tmp_path / "npmle"))
    np.testing.assert_array_equal(back.coef_, est.coef_)
    np.testing.assert_array_equal(back.predict_proba(data), p)
    with pytest.raises(ValueError, match="user"):
        signrm.NonparametricMixtureBT().fit(signrm.PreferenceData.from_differences(D, y))
    with pytest.raises(ValueError, match="max_atoms=5 must exceed"):
        signrm.NonparametricMixtureBT(max_atoms=5).fit(data)
    with pytest.raises(ValueError, match="scales"):
        signrm.NonparametricMixtureBT(scales=(1.0, -2.0)).fit(data)


def test_grid_with_repeated_fits_and_a_dominant_annotator():
    # Many identical fits (e.g. annotators who answered the same few pairs alike) above the grid
    # size: the distinct fits make the grid, without a k-means warning.
    fits = np.repeat(np.eye(3), 40, axis=0)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        grid = npmle_grid(fits, scales=(1.0, 2.0), max_atoms=21)
    assert grid.shape == (7, 3)
    # An annotator whose likelihoods span thousands of nats keeps finite posteriors.
    loglik = np.array([[0.0, -5000.0, -9000.0], [-1.0, 0.0, -2.0]])
    pi, posterior, ll, _ = mixing_weights(loglik)
    assert np.all(np.isfinite(posterior)) and np.isfinite(ll)


def test_annotator_index_of_mixed_ids():
    from signrm.engine.npmle import annotator_index

    ids, index = annotator_index(np.array([3, "b", 3, "a"], dtype=object))
    assert ids.tolist() == ["3", "a", "b"] and index.tolist() == [0, 2, 0, 1]
    ids, index = annotator_index(np.array([7, 2, 7]))
    assert ids.tolist() == [2, 7] and index.tolist() == [1, 0, 1]


def test_ridge_fits_minimise_their_objective_and_follow_the_features_units():
    from scipy.optimize import minimize

    from signrm.engine.npmle import feature_metric

    D, y, codes, _ = _two_types(5, n_users=8, per_user=30)
    w = np.ones(y.size)
    center, metric = np.array([0.5, -0.2, 0.1, 0.0]), feature_metric(D * [3.0, 1, 1, 1], w)
    fits = per_user_bt(D, y, w, codes, 8, l2=3.0, center=center, metric=metric, n_steps=50)
    for u in (0, 7):
        rows = codes == u

        def objective(t, rows=rows):
            m = D[rows] @ t
            nll = np.logaddexp(0.0, m) - y[rows] * m
            return nll.sum() + 1.5 * (t - center) @ metric @ (t - center)

        ref = minimize(objective, center, method="BFGS", options={"gtol": 1e-10}).x
        np.testing.assert_allclose(fits[u], ref, atol=1e-5)
    # Measuring feature 0 in other units (x 10) rescales its coefficient and nothing else:
    # the ridge is in the features' own metric, not in their units.
    S = np.array([10.0, 1.0, 1.0, 1.0])
    scaled = fit_npmle(D * S, y, w, codes, int(codes.max()) + 1)
    plain = fit_npmle(D, y, w, codes, int(codes.max()) + 1)
    np.testing.assert_allclose(scaled["coef"] * S, plain["coef"], rtol=1e-4, atol=1e-6)
