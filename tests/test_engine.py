"""The one linear engine: passes, folds, the bandwidth choice, and the same errors on every path."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import signrm
from signrm.data.sources import MemorySource, NpyPair, ParquetShards
from signrm.engine.bandwidth import (
    blend_agreements,
    blend_directions,
    one_standard_error_choice,
)
from signrm.engine.linear import (
    Passes,
    bt_objective,
    fold_of,
    sign_stage,
    weight_totals,
)
from tests._sim import symmetric_heterogeneity


def _shards(tmp_path, data, rows=700):
    out = tmp_path / "shards"
    out.mkdir()
    D = data.differences
    for k, s in enumerate(range(0, data.n_samples, rows)):
        block = D[s : s + rows]
        cols = {
            "differences": pa.FixedSizeListArray.from_arrays(
                pa.array(block.ravel()), block.shape[1]
            ),
            "label": data.y[s : s + rows],
        }
        pq.write_table(pa.table(cols), out / f"part-{k:03d}.parquet")
    return out


def test_folds_depend_on_the_row_or_user_only():
    rows = np.arange(10_000)
    f = fold_of(rows, None, 2, seed=0, by_user=False)
    assert set(np.unique(f)) == {0, 1}
    assert abs(np.mean(f) - 0.5) < 0.02  # balanced to sampling noise (sd 0.005)
    # any split of the rows into chunks gives the same folds
    parts = np.concatenate([fold_of(r, None, 2, 0, False) for r in np.array_split(rows, 7)])
    assert np.array_equal(parts, f)
    assert not np.array_equal(fold_of(rows, None, 2, seed=1, by_user=False), f)
    users = np.array(["ann", "bob", "cy", "dee"] * 2500)
    fu = fold_of(rows, users, 3, seed=0, by_user=True)
    for u in np.unique(users):  # whole users per fold
        assert len(np.unique(fu[users == u])) == 1


def test_chunked_passes_equal_the_in_memory_pass(tmp_path):
    data, _ = symmetric_heterogeneity(1, n=3000, d=5)
    mem = Passes(MemorySource(data))
    shards = Passes(ParquetShards(_shards(tmp_path, data), chunk_rows=500, dtype=np.float64))
    theta = np.linspace(-1, 1, 5)
    keep = lambda r, u: fold_of(r, u, 2, 0, False) == 1  # noqa: E731
    for a, b in ((mem, shards), (mem.restrict(keep), shards.restrict(keep))):
        ta, tb = weight_totals(a), weight_totals(b)
        assert ta == tb
        fa, ga = bt_objective(a, ta, l2=1e-3)(theta)
        fb, gb = bt_objective(b, tb, l2=1e-3)(theta)
        assert fa == pytest.approx(fb, rel=1e-12) and np.allclose(ga, gb, rtol=1e-10)
        sa, sb = sign_stage(a, ta, theta, 4.0), sign_stage(b, tb, theta, 4.0)
        assert np.allclose(sa.theta, sb.theta, atol=1e-8)
    # the in-memory restriction copies its rows once, then reuses them
    view = mem.restrict(keep)
    first = next(view.blocks())
    assert next(view.blocks()) is first and len(first.y) == int(keep(np.arange(3000), None).sum())


def test_blend_agreements_and_their_paired_errors():
    data, theta_bar = symmetric_heterogeneity(2, n=4000, d=4)
    passes = Passes(MemorySource(data))
    totals = weight_totals(passes)
    u0 = np.eye(4)[0]
    stages = np.column_stack([theta_bar / np.linalg.norm(theta_bar), np.eye(4)[1]])
    blends = np.array([0, 0.5, 1.0])
    scores, _, sum_w2 = blend_agreements(passes, totals, u0, stages, blends)
    assert scores.shape == (2, 3) and sum_w2 == pytest.approx(1 / 4000)
    D, s = data.differences, data.signs
    hits = {}
    for j in range(2):
        dirs = blend_directions(u0, stages[:, j], blends)
        for b in range(3):
            hits[j, b] = s * np.sign(D @ dirs[:, b])
            assert scores[j, b] == pytest.approx(np.mean(hits[j, b]))
    best = (0, 2)
    _, se, _ = blend_agreements(passes, totals, u0, stages, blends, best=best)
    assert se[best] == 0.0
    for jb in [(0, 0), (1, 1), (1, 2)]:
        diff = hits[best] - hits[jb]
        assert se[jb] == pytest.approx(np.std(diff) / np.sqrt(len(s)), rel=1e-9)


def test_one_standard_error_rule_prefers_the_candidate_closest_to_bt():
    scores = np.array([[0.50, 0.52, 0.53], [0.50, 0.515, 0.54]])
    gap_se = np.array([[0.03, 0.01, 0.02], [0.03, 0.03, 0.0]])
    # best 0.54: (0, 1) is 0.02 below with se 0.01 (distinguishable), (1, 1) is 0.025 below with
    # se 0.03 (not): the latter is the closest qualifier to BT
    assert one_standard_error_choice(scores, gap_se, slack=1.0) == (1, 1)
    assert one_standard_error_choice(scores, gap_se, slack=0.0) == (1, 2)  # plain argmax
    assert one_standard_error_choice(scores, gap_se, slack=2.0) == (0, 0)  # BT itself


@pytest.mark.parametrize(
    "make",
    [
        lambda: signrm.BradleyTerry(),
        lambda: signrm.SignEstimator(),
        lambda: signrm.SignEstimator(select_stage="last"),
    ],
)
def test_degenerate_data_same_error_in_memory_and_streaming(tmp_path, make):
    rng = np.random.default_rng(0)
    D = rng.standard_normal((40, 3))
    ties = signrm.PreferenceData.from_differences(D, np.full(40, 0.5))
    np.save(tmp_path / "d.npy", D)
    np.save(tmp_path / "y.npy", np.full(40, 0.5))
    with pytest.raises(ValueError, match="every comparison is a tie") as mem:
        make().fit(ties)
    with pytest.raises(ValueError, match="every comparison is a tie") as stream:
        make().fit(NpyPair(tmp_path / "d.npy", None, tmp_path / "y.npy"))
    assert str(mem.value) == str(stream.value)
    zero = signrm.PreferenceData.from_differences(np.zeros((40, 3)), (rng.random(40) < 0.5) * 1.0)
    if isinstance(make(), signrm.SignEstimator):
        with pytest.raises(ValueError, match="no starting point"):
            make().fit(zero)


def test_a_stage_stops_once_its_gain_is_below_the_objectives_noise():
    """``noise_tol``: an iteration that raises the smoothed objective by less than ``noise_tol``
    standard errors ends the stage; what the remaining iterations buy is of that order."""
    data, _ = symmetric_heterogeneity(3, n=20_000, d=20)
    passes = Passes(MemorySource(data))
    totals = weight_totals(passes)
    u0 = np.ones(20)
    full = sign_stage(passes, totals, u0, 15.0, max_iter=200, tol=1e-9)
    early = sign_stage(passes, totals, u0, 15.0, max_iter=200, tol=1e-9, noise_tol=0.2)
    assert early.n_iter < full.n_iter
    D, s = data.differences, data.signs
    hit = s * np.tanh(0.5 * 15.0 * (D @ early.theta) / early.scale)
    se = np.std(hit) / np.sqrt(len(s))  # the objective's standard error over rows
    start = np.mean(s * np.tanh(0.5 * 15.0 * (D @ (u0 / np.linalg.norm(u0))) / early.scale))
    assert early.objective > start  # it did move uphill
    # what the full solve gains beyond the early stop is small against the sampling noise
    assert full.objective - early.objective < 1.0 * se  # measured 0.11-0.40 se (seeds 3-5)
    assert early.objective == pytest.approx(np.mean(hit), rel=1e-9)


def test_large_in_memory_folds_are_weighted_not_copied(monkeypatch):
    """Above COPY_FOLDS_MAX_BYTES a fold is the full block with zero weight outside it: the
    same fit as the copied fold, without the copy."""
    import signrm.engine.linear as linear

    data, _ = symmetric_heterogeneity(4, n=6000, d=6)
    copied = signrm.SignEstimator().fit(data)
    monkeypatch.setattr(linear, "COPY_FOLDS_MAX_BYTES", 0)
    keep = lambda r, u: fold_of(r, u, 2, 0, False) == 1  # noqa: E731
    view = Passes(MemorySource(data)).restrict(keep)
    block = next(view.blocks())
    assert len(block.y) == 6000 and block.w.sum() == int(keep(np.arange(6000), None).sum())
    weighted = signrm.SignEstimator().fit(data)
    assert np.allclose(weighted.coef_, copied.coef_, atol=1e-7)
    assert weighted.selected_lambda_ == copied.selected_lambda_


def test_small_fits_run_blas_on_one_thread_and_restore_it():
    from threadpoolctl import threadpool_info

    def blas_threads():
        return sorted(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas")

    data, _ = symmetric_heterogeneity(5, n=2000, d=4)
    before = blas_threads()
    passes = Passes(MemorySource(data), limit_threads=True)
    assert set(blas_threads()) <= {1}
    passes.close()
    assert blas_threads() == before
    signrm.SignEstimator().fit(data)  # closes its passes, even on the way out
    assert blas_threads() == before
    with pytest.raises(ValueError):
        signrm.SignEstimator().fit(
            signrm.PreferenceData.from_differences(np.zeros((50, 4)), np.ones(50))
        )
    assert blas_threads() == before


def test_newton_bt_matches_lbfgs_with_weights_ties_and_ridge():
    from signrm.engine.linear import fit_bt_arrays
    from signrm.engine.newton import bt_nll, fit_bt_newton

    rng = np.random.default_rng(4)
    D = rng.standard_normal((3000, 6))
    y = (rng.random(3000) < 1.0 / (1.0 + np.exp(-D @ np.linspace(-1, 2, 6)))).astype(float)
    y[:50] = 0.5  # ties: half a win each way
    w = rng.exponential(1.0, 3000)
    ref, _ = fit_bt_arrays(D, y, w, l2=1e-3, max_iter=2000, tol=1e-10)
    newton = fit_bt_newton(D, y, w, l2=1e-3, theta0=np.zeros(6), max_iter=50, tol=1e-10)
    assert np.allclose(newton, ref, atol=1e-5)
    wn = w / w.sum()
    assert bt_nll(D, y, wn, newton, 1e-3) <= bt_nll(D, y, wn, ref, 1e-3) + 1e-12
