"""Streaming (out-of-core) fits agree with the in-memory ones; bad shards raise clear errors."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import signrm
from signrm.streaming import NpyPair, ParquetShards, open_source


def _angle(a, b) -> float:
    c = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
    return float(np.degrees(np.arccos(np.clip(c, -1.0, 1.0))))


def _hetero(seed=0, n=6000, d=12):
    """Symmetric heterogeneity (METHODS.md section 2) with alternatives, float32 features."""
    rng = np.random.default_rng(seed)
    xa = rng.standard_normal((n, d)).astype(np.float32)
    xb = rng.standard_normal((n, d)).astype(np.float32)
    theta = np.zeros(d)
    theta[:2] = 1.0
    th = np.tile(theta, (n, 1))
    th[:, 0] += rng.choice([-1.0, 1.0], n) * rng.exponential(3.0, n)
    p = 1.0 / (1.0 + np.exp(-((xa - xb) * th).sum(1)))
    y = (rng.random(n) < p).astype(float)
    y[:50] = 0.5  # a few ties
    w = rng.uniform(0.5, 2.0, n)
    return xa, xb, y, w


def _fsl(x):
    return pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), x.shape[1])


def _write_shards(tmp_path, xa, xb, y, w=None, rows=2500):
    out = tmp_path / "shards"
    out.mkdir()
    for k, s in enumerate(range(0, len(y), rows)):
        cols = {
            "xa": _fsl(xa[s : s + rows]),
            "xb": _fsl(xb[s : s + rows]),
            "label": y[s : s + rows],
        }
        if w is not None:
            cols["weight"] = w[s : s + rows]
        pq.write_table(pa.table(cols), out / f"part-{k:04d}.parquet")
    return out


@pytest.fixture(scope="module")
def hetero():
    return _hetero()


@pytest.mark.parametrize("weighted", [False, True])
def test_streaming_matches_in_memory(tmp_path, hetero, weighted):
    xa, xb, y, w = hetero
    w = w if weighted else None
    data = signrm.PreferenceData.from_arrays(xa, xb, y, weight=w)
    src = open_source(_write_shards(tmp_path, xa, xb, y, w), chunk_rows=1000)
    assert isinstance(src, ParquetShards) and src.n_samples == len(y) and src.n_features == 12
    for est in (signrm.BradleyTerry(), signrm.SignEstimator(), signrm.BradleyTerry(link="probit")):
        mem = type(est)(**est.get_params()).fit(data)
        stream = est.fit(src)  # the estimators' fit delegates to fit_streaming
        assert stream.n_passes_ > 1
        assert _angle(mem.coef_, stream.coef_) < 0.05
        assert stream.score(data) == pytest.approx(mem.score(data), abs=2e-3)
    assert stream.n_features_in_ == 12


def test_sign_attributes_and_reload(tmp_path, hetero):
    xa, xb, y, _ = hetero
    data = signrm.PreferenceData.from_arrays(xa, xb, y)
    mem = signrm.SignEstimator(n_stages=3).fit(data)
    src = ParquetShards(_write_shards(tmp_path, xa, xb, y), chunk_rows=1500)
    est = signrm.SignEstimator(n_stages=3).fit(src)
    assert len(est.stages_) == 3
    for attr in ("agreement_", "zero_one_loss_", "calibration_scale_", "margin_scale_"):
        assert getattr(est, attr) == pytest.approx(getattr(mem, attr), rel=1e-3, abs=1e-4)
    est.save(tmp_path / "model")
    again = signrm.load(tmp_path / "model")
    np.testing.assert_allclose(again.decision_function(data), est.decision_function(data))


def test_npy_pair_and_differences(tmp_path, hetero):
    xa, xb, y, w = hetero
    for name, arr in (("xa", xa), ("xb", xb), ("y", y), ("weight", w), ("differences", xa - xb)):
        np.save(tmp_path / f"{name}.npy", arr)
    src = open_source(tmp_path, chunk_rows=999)
    assert isinstance(src, NpyPair) and src.has_alternatives and src.has_weight
    data = signrm.PreferenceData.from_arrays(xa, xb, y, weight=w)
    mem = signrm.BradleyTerry().fit(data)
    assert _angle(signrm.BradleyTerry().fit(src).coef_, mem.coef_) < 0.05
    diff = NpyPair(tmp_path / "differences.npy", None, tmp_path / "y.npy", weight=w, chunk_rows=777)
    assert not diff.has_alternatives
    assert _angle(signrm.BradleyTerry().fit(diff).coef_, mem.coef_) < 0.05
    back = diff.to_data()
    np.testing.assert_allclose(back.differences, xa - xb)


def test_scalar_columns_written_by_preference_data(tmp_path, hetero):
    xa, xb, y, _ = hetero
    data = signrm.PreferenceData.from_arrays(xa[:1500], xb[:1500], y[:1500])
    (tmp_path / "d").mkdir()
    data.subset(np.arange(700)).write(tmp_path / "d" / "a.parquet")
    data.subset(np.arange(700, 1500)).write(tmp_path / "d" / "b.parquet")
    src = open_source(tmp_path / "d", chunk_rows=400)
    assert src.n_features == 12 and src.n_samples == 1500
    mem = signrm.BradleyTerry().fit(data)
    assert _angle(mem.coef_, signrm.BradleyTerry().fit(src).coef_) < 0.05


def test_cv_bandwidth_streams_and_agrees_with_memory(tmp_path, hetero):
    """The default (cross-validated) sign fit is the same on shards as in memory: folds are a hash
    of the global row index, not of the chunking."""
    xa, xb, y, _ = hetero
    data = signrm.PreferenceData.from_arrays(xa, xb, y)
    mem = signrm.SignEstimator().fit(data)
    src = ParquetShards(_write_shards(tmp_path, xa, xb, y), chunk_rows=700)
    stream = signrm.SignEstimator().fit(src)
    assert stream.selected_lambda_ == mem.selected_lambda_
    assert stream.selected_blend_ == mem.selected_blend_
    assert _angle(mem.coef_, stream.coef_) < 1e-3
    assert np.allclose(stream.cv_scores_, mem.cv_scores_, atol=1e-9)


def test_bad_shards_name_file_column_row(tmp_path):
    rng = np.random.default_rng(1)
    xa = rng.standard_normal((30, 4)).astype(np.float32)
    xb = rng.standard_normal((30, 4)).astype(np.float32)
    y = (rng.random(30) < 0.5).astype(float)
    out = _write_shards(tmp_path, xa, xb, y, rows=10)
    bad = xa.copy()
    bad[3, 1] = np.nan
    pq.write_table(
        pa.table({"xa": _fsl(bad[:10]), "xb": _fsl(xb[:10]), "label": y[:10]}),
        out / "part-0001.parquet",
    )
    with pytest.raises(ValueError, match=r"part-0001\.parquet.*xa.*row\(s\) 13"):
        signrm.BradleyTerry().fit(ParquetShards(out))
    ylab = y[:10].copy()
    ylab[2] = 3.0
    pq.write_table(
        pa.table({"xa": _fsl(xa[:10]), "xb": _fsl(xb[:10]), "label": ylab}),
        out / "part-0001.parquet",
    )
    with pytest.raises(ValueError, match=r"part-0001\.parquet.*label.*row\(s\) 12"):
        signrm.SignEstimator().fit(ParquetShards(out))
    pq.write_table(pa.table({"xa": _fsl(xa[:10]), "label": y[:10]}), out / "part-0001.parquet")
    with pytest.raises(ValueError, match=r"part-0001\.parquet: missing column.*xb"):
        ParquetShards(out)
    ragged = pa.array([list(r) for r in xa[:9]] + [[1.0, 2.0]])
    pq.write_table(
        pa.table({"xa": ragged, "xb": _fsl(xb[:10]), "label": y[:10]}), out / "part-0001.parquet"
    )
    with pytest.raises(ValueError, match=r"(column 'xa'.*length|xa.*list)"):
        signrm.BradleyTerry().fit(ParquetShards(out))
    with pytest.raises(ValueError, match="not a streaming source"):
        open_source(tmp_path)
    with pytest.raises(ValueError, match="linear heads"):
        signrm.BradleyTerry(head="mlp").fit(NpyPair(_np(tmp_path, xa), None, y))


def _np(tmp_path, x):
    np.save(tmp_path / "x.npy", x)
    return tmp_path / "x.npy"


def test_fit_takes_a_path_and_calibrates_from_disk_blocks(tmp_path, hetero, monkeypatch):
    """A path streams; the calibration read back in many small blocks equals the in-memory one."""
    from signrm.engine.linear import MarginSpool

    xa, xb, y, w = hetero
    data = signrm.PreferenceData.from_arrays(xa, xb, y, weight=w)
    out = _write_shards(tmp_path, xa, xb, y, w)
    monkeypatch.setattr(MarginSpool, "block_rows", 997)  # 7 blocks, a partial last
    mem = signrm.SignEstimator(n_stages=3).fit(data)
    stream = signrm.SignEstimator(n_stages=3).fit(str(out))
    assert _angle(mem.coef_, stream.coef_) < 0.05
    for attr in ("agreement_", "zero_one_loss_", "calibration_scale_"):
        assert getattr(stream, attr) == pytest.approx(getattr(mem, attr), rel=1e-3, abs=1e-4)
    bt = signrm.BradleyTerry().fit(out)
    assert bt.n_passes_ > 1
    with pytest.raises(TypeError, match=r"scores a signrm.PreferenceData.*PreferenceData.read"):
        bt.decision_function(str(out))
    with pytest.raises(TypeError, match="PreferenceData.read"):
        signrm.ClassificationRM().fit(str(out))
    with pytest.raises(FileNotFoundError, match="no such file"):
        signrm.BradleyTerry().fit(tmp_path / "missing")


def test_shards_must_hold_the_same_scalar_features(tmp_path):
    rng = np.random.default_rng(2)
    out = tmp_path / "d"
    out.mkdir()
    for k, d in enumerate((3, 4)):  # the second shard has one feature more
        cols = {f"a_{j}": rng.standard_normal(20) for j in range(d)}
        cols |= {f"b_{j}": rng.standard_normal(20) for j in range(d)}
        cols["label"] = (rng.random(20) < 0.5).astype(float)
        pq.write_table(pa.table(cols), out / f"part-{k}.parquet")
    with pytest.raises(ValueError, match=r"part-1\.parquet.*a_3.*same feature columns"):
        open_source(out)


def test_npy_error_names_the_file_holding_the_bad_value(tmp_path):
    rng = np.random.default_rng(3)
    xa = rng.standard_normal((40, 3)).astype(np.float32)
    xb = xa[::-1].copy()
    xb[17, 2] = np.inf
    for name, arr in (("xa", xa), ("xb", xb), ("y", (rng.random(40) < 0.5).astype(float))):
        np.save(tmp_path / f"{name}.npy", arr)
    with pytest.raises(ValueError, match=r"xb\.npy: NaN or inf in the xb features, row\(s\) 17"):
        signrm.BradleyTerry().fit(open_source(tmp_path, chunk_rows=16))
