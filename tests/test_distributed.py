"""DDP training (torchrun, gloo on CPU): 2 processes reach the 1-process solution."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import signrm
from signrm.train import fit_distributed

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
    from signrm.train import fit_distributed

    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    data = signrm.PreferenceData.read(sys.argv[1])
    configs = json.loads(open(sys.argv[2]).read())
    for name, (cls, kw) in configs.items():
        kw = {k: tuple(v) if isinstance(v, list) else v for k, v in kw.items()}
        est = fit_distributed(getattr(signrm, cls)(**kw), data)
        if dist.get_rank() == 0:
            est.save(f"{sys.argv[3]}/{name}")
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
    for name, (cls, kw) in CONFIGS.items():
        one = fit_distributed(getattr(signrm, cls)(**kw, **COMMON), train)  # no process group
        two = signrm.load(tmp_path / name)
        assert two.metadata_["world_size"] == 2 and one.world_size_ == 1
        assert two.metadata_["epochs"] == len(one.history_.epochs), name
        print(name, "angle" if kw.get("head") == "linear" else "score diff",
              _angle(one.coef_, two.coef_) if kw.get("head") == "linear"
              else abs(one.score(test) - two.score(test)), "score", two.score(test))  # fmt: skip
        if kw.get("head") == "linear":
            assert _angle(one.coef_, two.coef_) < 1.0, name
        else:
            assert abs(one.score(test) - two.score(test)) <= 0.01, name
        assert two.score(test) > 0.6, name


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
    from signrm.train import _Ctx, _local_batch

    ctx = _Ctx()
    ctx.world = 3
    with pytest.raises(ValueError, match="multiple of the number of processes"):
        _local_batch(128, ctx)


def test_launch_rejects_bad_nproc():
    from signrm.train import launch

    with pytest.raises(ValueError, match="nproc"):
        launch(0, [])
