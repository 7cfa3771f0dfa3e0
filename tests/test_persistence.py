import json

import numpy as np
import pytest

import signrm
from tests._sim import item_bt, planted_classes


def _models():
    return [
        signrm.BradleyTerry(),
        signrm.BradleyTerry(link="probit"),
        signrm.SignEstimator(),
        signrm.BradleyTerry(head="mlp", hidden_sizes=(16, 8), max_epochs=3, random_state=0),
        signrm.SignEstimator(head="mlp", hidden_sizes=(16,), max_epochs=2, random_state=0),
        signrm.ClassificationRM(hidden_sizes=(16,), max_epochs=2, random_state=0),
        signrm.ClassificationRM(backend="lightgbm", n_estimators=20, random_state=0),
    ]


@pytest.mark.parametrize(
    "est", _models(), ids=lambda e: f"{type(e).__name__}-{getattr(e, 'head', '')}"
)
def test_save_load_identical_rewards(tmp_path, est):
    data, feats, _ = item_bt(0, n=1500)
    est.fit(data)
    path = est.save(tmp_path / "model")
    meta = json.loads((path / "model.json").read_text())
    assert meta["class"] == type(est).__name__
    back = signrm.load(path)
    assert type(back) is type(est)
    assert back.get_params() == est.get_params()
    np.testing.assert_array_equal(back.reward(feats), est.reward(feats))
    np.testing.assert_array_equal(back.predict_proba(data), est.predict_proba(data))
    # saving again over the same directory replaces it atomically
    est.save(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_latent_class_roundtrip(tmp_path):
    data, _, _ = planted_classes(1, n_users=40, per_user=20)
    em = signrm.LatentClassBT(2, n_init=2, random_state=0).fit(data)
    back = signrm.load(em.save(tmp_path / "em"))
    np.testing.assert_array_equal(back.responsibilities_, em.responsibilities_)
    np.testing.assert_array_equal(back.predict_proba(data), em.predict_proba(data))


def test_no_pickle_and_clear_errors(tmp_path):
    from sklearn.linear_model import LogisticRegression

    data, _, _ = item_bt(0, n=500)
    est = signrm.ClassificationRM(backend=LogisticRegression()).fit(data)
    with pytest.raises(ValueError, match="pickle"):
        est.save(tmp_path / "m")
    assert not (tmp_path / "m").exists()
    with pytest.raises(FileNotFoundError, match="not a signrm model"):
        signrm.load(tmp_path)
    with pytest.raises(ValueError, match="not fitted"):
        signrm.SignEstimator().save(tmp_path / "x")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "model.json").write_text("{oops")
    with pytest.raises(ValueError, match="corrupt model file"):
        signrm.load(tmp_path / "bad")


def test_sign_estimator_keeps_stage_selection(tmp_path):
    from tests._sim import symmetric_heterogeneity

    data, _ = symmetric_heterogeneity(3, n=3000, d=4)
    cv = signrm.SignEstimator(select_stage="cv", cv_folds=2).fit(data)
    back = signrm.load(cv.save(tmp_path / "cv"))
    assert back.selected_lambda_ == cv.selected_lambda_
    assert back.selected_blend_ == cv.selected_blend_
    assert back.validation_agreement_ == cv.validation_agreement_
    assert back.cv_scores_ == cv.cv_scores_ and len(back.cv_scores_) >= 1
    last = signrm.SignEstimator(lambdas=(1, 15), n_stages=5, select_stage="last").fit(data)
    back = signrm.load(last.save(tmp_path / "last"))
    assert back.selected_lambda_ == last.selected_lambda_ == 15.0
    assert back.validation_agreement_ is None


@pytest.mark.parametrize(
    "est",
    [
        signrm.BradleyTerry(head="mlp", hidden_sizes=[8, 4], max_epochs=1, random_state=0),
        signrm.SignEstimator(lambdas=[1.0, 4.0, 9.0], hidden_sizes=[8]),
        signrm.ClassificationRM(hidden_sizes=[8], max_epochs=1, random_state=0),
    ],
    ids=lambda e: type(e).__name__,
)
def test_list_params_come_back_as_lists(tmp_path, est):
    data, feats, _ = item_bt(0, n=400)
    est.fit(data)
    back = signrm.load(est.save(tmp_path / "model"))
    assert back.get_params() == est.get_params()
    assert {k: type(v) for k, v in back.get_params().items()} == {
        k: type(v) for k, v in est.get_params().items()
    }
    np.testing.assert_array_equal(back.reward(feats), est.reward(feats))
