"""Model directories: saves never destroy user files and are crash-safe; loads trust nothing."""

from __future__ import annotations

import json
import os
import signal
import stat
import threading
import time
import zlib

import numpy as np
import pytest

import signrm
from signrm.errors import UserError
from signrm.persistence import _checks, _dirswap
from tests._sim import item_bt, planted_classes


@pytest.fixture(scope="module")
def small():
    data, feats, _ = item_bt(0, n=400, d=6)
    return data, feats


def _fit(kind: str, data):
    if kind == "em":
        em_data, _, _ = planted_classes(1, n_users=20, per_user=10, d=5)
        return signrm.LatentClassBT(2, n_init=1, random_state=0).fit(em_data)
    est = {
        "bt": signrm.BradleyTerry(),
        "sign": signrm.SignEstimator(n_stages=2),
        "bt-mlp": signrm.BradleyTerry(head="mlp", hidden_sizes=(4,), max_epochs=1, random_state=0),
        "clf-lgb": signrm.ClassificationRM(backend="lightgbm", n_estimators=5, random_state=0),
    }[kind]
    return est.fit(data)


KINDS = ("bt", "sign", "bt-mlp", "clf-lgb", "em")


def _assert_same(a, b, X) -> None:
    assert type(a) is type(b) and a.get_params() == b.get_params()
    for name in a._state_attributes():
        va, vb = getattr(a, name, None), getattr(b, name, None)
        if isinstance(va, np.ndarray):
            np.testing.assert_array_equal(va, vb)
        else:
            assert va == vb, name
    np.testing.assert_array_equal(a.reward(X), b.reward(X))


def _rewrite(path, edit=None, arrays=None, drop=()):
    """Change a saved model and re-sign its manifest (what a careful forger would do): the
    checks below must then come from validation, not from the checksums."""
    meta = json.loads((path / "model.json").read_text())
    if arrays is not None:
        np.savez(path / "arrays.npz", **arrays)
    for name in drop:
        (path / name).unlink()
        meta["files"].pop(name, None)
    if edit is not None:
        edit(meta)
    meta["files"] = {
        n: _checks.file_digest(path / n) for n in meta.get("files", {}) if (path / n).exists()
    }
    meta["checksum"] = _checks.canonical_checksum(meta)
    (path / "model.json").write_text(json.dumps(meta))


def _listing(directory):
    return sorted(p.name for p in directory.iterdir())


# ------------------------------------------------------------------------- saves: user files
def test_save_never_replaces_what_is_not_a_model(tmp_path, small):
    data, _ = small
    est = signrm.BradleyTerry().fit(data)
    user_file = tmp_path / "notes.txt"
    user_file.write_text("mine")
    with pytest.raises(UserError, match="is a file, not a signrm model directory"):
        est.save(user_file)
    assert user_file.read_text() == "mine"
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "thesis.tex").write_text("years of work")
    with pytest.raises(UserError, match="not a signrm model"):
        est.save(folder)
    assert _listing(folder) == ["thesis.tex"]
    model = est.save(tmp_path / "model")
    (model / "prefs.jsonl").write_text("{}\n")  # e.g. the input file kept next to the model
    with pytest.raises(UserError, match=r"files that signrm did not write \(prefs.jsonl\)"):
        est.save(model)
    assert (model / "prefs.jsonl").exists() and signrm.load(model)
    (model / "prefs.jsonl").unlink()
    (tmp_path / "empty").mkdir()
    est.save(tmp_path / "empty")  # an empty directory is fine
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_save_dot_and_folder_mode(tmp_path, small, monkeypatch):
    data, feats = small
    est = signrm.BradleyTerry().fit(data)
    old = os.umask(0o022)
    try:
        path = est.save(tmp_path / "m")
        monkeypatch.chdir(path)
        est.save(".")
        assert os.getcwd() == str(path) and (path / "model.json").exists()
        assert _listing(tmp_path) == ["m"]  # no ..old.* / .m.* left behind
        assert stat.S_IMODE(path.stat().st_mode) == 0o755
        assert stat.S_IMODE((path / "arrays.npz").stat().st_mode) == 0o644
        _assert_same(est, signrm.load("."), feats)
    finally:
        os.umask(old)


def test_concurrent_saves_to_one_path_all_succeed(tmp_path, small):
    data, feats = small
    models = [signrm.BradleyTerry(l2=v).fit(data) for v in (1e-4, 1.0)]
    errors = []

    def work(est):
        try:
            for _ in range(8):
                est.save(tmp_path / "m")
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(models[i % 2],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    back = signrm.load(tmp_path / "m")
    assert any(np.array_equal(back.coef_, m.coef_) for m in models)
    assert _listing(tmp_path) == ["m"]


def test_leftovers_of_killed_saves_are_cleaned_but_nothing_else(tmp_path, small):
    data, _ = small
    est = signrm.BradleyTerry().fit(data)
    est.save(tmp_path / "m")
    partial = tmp_path / ".m.signrm-tmp-0123456789abcdef"
    partial.mkdir()
    (partial / _dirswap.PARTIAL_MARKER).touch()
    (partial / "arrays.npz").write_bytes(b"x" * 100)
    stale = tmp_path / ".m.signrm-old-00000000000000ff"
    est.save(stale.parent / "stale-model")
    os.rename(tmp_path / "stale-model", stale)
    lookalike = tmp_path / ".m.signrm-tmp-fedcba9876543210"  # right name, user content
    lookalike.mkdir()
    (lookalike / "mine.txt").write_text("keep")
    other = tmp_path / ".m.backup"
    other.mkdir()
    (other / _dirswap.PARTIAL_MARKER).touch()
    est.save(tmp_path / "m")
    assert _listing(tmp_path) == sorted([".m.backup", lookalike.name, "m"])


def test_swap_without_renameat2_and_recovery(tmp_path, small, monkeypatch):
    data, feats = small
    est = signrm.BradleyTerry().fit(data)
    monkeypatch.setattr(_dirswap, "_exchange", lambda a, b: False)
    path = est.save(tmp_path / "m")
    est.save(path)
    assert _listing(tmp_path) == ["m"]
    # a crash between the two renames: only the backup is left; the next load puts it back
    os.rename(path, tmp_path / ".m.signrm-old-0123456789abcdef")
    _assert_same(est, signrm.load(path), feats)
    assert _listing(tmp_path) == ["m"]


def kill_saves(save_fns, times: int, seed: int = 0, max_delay: float = 0.15):
    """Fork a child that calls ``save_fns[0]``, ``save_fns[1]``, ... in turn forever, SIGKILL it
    after a random delay, ``times`` times; yields after each kill (the caller checks the path)."""
    rng = np.random.default_rng(seed)
    for _ in range(times):
        ready_r, ready_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            try:
                os.write(ready_w, b"1")
                for i in range(10**9):
                    save_fns[i % len(save_fns)]()
            finally:
                os._exit(0)
        os.read(ready_r, 1)
        time.sleep(float(rng.uniform(0.0, max_delay)))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(ready_r)
        os.close(ready_w)
        yield


@pytest.mark.parametrize("kind", ["bt", "bt-mlp"])
def test_killed_saves_leave_the_old_or_the_new_model(tmp_path, small, kind):
    """SIGKILL a process that saves two models alternately at 12 random instants: every time
    the path holds one of them, whole, and the next save leaves no temporary folder."""
    data, feats = small
    models = [_fit(kind, data)]
    models.append(
        type(models[0])(**{**models[0].get_params(), "l2": 0.5}).fit(data)
        if kind == "bt"
        else type(models[0])(**{**models[0].get_params(), "random_state": 1}).fit(data)
    )
    path = tmp_path / "m"
    models[0].save(path)
    seen = {0: 0, 1: 0, "leftovers": 0}
    saves = [lambda m=m: m.save(path) for m in models]
    for _ in kill_saves(saves, 12 if kind == "bt" else 6):
        seen["leftovers"] += len(_listing(tmp_path)) > 1
        back = signrm.load(path)
        same = [
            i for i, m in enumerate(models) if np.array_equal(back.reward(feats), m.reward(feats))
        ]
        assert len(same) == 1
        seen[same[0]] += 1
    assert seen["leftovers"] > 0  # the kills did land inside saves
    models[1].save(path)
    assert _listing(tmp_path) == ["m"]


# ------------------------------------------------------------------------- loads: validation
@pytest.fixture(scope="module")
def saved(tmp_path_factory, small):
    data, _ = small
    root = tmp_path_factory.mktemp("models")
    models = {k: _fit(k, data) for k in KINDS}
    return {k: (est, est.save(root / k)) for k, est in models.items()}


def _copy(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda m: m.update(format_version=99), "unknown format_version 99"),
        (lambda m: m.update({"class": "NotFittedError"}), "unknown estimator class"),
        (lambda m: m.update({"class": "PreferenceEstimator"}), "unknown estimator class"),
        (lambda m: m.update({"class": "SignEstimator"}), "unknown parameters of SignEstimator"),
        (lambda m: m.update(params=[1, 2]), "'params' must be a JSON object"),
        (lambda m: m["params"].update(link="nope"), "invalid parameters.*link"),
        (lambda m: m["params"].update(colour="red"), "unknown parameters.*colour"),
        (lambda m: m["attributes"].update(reward=1), "'reward' is not a learned attribute"),
        (lambda m: m["attributes"].update(n_features_in_=0), "n_features_in_ must be a positive"),
        (lambda m: m.update(arrays=["coef_", "predict"]), "'predict' is not a learned attribute"),
        (lambda m: m.update(extra=1), r"unknown keys \['extra'\]"),
    ],
)
def test_load_validates_model_json(tmp_path, saved, edit, match):
    path = _copy(saved["bt"][1], tmp_path / "m")
    _rewrite(path, edit)
    with pytest.raises(UserError, match=match):
        signrm.load(path)


def test_load_validates_arrays_and_extra_files(tmp_path, saved):
    est, src = saved["bt"]
    nan = _copy(src, tmp_path / "nan")
    _rewrite(nan, arrays={"coef_": np.full_like(est.coef_, np.nan)})
    with pytest.raises(UserError, match="array 'coef_' holds NaN"):
        signrm.load(nan)
    short = _copy(src, tmp_path / "short")
    _rewrite(short, arrays={"coef_": est.coef_[:2]})
    with pytest.raises(UserError, match="do not make a working BradleyTerry"):
        signrm.load(short)
    em, src = saved["em"]
    weights = _copy(src, tmp_path / "weights")
    arrays = {k: getattr(em, k) for k in json.loads((src / "model.json").read_text())["arrays"]}
    _rewrite(weights, arrays={**arrays, "weights_": np.array([np.nan, 1.0])})
    with pytest.raises(UserError, match="'weights_' holds NaN"):
        signrm.load(weights)
    for kind, name in (("bt-mlp", "head.safetensors"), ("clf-lgb", "booster.txt")):
        missing = _copy(saved[kind][1], tmp_path / f"no-{name}")
        (missing / name).unlink()
        with pytest.raises(UserError, match=f"{name}: missing"):
            signrm.load(missing)
        _rewrite(missing, drop=[])  # even with a re-signed manifest: no working model
        with pytest.raises(UserError, match="do not make a working"):
            signrm.load(missing)


def test_legacy_unsigned_models_still_load_with_every_other_check(tmp_path, saved, small):
    _, feats = small
    est, src = saved["bt"]
    path = _copy(src, tmp_path / "v1")
    meta = json.loads((path / "model.json").read_text())
    for key in ("files", "checksum"):
        meta.pop(key)
    meta["format_version"] = 1
    (path / "model.json").write_text(json.dumps(meta))
    _assert_same(est, signrm.load(path), feats)
    (path / "arrays.npz").write_bytes((path / "arrays.npz").read_bytes()[:50])
    with pytest.raises(UserError, match="corrupt arrays file"):
        signrm.load(path)


def _corruptions(blob: bytes, rng) -> list[tuple[str, bytes | None]]:
    n = len(blob)
    out: list[tuple[str, bytes | None]] = [("deleted", None), ("empty", b"")]
    for _ in range(3):
        i = int(rng.integers(n))
        flipped = bytearray(blob)
        flipped[i] ^= 1 << int(rng.integers(8))
        out.append((f"bit flip at {i}", bytes(flipped)))
    cut = int(rng.integers(1, n))
    out.append((f"truncated to {cut}", blob[:cut]))
    out.append(("garbage appended", blob + rng.bytes(16)))
    i = int(rng.integers(n))
    out.append((f"16 random bytes at {i}", blob[:i] + rng.bytes(16) + blob[i + 16 :]))
    return out


@pytest.mark.parametrize("kind", KINDS)
def test_fuzz_load_gives_a_clear_error_or_the_same_model(tmp_path, saved, small, kind):
    _, feats = small
    est, src = saved[kind]
    X = np.random.default_rng(1).standard_normal((20, est.n_features_in_))
    rng = np.random.default_rng(zlib.crc32(kind.encode()))
    outcomes = {"error": 0, "same": 0}
    for name in sorted(p.name for p in src.iterdir()):
        blob = (src / name).read_bytes()
        for i, (how, content) in enumerate(_corruptions(blob, rng)):
            path = _copy(src, tmp_path / f"{name}-{i}")
            if content is None:
                (path / name).unlink()
            else:
                (path / name).write_bytes(content)
            try:
                back = signrm.load(path)
            except (UserError, FileNotFoundError) as exc:
                msg = str(exc)
                assert str(path) in msg and "\n" not in msg, (name, how, msg)
                outcomes["error"] += 1
            else:
                _assert_same(est, back, X)
                outcomes["same"] += 1
    assert outcomes["error"] >= 6 * len(list(src.iterdir()))  # nearly every corruption is caught
