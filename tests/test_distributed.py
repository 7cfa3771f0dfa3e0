"""Fits under torch.distributed (torchrun, gloo on CPU): 2 processes reach the 1-process solution.

Every rank runs the estimator's own ``fit``; the engine shares the work (the torch trainer's
batches for MLP heads, the L-BFGS sums for linear heads).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import signrm

# (name, estimator factory source, estimator kwargs)
CONFIGS = {
    "bt_linear": ("BradleyTerry", dict(head="linear", max_epochs=8, learning_rate=0.02)),
    "sign_linear": (
        "SignEstimator",
        dict(head="linear", max_epochs=4, learning_rate=0.02, stage_epochs=1, n_stages=3),
    ),
    "bt_mlp": ("BradleyTerry", dict(head="mlp", hidden_sizes=(32, 16), max_epochs=6)),
    "sign_mlp": (
        "SignEstimator",
        dict(head="mlp", hidden_sizes=(32, 16), max_epochs=3, stage_epochs=1, n_stages=3),
    ),
    "clf_mlp": ("ClassificationRM", dict(backend="mlp", hidden_sizes=(32, 16), max_epochs=4)),
}
COMMON = dict(batch_size=128, random_state=7, patience=2)

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import torch, torch.distributed as dist
    import signrm

    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    data = signrm.PreferenceData.read(sys.argv[1])
    configs = json.loads(open(sys.argv[2]).read())
    runs = {}
    for name, (cls, kw) in configs.items():
        kw = {k: tuple(v) if isinstance(v, list) else v for k, v in kw.items()}
        est = getattr(signrm, cls)(**kw).fit(data)
        history = getattr(est, "history_", None)
        runs[name] = None if history is None else [history.world_size, len(history.epochs)]
        if dist.get_rank() == 0:
            est.save(f"{sys.argv[3]}/{name}")
    if dist.get_rank() == 0:
        open(f"{sys.argv[3]}/runs.json", "w").write(json.dumps(runs))
    dist.barrier()
    dist.destroy_process_group()
    """
)

# Degenerate data: every rank raises the error the in-memory fit raises (before any collective).
ERROR_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import torch, torch.distributed as dist
    import signrm
    from signrm.train import load_data

    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    errors = {}
    for path in sys.argv[2:]:
        for cls, kw in json.loads(sys.argv[1]):
            try:
                getattr(signrm, cls)(**kw).fit(load_data(path))
                errors[f"{path} {cls} {kw}"] = None
            except ValueError as exc:
                errors[f"{path} {cls} {kw}"] = f"{type(exc).__name__}: {exc}"
    out = f"{sys.argv[2]}.rank{dist.get_rank()}.json"
    open(out, "w").write(json.dumps(errors))
    dist.barrier()
    dist.destroy_process_group()
    """
)


def _make_data(seed=0, n=3000, d=10):
    rng = np.random.default_rng(seed)
    xa = rng.standard_normal((n, d)).astype(np.float32)
    xb = rng.standard_normal((n, d)).astype(np.float32)
    theta = np.zeros(d)
    theta[:2] = 1.0
    th = np.tile(theta, (n, 1))
    th[:, 0] += rng.choice([-1.0, 1.0], n) * rng.exponential(3.0, n)
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-((xa - xb) * th).sum(1)))).astype(float)
    return signrm.PreferenceData.from_arrays(xa, xb, y)


def _angle(a, b):
    c = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
    return float(np.degrees(np.arccos(np.clip(c, -1.0, 1.0))))


def _torchrun(nproc, args, timeout=240):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    cmd += [f"--nproc_per_node={nproc}", *args]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, res.stderr[-3000:]
    return res


def test_two_processes_match_one(tmp_path):
    data = _make_data()
    train, test = data.split(test_size=0.3, random_state=1)
    train.write(tmp_path / "train.parquet")
    (tmp_path / "configs.json").write_text(
        json.dumps({k: (c, {**kw, **COMMON}) for k, (c, kw) in CONFIGS.items()})
    )
    (tmp_path / "run.py").write_text(SCRIPT)
    _torchrun(2, [str(tmp_path / "run.py"), str(tmp_path / "train.parquet"),
                  str(tmp_path / "configs.json"), str(tmp_path)])  # fmt: skip
    train = signrm.PreferenceData.read(tmp_path / "train.parquet")
    runs = json.loads((tmp_path / "runs.json").read_text())
    for name, (cls, kw) in CONFIGS.items():
        one = getattr(signrm, cls)(**kw, **COMMON).fit(train)  # no process group
        two = signrm.load(tmp_path / name)
        if kw.get("head") == "linear":  # L-BFGS on both paths (no torch trainer)
            assert runs[name] is None and not hasattr(one, "history_"), name
        else:  # the same epochs, early stopping and kept epoch on 2 processes as on 1
            assert runs[name] == [2, len(one.history_.epochs)] and one.history_.world_size == 1
        print(name, "angle" if kw.get("head") == "linear" else "score diff",
              _angle(one.coef_, two.coef_) if kw.get("head") == "linear"
              else abs(one.score(test) - two.score(test)), "score", two.score(test))  # fmt: skip
        if kw.get("head") == "linear":
            assert _angle(one.coef_, two.coef_) < 1.0, name
        else:
            assert abs(one.score(test) - two.score(test)) <= 0.01, name
        assert two.score(test) > 0.6, name


def test_panel_step_two_processes_match_one(tmp_path):
    """The default's panel step (the NPMLE mixture of BT annotators, from user ids) gives the
    same fit on 2 processes: every rank reads the whole panel and runs the same NPMLE fit."""
    from signrm.simulate import make_battery_population, simulate_comparisons

    pop = make_battery_population("decisive_minority", 1.0, 4, random_state=0)
    X = np.random.default_rng(0).standard_normal((4000, 4)) / np.sqrt(2.0)
    data = simulate_comparisons(pop, X, 3000, choice="bt", random_state=0)
    data.write(tmp_path / "panel.parquet")
    (tmp_path / "configs.json").write_text(json.dumps({"sign": ("SignEstimator", {})}))
    (tmp_path / "run.py").write_text(SCRIPT)
    _torchrun(2, [str(tmp_path / "run.py"), str(tmp_path / "panel.parquet"),
                  str(tmp_path / "configs.json"), str(tmp_path)])  # fmt: skip
    one = signrm.SignEstimator().fit(signrm.PreferenceData.read(tmp_path / "panel.parquet"))
    two = signrm.load(tmp_path / "sign")
    assert one.panel_status_.startswith("ran") and two.panel_status_ == one.panel_status_
    assert two.panel_weight_ == pytest.approx(one.panel_weight_, abs=1e-6)
    assert _angle(one.coef_, two.coef_) < 1e-3


@pytest.mark.slow
def test_cli_nproc_2(tmp_path):
    """``python -m signrm.train --nproc 2`` re-launches itself under torchrun; signrm.load reads
    the result."""
    data = _make_data(1, n=1500, d=6)
    data.write(tmp_path / "prefs.parquet")
    out = tmp_path / "model"
    args = ["--data", str(tmp_path / "prefs.parquet"), "--out", str(out), "--estimator", "sign",
            "--head", "mlp", "--hidden", "16", "--epochs", "3", "--n-stages", "2",
            "--stage-epochs", "1", "--batch-size", "64", "--quiet"]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1")
    res = subprocess.run(
        [sys.executable, "-m", "signrm.train", "--nproc", "2", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    model = signrm.load(out)
    assert isinstance(model, signrm.SignEstimator) and model.metadata_["world_size"] == 2
    assert model.score(data) > 0.6


def test_batch_must_split_evenly():
    from signrm.engine.group import ProcessGroup
    from signrm.engine.torch_train import local_batch_size

    with pytest.raises(ValueError, match="multiple of the number of processes"):
        local_batch_size(128, ProcessGroup(rank=0, world_size=3))
    assert local_batch_size(128, ProcessGroup(rank=1, world_size=2)) == 64


def test_one_process_order_is_the_distributed_samplers():
    """With a group of one, the epoch order is the permutation DistributedSampler draws."""
    from torch.utils.data import DistributedSampler

    from signrm.engine.group import ProcessGroup
    from signrm.engine.torch_train import epoch_order

    for epoch in (0, 3):
        sampler = DistributedSampler(range(50), num_replicas=1, rank=0, seed=11)
        sampler.set_epoch(epoch)
        assert epoch_order(50, 11, epoch, ProcessGroup()).tolist() == list(sampler)


def test_launch_rejects_bad_nproc():
    from signrm.train import launch

    with pytest.raises(ValueError, match="nproc"):
        launch(0, [])


def _degenerate_files(tmp_path):
    """Parquet files that no estimator can learn from: all ties; all weights zero; weight only
    on ties."""
    import pandas as pd

    data = _make_data(2, n=40, d=3)
    data.write(tmp_path / "base.parquet")
    df = pd.read_parquet(tmp_path / "base.parquet")
    ties = df.assign(label=0.5)
    zero = df.assign(weight=0.0)
    tie_weight_only = df.assign(label=[0.5] * 20 + [1.0] * 20, weight=[1.0] * 20 + [0.0] * 20)
    paths = []
    for name, frame in (("ties", ties), ("zero_weight", zero), ("tie_weight", tie_weight_only)):
        frame.to_parquet(tmp_path / f"{name}.parquet")
        paths.append(str(tmp_path / f"{name}.parquet"))
    return paths


DEGENERATE_ESTIMATORS = [
    ("SignEstimator", {"head": "mlp", "hidden_sizes": [8], "max_epochs": 1}),
    ("SignEstimator", {}),
    ("BradleyTerry", {"head": "mlp", "hidden_sizes": [8], "max_epochs": 1}),
    ("BradleyTerry", {}),
    ("ClassificationRM", {"hidden_sizes": [8], "max_epochs": 1}),
]


def test_degenerate_data_same_error_on_one_and_two_processes(tmp_path):
    from signrm.train import load_data

    paths = _degenerate_files(tmp_path)
    one = {}
    for path in paths:
        for cls, kw in DEGENERATE_ESTIMATORS:
            with pytest.raises(ValueError) as info:
                getattr(signrm, cls)(**kw).fit(load_data(path))
            one[f"{path} {cls} {kw}"] = f"{type(info.value).__name__}: {info.value}"
    (tmp_path / "run.py").write_text(ERROR_SCRIPT)
    _torchrun(2, [str(tmp_path / "run.py"), json.dumps(DEGENERATE_ESTIMATORS), *paths])
    for rank in (0, 1):
        two = json.loads((tmp_path / f"ties.parquet.rank{rank}.json").read_text())
        assert two == one, rank
    messages = set(one.values())
    assert "ValueError: every comparison is a tie: there is nothing to learn" in messages
    assert any("weight: all weights are zero" in m for m in messages)
    assert any("every non-tie comparison has zero weight" in m for m in messages)


def test_degenerate_data_error_from_the_command(tmp_path, capsys):
    from signrm.cli import main as cli_main
    from signrm.train import main

    ties, zero, _ = _degenerate_files(tmp_path)
    for path, message in ((ties, "every comparison is a tie"), (zero, "all weights are zero")):
        argv = ["--data", path, "--out", str(tmp_path / "m"), "--hidden", "8", "--quiet"]
        assert main(argv) == 2
        assert message in capsys.readouterr().err
        assert cli_main(["train", *argv]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


@pytest.mark.slow
def test_degenerate_data_error_from_the_command_on_two_processes(tmp_path):
    ties = _degenerate_files(tmp_path)[0]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "signrm.train",
            "--nproc",
            "2",
            "--data",
            ties,
            "--out",
            str(tmp_path / "m"),
            "--hidden",
            "8",
            "--quiet",
        ],  # fmt: skip
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert res.returncode != 0
    for rank in (0, 1):
        assert f"error (rank {rank} of 2): every comparison is a tie" in res.stderr


def test_train_help(capsys):
    from signrm.cli import main as cli_main

    with pytest.raises(SystemExit) as info:
        cli_main(["train", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "usage: signrm train" in out and "--nproc" in out and "--estimator" in out
    res = subprocess.run(
        [sys.executable, "-m", "signrm.train", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert "usage: python -m signrm.train" in res.stdout and "--nproc" in res.stdout
    from signrm.cli import build_parser

    assert "train" in build_parser().format_help()
