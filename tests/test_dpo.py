"""SignDPOTrainer (sign-DPO) end to end on a tiny random-initialised causal LM (CPU, offline)."""

from __future__ import annotations

import copy
import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("trl")
datasets = pytest.importorskip("datasets")

from signrm.integrations.dpo import (  # noqa: E402
    SignDPOCollator,
    SignDPOConfig,
    SignDPOTrainer,
    sequence_logps,
)
from signrm.losses import bt_loss, sign_loss  # noqa: E402
from tests.test_trl import NEG, POS, TRAIN_ARGS, tiny_llama_config, tokenizer  # noqa: E402


def policy(seed: int = 0):
    from transformers import LlamaForCausalLM

    torch.manual_seed(seed)
    return LlamaForCausalLM(tiny_llama_config(eos_token_id=2, bos_token_id=2))


def dataset(n: int = 64, seed: int = 0):
    rng = np.random.default_rng(seed)
    rows = {"prompt": [], "chosen": [], "rejected": [], "annotator_id": [], "weight": []}
    for i in range(n):
        rows["prompt"].append("the answer is")
        rows["chosen"].append(" " + " ".join(rng.choice(POS, 2)))
        rows["rejected"].append(" " + " ".join(rng.choice(NEG, 2)))
        rows["annotator_id"].append(f"rater-{i % 3}")
        rows["weight"].append(1.0)
    return datasets.Dataset.from_dict(rows)


def config(tmp_path, margin_loss: str = "sign", **kw) -> SignDPOConfig:
    base = dict(
        TRAIN_ARGS,
        output_dir=str(tmp_path / margin_loss),
        margin_loss=margin_loss,
        beta=0.5,
        learning_rate=5e-3,
        sign_warmup_ratio=0.25,
        lambda_stages=3,
    )
    base.update(kw)
    return SignDPOConfig(**base)


def trainer_for(tmp_path, margin_loss="sign", n=64, **kw):
    model = policy()
    ds = dataset(n)
    return SignDPOTrainer(
        model=model,
        ref_model=copy.deepcopy(model),
        args=config(tmp_path, margin_loss, **kw),
        train_dataset=ds,
        eval_dataset=ds,
        processing_class=tokenizer(),
    )


def test_sign_dpo_trains_saves_and_reloads(tmp_path):
    from transformers import AutoModelForCausalLM

    trainer = trainer_for(tmp_path)
    before = trainer.evaluate()
    trainer.train()
    after = trainer.evaluate()
    assert before["eval_rewards/accuracies"] < 0.8
    assert after["eval_rewards/accuracies"] >= 0.95
    assert after["eval_loss"] < before["eval_loss"]

    logs = [h for h in trainer.state.log_history if "loss" in h and "eval_loss" not in h]
    assert len(logs) == 6
    lams = [h["lambda"] for h in logs]
    assert lams[0] == 0.0 and lams[-1] == pytest.approx(15.0) and lams == sorted(lams)
    sign_losses = [h["loss"] for h in logs if h["lambda"] > 0]
    assert sign_losses[-1] < sign_losses[0] and sign_losses[-1] < -0.9
    assert all(np.isfinite(h["grad_norm"]) for h in logs)
    assert trainer.margin_scale.value > 0
    # annotator ids survive preprocessing and the collator
    assert trainer.annotator_names == ["rater-0", "rater-1", "rater-2"]
    assert set(trainer.last_annotator_accuracy) == set(trainer.annotator_names)
    assert sum(trainer.last_annotator_counts.values()) == 64
    assert "annotator_accuracy/rater-1" in logs[-1]

    ckpt = tmp_path / "sign" / "checkpoint-24"
    assert (ckpt / "model.safetensors").exists()
    final = tmp_path / "sign" / "final"
    trainer.save_model(str(final))
    info = json.loads((final / "signrm_dpo.json").read_text())
    assert info["margin_loss"] == "sign" and info["annotators"] == trainer.annotator_names
    reloaded = AutoModelForCausalLM.from_pretrained(ckpt).eval()
    tok = tokenizer()
    prompts, responses = ["the answer is"] * 2, [" good great", " bad ugly"]
    lp_train = sequence_logps(trainer.model.eval(), tok, prompts, responses)
    lp_reload = sequence_logps(reloaded, tok, prompts, responses)
    torch.testing.assert_close(lp_train, lp_reload)
    ref = sequence_logps(trainer.ref_model, tok, prompts, responses)
    implicit = lp_train - ref
    assert implicit[0] > implicit[1]


def batch_of(trainer, n: int = 8):
    rows = [trainer.train_dataset[i] for i in range(n)]
    return trainer._prepare_inputs(trainer.data_collator(rows))


def test_sigmoid_margin_loss_equals_trls_dpo_loss(tmp_path):
    """The implicit margins and the standard loss match TRL's own sigmoid DPO on a batch."""
    from trl import DPOConfig, DPOTrainer

    ours = trainer_for(tmp_path, "sigmoid", n=16)
    model = policy()
    cfg = DPOConfig(
        output_dir=str(tmp_path / "trl"), beta=0.5, use_cpu=True, report_to="none", bf16=False
    )
    theirs = DPOTrainer(
        model=model,
        ref_model=copy.deepcopy(model),
        args=cfg,
        train_dataset=dataset(16).remove_columns(["annotator_id", "weight"]),
        processing_class=tokenizer(),
    )
    with torch.no_grad():
        batch = batch_of(ours)
        trl_batch = {k: v for k, v in batch.items() if k not in ("annotator_idx", "weight")}
        expected = theirs._compute_loss(theirs.model, dict(trl_batch), False)
        got = ours._compute_loss(ours.model, dict(batch), False)
        margins, _ = ours.implicit_margins(ours.model, dict(trl_batch))
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(got, bt_loss(margins, torch.ones_like(margins)))
    assert batch["annotator_idx"].tolist() == [i % 3 for i in range(8)]


def test_sign_margin_loss_values_match_plain_torch(tmp_path):
    trainer = trainer_for(tmp_path, "sign", n=16, margin_scale_momentum=0.5)
    trainer.state.max_steps = 12
    m1 = torch.tensor([0.5, -1.0, 2.0, 0.1])
    m2 = torch.tensor([1.5, 0.2, -0.3, 0.7])
    w = torch.tensor([1.0, 2.0, 0.5, 1.0])
    ones = torch.ones(4)
    trainer.model.train()
    trainer.state.global_step = 0  # warm-up: the standard DPO loss
    loss, lam = trainer.margin_loss_value(m1, w)
    assert lam is None
    torch.testing.assert_close(loss, bt_loss(m1, ones, weight=w))
    trainer.state.global_step = 11  # last stage
    loss1, lam = trainer.margin_loss_value(m1, w)
    assert lam == pytest.approx(15.0)
    torch.testing.assert_close(loss1, sign_loss(m1, ones, 15.0, weight=w, scale=m1.std()))
    loss2, _ = trainer.margin_loss_value(m2, w)  # running sd: 0.5 old + 0.5 new (momentum 0.5)
    scale = 0.5 * m1.std() + 0.5 * m2.std()
    torch.testing.assert_close(loss2, sign_loss(m2, ones, 15.0, weight=w, scale=scale))
    # evaluation reads the running scale without updating it
    trainer.model.eval()
    trainer.margin_loss_value(m1, w, mode="eval")
    assert trainer.margin_scale.value == pytest.approx(float(scale))


def test_collator_and_config_validation(tmp_path):
    coll = SignDPOCollator(pad_token_id=0)
    out = coll(
        [
            {"prompt_ids": [1], "chosen_ids": [2, 3], "rejected_ids": [4], "annotator_idx": 1},
            {"prompt_ids": [5], "chosen_ids": [6], "rejected_ids": [7], "annotator_idx": 0},
        ]
    )
    assert out["annotator_idx"].tolist() == [1, 0]
    assert out["input_ids"].shape[0] == 4
    with pytest.raises(ValueError, match="margin_loss"):
        config(tmp_path, margin_loss="hinge")
    with pytest.raises(ValueError, match="loss_type"):
        config(tmp_path, loss_type=["ipo"])
    with pytest.raises(ValueError, match="margin_scale_momentum"):
        config(tmp_path, margin_scale_momentum=0.0)
    with pytest.raises(ValueError, match="sign_warmup_ratio"):
        config(tmp_path, sign_warmup_ratio=1.0)


def test_sign_dpo_adaptive_lambda_scores_phases_on_the_eval_split(tmp_path):
    """lambda_schedule="adaptive" in SignDPOTrainer: each evaluation after the warm-up scores a
    phase on the eval split's implicit margins and sets the next lambda from the grid (or BT)."""
    from signrm.integrations.adaptive import default_grid

    trainer = trainer_for(tmp_path, lambda_schedule="adaptive", eval_strategy="steps",
                          eval_steps=4, save_strategy="no", max_steps=16,
                          sign_warmup_ratio=0.25)  # fmt: skip
    trainer.train()
    ctl = trainer.adaptive_lambda
    grid = list(default_grid()[0])
    assert ctl.candidates[0] is None and len(ctl.candidates) >= 2  # evaluations at 4, 8, 12
    assert ctl.candidates[1:] == grid[: len(ctl.candidates) - 1]
    assert ctl.current is None or ctl.current in grid
    assert all(-1.0 <= s <= 1.0 for s in ctl.scores)
    assert ctl.scores[-1] >= 0.9  # chosen responses are easy to prefer
    with pytest.raises(ValueError, match="eval_strategy"):
        trainer_for(tmp_path, lambda_schedule="adaptive")
