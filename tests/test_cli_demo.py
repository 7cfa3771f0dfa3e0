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
    assert set(df["estimator"]) == {"rlhf", "sign", "sign-cv"} and df["seed"].nunique() >= 3
    assert "sign-cv/RLHF" in printed
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


@pytest.mark.parametrize(
    "text,match",
    [("n: 10\npairing: random\n", "pairing='random'.*cross_prompt"), ("n: 10\nfoo: 1\n", "foo")],
)
def test_simulate_bad_config(tmp_path, capsys, text, match):
    import re

    cfg = tmp_path / "bad.yaml"
    cfg.write_text(text)
    assert main(["simulate", str(cfg), "--out", str(tmp_path / "x.csv")]) == 2
    assert re.search(match, capsys.readouterr().err)


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
