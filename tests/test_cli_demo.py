"""CLI tests: `signrm demo --quick`, `signrm simulate`, `signrm experiment`."""

from __future__ import annotations

import pandas as pd
import pytest

from signrm import PreferenceData
from signrm.cli import main


def test_demo_quick_writes_table_csv_report_plot(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "angular error (deg)" in printed and "rlhf" in printed and "sign" in printed
    df = pd.read_csv(out / "results.csv")
    need = {"experiment", "estimator", "n", "seed", "angular_error_deg", "disagreement"}
    assert need <= set(df.columns)
    sp = df[df["experiment"] == "sign-paper"]
    assert set(sp["estimator"]) == {"rlhf", "sign", "sign-paper"} and sp["seed"].nunique() >= 3
    assert "sign/RLHF" in printed and "sign-paper/RLHF" in printed
    assert set(df[df["experiment"] == "phase"]["estimator"]) == {"rlhf", "sign"}
    assert (out / "phase.png").stat().st_size > 10_000
    assert (out / "report.md").exists() and (out / "error_vs_n.png").stat().st_size > 10_000
    # a rerun resumes: nothing recomputed, same table
    assert main(["demo", "--quick", "--out", str(out), "--no-progress"]) == 0
    assert len(pd.read_csv(out / "results.csv")) == len(df)


def test_simulate_writes_a_loadable_dataset(tmp_path, capsys):
    cfg = tmp_path / "sim.yaml"
    cfg.write_text("source: twin_panel\nn: 500\npairing: same_prompt\nper_user: 50\nseed: 3\n")
    out = tmp_path / "prefs.parquet"
    assert main(["simulate", str(cfg), "--out", str(out)]) == 0
    data = PreferenceData.read(out)
    assert len(data) == 500 and data.n_features == 384
    assert (tmp_path / "prefs.parquet.truth.json").exists()
    cfg2 = tmp_path / "syn.yaml"
    cfg2.write_text(
        "source: synthetic\nn: 200\npopulation: {kind: laplace, dim: 5, n_personas: 20}\n"
    )
    assert main(["simulate", str(cfg2), "--out", str(tmp_path / "s.csv")]) == 0
    assert PreferenceData.read(tmp_path / "s.csv").n_features == 5


def test_simulate_with_bottleneck_annotators(tmp_path, capsys):
    import json

    import numpy as np

    # twin panel personas (used to crash with a TypeError), and a synthetic population from TOML
    cfg = tmp_path / "bn.yaml"
    cfg.write_text("n: 3000\nchoice: bottleneck\nbeta: 10\nseed: 1\n")
    assert main(["simulate", str(cfg), "--out", str(tmp_path / "bn.parquet")]) == 0
    data = PreferenceData.read(tmp_path / "bn.parquet")
    assert len(data) == 3000 and 0.3 < data.y.mean() < 0.7
    toml = tmp_path / "bn.toml"
    toml.write_text(
        'source = "synthetic"\nn = 4000\nchoice = "bottleneck"\nbeta = 10\n'
        '[population]\nkind = "laplace"\nn_personas = 20\ndim = 4\n'
    )
    out = tmp_path / "syn.csv"
    assert main(["simulate", str(toml), "--out", str(out)]) == 0
    syn = PreferenceData.read(out)
    # beta = 10: each persona's own ordering is followed about 95 % of the time, so labels
    # agree with theta_bar's ordering well above chance
    theta_bar = np.array(json.loads((tmp_path / "syn.csv.truth.json").read_text())["theta_bar"])
    agree = np.mean((2 * syn.y - 1) * np.sign(syn.differences @ theta_bar) > 0)
    assert len(syn) == 4000 and agree > 0.6


@pytest.mark.parametrize(
    "text,match",
    [
        ("n: 10\npairing: random\n", "pairing='random'.*cross_prompt"),
        ("n: 10\nfoo: 1\n", "foo"),
        ("n: 1e3\n", "n='1e3' is not allowed; expected a positive integer"),
        ("n: 10\nbeta: [1]\n", r"beta=\[1\] is not allowed; expected a positive number"),
        ("n: 10\nchoice: bottleneck\nbeta: fast\n", "beta='fast' is not allowed"),
        ("n: 10\nchoice: bottleneck\n", "choice='bottleneck' needs 'beta'"),
        ("n: 10\nper_user: ten\n", "per_user='ten' is not allowed; expected a positive integer"),
        ("n: 10\nseed: 1.5\n", "seed=1.5 is not allowed; expected an integer"),
        (
            "n: 10\nsource: synthetic\npopulation: {n_personas: many}\n",
            "population.n_personas='many' is not allowed",
        ),
        (
            "n: 10\nsource: synthetic\npopulation: {kind: laplace, n_personas: 21}\n",
            "population: n_personas=21 is odd",
        ),
        ("n: 10\nsource: synthetic\npopulation: {colour: red}\n", r"unknown key\(s\) \['colour'\]"),
        ("n: 10\nsource: synthetic\npopulation: {mean: {a: 1}}\n", "population.mean="),
        ("n: [10\n", "invalid YAML"),
    ],
)
def test_simulate_bad_config(tmp_path, capsys, text, match):
    import re

    cfg = tmp_path / "bad.yaml"
    cfg.write_text(text)
    assert main(["simulate", str(cfg), "--out", str(tmp_path / "x.csv")]) == 2
    err = capsys.readouterr().err
    assert re.search(match, err) and err.startswith("error: ") and err.count("\n") == 1, err
    assert not (tmp_path / "x.csv").exists()


def test_experiment_cli_validates_before_running(tmp_path, capsys):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(
        "name: x\nkind: synthetic\ngrid: {n: [100], estimator: [bt]}\n"
        "estimators: {bt: {class: BradleyTerry}}\nfixed: {scale_dist: gamma}\n"
    )
    assert main(["experiment", "run", str(cfg), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "scale_dist='gamma'" in err and "lognormal" in err
    assert not (tmp_path / "o").exists()
    assert main(["experiment", "list"]) == 0
    assert "sign-paper" in capsys.readouterr().out
