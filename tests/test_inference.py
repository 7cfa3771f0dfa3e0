"""Subsampling inference: BT-vs-sign disagreement flags heterogeneity bias, not noise."""

from __future__ import annotations

import numpy as np
import pytest

from signrm import BradleyTerry
from signrm.inference import (
    Interval,
    SubsamplingResult,
    subsample_size,
    subsampling_inference,
)
from signrm.metrics import angular_error
from signrm.simulate import make_population, simulate_comparisons

#: annotators of the test panels (each answers about 10 of 20,000 comparisons)
N_PERSONAS = 2000


def panel(kind: str, seed: int, n: int = 20_000):
    """METHODS.md section 2 (d = 8, xi = +/- Exp(mean 3) e_1; BT 11-14 deg off) or homogeneous BT.

    2,000 personas answer random pairs of 2,000 Gaussian alternatives; ``user`` = persona.
    """
    if kind == "biased":
        pop = make_population(
            "exp_two_point", N_PERSONAS, 8, spread=3 / np.sqrt(2), random_state=seed
        )
    else:
        pop = make_population("homogeneous", N_PERSONAS, 8, scale_dist="none", random_state=seed)
    feats = np.random.default_rng(100 + seed).standard_normal((2000, 8))
    return simulate_comparisons(pop, feats, n, random_state=seed), pop.mean_utility()


@pytest.mark.parametrize("seed", [0, 1])
def test_disagreement_interval_excludes_zero_on_biased_panel(seed):
    data, _ = panel("biased", seed)
    res = subsampling_inference(data, random_state=seed)
    assert res.bias_detected and res.disagreement.excludes(0.0)
    assert res.unit == "user" and res.n_units == N_PERSONAS and res.subsample_units == 159
    # BT is 11-14 deg off theta_bar, sign 3-5 deg: their angle is well above noise
    assert res.angle.low > 0 and res.angle.estimate > 8


@pytest.mark.parametrize("seed", [0, 1])
def test_disagreement_interval_includes_zero_on_homogeneous_bt(seed):
    data, theta = panel("homogeneous", seed)
    res = subsampling_inference(data, random_state=seed)
    assert not res.bias_detected and res.disagreement.low == 0.0
    assert res.disagreement.high >= res.disagreement.estimate > 0
    # the sign fit lies within its angular confidence radius of the truth
    assert res.direction_radius is not None


@pytest.mark.slow
def test_flags_on_9_of_10_seeds_each_and_radius_covers_truth():
    biased = homogeneous = covered = 0
    for seed in range(10):
        data, _ = panel("biased", seed)
        biased += subsampling_inference(data, random_state=seed).bias_detected
        data, theta = panel("homogeneous", seed)
        res = subsampling_inference(data, random_state=seed)
        homogeneous += not res.bias_detected
        from signrm.inference import sharp_sign_estimator

        sign = sharp_sign_estimator().fit(data)
        covered += angular_error(sign.coef_, theta) <= res.direction_radius
    assert biased >= 9 and homogeneous >= 9 and covered >= 8, (biased, homogeneous, covered)


def test_any_two_estimators_by_comparison_and_reproducible():
    data, _ = panel("homogeneous", 3, n=3000)
    kw = dict(by="comparison", n_subsamples=20, random_state=5)
    a = subsampling_inference(data, BradleyTerry(link="probit"), BradleyTerry(), rate=0.5, **kw)
    b = subsampling_inference(data, BradleyTerry(link="probit"), BradleyTerry(), rate=0.5, **kw)
    assert isinstance(a, SubsamplingResult) and a == b
    assert a.unit == "comparison" and a.subsample_units == subsample_size(3000) == 208
    assert a.estimator_name == "BradleyTerry" and not a.bias_detected
    assert a.to_dict()["bias_detected"] is False


def test_subsample_size_and_errors():
    assert subsample_size(1000) == 100 and subsample_size(3) == 2
    with pytest.raises(ValueError, match="at least 3 independent units"):
        subsample_size(2)
    data, _ = panel("homogeneous", 0, n=500)
    n_users = len(np.unique(data.user))
    with pytest.raises(
        ValueError, match=rf"subsample_units must be in \[2, {n_users - 1}\] \(users\)"
    ):
        subsampling_inference(data, subsample_units=n_users)
    with pytest.raises(ValueError, match="n_subsamples must be >= 10"):
        subsampling_inference(data, n_subsamples=5)
    with pytest.raises(ValueError, match="by='users'"):
        subsampling_inference(data, by="users")


def test_interval_excludes():
    iv = Interval(0.1, 0.05, 0.2)
    assert iv.excludes(0.0) and not iv.excludes(0.1) and str(iv) == "0.1 [0.05, 0.2]"


def test_batched_margins_give_each_models_decision_function():
    from signrm.inference import _margins, sharp_sign_estimator

    data, _ = panel("biased", 4, n=3000)
    seen: list[int] = []
    kw = dict(n_subsamples=12, random_state=1)
    one = subsampling_inference(data, callback=seen.append, **kw)
    assert seen == list(range(12))  # every subsample, in order, after its statistics
    sign, bt = sharp_sign_estimator().fit(data), BradleyTerry().fit(data)
    assert subsampling_inference(data, sign, bt, fitted=(sign, bt), **kw) == one
    # linear margins in one product with the differences = each model's decision_function
    expected = np.column_stack([sign.decision_function(data), bt.decision_function(data)])
    np.testing.assert_allclose(_margins([sign, bt], data), expected, rtol=1e-10, atol=1e-12)

    class Overridden(BradleyTerry):  # its own decision_function: scored through it
        def decision_function(self, data):
            return super().decision_function(data)

    own = Overridden().fit(data)
    np.testing.assert_allclose(_margins([own, sign], data), expected[:, ::-1], rtol=1e-10)
    # such models are scored one subsample at a time, to the same statistics
    res = subsampling_inference(data, sign, Overridden(), fitted=(sign, own), **kw)
    assert res.disagreement == one.disagreement and res.angle == one.angle
