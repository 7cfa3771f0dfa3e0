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
    assert {s["estimator"] for s in sp.settings} == {"rlhf", "sign", "sign-cv", "em2", "em3", "em5"}
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
    from signrm.experiments.report import bt_vs_clf_findings, bt_vs_clf_robustness

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
