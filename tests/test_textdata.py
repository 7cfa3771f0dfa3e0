"""Reading text preference files: conventions, formats, validation, embedding."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from signrm.errors import UserError
from signrm.textdata import TextPreferences, read_text, read_texts_table

pd = pytest.importorskip("pandas")


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


class LenEncoder:
    """Minimal encoder: (len(prompt), len(text), #vowels)."""

    def __init__(self):
        self.seen = []

    def encode(self, texts, prompts=None, show_progress=None):
        self.seen.append((list(texts), None if prompts is None else list(prompts)))
        p = prompts or [""] * len(texts)
        return np.array(
            [[len(a), len(b), sum(c in "aeiou" for c in b)] for a, b in zip(p, texts)],
            dtype=np.float32,
        )


TRL_ROWS = [
    {"prompt": "Hi?", "chosen": "Hello!", "rejected": "Go away.", "annotator_id": "u1"},
    {"prompt": "Hi?", "chosen": "Hey there", "rejected": "Go away.", "annotator_id": 7},
    {"prompt": "Q", "chosen": "yes", "rejected": "no", "annotator_id": "u1"},
]


def test_trl_jsonl(tmp_path):
    p = write_jsonl(tmp_path / "p.jsonl", TRL_ROWS)
    t = read_text(p)
    assert isinstance(t, TextPreferences) and len(t) == 3 and t.convention == "trl"
    assert t.text_a == ["Hello!", "Hey there", "yes"] and (t.y == 1).all()
    assert list(t.annotator) == ["u1", "7", "u1"]
    assert t.margin is None and t.weight is None
    assert t.locations[2].endswith("p.jsonl:3")
    codes, uniq = t.prompt_codes()
    assert codes.tolist() == [0, 0, 1] and uniq == ["Hi?", "Q"]


def test_trl_chat_messages_explicit_and_implicit(tmp_path):
    explicit = {
        "prompt": [{"role": "user", "content": "Capital of France?"}],
        "chosen": [{"role": "assistant", "content": "Paris"}],
        "rejected": [{"role": "assistant", "content": "Lyon"}],
    }
    t = read_text(write_jsonl(tmp_path / "e.jsonl", [explicit]))
    assert (t.prompts[0], t.text_a[0], t.text_b[0]) == ("Capital of France?", "Paris", "Lyon")
    conv = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}]
    implicit = {
        "chosen": conv + [{"role": "assistant", "content": "4"}],
        "rejected": conv + [{"role": "assistant", "content": "5"}],
    }
    t = read_text(write_jsonl(tmp_path / "i.jsonl", [implicit]))
    assert t.prompts[0] == "system: Be brief.\nuser: 2+2?" and t.text_a[0] == "4"
    bad = dict(implicit, rejected=[{"role": "user", "content": "other"}, implicit["rejected"][-1]])
    with pytest.raises(UserError, match=r"i2.jsonl:1: .*share all messages"):
        read_text(write_jsonl(tmp_path / "i2.jsonl", [bad]))


def test_pair_csv_labels_and_multiline(tmp_path):
    p = tmp_path / "p.csv"
    p.write_text(
        "prompt,response_a,response_b,label,weight,margin\n"
        'q1,a,b,a,1,0\nq2,"multi\nline",c,tie,2,0.5\nq3,x,y,0,0,1\nq4,u,v,B,1,-1\n',
        encoding="utf-8",
    )
    t = read_text(p)
    assert t.y.tolist() == [1.0, 0.5, 0.0, 0.0]
    assert t.text_a[1] == "multi\nline"
    assert t.weight.tolist() == [1, 2, 0, 1] and t.margin.tolist() == [0, 0.5, 1, -1]
    # the physical line where each record starts
    assert [loc.rsplit(":", 1)[1] for loc in t.locations] == ["2", "3", "5", "6"]


def test_parquet_and_gzip_roundtrip(tmp_path):
    rows = [
        {"prompt": "p", "response_a": "a", "response_b": "b", "label": 1.0, "annotator_id": "x"},
        {"prompt": "p", "response_a": "c", "response_b": "b", "label": 0.5, "annotator_id": "y"},
    ]
    pd.DataFrame(rows).to_parquet(tmp_path / "p.parquet")
    t = read_text(tmp_path / "p.parquet")
    assert t.y.tolist() == [1.0, 0.5] and t.locations[1].endswith("row 2")
    t.write(tmp_path / "out.jsonl.gz")
    back = read_text(tmp_path / "out.jsonl.gz")
    assert back.text_a == t.text_a and back.y.tolist() == t.y.tolist()
    assert list(back.annotator) == ["x", "y"]


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"prompt": "p", "chosen": "a", "rejected": "b"', r"bad.jsonl:2: malformed JSON"),
        ('["a", "b"]', r"bad.jsonl:2: expected a JSON object"),
        ('{"prompt": "p", "chosen": "a"}', r"bad.jsonl:2: missing column\(s\) \['rejected'\]"),
        ('{"prompt": "p", "chosen": 3, "rejected": "b"}', r"bad.jsonl:2: column 'chosen' must be"),
        ('{"prompt": "p", "chosen": null, "rejected": "b"}', r"bad.jsonl:2: missing value"),
    ],
)
def test_malformed_lines_name_file_and_line(tmp_path, line, message):
    p = tmp_path / "bad.jsonl"
    first = {"prompt": "p", "chosen": "a", "rejected": "b"}
    p.write_text(json.dumps(first) + "\n" + line + "\n", encoding="utf-8")
    with pytest.raises(UserError, match=message):
        read_text(p)


@pytest.mark.parametrize(
    "cell, message",
    [
        ("maybe", r"bad.csv:3: column 'label': 'maybe' is not one of"),
        ("2", r"bad.csv:3: column 'label'"),
    ],
)
def test_bad_labels(tmp_path, cell, message):
    p = tmp_path / "bad.csv"
    p.write_text(f"prompt,response_a,response_b,label\nq,a,b,a\nq,c,d,{cell}\n", encoding="utf-8")
    with pytest.raises(UserError, match=message):
        read_text(p)


def test_bad_numbers_and_annotators(tmp_path):
    base = {"prompt": "p", "chosen": "a", "rejected": "b"}
    cases = [
        ({"weight": -1}, "weight -1.0 is negative"),
        ({"weight": "x"}, "'x' is not a number"),
        ({"margin": float("inf")}, "not finite"),
        ({"annotator_id": ""}, "missing value in column 'annotator_id'"),
    ]
    for extra, msg in cases:
        key = next(iter(extra))
        ok = {**base, key: 1 if key != "annotator_id" else "u"}
        p = tmp_path / "n.jsonl"
        p.write_text(json.dumps(ok) + "\n" + json.dumps({**base, **extra}) + "\n")
        with pytest.raises(UserError, match=rf"n.jsonl:2: .*{msg}"):
            read_text(p)


def test_missing_columns_and_unknown_convention(tmp_path):
    with pytest.raises(UserError, match="cannot tell the convention"):
        read_text(write_jsonl(tmp_path / "x.jsonl", [{"question": "q", "answer": "a"}]))
    p = tmp_path / "short.csv"
    p.write_text("prompt,response_a,response_b,label\nq,a,b\n")
    with pytest.raises(UserError, match=r"short.csv:2: 3 fields, the header has 4"):
        read_text(p)
    with pytest.raises(UserError, match="no records"):
        (tmp_path / "empty.jsonl").write_text("\n")
        read_text(tmp_path / "empty.jsonl")
    with pytest.raises(FileNotFoundError):
        read_text(tmp_path / "nope.jsonl")
    with pytest.raises(UserError, match="suffix"):
        (tmp_path / "x.txt").write_text("a")
        read_text(tmp_path / "x.txt")


def test_columns_mapping(tmp_path):
    p = write_jsonl(tmp_path / "m.jsonl", [{"q": "p", "good": "a", "bad": "b", "other": 1}])
    t = read_text(p, columns={"q": "prompt", "good": "chosen", "bad": "rejected"})
    assert t.text_a == ["a"] and any("ignored column" in r for r in t.report)


def test_empty_texts_are_errors_or_reported_drops(tmp_path):
    rows = TRL_ROWS[:1] + [
        {"prompt": "p", "chosen": "  ", "rejected": "b", "annotator_id": "u"},
        {"prompt": "p", "chosen": "same", "rejected": "same", "annotator_id": "u"},
        {"prompt": "", "chosen": "a", "rejected": "b", "annotator_id": "u"},
    ]
    p = write_jsonl(tmp_path / "e.jsonl", rows)
    with pytest.raises(UserError, match=r"e.jsonl:2: empty 'chosen'"):
        read_text(p)
    with pytest.warns(UserWarning, match="dropped 3 invalid row"):
        t = read_text(p, on_invalid="drop")
    assert len(t) == 1 and len(t.annotator) == 1
    assert "e.jsonl:3 ('chosen' and 'rejected' are identical)" in t.report[-1]


def test_duplicates_reported_kept_dropped_or_error(tmp_path):
    rows = [
        {"prompt": "p", "response_a": "a", "response_b": "b", "label": "a", "annotator_id": "u"},
        {"prompt": "p", "response_a": "b", "response_b": "a", "label": "a", "annotator_id": "u"},
        {"prompt": "p", "response_a": "a", "response_b": "b", "label": "a", "annotator_id": "v"},
    ]
    p = write_jsonl(tmp_path / "d.jsonl", rows)
    with pytest.warns(UserWarning, match=r"kept 1 duplicate comparison.*1 with a conflicting"):
        t = read_text(p)
    assert len(t) == 3
    with pytest.warns(UserWarning, match="dropped 1 duplicate"):
        assert len(read_text(p, on_duplicate="drop")) == 2
    with pytest.raises(UserError, match=r"duplicate .*d.jsonl:2"):
        read_text(p, on_duplicate="error")


def test_to_preference_data(tmp_path):
    p = write_jsonl(tmp_path / "p.jsonl", TRL_ROWS)
    enc = LenEncoder()
    data = read_text(p, enc)
    assert data.n_samples == 3 and data.n_features == 3
    ((texts, prompts),) = enc.seen
    assert len(texts) == 5  # distinct (prompt, response) items: "Go away." shared
    assert data.user.tolist() == ["u1", "7", "u1"]
    # balance: chosen-first pairs are flipped at random, label follows the texts
    d = data.differences
    expected_a = np.array([[3, 6, 2], [3, 9, 3], [1, 3, 1]], dtype=float)  # chosen features
    expected_b = np.array([[3, 8, 3], [3, 8, 3], [1, 2, 1]], dtype=float)
    sign = np.where(data.y == 1, 1.0, -1.0)[:, None]
    np.testing.assert_allclose(d * sign, expected_a - expected_b)
    t = read_text(p)
    same = t.to_preference_data(enc, balance=False)
    assert (same.y == 1).all()


def test_to_trl_dataset(tmp_path):
    pytest.importorskip("datasets")
    rows = [
        {"prompt": "p", "response_a": "a", "response_b": "b", "label": "b", "margin": 1.0},
        {"prompt": "p", "response_a": "c", "response_b": "d", "label": "tie", "margin": 0.0},
    ]
    t = read_text(write_jsonl(tmp_path / "t.jsonl", rows))
    with pytest.raises(UserError, match="tie"):
        t.to_trl_dataset()
    with pytest.warns(UserWarning, match="dropped 1 tie"):
        ds = t.to_trl_dataset(on_tie="drop")
    assert ds[0] == {"prompt": "p", "chosen": "b", "rejected": "a", "margin": 1.0}


def test_read_texts_table(tmp_path):
    p = tmp_path / "s.csv"
    p.write_text('prompt,response,id\nq,"[{""role"": ""assistant"", ""content"": ""hi""}]",1\n')
    (row,) = read_texts_table(p)
    assert row["response"] == "hi" and row["id"] == "1" and row["_where"].endswith("s.csv:2")
    with pytest.raises(UserError, match=r"r.jsonl:1: missing column 'response'"):
        read_texts_table(write_jsonl(tmp_path / "r.jsonl", [{"prompt": "q"}]))


def test_gzip_jsonl(tmp_path):
    p = tmp_path / "z.jsonl.gz"
    p.write_bytes(gzip.compress(("\n".join(json.dumps(r) for r in TRL_ROWS)).encode()))
    assert len(read_text(p)) == 3


def test_columns_first_seen_after_line_1_are_not_dropped(tmp_path):
    """The schema is the union of all records' columns: a column that appears after line 1 is
    required on every line (an error names the line and the column), never ignored."""
    base = {"prompt": "p", "chosen": "a", "rejected": "b"}
    later = [{**base, "chosen": f"c{i}", "margin": 0.5, "weight": 2.0} for i in range(15)]
    p = write_jsonl(tmp_path / "late.jsonl", [base, *later])
    with pytest.raises(
        UserError,
        match=r"late.jsonl:1: missing column\(s\) \['margin', 'weight'\] "
        r"\('margin' first appears at .*late.jsonl:2",
    ):
        read_text(p)
    # the same values on every line are read
    t = read_text(write_jsonl(tmp_path / "all.jsonl", [{**base, "margin": 1, "weight": 3}, *later]))
    assert t.margin.tolist() == [1.0] + [0.5] * 15 and t.weight.tolist() == [3.0] + [2.0] * 15
    assert t.report == []
    # a prompt that only appears from line 2 is not turned into '' prompts
    no_prompt = {"chosen": "a", "rejected": "b"}
    p = write_jsonl(tmp_path / "prompt.jsonl", [no_prompt, {**no_prompt, "prompt": "q"}])
    with pytest.raises(UserError, match=r"prompt.jsonl:1: missing column\(s\) \['prompt'\]"):
        read_text(p)
    # a pair file whose annotator column starts on line 3
    pair = {"prompt": "p", "response_a": "a", "response_b": "b", "label": "a"}
    rows = [pair, {**pair, "response_a": "c"}, {**pair, "response_a": "d", "annotator_id": "u"}]
    with pytest.raises(UserError, match=r"pair.jsonl:1: missing column\(s\) \['annotator_id'\]"):
        read_text(write_jsonl(tmp_path / "pair.jsonl", rows))
    # columns the reader does not use are reported even when they appear late
    t = read_text(write_jsonl(tmp_path / "extra.jsonl", [base, {**base, "chosen": "x", "id": 3}]))
    assert t.report == ["ignored column(s) ['id']"]


def test_values_are_validated_on_every_row(tmp_path):
    base = {"prompt": "p", "chosen": "a", "rejected": "b"}
    # a negative weight on line 2, in a column that line 1 lacks: never accepted
    p = write_jsonl(tmp_path / "w.jsonl", [base, {**base, "chosen": "c", "weight": -5}])
    with pytest.raises(UserError, match=r"w.jsonl:1: missing column\(s\) \['weight'\]"):
        read_text(p)
    rows = [{**base, "chosen": f"c{i}", "weight": 1} for i in range(3)]
    rows.append({**base, "chosen": "d", "weight": -5})
    with pytest.raises(UserError, match=r"w2.jsonl:4: column 'weight': weight -5.0 is negative"):
        read_text(write_jsonl(tmp_path / "w2.jsonl", rows))
    # also on a row that on_invalid="drop" drops
    rows = [{**base, "weight": 1}, {**base, "rejected": "a", "weight": -1}]
    with pytest.raises(UserError, match=r"w3.jsonl:2: .*negative"):
        read_text(write_jsonl(tmp_path / "w3.jsonl", rows), on_invalid="drop")


def test_hints_name_python_options_or_cli_flags(tmp_path):
    from signrm.errors import cli_option_style

    rows = [{"prompt": "p", "chosen": "a", "rejected": "a"}]
    p = write_jsonl(tmp_path / "same.jsonl", rows)
    with pytest.raises(UserError, match=r"\(pass on_invalid='drop' to drop such rows\)"):
        read_text(p)
    with cli_option_style(), pytest.raises(UserError, match=r"\(pass --on-invalid drop to drop"):
        read_text(p)
    dup = {"prompt": "p", "chosen": "a", "rejected": "b"}
    p = write_jsonl(tmp_path / "dup.jsonl", [dup, dup])
    with pytest.raises(UserError, match=r"pass on_duplicate='warn' or 'drop'\)"):
        read_text(p, on_duplicate="error")
    with cli_option_style(), pytest.raises(UserError, match=r"pass --on-duplicate warn\|drop\)"):
        read_text(p, on_duplicate="error")
    txt = tmp_path / "prefs.txt"
    txt.write_text(json.dumps(dup) + "\n")
    with pytest.raises(UserError, match=r"suffix '\.txt'.*format='jsonl', 'csv' or 'parquet'"):
        read_text(txt)
    with cli_option_style(), pytest.raises(UserError, match=r"--format jsonl\|csv\|parquet"):
        read_texts_table(txt)
    assert len(read_text(txt, format="jsonl")) == 1
