"""The sign estimator's panel step: theta_bar from annotator ids where the majority ordering is
biased (signrm.estimators._panel)."""

from __future__ import annotations

import numpy as np
import pytest

import signrm
from signrm.estimators._panel import (
    PANEL_MAX_VALUES,
    panel_is_rich,
    shrinkage_target,
    shrinkage_weight,
)
from signrm.metrics import angular_error
from signrm.simulate import make_battery_population, simulate_comparisons
from tests._sim import symmetric_heterogeneity


def _panel(name: str, coupling: float, n: int, seed: int, dim: int = 8):
    """A battery panel of 200 personas on D ~ N(0, I) (the phase diagram's design)."""
    pop = make_battery_population(name, coupling, dim, random_state=1000 + seed)
    X = np.random.default_rng(seed).standard_normal((max(4000, n), dim)) / np.sqrt(2.0)
    return simulate_comparisons(pop, X, n, choice="bt", random_state=seed), pop.mean_utility()


@pytest.mark.parametrize("seed", [0, 1])
def test_panel_step_removes_the_majority_bias_of_a_decisive_minority(seed):
    # decisive_minority at coupling 1: the *majority* ordering the sign fit targets is further
    # from theta_bar than BT (population sign bias 20.4 vs BT 18.8 degrees), so the sign fit
    # alone cannot win; the NPMLE mixture of annotators can (measured: 1.8 / 5.6 degrees vs BT
    # 16.3 / 17.0, weight 0.99 / 1.00 on it; the latent-class model gave 7.0 / 7.5).
    data, theta_bar = _panel("decisive_minority", 1.0, 43_834, seed)
    est = signrm.SignEstimator(random_state=seed).fit(data)
    bt = angular_error(est.bt_coef_, theta_bar)
    assert est.panel_status_.startswith("ran")
    assert est.panel_weight_ > 0.5
    assert angular_error(est.coef_, theta_bar) < 0.4 * bt
    assert np.linalg.norm(est.coef_) == pytest.approx(1.0)
    off = signrm.SignEstimator(random_state=seed, panel="off").fit(data)
    assert off.panel_weight_ == 0.0 and off.panel_coef_ is None and off.panel_status_ == "off"
    assert angular_error(off.coef_, theta_bar) > 0.8 * bt  # the majority ordering's bias


def test_panel_step_is_skipped_without_ids_or_with_few_comparisons_per_annotator():
    data, _ = symmetric_heterogeneity(0, n=4000)
    est = signrm.SignEstimator().fit(data)
    assert est.panel_status_ == "skipped: no user ids" and est.panel_weight_ == 0.0
    sparse, _ = _panel("skewed", 1.0, 1000, 0)  # 5 comparisons per annotator, 8 features
    est = signrm.SignEstimator().fit(sparse)
    assert "comparisons per annotator" in est.panel_status_ and est.panel_coef_ is None
    with pytest.raises(ValueError, match="panel='on' needs user ids"):
        signrm.SignEstimator(panel="on").fit(data)
    forced = signrm.SignEstimator(panel="on").fit(sparse)
    assert forced.panel_status_.startswith("ran") and 0.0 <= forced.panel_weight_ <= 1.0


def test_panel_rule():
    assert panel_is_rich(43_834, 8, 200, 3, 1.0) == (True, "")
    assert not panel_is_rich(43_834, 384, 200, 3, 1.0)[0]  # 219 per annotator < 384 features
    assert "no user ids" in panel_is_rich(1000, 2, 0, 3, 1.0)[1]
    assert "annotators" in panel_is_rich(1000, 2, 5, 3, 1.0)[1]
    big = PANEL_MAX_VALUES // 4 + 1
    assert "feature values" in panel_is_rich(big, 4, 10, 3, 0.0)[1]


def test_shrinkage_weight():
    u = np.array([1.0, 0.0, 0.0])
    e = np.array([np.cos(0.2), np.sin(0.2), 0.0])  # 0.2 rad from u
    tight = [e + [0, 0.01, 0], e - [0, 0.01, 0]]  # halves 0.02 apart: noise << gap
    loose = [e + [0, 0.5, 0], e - [0, 0.5, 0]]  # halves far apart: noise >> gap
    assert shrinkage_weight(u, e, tight) > 0.99
    assert shrinkage_weight(u, e, loose) == 0.0
    assert shrinkage_weight(u, u, loose) == 1.0  # the same direction either way
    gap2 = float(np.sum((u - e) ** 2))
    mid = [e + [0, 0.1, 0], e - [0, 0.1, 0]]
    d = mid[0] / np.linalg.norm(mid[0]) - mid[1] / np.linalg.norm(mid[1])
    assert shrinkage_weight(u, e, mid) == pytest.approx(1 - d @ d / (4 * gap2))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_panel_step_stays_out_of_the_way_on_a_homogeneous_panel(seed):
    # Every annotator follows the same BT model: the NPMLE mixture agrees with the closer of the
    # sign and BT fits up to its own noise, so the weight on it is small (measured: 0.00 on
    # seeds 0-5, the mixture 1.0-2.0 degrees off theta) and the estimate is that fit.
    rng = np.random.default_rng(seed)
    n, d = 20_000, 8
    theta = rng.standard_normal(d)
    theta *= 2.0 / np.linalg.norm(theta)
    D = rng.standard_normal((n, d))
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-D @ theta))).astype(float)
    data = signrm.PreferenceData.from_differences(D, y, user=rng.integers(0, 100, n))
    est = signrm.SignEstimator().fit(data)
    off = signrm.SignEstimator(panel="off").fit(data)
    assert est.panel_status_.startswith("ran") and est.panel_weight_ < 0.5
    assert angular_error(est.coef_, theta) < angular_error(off.coef_, theta) + 0.25
    assert angular_error(est.panel_coef_, theta) < 3.0  # the mixture finds theta too


def test_panel_step_streams_and_agrees_with_memory(tmp_path):
    data, _ = _panel("experts_crowd", 1.0, 6000, 2, dim=4)
    D = data.differences.astype(np.float32)
    users = np.asarray(data.user).astype(np.int64)
    mem = signrm.SignEstimator().fit(signrm.PreferenceData.from_differences(D, data.y, user=users))
    np.save(tmp_path / "differences.npy", D)
    np.save(tmp_path / "y.npy", data.y)
    np.save(tmp_path / "user.npy", users)
    src = signrm.data.open_source(tmp_path, chunk_rows=1000)
    stream = signrm.SignEstimator().fit(src)
    assert mem.panel_status_.startswith("ran")
    assert stream.panel_weight_ == pytest.approx(mem.panel_weight_, abs=1e-6)  # chunked sums
    assert angular_error(stream.coef_, mem.coef_) < 1e-3


@pytest.mark.parametrize(
    ("model", "target", "name"),
    [
        ("npmle", "signrm.engine.npmle.fit_npmle", "NPMLE"),
        ("latent_class", "signrm.LatentClassBT.fit", "latent-class"),
    ],
)
def test_a_failed_panel_fit_falls_back_to_the_sign_fit(monkeypatch, model, target, name):
    data, _ = _panel("skewed", 1.0, 4000, 0)  # 20 comparisons per annotator, 8 features
    off = signrm.SignEstimator(panel="off").fit(data)

    def fail(*args, **kwargs):
        raise ValueError("no luck")

    monkeypatch.setattr(target, fail)
    with pytest.warns(UserWarning, match="panel step skipped"):
        est = signrm.SignEstimator(panel_model=model).fit(data)
    assert est.panel_status_.startswith(f"skipped: the {name} fit failed")
    assert np.allclose(est.coef_, off.coef_)
    with pytest.raises(ValueError, match="no luck"):
        signrm.SignEstimator(panel="on", panel_model=model).fit(data)


def test_latent_class_panel_model_runs_and_says_so():
    data, theta_bar = _panel("decisive_minority", 1.0, 20_000, 0)
    est = signrm.SignEstimator(panel_model="latent_class", panel_classes=2).fit(data)
    assert "on the latent classes (2) estimate, shrunk towards the" in est.panel_status_
    assert angular_error(est.panel_coef_, theta_bar) < angular_error(est.bt_coef_, theta_bar)
    with pytest.raises(ValueError, match="panel_model"):
        signrm.SignEstimator(panel_model="em").fit(data)


def test_panel_on_is_refused_where_it_cannot_run():
    data, _ = _panel("skewed", 1.0, 3000, 0)
    with pytest.raises(ValueError, match="panel='on' needs the linear head and solver='anneal'"):
        signrm.SignEstimator(panel="on", head="mlp").fit(data)
    with pytest.raises(ValueError, match="panel='on' needs the linear head and solver='anneal'"):
        signrm.SignEstimator(panel="on", solver="milp").fit(data)
    with pytest.raises(ValueError, match="panel_classes"):
        signrm.SignEstimator(panel_classes=1).fit(data)
    milp = signrm.SignEstimator(solver="milp", milp_time_limit=5.0).fit(data.subset(range(200)))
    assert milp.panel_status_ == "off (solver='milp')"


def test_shrinkage_target_is_the_candidate_closest_to_the_panel_estimate():
    e = np.array([1.0, 0.0, 0.0])
    near, far = np.array([2.0, 0.1, 0.0]), np.array([1.0, 1.0, 0.0])  # scale does not matter
    assert shrinkage_target({"sign fit": far, "BT fit": near}, e) == "BT fit"
    assert shrinkage_target({"sign fit": near, "BT fit": far}, e) == "sign fit"


@pytest.mark.parametrize("seed", [0, 1])
def test_panel_step_output_is_the_blend_its_attributes_describe(seed):
    data, _ = _panel("heavy_tailed", 0.0, 20_000, seed)
    est = signrm.SignEstimator(random_state=seed).fit(data)
    off = signrm.SignEstimator(random_state=seed, panel="off").fit(data)
    assert est.panel_target_ in ("sign", "bt")
    assert est.panel_status_.endswith(
        f"shrunk towards the {est.panel_target_.replace('bt', 'BT')} fit"
    )
    c = off.coef_ if est.panel_target_ == "sign" else est.bt_coef_
    c = c / np.linalg.norm(c)
    a = est.panel_weight_
    blend = (1 - a) * c + a * est.panel_coef_
    np.testing.assert_allclose(est.coef_, blend / np.linalg.norm(blend), atol=1e-9)
    e = est.panel_coef_
    others = [off.coef_, est.bt_coef_]
    gaps = [np.sum((v / np.linalg.norm(v) - e) ** 2) for v in others]
    assert np.sum((c - e) ** 2) == pytest.approx(min(gaps))
