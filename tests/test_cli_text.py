"""`signrm fit / score / best-of-n` on a tiny sentence-transformers model (offline, fast)."""

from __future__ import annotations

import json
import os
import re

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sentence_transformers")

from signrm.cli import main  # noqa: E402

GOOD = ["good", "great", "fine", "nice", "clear"]
BAD = ["bad", "awful", "poor", "ugly", "vague"]
FILL = ["the", "answer", "is", "it", "why", "what", "how", "so"]
WORDS = GOOD + BAD + FILL


@pytest.fixture(scope="module")
def st_dir(tmp_path_factory):
    """A tiny random BERT sentence-transformers model in a folder."""
    from sentence_transformers import SentenceTransformer
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    try:
        from sentence_transformers.sentence_transformer import modules as st_modules
    except ImportError:  # sentence-transformers < 6
        from sentence_transformers import models as st_modules

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("st")
    vocab = {"[PAD]": 0, "[UNK]": 1, "[SEP]": 2, **{w: i + 3 for i, w in enumerate(WORDS)}}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk, pad_token="[PAD]", unk_token="[UNK]", sep_token="[SEP]"
    )
    cfg = BertConfig(
        vocab_size=len(vocab),
        hidden_size=24,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
    )
    BertModel(cfg).save_pretrained(folder / "bert")
    tok.save_pretrained(folder / "bert")
    word = st_modules.Transformer(str(folder / "bert"), max_seq_length=32)
    dim_of = getattr(word, "get_embedding_dimension", None) or word.get_word_embedding_dimension
    pool = st_modules.Pooling(dim_of(), pooling_mode="mean")
    SentenceTransformer(modules=[word, pool], device="cpu").save(str(folder / "st"))
    return str(folder / "st")


def response(rng, good: bool) -> str:
    words = list(rng.choice(GOOD if good else BAD, 2)) + list(rng.choice(FILL, 2))
    rng.shuffle(words)
    return " ".join(words)


@pytest.fixture(scope="module")
def prefs(tmp_path_factory):
    """Pairs where the response with 'good' words wins 90 % of the time; 4 annotators."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(240):
        prompt = " ".join(rng.choice(FILL, 3))
        a_good = bool(rng.random() < 0.5)
        a, b = response(rng, a_good), response(rng, not a_good)
        label = "a" if a_good == (rng.random() < 0.9) else "b"
        rows.append(
            {
                "prompt": prompt,
                "response_a": a,
                "response_b": b,
                "label": label,
                "annotator_id": f"r{i % 4}",
            }
        )
    path = tmp_path_factory.mktemp("data") / "prefs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def fitted(tmp_path_factory, st_dir, prefs):
    """A model fitted by the CLI (BT, linear), shared by the score / best-of-n tests."""
    base = tmp_path_factory.mktemp("fit")
    code = main(
        [
            "fit",
            prefs,
            "--estimator",
            "bt",
            "--encoder",
            st_dir,
            "--out",
            str(base / "bt"),
            "--cache-dir",
            str(base / "cache"),
            "--no-progress",
        ]  # fmt: skip
    )
    assert code == 0
    return base


def test_fit_prints_and_saves(capsys, tmp_path, st_dir, prefs, fitted):
    out_dir = tmp_path / "sign"
    code, out, err = run_cli(
        capsys, "fit", prefs, "--estimator", "sign", "--encoder", st_dir, "--out", out_dir,
        "--cache-dir", fitted / "cache", "--no-progress", "--split", "user",
    )  # fmt: skip
    assert code == 0, err
    assert re.search(r"read 240 comparisons \(pair convention\), \d+ prompts, 4 annotator ids", err)
    line = next(ln for ln in out.splitlines() if ln.startswith("held-out"))
    held_out = float(line.split()[-1])
    assert held_out > 0.6  # the 'good' words are learnable even from random features
    assert (out_dir / "model.json").exists()
    enc = json.loads((out_dir / "encoder.json").read_text())
    # --mode auto (the default) chose the mode it saved
    sel = enc["fit"]["feature_selection"]
    assert enc["encoder"]["kind"] == "sentence"
    assert sel["candidates"][sel["chosen_index"]]["encoder"].split()[-1] == enc["encoder"]["mode"]
    assert enc["fit"]["split"] == "user" and enc["fit"]["n_test"] > 0
    assert enc["fit"]["test_order_consistency"] == pytest.approx(held_out, abs=1e-4)


@pytest.mark.parametrize("estimator", ["thurstone", "em", "npmle", "clf-lgb"])
def test_fit_other_estimators(capsys, tmp_path, st_dir, prefs, fitted, estimator):
    code, out, err = run_cli(
        capsys, "fit", prefs, "--estimator", estimator, "--encoder", st_dir,
        "--out", tmp_path / estimator, "--cache-dir", fitted / "cache", "--no-progress",
    )  # fmt: skip
    assert code == 0, err
    assert "order consistency" in out


def test_score_matches_model(capsys, tmp_path, fitted):
    from signrm.text_model import TextRewardModel

    texts = tmp_path / "texts.csv"
    texts.write_text("prompt,response,id\nwhy,good great,1\nwhy,bad awful,2\nhow,fine clear,3\n")
    out = tmp_path / "scores.jsonl"
    code, _, err = run_cli(
        capsys, "score", fitted / "bt", texts, "--out", out,
        "--cache-dir", fitted / "cache", "--no-progress",
    )  # fmt: skip
    assert code == 0, err
    assert "scored 3 texts" in err
    rows = [json.loads(ln) for ln in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["1", "2", "3"]
    model = TextRewardModel.load(fitted / "bt", cache_dir=False)
    expected = model.reward(["good great", "bad awful", "fine clear"], ["why", "why", "how"])
    np.testing.assert_allclose([r["reward"] for r in rows], expected, rtol=1e-5, atol=1e-6)
    assert rows[0]["reward"] > rows[1]["reward"]


def test_best_of_n(capsys, tmp_path, fitted):
    cands = tmp_path / "cands.jsonl"
    cands.write_text(
        json.dumps({"prompt": "why", "responses": ["bad ugly", "good great", "poor vague"]})
        + "\n"
        + json.dumps({"prompt": "how", "response": "awful bad"})
        + "\n"
        + json.dumps({"prompt": "how", "response": "nice clear"})
        + "\n"
    )
    out = tmp_path / "picks.jsonl"
    code, _, err = run_cli(
        capsys, "best-of-n", fitted / "bt", cands, "--out", out,
        "--cache-dir", fitted / "cache", "--no-progress",
    )  # fmt: skip
    assert code == 0, err
    picks = [json.loads(ln) for ln in out.read_text().splitlines()]
    assert [p["prompt"] for p in picks] == ["why", "how"]
    assert [p["n_candidates"] for p in picks] == [3, 2]
    for p in picks:
        assert p["index"] == int(np.argmax(p["rewards"]))
        assert p["reward"] == max(p["rewards"])
    assert picks[0]["response"] == "good great" and picks[1]["response"] == "nice clear"
    assert "best of 2-3 (mean 2.5) candidates for 2 prompts" in err


def test_errors_are_one_line(capsys, tmp_path, st_dir, fitted):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "p", "chosen": "a", "rejected": "b"}\n{"prompt": \n')
    code, _, err = run_cli(capsys, "fit", bad, "--encoder", st_dir, "--out", tmp_path / "m")
    assert code == 2
    assert err.strip().count("\n") == 0 and "bad.jsonl:2: malformed JSON" in err
    assert "Traceback" not in err
    code, _, err = run_cli(capsys, "fit", tmp_path / "nope.jsonl", "--out", tmp_path / "m")
    assert code == 2 and "no such file" in err
    # an existing model directory is not replaced without --force
    code, _, err = run_cli(capsys, "fit", bad, "--out", fitted / "bt", "--encoder", st_dir)
    assert code == 2 and "--force" in err
    code, _, err = run_cli(capsys, "score", tmp_path, bad, "--out", tmp_path / "s.jsonl")
    assert code == 2 and "no encoder.json" in err
    with pytest.raises(ValueError):
        main(["--debug", "fit", str(bad), "--encoder", st_dir, "--out", str(tmp_path / "m")])


def one_error_line(err: str) -> str:
    """The single ``error: ...`` line of a failed command (other lines are progress notes)."""
    assert "Traceback" not in err
    (line,) = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert not [ln for ln in err.splitlines() if ln and not ln.startswith(("error:", "read "))]
    return line


def test_environment_errors_are_one_line(capsys, tmp_path, monkeypatch, st_dir, prefs, fitted):
    import huggingface_hub.constants

    from signrm.embed import EmbeddingCache, text_key
    from signrm.errors import ResourceError
    from signrm.text_model import TextRewardModel

    # a hub model that is neither stored locally nor reachable (offline)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    argv = ["fit", prefs, "--encoder", "no-such/model", "--out", tmp_path / "m",
            "--cache-dir", tmp_path / "c", "--no-progress"]  # fmt: skip
    code, _, err = run_cli(capsys, *argv)
    line = one_error_line(err)
    assert code == 2 and "'no-such/model' could not be found locally" in line
    assert "hub is offline" in line
    with pytest.raises(ResourceError):  # --debug still shows the traceback
        main(["--debug", *map(str, argv)])
    # a cache directory below a regular file: fails before anything is embedded
    (tmp_path / "file").write_text("x")
    code, _, err = run_cli(
        capsys, "fit", prefs, "--encoder", st_dir, "--out", tmp_path / "m2",
        "--cache-dir", tmp_path / "file" / "cache", "--no-progress",
    )  # fmt: skip
    assert code == 2 and "embedding cache: cannot create" in one_error_line(err)
    # a cache that holds vectors of another size for this encoder's identity
    identity = TextRewardModel.load(fitted / "bt", cache_dir=False).encoder.identity
    EmbeddingCache(tmp_path / "odd", identity).put(
        [text_key("good great", "why")], np.ones((1, 3), dtype=np.float32)
    )
    texts = tmp_path / "texts.csv"
    texts.write_text("prompt,response\nwhy,good great\nhow,nice clear\n")
    code, _, err = run_cli(
        capsys, "score", fitted / "bt", texts, "--out", tmp_path / "s.jsonl",
        "--cache-dir", tmp_path / "odd", "--no-progress",
    )  # fmt: skip
    assert code == 2 and "holds 3-d vectors but the encoder gives 24-d" in one_error_line(err)


def test_bugs_keep_their_traceback(capsys, tmp_path, monkeypatch, fitted):
    from signrm.text_model import TextRewardModel

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(TextRewardModel, "load", broken)
    texts = tmp_path / "texts.csv"
    texts.write_text("prompt,response\nwhy,good great\n")
    with pytest.raises(RuntimeError, match="a bug"):
        main(["score", str(fitted / "bt"), str(texts), "--out", str(tmp_path / "s.jsonl")])


def test_options_of_the_other_encoder_family_are_rejected(capsys, tmp_path, st_dir, prefs):
    for extra, flag in (
        (["--layer", "3"], "--layer 3 applies to causal LM encoders"),
        (["--layer", "-1"], "--layer -1 applies to causal LM encoders"),
        (["--chat-template", "yes"], "--chat-template applies to causal LM encoders"),
    ):
        code, _, err = run_cli(
            capsys, "fit", prefs, "--encoder", st_dir, "--out", tmp_path / "m", *extra
        )
        assert code == 2 and flag in one_error_line(err)
    assert not (tmp_path / "m").exists()


def test_messages_name_cli_flags(capsys, tmp_path, st_dir):
    same = tmp_path / "same.jsonl"
    same.write_text(json.dumps({"prompt": "p", "chosen": "a", "rejected": "a"}) + "\n")
    code, _, err = run_cli(capsys, "fit", same, "--encoder", st_dir, "--out", tmp_path / "m")
    line = one_error_line(err)
    assert code == 2 and "(pass --on-invalid drop to drop such rows)" in line
    assert "on_invalid" not in line
    dup = tmp_path / "dup.jsonl"
    dup.write_text(2 * (json.dumps({"prompt": "p", "chosen": "a", "rejected": "b"}) + "\n"))
    code, _, err = run_cli(
        capsys, "fit", dup, "--encoder", st_dir, "--out", tmp_path / "m", "--on-duplicate", "error"
    )
    assert code == 2 and "(pass --on-duplicate warn|drop)" in one_error_line(err)
    txt = tmp_path / "prefs.txt"
    txt.write_text(same.read_text())
    code, _, err = run_cli(capsys, "fit", txt, "--encoder", st_dir, "--out", tmp_path / "m")
    assert code == 2 and "or pass --format jsonl|csv|parquet" in one_error_line(err)


def test_format_flag_and_cache_warnings_as_lines(capsys, tmp_path, fitted):
    texts = tmp_path / "texts.txt"  # CSV whatever the suffix says
    texts.write_text("prompt,response\nwhy,good great\nhow,nice clear\n")
    cache = tmp_path / "cache"
    argv = ["score", fitted / "bt", texts, "--out", tmp_path / "s.jsonl", "--cache-dir", cache,
            "--no-progress", "--format", "csv"]  # fmt: skip
    code, _, err = run_cli(capsys, *argv)
    assert code == 0, err
    for chunk in cache.rglob("*.npz"):
        chunk.write_bytes(b"garbage")
    code, _, err = run_cli(capsys, *argv)
    assert code == 0, err
    warns = [ln for ln in err.splitlines() if "corrupt" in ln]
    assert warns and all(ln.startswith("warning: embedding cache: discarding") for ln in warns)
    assert "RuntimeWarning" not in err and "warnings.warn" not in err
    cands = tmp_path / "cands.data"
    cands.write_text(json.dumps({"prompt": "why", "responses": ["bad ugly", "good great"]}) + "\n")
    for chunk in cache.rglob("*.npz"):
        chunk.write_bytes(b"garbage")
    code, _, err = run_cli(
        capsys, "best-of-n", fitted / "bt", cands, "--out", tmp_path / "p.jsonl",
        "--cache-dir", cache, "--no-progress", "--format", "jsonl",
    )  # fmt: skip
    assert code == 0, err
    assert "RuntimeWarning" not in err
    assert [ln for ln in err.splitlines() if ln.startswith("warning: embedding cache: discarding")]


def test_fit_with_an_all_tie_held_out_split_still_saves(capsys, tmp_path, monkeypatch, st_dir):
    from signrm.data import PreferenceData

    rng = np.random.default_rng(1)
    rows = []
    for i in range(60):
        a, b = response(rng, True), response(rng, False)
        rows.append({"prompt": "why", "response_a": a, "response_b": b,
                     "label": "tie" if i % 5 == 0 else "a"})  # fmt: skip
    path = tmp_path / "ties.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))

    def ties_held_out(self, by="random", test_size=0.2, random_state=None):
        tie = np.asarray(self.y) == 0.5
        return self.subset(np.flatnonzero(~tie)), self.subset(np.flatnonzero(tie))

    monkeypatch.setattr(PreferenceData, "split", ties_held_out)
    code, out, err = run_cli(
        capsys, "fit", path, "--estimator", "bt", "--encoder", st_dir, "--out", tmp_path / "m",
        "--cache-dir", tmp_path / "cache", "--no-progress",
    )  # fmt: skip
    assert code == 0, err
    line = next(ln for ln in out.splitlines() if ln.startswith("held-out"))
    assert line.endswith("order consistency n/a (all ties)")
    enc = json.loads((tmp_path / "m" / "encoder.json").read_text())
    assert enc["fit"]["n_test"] == 12 and enc["fit"]["test_order_consistency"] is None
    assert (tmp_path / "m" / "model.json").exists()


def test_fit_feature_directory_streams_and_matches_in_memory(tmp_path):
    import signrm
    from signrm.cli import main as cli_main
    from signrm.metrics import angular_error

    rng = np.random.default_rng(0)
    n, d = 4000, 6
    xa = rng.standard_normal((n, d)).astype(np.float32)
    xb = rng.standard_normal((n, d)).astype(np.float32)
    theta = rng.standard_normal(d)
    y = (rng.random(n) < 1 / (1 + np.exp(-(xa - xb) @ theta))).astype(float)
    folder = tmp_path / "feats"
    folder.mkdir()
    for name, arr in (("xa", xa), ("xb", xb), ("y", y)):
        np.save(folder / f"{name}.npy", arr)
    assert cli_main(["fit", str(folder), "--estimator", "sign", "--no-progress",
                     "--out", str(tmp_path / "m")]) == 0  # fmt: skip
    streamed = signrm.load(tmp_path / "m")
    in_memory = signrm.SignEstimator().fit(signrm.PreferenceData.from_arrays(xa, xb, y))
    assert angular_error(streamed.coef_, in_memory.coef_) < 1.0
    assert cli_main(["fit", str(folder), "--estimator", "bt", "--head", "mlp",
                     "--out", str(tmp_path / "m2")]) == 2  # fmt: skip


@pytest.mark.slow
def test_fit_feature_directory_on_two_processes(tmp_path):
    import signrm
    from signrm.cli import main as cli_main
    from signrm.metrics import angular_error

    rng = np.random.default_rng(1)
    n, d = 3000, 5
    xa = rng.standard_normal((n, d)).astype(np.float32)
    xb = rng.standard_normal((n, d)).astype(np.float32)
    theta = rng.standard_normal(d)
    y = (rng.random(n) < 1 / (1 + np.exp(-(xa - xb) @ theta))).astype(float)
    folder = tmp_path / "feats"
    folder.mkdir()
    for name, arr in (("xa", xa), ("xb", xb), ("y", y)):
        np.save(folder / f"{name}.npy", arr)
    assert cli_main(["fit", str(folder), "--estimator", "bt", "--nproc", "2", "--no-progress",
                     "--out", str(tmp_path / "m")]) == 0  # fmt: skip
    model = signrm.load(tmp_path / "m")
    # Adam with early stopping from zero under-trains a linear head on 3k pairs (the in-memory
    # L-BFGS path is what reaches < 5 deg); this checks the distributed path learned the direction.
    assert angular_error(model.coef_, theta) < 30
