"""Tests of signrm.engine.milp: the exact (mixed-integer) maximum-score solver."""

from __future__ import annotations

import numpy as np
import pytest

from signrm.engine.milp import fit_sign_milp
from signrm.errors import UserError


def _problem(n: int, d: int, seed: int, scale: float = 1.0):
    rng = np.random.default_rng(seed)
    D = rng.standard_normal((n, d))
    theta = np.ones(d) * scale
    y = (rng.random(n) < 1 / (1 + np.exp(-D @ theta))).astype(np.float64)
    return D, y


def _agreement(D, y, thetas, w=None):
    """Agreement mean_i w_i s_i sign(D_i theta) of each row of thetas (k, d) -> (k,)."""
    w = np.full(len(y), 1 / len(y)) if w is None else w / w.sum()
    return (w * (2 * y - 1)) @ np.sign(D @ thetas.T)


def _exact_2d(D, y):
    """Exact optimum in d = 2: one direction inside every cell of the line arrangement."""
    normal = np.arctan2(D[:, 1], D[:, 0])
    crit = np.sort(np.mod(np.r_[normal + np.pi / 2, normal - np.pi / 2], 2 * np.pi))
    mids = (crit + np.diff(np.r_[crit, crit[0] + 2 * np.pi]) / 2) % (2 * np.pi)
    return _agreement(D, y, np.c_[np.cos(mids), np.sin(mids)]).max()


def _fibonacci_sphere(k: int) -> np.ndarray:
    i = np.arange(k) + 0.5
    z = 1 - 2 * i / k
    phi = np.pi * (1 + 5**0.5) * i
    r = np.sqrt(1 - z**2)
    return np.c_[r * np.cos(phi), r * np.sin(phi), z]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_milp_matches_the_exact_optimum_in_two_dimensions(seed):
    D, y = _problem(40, 2, seed, scale=0.7)
    theta, info = fit_sign_milp(D, y, time_limit=30)
    assert info["status"] == "optimal" and info["gap"] == 0.0
    assert np.isclose(np.linalg.norm(theta), 1.0)
    assert np.isclose(info["agreement"], _agreement(D, y, theta[None])[0])
    assert np.isclose(info["agreement"], _exact_2d(D, y), atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_milp_beats_a_fine_grid_in_three_dimensions(seed):
    D, y = _problem(60, 3, seed, scale=0.7)
    theta, info = fit_sign_milp(D, y, time_limit=30)
    grid = _agreement(D, y, _fibonacci_sphere(100_000)).max()
    assert info["status"] == "optimal"
    assert info["agreement"] >= grid - 1e-12
    assert info["agreement"] <= grid + 2 / 60 + 1e-12  # a cell the grid missed: a comparison


def test_milp_is_at_least_the_annealed_sign_fit():
    from signrm import SignEstimator
    from signrm.data import PreferenceData

    D, y = _problem(60, 3, 5, scale=0.7)
    est = SignEstimator(lambdas=(1, 15), n_stages=5).fit(PreferenceData.from_differences(D, y))
    _, info = fit_sign_milp(D, y, time_limit=30)
    assert info["status"] == "optimal"
    assert info["agreement"] >= est.agreement_ - 1e-12


def test_ties_and_zero_weights_are_left_out_and_count_like_agreement_():
    D, y = _problem(50, 2, 3)
    y[:5] = 0.5
    w = np.ones(50)
    w[5:10] = 0.0
    w[10:20] = 3.0
    theta, info = fit_sign_milp(D, y, weight=w, time_limit=30)
    assert info["n_used"] == 40 and info["status"] == "optimal"
    assert np.isclose(info["agreement"], _agreement(D, y, theta[None], w)[0])
    # the weighted optimum, checked exactly on the 2-d arrangement with weights
    normal = np.arctan2(D[:, 1], D[:, 0])
    crit = np.sort(np.mod(np.r_[normal + np.pi / 2, normal - np.pi / 2], 2 * np.pi))
    mids = (crit + np.diff(np.r_[crit, crit[0] + 2 * np.pi]) / 2) % (2 * np.pi)
    best = _agreement(D, y, np.c_[np.cos(mids), np.sin(mids)], w).max()
    assert np.isclose(info["agreement"], best, atol=1e-12)


def test_a_few_thousand_comparisons_stop_at_the_time_limit_with_their_gap():
    D, y = _problem(2000, 6, 0, scale=0.5)
    theta0 = np.linalg.lstsq(D, 2 * y - 1, rcond=None)[0]
    theta, info = fit_sign_milp(D, y, time_limit=6.0, theta0=theta0)
    assert info["status"] in ("optimal", "limit")
    assert info["seconds"] < 6.0 + 20.0  # HiGHS checks its clock between steps
    assert info["bound"] >= info["agreement"] - 1e-12 and info["gap"] >= 0
    assert info["agreement"] >= _agreement(D, y, theta0[None])[0] - 1e-12  # never below theta0


def test_clear_errors():
    D, y = _problem(30, 2, 0)
    with pytest.raises(UserError, match="6000 comparisons x 2 features is beyond.*5000"):
        fit_sign_milp(np.ones((6000, 2)), np.ones(6000))
    with pytest.raises(UserError, match="16 features is beyond.*15 features"):
        fit_sign_milp(np.ones((10, 16)), np.ones(10))
    with pytest.raises(UserError, match="y: labels must be 0, 0.5 or 1; row 3"):
        fit_sign_milp(D, np.r_[y[:3], 2.0, y[4:]])
    bad = D.copy()
    bad[4, 1] = np.nan
    with pytest.raises(UserError, match="non-finite value nan at row 4, column 1"):
        fit_sign_milp(bad, y)
    with pytest.raises(UserError, match="weight: must be finite and >= 0; row 0"):
        fit_sign_milp(D, y, weight=np.r_[-1.0, np.ones(29)])
    with pytest.raises(UserError, match="no comparison with a non-tie label"):
        fit_sign_milp(D, np.full(30, 0.5))
    with pytest.raises(UserError, match="theta0: expected 2 finite values"):
        fit_sign_milp(D, y, theta0=np.ones(3))


def test_sign_estimator_milp_solver_certifies_the_annealed_fit():
    import signrm

    rng = np.random.default_rng(5)
    D = rng.standard_normal((120, 3))
    y = (rng.random(120) < 1 / (1 + np.exp(-(D @ np.array([1.0, -0.5, 0.2]))))).astype(float)
    data = signrm.PreferenceData.from_differences(D, y)
    anneal = signrm.SignEstimator(select_stage="last").fit(data)
    exact = signrm.SignEstimator(select_stage="last", solver="milp", milp_time_limit=30).fit(data)
    assert exact.agreement_ >= anneal.agreement_ - 1e-12  # never worse than its start
    assert exact.milp_info_["agreement"] == pytest.approx(exact.agreement_, abs=1e-9)
    assert np.linalg.norm(exact.coef_) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="solver must be"):
        signrm.SignEstimator(solver="exact").fit(data)
