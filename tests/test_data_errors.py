"""Bad input to the data layer (issue 13): every case is refused or reported on one line naming
the file, never silently misread."""

from __future__ import annotations

import bz2
import gzip
import json
import lzma

import numpy as np
import pandas as pd
import pytest

from signrm.data import PreferenceData
from signrm.errors import UserError
from signrm.textdata import read_text

TRL = [{"prompt": "q1", "chosen": "good", "rejected": "bad"},
       {"prompt": "q2", "chosen": "fine", "rejected": "poor"}]  # fmt: skip


def _table(n=6) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {"a_x": rng.normal(size=n), "b_x": rng.normal(size=n), "label": [1.0, 0.0] * (n // 2)}
    )


def _jsonl_bytes(rows) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def _one_line(exc: pytest.ExceptionInfo, path) -> str:
    msg = str(exc.value)
    assert "\n" not in msg and str(path) in msg, msg
    assert isinstance(exc.value, UserError), type(exc.value)
    return msg


# ---------------------------------------------------------------------------------- BOM
def test_bom_in_csv_header_is_skipped_by_read(tmp_path):
    p = tmp_path / "bom.csv"
    df = _table()[["label", "a_x", "b_x"]]  # the BOM sits on the first column's name
    p.write_bytes(b"\xef\xbb\xbf" + df.to_csv(index=False).encode())
    data = PreferenceData.read(p)
    np.testing.assert_array_equal(data.y, df["label"].to_numpy())


@pytest.mark.parametrize(
    "header, row",
    [("prompt,chosen,rejected", "q,good,bad"), ("prompt,response_a,response_b,label", "q,x,y,a")],
)
def test_bom_in_csv_header_is_skipped_by_the_text_reader(tmp_path, header, row):
    p = tmp_path / "bom.csv"
    p.write_bytes(b"\xef\xbb\xbf" + f"{header}\n{row}\n".encode())
    t = read_text(p)
    assert t.prompts == ["q"] and t.report == []


# ---------------------------------------------------------------------------------- columns
def test_misspelled_optional_column_is_reported_by_read(tmp_path):
    p = tmp_path / "w.csv"
    _table().assign(weights=2.0, extra=1).to_csv(p, index=False)
    with pytest.warns(
        UserWarning,
        match=r"w\.csv: ignored column\(s\) \['weights', 'extra'\] \(did you mean 'weight' for 'weights'\?\)",
    ):  # noqa: E501
        data = PreferenceData.read(p)
    assert data.weight is None and data.ignored_columns == ["weights", "extra"]


def test_misspelled_optional_column_is_reported_by_the_text_reader(tmp_path):
    p = tmp_path / "a.jsonl"
    p.write_bytes(_jsonl_bytes([{**r, "Annotator_ID": "u1"} for r in TRL]))
    with pytest.warns(
        UserWarning,
        match=r"a\.jsonl: ignored column\(s\) \['Annotator_ID'\] \(did you mean 'annotator_id' for 'Annotator_ID'\?\)",
    ):  # noqa: E501
        t = read_text(p)
    assert t.annotator is None and any("Annotator_ID" in line for line in t.report)


def test_the_cli_prints_ignored_columns(tmp_path, capsys):
    """`signrm fit` reads the file inside ``warnings_as_lines``: the note is one stderr line."""
    from signrm.cli.common import warnings_as_lines

    p = tmp_path / "a.jsonl"
    p.write_bytes(_jsonl_bytes([{**r, "weights": 1} for r in TRL]))
    with warnings_as_lines():
        read_text(p)
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"warning: {p}: ignored column(s) ['weights'] (did you mean 'weight' for 'weights'?)"
    ]


# ---------------------------------------------------------------------------------- values
def test_overflowing_differences_are_refused():
    with pytest.raises(UserError, match=r"overflows to inf in row\(s\) 1.*rescale"):
        PreferenceData.from_arrays([[0.0], [1e308]], [[1.0], [-1e308]], [1, 0])
    with pytest.raises(UserError, match="item_features.*overflows"):
        PreferenceData.from_items([0, 1], [1, 0], [1, 0], item_features=[[1e308], [-1e308]])


def test_complex_input_is_refused_not_cast():
    z = np.ones((4, 2)) * (1 + 1j)
    with pytest.raises(UserError, match="xa: complex numbers are not supported"):
        PreferenceData.from_arrays(z, z.real, [1, 0, 1, 0])
    with pytest.raises(UserError, match="d: complex"):
        PreferenceData.from_differences(z, [1, 0, 1, 0])
    with pytest.raises(UserError, match="weight: complex"):
        PreferenceData.from_differences(z.real, [1, 0, 1, 0], weight=np.ones(4) + 1j)
    with pytest.raises(UserError, match="y: complex"):
        PreferenceData.from_differences(z.real, np.array([1, 0, 1, 0]) + 0j)


def test_subset_mask_of_the_wrong_length_is_refused():
    data = PreferenceData.from_differences(np.ones((5, 2)), [1, 0, 1, 0, 1])
    assert len(data.subset(np.array([True, False, True, False, True]))) == 3
    with pytest.raises(UserError, match=r"boolean mask needs shape \(5,\), got \(3,\)"):
        data.subset(np.array([True, False, True]))
    with pytest.raises(UserError, match=r"boolean mask needs shape \(5,\), got \(7,\)"):
        data.subset(np.ones(7, dtype=bool))
    with pytest.raises(UserError, match="out of range"):
        data.subset([0, 9])


def test_from_items_with_a_huge_id_says_why_instead_of_allocating():
    n = 100_000
    a = np.arange(n) % 1000
    a[0] = 1_000_000
    with pytest.raises(
        UserError, match=r"1000001 items.*one-hot.*would need 800 GB.*item_features"
    ):
        PreferenceData.from_items(a, (a + 1) % 1000, np.ones(n))
    # small problems still get their one-hot features (classic BT over items)
    data = PreferenceData.from_items([0, 2], [1, 0], [1, 0])
    np.testing.assert_array_equal(data.xa, [[1, 0, 0], [0, 0, 1]])


# ---------------------------------------------------------------------------------- files
def _read_both(path):
    """The errors of PreferenceData.read and read_text on ``path``."""
    out = []
    for reader in (PreferenceData.read, read_text):
        with pytest.raises(ValueError) as exc:
            reader(path)
        out.append(_one_line(exc, path))
    return out


def test_truncated_gz_is_one_line_naming_the_file(tmp_path):
    p = tmp_path / "t.jsonl.gz"
    full = gzip.compress(_jsonl_bytes(TRL * 200))
    p.write_bytes(full[: len(full) // 2])
    for msg in _read_both(p):
        assert "truncated" in msg


def test_corrupt_gz_is_one_line_naming_the_file(tmp_path):
    p = tmp_path / "c.csv.gz"
    raw = bytearray(gzip.compress(_table(400).to_csv(index=False).encode()))
    raw[40:60] = b"\x00" * 20  # inside the deflate stream
    p.write_bytes(bytes(raw))
    for msg in _read_both(p):
        assert "corrupt" in msg or "truncated" in msg


def test_non_gzip_gz_is_one_line_naming_the_file(tmp_path):
    p = tmp_path / "plain.jsonl.gz"
    p.write_bytes(_jsonl_bytes(TRL))
    for msg in _read_both(p):
        assert "not a gzip file" in msg


@pytest.mark.parametrize("suffix, compress", [(".bz2", bz2.compress), (".xz", lzma.compress)])
def test_bz2_and_xz_are_read(tmp_path, suffix, compress):
    p = tmp_path / f"t.jsonl{suffix}"
    p.write_bytes(compress(_jsonl_bytes(TRL)))
    assert read_text(p).prompts == ["q1", "q2"]
    data = PreferenceData.from_frame(_table())
    data.write(tmp_path / f"d.csv{suffix}")
    assert (tmp_path / f"d.csv{suffix}").read_bytes()[:3] == compress(b"")[:3]
    np.testing.assert_array_equal(PreferenceData.read(tmp_path / f"d.csv{suffix}").y, data.y)


def test_corrupt_bz2_is_one_line_naming_the_file(tmp_path):
    p = tmp_path / "c.jsonl.bz2"
    raw = bytearray(bz2.compress(_jsonl_bytes(TRL * 100)))
    raw[20:40] = b"\x00" * 20
    p.write_bytes(bytes(raw))
    for msg in _read_both(p):
        assert "corrupt" in msg or "truncated" in msg


def test_zst_is_refused_clearly(tmp_path):
    p = tmp_path / "t.jsonl.zst"
    p.write_bytes(b"\x28\xb5\x2f\xfd" + b"\x00" * 16)
    for msg in _read_both(p):
        assert ".zst compression is not supported" in msg and "zstd -d" in msg


def test_latin1_file_is_one_line_naming_the_file(tmp_path):
    p = tmp_path / "latin.csv"
    p.write_bytes("prompt,chosen,rejected,a_x,b_x,label\ncaf\xe9,a,b,1,2,1\n".encode("latin-1"))
    for msg in _read_both(p):
        assert "not UTF-8" in msg


def test_compressed_file_without_its_suffix_names_the_file(tmp_path):
    p = tmp_path / "packed.jsonl"
    p.write_bytes(gzip.compress(_jsonl_bytes(TRL)))
    for msg in _read_both(p):
        assert "is gzip-compressed; add the suffix .gz" in msg


def test_parquet_read_as_jsonl_names_the_file(tmp_path):
    p = tmp_path / "t.parquet"
    pd.DataFrame(TRL).to_parquet(p)
    for reader in (PreferenceData.read, read_text):
        with pytest.raises(ValueError) as exc:
            reader(p, format="jsonl")
        assert "is a Parquet file" in _one_line(exc, p)


def test_empty_file_and_directory_messages_name_the_path(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(ValueError) as exc:
        PreferenceData.read(empty)
    assert "empty" in _one_line(exc, empty)
    folder = tmp_path / "folder.csv"
    folder.mkdir()
    for reader in (PreferenceData.read, read_text):
        with pytest.raises(ValueError) as exc:
            reader(folder)
        assert "is a directory" in _one_line(exc, folder)


def test_parquet_with_a_compression_suffix_is_refused(tmp_path):
    p = tmp_path / "t.parquet.gz"
    p.write_bytes(gzip.compress(b"PAR1"))
    with pytest.raises(ValueError) as exc:
        PreferenceData.read(p)
    assert "compressed internally" in _one_line(exc, p)
