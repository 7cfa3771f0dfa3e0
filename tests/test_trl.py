"""SignRewardTrainer end to end on a tiny random-initialised reward model (CPU, offline)."""

from __future__ import annotations

import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("trl")
datasets = pytest.importorskip("datasets")

from signrm.integrations.trl import (  # noqa: E402
    ANNOTATOR_INDEX,
    SignPreferenceCollator,
    SignRewardConfig,
    SignRewardTrainer,
)

POS = ["good", "great", "fine", "nice"]
NEG = ["bad", "awful", "poor", "ugly"]
WORDS = POS + NEG + ["the", "answer", "is", "reply"]


def tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"[PAD]": 0, "[UNK]": 1, "[EOS]": 2, **{w: i + 3 for i, w in enumerate(WORDS)}}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(
        tokenizer_object=tk, pad_token="[PAD]", unk_token="[UNK]", eos_token="[EOS]"
    )


def tiny_llama_config(**kw):
    """A 2-layer Llama config over the test vocabulary (also used by tests/test_dpo.py)."""
    from transformers import LlamaConfig

    size = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2)
    heads = dict(num_attention_heads=4, num_key_value_heads=2)
    return LlamaConfig(vocab_size=len(WORDS) + 3, pad_token_id=0, **size, **heads, **kw)


def reward_model(seed: int = 0):
    from transformers import LlamaForSequenceClassification

    torch.manual_seed(seed)
    return LlamaForSequenceClassification(tiny_llama_config(num_labels=1))


def dataset(n: int = 64, seed: int = 0):
    rng = np.random.default_rng(seed)
    rows = {"prompt": [], "chosen": [], "rejected": [], "annotator_id": [], "weight": []}
    for i in range(n):
        rows["prompt"].append("the answer is ")
        rows["chosen"].append(" ".join(rng.choice(POS, 3)))
        rows["rejected"].append(" ".join(rng.choice(NEG, 3)))
        rows["annotator_id"].append(f"rater-{i % 3}")
        rows["weight"].append(1.0 + (i % 2))
    return datasets.Dataset.from_dict(rows)


#: training arguments of the tiny test runs (also used by tests/test_dpo.py)
TRAIN_ARGS = dict(
    per_device_train_batch_size=8,
    per_device_eval_batch_size=16,
    max_steps=24,
    learning_rate=3e-3,
    lr_scheduler_type="constant",
    logging_steps=4,
    save_steps=24,
    save_strategy="steps",
    report_to="none",
    bf16=False,
    gradient_checkpointing=False,
    use_cpu=True,
    seed=0,
    disable_tqdm=True,
    dataloader_num_workers=0,
)


def config(tmp_path, loss_type: str, **kw) -> SignRewardConfig:
    return SignRewardConfig(
        output_dir=str(tmp_path / loss_type), loss_type=loss_type, **{**TRAIN_ARGS, **kw}
    )


@pytest.mark.parametrize("loss_type", ["bt", "sign", "clf"])
def test_train_save_reload(tmp_path, loss_type):
    from transformers import AutoModelForSequenceClassification

    ds = dataset()
    tok = tokenizer()
    trainer = SignRewardTrainer(
        model=reward_model(),
        args=config(tmp_path, loss_type),
        train_dataset=ds,
        eval_dataset=ds,
        processing_class=tok,
    )
    before = trainer.evaluate()
    trainer.train()
    after = trainer.evaluate()
    assert after["eval_accuracy"] > before["eval_accuracy"]
    assert after["eval_accuracy"] >= 0.95

    logs = [h for h in trainer.state.log_history if "loss" in h and "eval_loss" not in h]
    assert len(logs) == 6
    losses = [h["loss"] for h in logs]
    if loss_type == "sign":
        lams = [h["lambda"] for h in logs]
        assert lams[-1] == pytest.approx(15.0) and lams == sorted(lams)
        # the smoothed agreement rises to its maximum (-1 = every pair agrees)
        assert losses[-1] < -0.9
    else:
        assert np.mean(losses[-2:]) < 0.6 * np.mean(losses[:2])
    # annotator ids survive preprocessing and the collator
    assert trainer.annotator_names == ["rater-0", "rater-1", "rater-2"]
    assert set(trainer.last_annotator_accuracy) == set(trainer.annotator_names)
    assert "annotator_accuracy/rater-0" in logs[-1] and "annotator_accuracy_min" in logs[-1]

    # checkpoint written by the trainer reloads to the same rewards
    ckpt = tmp_path / loss_type / "checkpoint-24"
    assert (ckpt / "model.safetensors").exists()
    final = tmp_path / loss_type / "final"
    trainer.save_model(str(final))
    assert json.loads((final / "signrm_reward.json").read_text())["loss_type"] == loss_type
    reloaded = AutoModelForSequenceClassification.from_pretrained(final).eval()
    batch = tok(["the answer is good great", "the answer is bad ugly"], return_tensors="pt")
    model = trainer.model.eval()
    with torch.no_grad():
        r1 = model(**batch).logits.squeeze(-1)
        r2 = reloaded(**batch).logits.squeeze(-1)
    torch.testing.assert_close(r1, r2)
    assert r1[0] > r1[1]


def test_collator_keeps_annotator_and_weight():
    coll = SignPreferenceCollator(pad_token_id=0)
    out = coll(
        [
            {"chosen_ids": [1, 2, 3], "rejected_ids": [4], ANNOTATOR_INDEX: 2, "weight": 0.5},
            {"chosen_ids": [5], "rejected_ids": [6, 7], ANNOTATOR_INDEX: 0, "weight": 2.0},
        ]
    )
    assert out["input_ids"].shape == (4, 3)
    assert out[ANNOTATOR_INDEX].tolist() == [2, 0]
    assert out["weight"].tolist() == [0.5, 2.0]


def test_lambda_schedule_and_validation(tmp_path):
    trainer = SignRewardTrainer(
        model=reward_model(),
        args=config(tmp_path, "sign", sign_warmup_ratio=0.25, lambda_stages=3),
        train_dataset=dataset(16),
        processing_class=tokenizer(),
    )
    trainer.state.max_steps = 100
    seen = []
    for step in (0, 24, 25, 50, 75, 99, 100):
        trainer.state.global_step = step
        seen.append(trainer.current_lambda())
    assert seen[:2] == [None, None]
    assert seen[2] == pytest.approx(1.0) and seen[-1] == pytest.approx(15.0)
    assert seen[3] == pytest.approx(np.sqrt(15.0))
    with pytest.raises(ValueError, match="loss_type"):
        SignRewardConfig(output_dir=str(tmp_path / "x"), loss_type="hinge", use_cpu=True)


class TwoProcessAccelerator:
    """The trainer's accelerator, pretending that a second process saw ``other`` counts."""

    num_processes = 2

    def __init__(self, real, other):
        self._real, self._other, self.reduced = real, other, 0

    def __getattr__(self, name):
        return getattr(self._real, name)

    def reduce(self, tensor, reduction="mean"):
        assert reduction == "sum"
        self.reduced += 1
        return tensor + self._other


def test_annotator_accuracy_is_summed_over_processes(tmp_path, monkeypatch):
    trainer = SignRewardTrainer(
        model=reward_model(),
        args=config(tmp_path, "bt"),
        train_dataset=dataset(16),
        processing_class=tokenizer(),
    )
    assert trainer.annotator_names == ["rater-0", "rater-1", "rater-2"]

    def fill(mode):
        hits, totals = trainer._ann[mode]
        hits.copy_(torch.tensor([1.0, 0.0, 2.0]))
        totals.copy_(torch.tensor([2.0, 2.0, 2.0]))

    def logged():
        return {k: v for k, v in trainer.state.log_history[-1].items() if "annotator" in k}

    # one process: this process's counts, as before
    trainer.model.train()
    fill("train")
    trainer.log({"loss": 1.0})
    assert logged()["annotator_accuracy/rater-0"] == 0.5
    assert logged()["annotator_accuracy/rater-1"] == 0.0
    assert logged()["annotator_accuracy_min"] == 0.0
    assert float(trainer._ann["train"][1].sum()) == 0  # reset after logging
    # two processes: the counts of both are summed before the accuracies are computed
    other = torch.tensor([[1.0, 2.0, 0.0], [2.0, 2.0, 2.0]])
    fake = TwoProcessAccelerator(trainer.accelerator, other)
    monkeypatch.setattr(trainer, "accelerator", fake)
    fill("train")
    trainer.log({"loss": 1.0})
    assert fake.reduced == 1
    assert {k: logged()[k] for k in logged() if "/" in k} == {
        f"annotator_accuracy/rater-{i}": 0.5 for i in range(3)
    }
    trainer.model.eval()
    fill("eval")
    trainer.log({"eval_loss": 1.0})
    assert trainer.last_annotator_accuracy == {f"rater-{i}": 0.5 for i in range(3)}
    assert trainer.last_annotator_counts == {f"rater-{i}": 4 for i in range(3)}
    # every process takes part in the reduce at every log, even with nothing counted locally
    trainer.log({"eval_loss": 1.0})
    assert fake.reduced == 3


def test_reward_loss_values_match_plain_torch(tmp_path):
    """bt, sign (with the running margin sd) and clf equal the ``signrm.losses`` functions."""
    from signrm.losses import bt_loss, clf_loss, sign_loss

    rc = torch.tensor([0.5, -1.0, 2.0, 0.3])
    rr = torch.tensor([0.1, 0.2, -0.5, 0.9])
    w = torch.tensor([1.0, 2.0, 0.5, 1.0])
    off = torch.tensor([0.0, 0.5, 0.0, 0.2])
    ones = torch.ones(4)
    m = rc - rr
    for loss_type in ("bt", "sign", "clf"):
        trainer = SignRewardTrainer(
            model=reward_model(),
            args=config(tmp_path, loss_type, margin_scale_momentum=0.25),
            train_dataset=dataset(8),
            processing_class=tokenizer(),
        )
        trainer.state.max_steps, trainer.state.global_step = 10, 9
        loss, lam = trainer.reward_loss(rc, rr, weight=w, offset=off)
        if loss_type == "bt":
            expected = bt_loss(m, ones, weight=w, margin_offset=off)
        elif loss_type == "clf":
            expected = clf_loss(
                torch.cat([rc, rr]), torch.cat([ones, 0 * ones]), weight=torch.cat([w, w])
            )
        else:
            assert lam == pytest.approx(15.0)
            expected = sign_loss(m - off, ones, 15.0, weight=w, scale=(m - off).std())
            # a second batch moves the running sd by momentum 0.25 towards its own sd
            loss2, _ = trainer.reward_loss(rr, rc, weight=w)
            scale = 0.75 * (m - off).std() + 0.25 * (-m).std()
            torch.testing.assert_close(loss2, sign_loss(-m, ones, 15.0, weight=w, scale=scale))
            trainer.state.global_step = 0  # warm-up: BT
            warm, lam0 = trainer.reward_loss(rc, rr, weight=w, offset=off)
            assert lam0 is None
            torch.testing.assert_close(warm, bt_loss(m, ones, weight=w, margin_offset=off))
        torch.testing.assert_close(loss, expected)
    with pytest.raises(ValueError, match="margin_scale_momentum"):
        config(tmp_path, "sign", margin_scale_momentum=1.5)


@pytest.mark.parametrize("n_top", [0, 1])
def test_cached_top_layers_train_and_match_the_full_model(tmp_path, n_top):
    """Top layers + head trained on cached activations with SignRewardTrainer give, put back
    into the full model, the same rewards on the texts."""
    from signrm.integrations.cached import (
        cached_top_model,
        lower_activations,
        put_back,
        score_rows,
        score_texts,
    )

    tok = tokenizer()
    full = reward_model()
    texts = ["the answer is good", "the answer is bad ugly awful", "the answer is nice fine"]
    texts += ["the answer is poor", "reply is great"]
    n_lower = 2 - n_top
    hidden, mask = lower_activations(full, tok, texts, n_lower, batch_size=2)
    assert hidden.shape[:2] == mask.shape == (5, 6)
    top = cached_top_model(full, hidden, mask, n_lower)
    rows = np.arange(5)
    torch.testing.assert_close(
        torch.tensor(score_rows(top, rows)), torch.tensor(score_texts(full, tok, texts))
    )
    ds = datasets.Dataset.from_dict(
        {"chosen_ids": [[0], [2], [4]] * 8, "rejected_ids": [[1], [3], [1]] * 8,
         "annotator_id": ["a", "b", "c"] * 8}
    )  # fmt: skip
    trainer = SignRewardTrainer(
        model=top, args=config(tmp_path, "sign", max_steps=12), train_dataset=ds,
        processing_class=tok,
    )  # fmt: skip
    trainer.train()
    r = score_rows(trainer.model, rows)
    assert r[0] > r[1] and r[2] > r[3] and r[4] > r[1]
    put_back(full, trainer.model, n_lower)
    np.testing.assert_allclose(score_texts(full, tok, texts), r, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="n_lower"):
        lower_activations(full, tok, texts, 3)


# -- adaptive lambda (lambda_schedule="adaptive") ------------------------------------------------
def hits_with(n_right: int, n: int = 400) -> np.ndarray:
    """Agreements sign(m) (n,) with the first ``n_right`` rows right and the rest wrong (nested:
    a candidate with more right rows is right wherever one with fewer is)."""
    return np.where(np.arange(n) < n_right, 1.0, -1.0)


def test_adaptive_lambda_climbs_while_held_out_agreement_improves():
    from signrm.integrations.adaptive import AdaptiveLambda, default_grid

    grid, patience, slack = default_grid()
    np.testing.assert_allclose(grid, 2.0 ** np.arange(7))  # the linear estimator's 1 -> 64
    ctl = AdaptiveLambda(grid, patience=patience, slack=slack)
    # BT candidate 240 / 400 right, then each sharper phase 40 more; then a plateau
    seen = [ctl.observe(hits_with(k)) for k in (240, 280, 320, 360, 360)]
    assert seen[:4] == pytest.approx([1.0, 2.0, 4.0, 8.0])  # one grid step up per improving phase
    assert ctl.frozen and ctl.candidates[0] is None
    assert ctl.candidates[1:] == pytest.approx([1.0, 2.0, 4.0, 8.0])
    # the plateau's first phase (lambda 4) is the best; the one-SE rule keeps it (the gain of 40
    # paired rows over lambda 2 is 0.2 with paired SE 0.03, far beyond slack 0.5 SE)
    assert seen[4] == 4.0 == ctl.current
    assert ctl.observe(hits_with(0)) == 4.0  # frozen: later evaluations change nothing
    with pytest.raises(ValueError, match="evaluation split changed size"):
        ctl.observe(hits_with(10, n=20))


def test_adaptive_lambda_falls_back_to_bt_when_the_sign_loss_does_not_pay():
    from signrm.integrations.adaptive import AdaptiveLambda, default_grid, paired_scores

    grid, _, slack = default_grid()
    worse = AdaptiveLambda(grid, slack=slack)
    assert worse.observe(hits_with(300)) == 1.0
    assert worse.observe(hits_with(250)) is None  # held-out agreement fell: back to BT's loss
    assert worse.frozen
    # noise: a sign phase that differs from BT on 22 rows, 12 for the better and 10 for the
    # worse: a gain of 4 / 400 = 0.01, below slack 0.5 x its paired SE (sqrt(22 * 4) / 400)
    bt = hits_with(280)
    noisy = bt.copy()
    noisy[:10], noisy[280:292] = -1.0, 1.0
    scores, se = paired_scores(np.stack([bt, noisy], axis=1))
    assert scores[1] - scores[0] == pytest.approx(0.01)
    assert se[0] == pytest.approx(np.sqrt(22 * 4 - 400 * 0.01**2) / 400)
    tied = AdaptiveLambda(grid, slack=slack)
    tied.observe(bt)
    assert tied.observe(noisy) == 2.0  # an improvement: one step up
    assert tied.observe(noisy) is None  # no further gain: the one-SE rule keeps BT
    scores, se = paired_scores(np.stack([bt, bt], axis=1), np.ones(400))
    assert scores[0] == scores[1] and np.all(se == 0)


def test_adaptive_lambda_end_to_end_picks_a_grid_lambda(tmp_path):
    """A slow learning rate: held-out agreement rises phase after phase, so lambda climbs the
    grid from BT and freezes at a sharp grid value; the choice is saved with the model."""
    from signrm.integrations.adaptive import default_grid

    args = config(tmp_path, "sign", lambda_schedule="adaptive", eval_strategy="steps",
                  eval_steps=2, save_strategy="no", learning_rate=1e-4, sign_warmup_ratio=0.0,
                  max_steps=16, logging_steps=2)  # fmt: skip
    trainer = SignRewardTrainer(
        model=reward_model(0),
        args=args,
        train_dataset=dataset(64),
        eval_dataset=dataset(64, seed=1),
        processing_class=tokenizer(),
    )
    trainer.train()
    ctl = trainer.adaptive_lambda
    grid = list(default_grid()[0])
    assert ctl.frozen and ctl.current in grid[1:]  # a sharper lambda than the first
    n = len(ctl.candidates)
    assert ctl.candidates == [None, *grid[: n - 1]]  # climbed one grid step per phase
    assert ctl.scores[-2] > ctl.scores[0] + 0.3  # the sign phases beat the BT candidate
    lams = [h["lambda"] for h in trainer.state.log_history if "lambda" in h and "loss" in h]
    # BT (logged 0), the climb, then the frozen choice (the best phase, below the last tried)
    assert lams[0] == 0.0 and lams[-1] == pytest.approx(ctl.current)
    assert all(min(abs(v - g) for g in [0.0, *grid]) < 1e-9 for v in lams)
    trainer.save_model(str(tmp_path / "final"))
    info = json.loads((tmp_path / "final" / "signrm_reward.json").read_text())
    assert info["lambda_schedule"] == "adaptive"
    assert info["adaptive_lambda"]["lambda"] == ctl.current
    with pytest.raises(ValueError, match="eval_dataset"):
        SignRewardTrainer(model=reward_model(), args=args, train_dataset=dataset(8),
                          processing_class=tokenizer())  # fmt: skip
    with pytest.raises(ValueError, match="eval_strategy"):
        SignRewardTrainer(model=reward_model(), args=config(tmp_path, "sign",
                          lambda_schedule="adaptive"), train_dataset=dataset(8),
                          eval_dataset=dataset(8), processing_class=tokenizer())  # fmt: skip
    with pytest.raises(ValueError, match="lambda_schedule"):
        config(tmp_path, "sign", lambda_schedule="cosine")


@pytest.mark.parametrize(
    "weights, message",
    [
        ([1.0, -0.5], r"weights must be finite and >= 0; row\(s\) 1 are not"),
        ([float("nan"), 1.0], r"row\(s\) 0 are not"),
        ([0.0, 0.0], "every weight is 0"),
    ],
)
def test_bad_weights_and_missing_annotators_are_refused_up_front(tmp_path, weights, message):
    from datasets import Dataset

    rows = dataset(len(weights)).to_dict()
    rows["weight"] = weights
    with pytest.raises(ValueError, match=message):
        SignRewardTrainer(
            model=reward_model(), args=config(tmp_path, "sign"),
            train_dataset=Dataset.from_dict(rows), processing_class=tokenizer(),
        )  # fmt: skip
    rows["weight"] = [1.0] * len(weights)
    rows["annotator_id"] = [None] + rows["annotator_id"][1:]
    with pytest.raises(ValueError, match=r"no annotator id in row\(s\) 0"):
        SignRewardTrainer(
            model=reward_model(), args=config(tmp_path, "sign"),
            train_dataset=Dataset.from_dict(rows), processing_class=tokenizer(),
        )  # fmt: skip
