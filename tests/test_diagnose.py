"""``diagnose`` and ``signrm diagnose``: the flagging rule, per-annotator parts, the report."""

from __future__ import annotations

import json

import numpy as np
import pytest

from signrm.cli import main
from signrm.diagnose import annotator_agreement, decisiveness, diagnose
from signrm.simulate import make_population, simulate_arrays, simulate_comparisons
from tests.test_inference import N_PERSONAS, panel


def test_flags_biased_panel_recommends_sign():
    data, _ = panel("biased", 0)
    report = diagnose(data, k_max=2, loao_folds=5)
    assert report.bias_detected and report.recommendation == "SignEstimator"
    assert "excludes 0" in report.reason
    assert report.counts.sum() == len(data) and len(report.users) == N_PERSONAS
    assert set(report.bic) == {1, 2} and report.best_k == 2  # two taste groups (+/- xi)
    md = report.to_markdown({"BT vs sign": "bt_vs_sign.png"})
    assert "**Recommendation: SignEstimator.**" in md and "![BT vs sign](bt_vs_sign.png)" in md


def test_does_not_flag_homogeneous_bt():
    data, _ = panel("homogeneous", 0)
    report = diagnose(data, k_max=0, loao_folds=5)
    assert not report.bias_detected and report.recommendation == "BradleyTerry"
    assert "includes 0" in report.reason and report.bic == {}


def _scaled_panel(scale_dist: str, seed: int = 0):
    """One direction, confidence varying (lognormal, sigma 1) or not; 100 annotators x 200.

    Returns the data and each annotator's true confidence |theta_u| (U,).
    """
    pop = make_population("homogeneous", 100, 4, scale_dist=scale_dist, random_state=seed)
    feats = np.random.default_rng(seed).standard_normal((500, 4))
    kw = dict(per_user=200, random_state=seed)
    data = simulate_comparisons(pop, feats, 20_000, **kw)
    persona = simulate_arrays(pop, feats, 20_000, **kw)["persona"]  # same draws
    true = pop.confidences()[persona[np.unique(data.user, return_index=True)[1]]]
    return data, true


def test_decisiveness_recovers_annotator_confidence():
    from signrm import BradleyTerry

    data, true = _scaled_panel("lognormal")
    margins = BradleyTerry().fit(data).decision_function(data)
    raw, se, shrunk, mu, tau = decisiveness(data, margins)
    assert raw.shape == se.shape == shrunk.shape == (100,)
    assert tau / mu > 0.5  # lognormal(sigma 1) confidences: sd/mean about 1.3
    assert np.corrcoef(shrunk, true)[0, 1] > 0.9
    data, _ = _scaled_panel("none")
    *_, mu, tau = decisiveness(data, BradleyTerry().fit(data).decision_function(data))
    assert tau / mu < 0.15  # equal confidences: little spread beyond noise


def test_annotator_agreement_spots_a_contrarian():
    data, _ = panel("homogeneous", 1, n=4000)
    y = data.y.copy()
    y[data.user == 7] = 1 - y[data.user == 7]  # annotator 7 answers the opposite way
    from signrm.data import PreferenceData

    flipped = PreferenceData.from_differences(data.differences, y, user=data.user)
    agree = annotator_agreement(flipped, n_folds=5)
    users = np.unique(flipped.user)
    assert agree[users == 7][0] < 0.35 and np.median(agree) > 0.65


def test_cli_diagnose_writes_report_and_plots(tmp_path, capsys):
    data, _ = panel("homogeneous", 2, n=3000)
    path = tmp_path / "prefs.csv"
    data.write(path)
    out = tmp_path / "diag"
    code = main(
        [
            "diagnose",
            str(path),
            "--out",
            str(out),
            "--k-max",
            "2",
            "--subsamples",
            "20",
            "--no-progress",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "**Recommendation:" in printed and "| comparisons per annotator |" in printed
    for name in ("report.md", "report.json", "bt_vs_sign.png", "annotators.png", "bic.png"):
        assert (out / name).is_file(), name
    summary = json.loads((out / "report.json").read_text())
    assert summary["n_comparisons"] == 3000 and set(summary["bic"]) == {"1", "2"}


def test_cli_diagnose_bad_input_is_one_line(tmp_path, capsys):
    assert main(["diagnose", str(tmp_path / "missing.csv")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert main(["diagnose", "dataset:nope"]) == 2
    assert "unknown dataset 'nope'" in capsys.readouterr().err


@pytest.mark.slow
def test_diagnose_flags_9_of_10_biased_and_clears_9_of_10_homogeneous():
    flagged = {"biased": 0, "homogeneous": 0}
    for kind in flagged:
        for seed in range(10):
            data, _ = panel(kind, seed)
            flagged[kind] += diagnose(data, k_max=0, loao_folds=2, random_state=seed).bias_detected
    assert flagged["biased"] >= 9 and flagged["homogeneous"] <= 1, flagged


def test_diagnose_progress_bars_only_when_asked_or_on_a_terminal(capsys):
    data, _ = panel("biased", 3, n=3000)
    kw = dict(k_max=2, loao_folds=3, n_subsamples=12, random_state=2)
    quiet = diagnose(data, show_progress=None, **kw)  # stderr is not a terminal under pytest
    assert capsys.readouterr().err == ""
    shown = diagnose(data, show_progress=True, **kw)
    err = capsys.readouterr().err
    assert "annotator folds" in err and "latent classes" in err and "subsamples" in err
    assert shown.inference == quiet.inference and shown.bic == quiet.bic


def test_the_interval_plot_takes_an_interval_that_excludes_its_estimate(tmp_path):
    """A bias-corrected subsampling interval can lie wholly below its estimate (seen on a
    384-feature panel: 0.1734 [0.1435, 0.1613]); the plot must draw it, not fail."""
    from types import SimpleNamespace

    from signrm.diagnose_plots import write_plots

    iv = SimpleNamespace(estimate=0.1734, low=0.1435, high=0.1613)
    inference = SimpleNamespace(
        disagreement=iv, angle=None, reference_name="BT", estimator_name="sign"
    )
    report = SimpleNamespace(inference=inference, users=None, bic=None)
    plots = write_plots(report, tmp_path)
    assert (tmp_path / plots["BT vs sign"]).stat().st_size > 0


def test_a_negative_k_max_is_an_error_not_a_skip():
    from tests._sim import symmetric_heterogeneity

    data, _ = symmetric_heterogeneity(0, n=500, d=3)
    with pytest.raises(ValueError, match="k_max must be an integer >= 0"):
        diagnose(data, k_max=-1)
