"""Tests of signrm.experiments: config validation, the resumable runner, jobs and reports."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from signrm.errors import UserError
from signrm.experiments import (
    load_config,
    packaged_configs,
    rate_slopes,
    read_results,
    run_experiment,
    write_report,
)
from signrm.experiments import runner as runner_mod
from signrm.experiments.jobs import run_job

REPO = Path(__file__).resolve().parents[1]


def _tiny(**over) -> dict:
    doc = {
        "name": "tiny",
        "kind": "synthetic",
        "seeds": 2,
        "fixed": {"dim": 4, "n_personas": 50, "n_eval_pairs": 2000},
        "grid": {"n": [300, 600], "estimator": ["rlhf", "sign"]},
        "estimators": {
            "rlhf": {"class": "BradleyTerry", "params": {"head": "linear"}},
            "sign": {"class": "SignEstimator", "params": {"n_stages": 3}},
        },
    }
    doc.update(over)
    return doc


def test_packaged_configs_validate_and_match_repo_copies():
    shipped = packaged_configs()
    assert {"sign-paper", "rates", "bt-vs-clf"} <= set(shipped)
    for name, path in shipped.items():
        cfg = load_config(name)
        assert cfg.n_jobs > 0
        import yaml

        for profile in yaml.safe_load(path.read_text()).get("profiles", {}):
            assert load_config(name, profile=profile).n_jobs > 0
        copy = REPO / "experiments" / path.name
        assert copy.read_text() == path.read_text(), f"experiments/{path.name} is out of date"
    sp = load_config("sign-paper")
    assert set(sp.seeds) >= set(range(5))
    assert {s["estimator"] for s in sp.settings} == {
        "rlhf",
        "sign",
        "sign-paper",
        "em2",
        "em3",
        "em5",
    }
    assert min(s["n"] for s in sp.settings) == 1000 and max(s["n"] for s in sp.settings) == 100000
    assert load_config("sign-paper", profile="quick").n_jobs < sp.n_jobs


@pytest.mark.parametrize(
    "over,match",
    [
        ({"kind": "magic"}, "kind='magic'.*sign_paper, synthetic, bt_vs_clf"),
        ({"colour": 1}, "unknown top-level key.*colour"),
        ({"grid": {"n": [10], "estimator": ["nope"]}}, "estimator='nope'.*rlhf, sign"),
        ({"grid": {"n": [-5], "estimator": ["rlhf"]}}, "n=-5.*positive integer"),
        ({"fixed": {"population": "cauchy"}}, "population='cauchy'.*'gaussian'"),
        ({"fixed": {"panel": "symmetric"}}, "key 'panel' is not a parameter of kind 'synthetic'"),
        ({"seeds": "five"}, "seeds"),
        (
            {"estimators": {"rlhf": {"class": "Magic"}}, "grid": {"n": [1], "estimator": ["rlhf"]}},
            "class='Magic'.*BradleyTerry",
        ),
        (
            {
                "estimators": {"rlhf": {"class": "BradleyTerry", "params": {"lr": 1}}},
                "grid": {"n": [1], "estimator": ["rlhf"]},
            },
            r"unknown key\(s\) \['lr'\].*accepts",
        ),
        ({"fixed": {"choice": "bottleneck"}}, "needs 'beta'"),
    ],
)
def test_bad_configs_name_key_and_allowed_values(over, match):
    with pytest.raises(UserError, match=match):
        load_config(_tiny(**over))


@pytest.mark.parametrize(
    "name,cls,params,match",
    [
        (
            "rlhf",
            "BradleyTerry",
            {"head": "bogus"},
            r"estimators\.rlhf\.params\.head='bogus' is not allowed: head must be one of",
        ),
        (
            "rlhf",
            "BradleyTerry",
            {"head": "linear", "l2": -1},
            r"estimators\.rlhf\.params\.l2=-1 is not allowed: l2 must be >= 0",
        ),
        (
            "sign",
            "SignEstimator",
            {"n_stages": 3, "select_stage": "foo"},
            r"estimators\.sign\.params\.select_stage='foo' is not allowed: select_stage must be "
            "'last' or 'cv'",
        ),
        (
            "sign",
            "SignEstimator",
            {"lambdas": [1, -1]},
            r"estimators\.sign\.params\.lambdas=\[1, -1\] is not allowed: lambdas must be",
        ),
        (
            "em3",
            "LatentClassBT",
            {"n_classes": 0},
            r"estimators\.em3\.params\.n_classes=0 is not allowed: n_classes must be an integer",
        ),
        (
            "clf",
            "ClassificationRM",
            {"backend": "xgboost"},
            r"estimators\.clf\.params\.backend='xgboost' is not allowed: backend must be 'mlp'",
        ),
    ],
)
def test_estimator_parameter_values_are_checked_before_any_job(
    tmp_path, monkeypatch, name, cls, params, match
):
    doc = _tiny(estimators={name: {"class": cls, "params": params}})
    doc["grid"] = {"n": [300], "estimator": [name]}
    calls = []
    monkeypatch.setattr(runner_mod, "run_job", lambda job, threads=None: calls.append(job))
    with pytest.raises(UserError, match=match):
        run_experiment(doc, tmp_path / "out", progress=False)
    assert not calls and not (tmp_path / "out").exists()


def test_synthetic_population_is_checked_before_any_job():
    with pytest.raises(UserError, match="n_personas=51 is odd.*even"):
        load_config(_tiny(fixed={"dim": 4, "n_personas": 51, "population": "laplace"}))
    assert load_config(_tiny(fixed={"n_personas": 51, "population": "skewed"})).n_jobs == 8
    with pytest.raises(UserError, match="spread=None is not allowed; expected a positive number"):
        load_config(_tiny(fixed={"spread": None}))
    assert load_config(_tiny(fixed={"beta": None})).n_jobs == 8  # beta may be null


def _bvc(**fixed) -> dict:
    return {
        "name": "bvc",
        "kind": "bt_vs_clf",
        "seeds": 1,
        "fixed": fixed,
        "grid": {
            "n": [600],
            "beta": [3],
            "pairing": ["same_prompt"],
            "candidates": ["random"],
            "estimator": ["bt"],
        },
        "estimators": {"bt": {"class": "BradleyTerry"}},
    }


def test_bt_vs_clf_candidates_are_checked_against_the_pools():
    import re

    from signrm.simulate import load_twin_panel

    tp = load_twin_panel()
    largest = max(tp.candidate_pool(p).size for p in range(len(tp.prompt_texts)))
    with pytest.raises(UserError, match=f"test_candidates=5000 .*allowed values: 2 to {largest}"):
        load_config(_bvc(test_candidates=5000))
    with pytest.raises(UserError, match=f"train_candidates={largest + 1} .*2 to {largest}"):
        load_config(_bvc(train_candidates=largest + 1))
    assert load_config(_bvc(test_candidates=largest)).n_jobs == 1
    for key in ("train_candidates", "test_candidates"):
        with pytest.raises(UserError, match=f"{key}=1 is not allowed; it must be >= 2"):
            load_config(_bvc(**{key: 1}))
    # held-out prompts can use up every large pool: the stated maximum is exact
    tight = {"test_candidates": largest, "test_fraction": 0.9}
    with pytest.raises(UserError, match=r"train_candidates=\d+ .*held out") as info:
        load_config(_bvc(train_candidates=largest, **tight))
    allowed = int(re.search(r"allowed values: 2 to (\d+)", str(info.value)).group(1))
    assert 2 <= allowed < largest
    assert load_config(_bvc(train_candidates=allowed, **tight)).n_jobs == 1
    with pytest.raises(UserError, match=f"train_candidates={allowed + 1} "):
        load_config(_bvc(train_candidates=allowed + 1, **tight))


def test_toml_config_validates_like_its_yaml_twin(tmp_path):
    import yaml

    doc = _tiny(exclude=[{"estimator": "sign", "n": 600}], description="tiny twin")
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    (tmp_path / "tiny.toml").write_text(
        """name = "tiny"
kind = "synthetic"
description = "tiny twin"
seeds = 2
exclude = [{estimator = "sign", n = 600}]

[fixed]
dim = 4
n_personas = 50
n_eval_pairs = 2000

[grid]
n = [300, 600]
estimator = ["rlhf", "sign"]

[estimators.rlhf]
class = "BradleyTerry"
params = {head = "linear"}

[estimators.sign]
class = "SignEstimator"
params = {n_stages = 3}
"""
    )
    from_yaml, from_toml = (load_config(tmp_path / f"tiny.{ext}") for ext in ("yaml", "toml"))
    for attr in ("name", "kind", "seeds", "fixed", "settings", "estimators", "description"):
        assert getattr(from_toml, attr) == getattr(from_yaml, attr), attr
    assert from_toml.raw == from_yaml.raw
    assert [j["key"] for j in from_toml.jobs()] == [j["key"] for j in from_yaml.jobs()]
    assert from_toml.n_jobs == 6
    (tmp_path / "bad.toml").write_text("name = \n")
    with pytest.raises(UserError, match=r"bad\.toml: invalid TOML \(") as info:
        load_config(tmp_path / "bad.toml")
    assert "\n" not in str(info.value)


def test_unknown_profile_and_missing_file():
    with pytest.raises(UserError, match="profile 'huge'.*quick"):
        load_config("sign-paper", profile="huge")
    with pytest.raises(UserError, match="packaged configs: .*sign-paper"):
        load_config("no-such-config")


def test_job_is_determined_by_its_seed():
    job = load_config(_tiny()).jobs()[0]
    r1, r2 = run_job(job), run_job(job)
    for key in ("angular_error_deg", "disagreement"):
        assert r1[key] == r2[key]


def test_runner_resumes_without_recomputing(tmp_path, monkeypatch):
    cfg = load_config(_tiny())
    calls = []
    real = runner_mod.run_job

    def counting(job, threads=None):
        calls.append(job["key"])
        return real(job, threads=threads)

    monkeypatch.setattr(runner_mod, "run_job", counting)
    part = run_experiment(cfg, tmp_path, workers=1, progress=False, max_jobs=3)
    assert len(part) == 3 and len(calls) == 3
    first_keys = set(calls)
    full = run_experiment(cfg, tmp_path, workers=1, progress=False)
    assert len(full) == cfg.n_jobs == 8
    assert len(calls) == 8 and not (set(calls[3:]) & first_keys)  # no job recomputed
    again = run_experiment(cfg, tmp_path, workers=1, progress=False)
    assert len(calls) == 8 and len(again) == 8
    csv = pd.read_csv(tmp_path / "results.csv")
    assert {"experiment", "estimator", "n", "seed", "angular_error_deg", "disagreement"} <= set(
        csv.columns
    )


def test_runner_in_parallel_and_report(tmp_path):
    df = run_experiment(load_config(_tiny()), tmp_path, workers=2, progress=False)
    assert len(df) == 8 and df["key"].is_unique
    path = write_report(tmp_path)
    text = path.read_text()
    assert "slope" in text and (tmp_path / "rates_tiny.png").exists()
    assert len(read_results(tmp_path)) == 8


def test_rate_slopes_recovers_a_known_slope():
    rows = []
    for seed in range(3):
        for n in (1e3, 1e4, 1e5):
            rows.append(
                {"estimator": "a", "n": n, "seed": seed, "angular_error_deg": 100 * n**-0.5}
            )
            rows.append({"estimator": "b", "n": n, "seed": seed, "angular_error_deg": 12.0})
    s = rate_slopes(pd.DataFrame(rows)).set_index("estimator")
    assert np.isclose(s.loc["a", "slope"], -0.5) and np.isclose(s.loc["b", "slope"], 0.0)


def test_sign_paper_job_on_twin_panel():
    cfg = load_config(
        {
            "name": "sp",
            "kind": "sign_paper",
            "seeds": 1,
            "grid": {"n": [2000], "estimator": ["rlhf"]},
            "estimators": {"rlhf": {"class": "BradleyTerry"}},
        }
    )
    row = run_job(cfg.jobs()[0])
    assert 0 < row["angular_error_deg"] < 90 and 0 < row["disagreement"] < 0.5
    assert 0.5 < row["label_agreement"] < 0.8


def test_sign_paper_job_with_bottleneck_annotators():
    # the cognitive-bottleneck choice answering for the panel's personas (used to raise TypeError)
    cfg = load_config(
        {
            "name": "sp-bottleneck",
            "kind": "sign_paper",
            "seeds": 1,
            "fixed": {"choice": "bottleneck", "n_eval_pairs": 5000},
            "grid": {"n": [2000], "beta": [1, 10], "estimator": ["rlhf"]},
            "estimators": {"rlhf": {"class": "BradleyTerry"}},
        }
    )
    rows = {job["setting"]["beta"]: run_job(job) for job in cfg.jobs()}
    for row in rows.values():
        assert 0 < row["angular_error_deg"] < 90 and 0 < row["disagreement"] < 0.5
    # cleaner annotators agree more with the population ordering
    assert 0.5 < rows[1]["label_agreement"] < rows[10]["label_agreement"] < 1.0


def test_bt_vs_clf_job_smoke():
    cfg = load_config(
        {
            "name": "bvc",
            "kind": "bt_vs_clf",
            "seeds": 1,
            "grid": {
                "n": [600],
                "beta": [3],
                "pairing": ["cross_prompt"],
                "candidates": ["similar"],
                "estimator": ["lgb"],
            },
            "estimators": {
                "lgb": {
                    "class": "ClassificationRM",
                    "params": {"backend": "lightgbm", "n_estimators": 30},
                }
            },
        }
    )
    row = run_job(cfg.jobs()[0])
    assert np.isfinite(row["bon_improvement"]) and 0 < row["label_error_rate"] < 0.5


def _fake_bt_vs_clf(tmp_path):
    """A synthetic bt-vs-clf result table: CLF beats BT more at low beta; cross beats same."""
    rows = []
    rng = np.random.default_rng(0)
    ests = {"bt_mlp": 0.0, "clf_mlp": 0.1, "clf_lgb": 0.05}
    settings = [(b, 5000, "same_prompt", "random") for b in (0.5, 1, 10)]
    settings += [(1, 5000, p, c) for p in ("cross_prompt",) for c in ("random", "similar")]
    settings += [(1, 5000, "same_prompt", "similar")]
    for beta, n, pairing, cand in settings:
        for est, bonus in ests.items():
            for seed in range(3):
                base = 1.0 + 0.05 * beta - (0.5 if cand == "similar" else 0.0)
                base += 0.3 if pairing == "cross_prompt" and cand == "similar" else 0.0
                base += 0.1 if pairing == "cross_prompt" else 0.0
                rows.append(
                    {
                        "key": f"{beta}-{pairing}-{cand}-{est}-{seed}",
                        "experiment": "bvc",
                        "kind": "bt_vs_clf",
                        "seed": seed,
                        "beta": beta,
                        "n": n,
                        "pairing": pairing,
                        "candidates": cand,
                        "estimator": est,
                        "train_candidates": 10,
                        "test_candidates": 64,
                        "bon_improvement": base + bonus / beta + 0.01 * rng.standard_normal(),
                        "label_error_rate": 0.3 / beta,
                        "job_seconds": 1.0,
                    }
                )
    return pd.DataFrame(rows)


def test_bt_vs_clf_report_states_findings_setting_by_setting(tmp_path):
    from signrm.experiments.analysis import bt_vs_clf_findings, bt_vs_clf_robustness

    df = _fake_bt_vs_clf(tmp_path)
    f1, f2 = bt_vs_clf_findings(df)
    assert f1["reproduces"].all() and set(f1["verdict"]) <= {"yes", "yes, within seed noise"}
    assert f2["reproduces"].all()
    rob = bt_vs_clf_robustness(df).set_index("estimator")
    assert rob.loc["clf_mlp", "gap_vs_bt_noisiest"] > rob.loc["clf_mlp", "gap_vs_bt_cleanest"]
    path = write_report(tmp_path, df=df)
    text = path.read_text()
    assert "Finding 1b" in text and "more robust: yes" in text
    assert "largest gain where same-prompt responses lack diversity ('similar'): reproduces" in text
    assert "Protocol as run" in text and (tmp_path / "bt_vs_clf.png").stat().st_size > 10_000


def test_report_ignores_rows_of_a_superseded_config(tmp_path):
    import yaml

    doc = {
        "name": "old",
        "kind": "sign_paper",
        "seeds": 1,
        "grid": {"n": [500], "estimator": ["rlhf"]},
        "estimators": {"rlhf": {"class": "BradleyTerry"}},
    }
    cfg = load_config(doc)
    run_experiment(cfg, tmp_path, workers=1, progress=False)
    doc["estimators"]["rlhf"]["params"] = {"l2": 0.01}
    run_experiment(load_config(doc), tmp_path, workers=1, progress=False)
    (tmp_path / "config-old.yaml").write_text(yaml.safe_dump(doc))
    text = write_report(tmp_path, plots=False).read_text()
    assert "1 stored rows of `old` belong to a superseded config" in text


def test_bt_vs_clf_small_profile_covers_the_issue_grid():
    cfg = load_config("bt-vs-clf", profile="small")
    values = {k: {s[k] for s in cfg.settings} for k in ("beta", "n", "pairing", "candidates")}
    assert values["beta"] == {0.5, 1, 3, 10} and values["n"] == {5000, 10000, 20000, 40000}
    assert values["pairing"] == {"same_prompt", "cross_prompt"}
    assert values["candidates"] == {"random", "similar", "diversified"}
    assert {s["estimator"] for s in cfg.settings} == {"bt_mlp", "clf_mlp", "clf_lgb"}
    assert cfg.fixed["train_candidates"] == 10 and cfg.fixed["test_candidates"] >= 50
    for name in ("small", None):
        lgb = load_config("bt-vs-clf", profile=name).estimators["clf_lgb"]
        assert lgb["params"]["n_jobs"] == 1  # LightGBM threads oversubscribe joblib workers


def _fake_rates() -> pd.DataFrame:
    """Two populations of a rates experiment: BT levels off on one and converges on the other."""
    rows = []
    for pop, spread_dims, bt_slope in (("exp_two_point", None, 0.0), ("laplace", 2, -0.5)):
        for n in (1000, 10000, 100000):
            for est, slope in (("rlhf", bt_slope), ("sign", -0.4)):
                for seed in range(3):
                    rows.append(
                        {
                            "key": f"{pop}-{n}-{est}-{seed}",
                            "experiment": "rates",
                            "kind": "synthetic",
                            "seed": seed,
                            "population": pop,
                            "spread_dims": spread_dims,
                            "n": n,
                            "estimator": est,
                            "angular_error_deg": 30 * (n / 1000) ** slope * (1 + 0.01 * seed),
                            "disagreement": 0.1,
                            "fit_seconds": 0.1,
                            "job_seconds": 1.0,
                        }
                    )
    return pd.DataFrame(rows)


def test_rates_plot_and_report_keep_populations_apart(tmp_path):
    from signrm.experiments.plots import plot_rates, rates_figure

    df = _fake_rates()
    fig = rates_figure(df)
    curves = {
        (ax.get_title(), line.get_label()): line.get_ydata()
        for ax in fig.axes
        for line in ax.get_lines()
    }
    assert len(fig.axes) == 2 and len(curves) == 4  # one panel per population, 2 estimators
    by_label = {label: y for (title, label), y in curves.items() if "exp_two_point" in title}
    assert set(by_label) == {"rlhf (slope 0.00)", "sign (slope -0.40)"}
    np.testing.assert_allclose(by_label["rlhf (slope 0.00)"], 30.3)  # BT levels off there
    lap = {label for (title, label), _ in curves.items() if "laplace" in title}
    assert lap == {"rlhf (slope -0.50)", "sign (slope -0.40)"}
    assert plot_rates(df, tmp_path)[0].stat().st_size > 10_000
    # the report has one table per population, including the one whose spread_dims is null
    text = write_report(tmp_path, df=df, plots=False).read_text()
    assert "### population=exp_two_point, spread_dims=none" in text
    assert "### population=laplace, spread_dims=2" in text


def test_atomically_written_files_honour_the_umask(tmp_path):
    import os

    old = os.umask(0o022)
    try:
        write_report(tmp_path, df=_fake_rates(), plots=False)
    finally:
        os.umask(old)
    for name in ("report.md", "summary.csv"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o644, name
