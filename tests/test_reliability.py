"""Issue 13: text models saved in one step and not trusted at load; best-of-n groups;
experiment runs (counts, corrupt results, folder lock, orphan workers); one-line CLI errors;
one embedding-cache layout."""

from __future__ import annotations

import contextlib
import copy
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml

from signrm.cli import main
from signrm.errors import UserError
from tests import test_cli_text as _cli
from tests.test_cli_text import one_error_line, run_cli
from tests.test_experiments import _tiny
from tests.test_model_files import _corruptions, _listing, _rewrite, kill_saves

# the tiny sentence model and the model fitted on it (module fixtures of test_cli_text)
st_dir, prefs, fitted = _cli.st_dir, _cli.prefs, _cli.fitted


# ------------------------------------------------------------------------- text models
def test_fit_force_replaces_only_a_model_and_writes_it_whole(
    capsys, tmp_path, st_dir, prefs, fitted
):
    common = ["--encoder", st_dir, "--cache-dir", fitted / "cache", "--no-progress"]
    before = open(prefs, encoding="utf-8").read()
    code, _, err = run_cli(capsys, "fit", prefs, "--out", prefs, "--force", *common)
    assert code == 2 and "is a file, not a signrm model directory" in one_error_line(err)
    assert open(prefs, encoding="utf-8").read() == before  # the input file is untouched
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "draft.md").write_text("keep")
    code, _, err = run_cli(capsys, "fit", prefs, "--out", mine, "--force", *common)
    assert code == 2 and "not a signrm model" in one_error_line(err)
    assert _listing(mine) == ["draft.md"]
    out = tmp_path / "model"
    shutil.copytree(fitted / "bt", out)
    code, _, err = run_cli(
        capsys, "fit", prefs, "--out", out, "--force", "--estimator", "thurstone", *common
    )
    assert code == 0, err
    meta = json.loads((out / "model.json").read_text())
    assert meta["params"]["link"] == "probit" and "encoder.json" in meta["files"]
    assert _listing(tmp_path) == ["mine", "model"]


def test_killed_text_model_saves_leave_the_old_or_the_new_model(tmp_path, fitted):
    from signrm.text_model import TextRewardModel

    first = TextRewardModel.load(fitted / "bt", cache_dir=False)
    second = TextRewardModel(copy.deepcopy(first.estimator), first.encoder)
    second.estimator.coef_ = first.estimator.coef_ * 2.0
    models, path = [first, second], tmp_path / "m"
    first.save(path)
    saves = [lambda m=m, i=i: m.save(path, extra={"fit": {"i": i}}) for i, m in enumerate(models)]
    for _ in kill_saves(saves, 6, max_delay=0.1):
        back = TextRewardModel.load(path, cache_dir=False)  # encoder.json is always there
        assert any(np.array_equal(back.estimator.coef_, m.estimator.coef_) for m in models)
    second.save(path)
    assert _listing(tmp_path) == ["m"]


@pytest.mark.slow
def test_killed_fit_force_leaves_the_old_or_the_new_model(tmp_path, st_dir, prefs, fitted):
    """`signrm fit --force` in a subprocess, SIGKILLed at random instants of its run."""
    from signrm.text_model import TextRewardModel

    out = shutil.copytree(fitted / "bt", tmp_path / "model")
    cmd = [sys.executable, "-c", "import sys; from signrm.cli import main; sys.exit(main())",
           "fit", prefs, "--out", str(out), "--force", "--estimator", "thurstone", "--encoder",
           st_dir, "--cache-dir", str(fitted / "cache"), "--no-progress"]  # fmt: skip
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, timeout=600)
    duration = time.perf_counter() - t0
    links = set()
    for delay in np.random.default_rng(0).uniform(0.5, 1.0, 3) * duration:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(float(delay))
        proc.kill()
        proc.wait()
        links.add(TextRewardModel.load(out, cache_dir=False).estimator.link)
    assert links <= {"logit", "probit"}
    TextRewardModel.load(out, cache_dir=False).save(out)  # the next save cleans up
    assert _listing(tmp_path) == ["model"]


def _edit_encoder(path, change) -> None:
    info = json.loads((path / "encoder.json").read_text())
    change(info)
    (path / "encoder.json").write_text(json.dumps(info))
    _rewrite(path)  # re-sign, so that only the encoder checks can refuse it


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda i: i["encoder"].update(model="../../etc/passwd"), "leaves the model folder"),
        (lambda i: i["encoder"].update(colour="red"), "unknown sentence encoder options"),
        (lambda i: i["encoder"].update(kind="pickle"), "unknown encoder kind 'pickle'"),
        (
            lambda i: i["encoder"].update(mode="response"),
            "mode: fitted with 'concat', now 'response'",
        ),
        (lambda i: i.update(encoder=[1]), "'encoder' must be a JSON object"),
    ],
)
def test_encoder_json_is_not_trusted(tmp_path, fitted, change, match):
    from signrm.text_model import TextRewardModel

    path = shutil.copytree(fitted / "bt", tmp_path / "m")
    _edit_encoder(path, change)
    with pytest.raises(UserError, match=match):
        TextRewardModel.load(path, cache_dir=False)


def test_encoder_identity_comes_from_the_loaded_model(tmp_path, fitted):
    from signrm.text_model import TextRewardModel

    path = shutil.copytree(fitted / "bt", tmp_path / "m")
    saved = json.loads((path / "encoder.json").read_text())["identity"]
    _edit_encoder(path, lambda i: i["encoder"].update(model_id="someone/else"))
    assert TextRewardModel.load(path, cache_dir=False).encoder.identity == saved
    (path / "encoder.json").write_text((path / "encoder.json").read_text() + " ")
    with pytest.raises(UserError, match="encoder.json: checksum mismatch"):
        TextRewardModel.load(path, cache_dir=False)


def test_fuzz_text_model_load_gives_a_clear_error_or_the_same_model(tmp_path, fitted):
    from signrm.text_model import TextRewardModel

    src = fitted / "bt"
    model = TextRewardModel.load(src, cache_dir=False)
    X = np.random.default_rng(1).standard_normal((5, model.estimator.n_features_in_))
    rng = np.random.default_rng(13)
    errors = 0
    for name in sorted(p.name for p in src.iterdir()):
        blob = (src / name).read_bytes()
        for i, (how, content) in enumerate(_corruptions(blob, rng)):
            path = shutil.copytree(src, tmp_path / f"{name}-{i}")
            if content is None:
                (path / name).unlink()
            else:
                (path / name).write_bytes(content)
            try:
                back = TextRewardModel.load(path, cache_dir=False)
            except (UserError, FileNotFoundError) as exc:
                assert str(path) in str(exc) and "\n" not in str(exc), (name, how, str(exc))
                errors += 1
            else:
                assert back.encoder.identity == model.encoder.identity
                np.testing.assert_array_equal(back.estimator.reward(X), model.estimator.reward(X))
    assert errors >= 6 * len(list(src.iterdir()))


# ------------------------------------------------------------------------- best-of-n
def test_best_of_n_rows_sharing_a_prompt(capsys, tmp_path, fitted):
    cands = tmp_path / "c.jsonl"
    opts = ["--cache-dir", fitted / "cache", "--no-progress"]
    rows = [
        {"prompt": "why", "responses": ["bad ugly", "good great"]},
        {"prompt": "why", "responses": ["poor vague", "nice clear", "awful bad"]},
    ]
    cands.write_text("".join(json.dumps(r) + "\n" for r in rows))
    code, _, err = run_cli(
        capsys, "best-of-n", fitted / "bt", cands, "--out", tmp_path / "p", *opts
    )
    assert code == 0, err
    picks = [json.loads(ln) for ln in (tmp_path / "p").read_text().splitlines()]
    assert [p["n_candidates"] for p in picks] == [2, 3]  # kept apart, one pick per row
    assert "note: 2 'responses' rows share their prompt" in err
    cands.write_text(json.dumps({"prompt": "why", "responses": []}) + "\n")
    code, _, err = run_cli(
        capsys, "best-of-n", fitted / "bt", cands, "--out", tmp_path / "p", *opts
    )
    assert code == 2 and "c.jsonl:1: 'responses' is empty" in one_error_line(err)
    rows = [{"prompt": "why", "responses": ["a b", "c d"]}, {"prompt": "why", "response": "e f"}]
    cands.write_text("".join(json.dumps(r) + "\n" for r in rows))
    code, _, err = run_cli(
        capsys, "best-of-n", fitted / "bt", cands, "--out", tmp_path / "p", *opts
    )
    assert code == 2 and "c.jsonl:2: prompt 'why' has both" in one_error_line(err)


# ------------------------------------------------------------------------- experiments
@pytest.fixture
def tiny_config(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(_tiny(seeds=1, grid={"n": [300], "estimator": ["rlhf"]})))
    return path


def test_experiment_refuses_bad_counts(capsys, tmp_path, tiny_config):
    from signrm.experiments import run_experiment

    for flag, value, match in (("--workers", "0", "--workers must be >= 1, got 0"),
                               ("--max-jobs", "-1", "--max-jobs must be >= 0, got -1")):  # fmt: skip
        code, _, err = run_cli(
            capsys, "experiment", "run", tiny_config, flag, value, "--out", tmp_path / "o"
        )
        assert code == 2 and match in one_error_line(err)
    with pytest.raises(UserError, match="workers must be an integer >= 1"):
        run_experiment(tiny_config, tmp_path / "o", workers=0)
    with pytest.raises(UserError, match="max_jobs must be an integer >= 0"):
        run_experiment(tiny_config, tmp_path / "o", max_jobs=-1)


def test_corrupt_results_database_and_row(capsys, tmp_path, tiny_config):
    out = tmp_path / "o"
    out.mkdir()
    (out / "results.sqlite").write_bytes(b"not a database" * 100)
    for argv in (["run", tiny_config, "--out", out, "--no-progress"], ["report", out]):
        code, _, err = run_cli(capsys, "experiment", *argv)
        assert code == 2 and "results.sqlite: corrupt results database" in one_error_line(err)
    (out / "results.sqlite").unlink()
    code, _, err = run_cli(
        capsys, "experiment", "run", tiny_config, "--out", out, "--no-progress", "--no-report"
    )
    assert code == 0, err
    with sqlite3.connect(out / "results.sqlite") as con:
        con.execute("UPDATE results SET row = '{oops'")
    con.close()
    code, _, err = run_cli(capsys, "experiment", "report", out)
    line = one_error_line(err)
    assert code == 2 and "results.sqlite: corrupt row of job" in line


def test_a_second_run_on_a_folder_says_who_holds_it(tmp_path, tiny_config):
    from signrm.experiments import run_experiment
    from signrm.experiments.runner import folder_lock

    (tmp_path / "o").mkdir()
    with folder_lock(tmp_path / "o"):
        with pytest.raises(
            UserError, match=rf"in use by another experiment run \(pid {os.getpid()} "
        ):
            run_experiment(tiny_config, tmp_path / "o", progress=False)
    assert len(run_experiment(tiny_config, tmp_path / "o", progress=False)) == 1  # released


def _workers_of(pid: int) -> list:
    import psutil

    try:
        kids = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    return [k for k in kids if "spawn_main" in " ".join(k.cmdline())]


@pytest.mark.slow
def test_killed_run_leaves_no_orphan_workers_and_no_semlock_warning(tmp_path):
    import psutil

    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(_tiny(seeds=30, grid={"n": [300], "estimator": ["rlhf"]})))
    signrm_cmd = [sys.executable, "-c", "import sys; from signrm.cli import main; sys.exit(main())"]
    cmd = [*signrm_cmd, "experiment", "run", str(cfg), "--workers", "2", "--no-progress",
           "--no-report"]  # fmt: skip
    done = subprocess.run([*cmd, "--out", str(tmp_path / "a"), "--max-jobs", "4"],
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "leaked" not in done.stderr and "Traceback" not in done.stderr
    proc = subprocess.Popen([*cmd, "--out", str(tmp_path / "b")], stderr=subprocess.PIPE)
    db, deadline = tmp_path / "b" / "results.sqlite", time.time() + 300
    while time.time() < deadline and proc.poll() is None:  # until the workers are in their loop
        time.sleep(0.5)
        if not db.exists():
            continue
        with contextlib.suppress(sqlite3.Error), sqlite3.connect(db) as con:
            if con.execute("SELECT COUNT(*) FROM results").fetchone()[0] >= 2:
                break
    workers = _workers_of(proc.pid)
    assert len(workers) == 2 and proc.poll() is None
    proc.kill()
    proc.wait()
    gone, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive, [p.pid for p in alive]


# ------------------------------------------------------------------------- CLI, cache layout
def test_bugs_print_one_line_without_debug(capsys, monkeypatch, tmp_path):
    import signrm.cli as cli
    from signrm.text_model import TextRewardModel

    def broken(*args, **kwargs):
        raise RuntimeError("a bug\nsecond line")

    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    monkeypatch.setattr(TextRewardModel, "load", broken)
    argv = ["score", str(tmp_path), str(tmp_path / "t.csv"), "--out", str(tmp_path / "s")]
    with pytest.raises(RuntimeError) as info:
        main(argv)
    assert sys.excepthook is cli._bug_hook  # what the `signrm` command shows at exit
    sys.excepthook(RuntimeError, info.value, info.value.__traceback__)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error: internal error (RuntimeError: a bug second line)" in err
    monkeypatch.setattr(sys, "excepthook", sys.__excepthook__)
    with pytest.raises(RuntimeError):
        main(["--debug", *argv])
    assert sys.excepthook is sys.__excepthook__


def test_cache_dir_and_signrm_cache_name_one_layout(tmp_path, monkeypatch):
    from signrm.embed import default_cache_dir
    from tests.test_embed import CountingEncoder

    monkeypatch.setenv("SIGNRM_CACHE", str(tmp_path))
    by_env = CountingEncoder(show_progress=False)
    by_arg = CountingEncoder(cache_dir=tmp_path, show_progress=False)
    assert by_env.cache.dir == by_arg.cache.dir
    assert by_arg.cache.dir.parent == tmp_path / "embeddings" == default_cache_dir()
    by_env.encode(["hello"])
    assert by_arg.encode(["hello"]).shape == (1, 4) and by_arg.calls == 0  # no re-embedding
