"""SignRewardTrainer and SignDPOTrainer under ``accelerate launch`` with 2 CPU processes (MULTI_CPU, gloo DDP)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("trl")
pytest.importorskip("accelerate")
pytest.importorskip("datasets")

SCRIPT = textwrap.dedent(
    """
    import copy, json, os, sys
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import numpy as np, torch, datasets
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (LlamaConfig, LlamaForCausalLM, LlamaForSequenceClassification,
                              PreTrainedTokenizerFast)

    torch.set_num_threads(1)
    out, trainer_kind, loss_type = sys.argv[1], sys.argv[2], sys.argv[3]
    POS, NEG = ["good", "great", "fine", "nice"], ["bad", "awful", "poor", "ugly"]
    WORDS = POS + NEG + ["the", "answer", "is"]
    vocab = {"[PAD]": 0, "[UNK]": 1, "[EOS]": 2, **{w: i + 3 for i, w in enumerate(WORDS)}}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk, pad_token="[PAD]", unk_token="[UNK]", eos_token="[EOS]"
    )
    torch.manual_seed(0)
    cfg = dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
               num_attention_heads=4, num_key_value_heads=2, pad_token_id=0)
    rng = np.random.default_rng(0)
    rows = {"prompt": [], "chosen": [], "rejected": [], "annotator_id": []}
    for i in range(64):
        rows["prompt"].append("the answer is")
        rows["chosen"].append(" " + " ".join(rng.choice(POS, 3)))
        rows["rejected"].append(" " + " ".join(rng.choice(NEG, 3)))
        rows["annotator_id"].append(f"rater-{i % 3}")
    ds = datasets.Dataset.from_dict(rows)
    common = dict(
        output_dir=out, per_device_train_batch_size=4, per_device_eval_batch_size=16,
        max_steps=16, learning_rate=3e-3, lr_scheduler_type="constant", logging_steps=4,
        save_strategy="no", report_to="none", use_cpu=True, seed=0, disable_tqdm=True,
        dataloader_num_workers=0, gradient_checkpointing=False)
    if trainer_kind == "reward":
        from signrm.integrations.trl import SignRewardConfig, SignRewardTrainer
        model = LlamaForSequenceClassification(LlamaConfig(num_labels=1, **cfg))
        args = SignRewardConfig(loss_type=loss_type, **common)
        trainer = SignRewardTrainer(model=model, args=args, train_dataset=ds, eval_dataset=ds,
                                    processing_class=tok)
        accuracy_key = "eval_accuracy"
    else:
        from signrm.integrations.dpo import SignDPOConfig, SignDPOTrainer
        model = LlamaForCausalLM(LlamaConfig(eos_token_id=2, bos_token_id=2, **cfg))
        args = SignDPOConfig(margin_loss=loss_type, beta=0.5, sign_warmup_ratio=0.25, **common)
        trainer = SignDPOTrainer(model=model, ref_model=copy.deepcopy(model), args=args,
                                 train_dataset=ds, eval_dataset=ds, processing_class=tok)
        accuracy_key = "eval_rewards/accuracies"
    trainer.train()
    metrics = trainer.evaluate()
    acc = trainer.accelerator
    flat = torch.cat([p.detach().flatten() for p in trainer.model.parameters()])
    info = {
        "rank": acc.process_index, "num_processes": acc.num_processes,
        "distributed_type": str(acc.distributed_type), "eval_accuracy": metrics[accuracy_key],
        "param_sum": float(flat.double().sum()), "param_norm": float(flat.double().norm()),
        "losses": [h["loss"] for h in trainer.state.log_history if "loss" in h],
        "annotator_counts": trainer.last_annotator_counts,
        "annotator_accuracy": trainer.last_annotator_accuracy,
        "margin_scale": trainer.margin_scale.value,
    }
    with open(os.path.join(out, f"rank{acc.process_index}.json"), "w") as fh:
        json.dump(info, fh)
    """
)


@pytest.mark.parametrize(
    "trainer_kind,loss_type",
    [("reward", "sign"), pytest.param("dpo", "sign", marks=pytest.mark.slow)],
)
def test_accelerate_two_cpu_processes(tmp_path, trainer_kind, loss_type):
    exe = shutil.which("accelerate") or os.path.join(os.path.dirname(sys.executable), "accelerate")
    if not os.path.exists(exe):
        pytest.skip("the accelerate launcher is not installed")
    (tmp_path / "run.py").write_text(SCRIPT)
    out = tmp_path / "out"
    out.mkdir()
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    # `--cpu` would run one process (accelerate's simple launcher); `--multi_gpu` goes through
    # torchrun, and with no GPU (use_cpu=True) accelerate sets up MULTI_CPU DDP on gloo.
    cmd = [exe, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0",
           str(tmp_path / "run.py"), str(out), trainer_kind, loss_type]  # fmt: skip
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, (res.stdout[-2000:], res.stderr[-4000:])
    infos = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    for info in infos:
        assert info["num_processes"] == 2
        assert "MULTI_CPU" in info["distributed_type"]
        assert info["eval_accuracy"] >= 0.9
        assert len(info["losses"]) >= 4
        # per-annotator counts are summed over both processes: the whole eval set (64 rows)
        assert sum(info["annotator_counts"].values()) == 64
    assert infos[0]["annotator_accuracy"] == infos[1]["annotator_accuracy"]
    assert set(infos[0]["annotator_accuracy"]) == {"rater-0", "rater-1", "rater-2"}
    # the running margin scale is the global batch's: the same on both processes
    assert infos[0]["margin_scale"] > 0
    assert infos[0]["margin_scale"] == pytest.approx(infos[1]["margin_scale"], rel=1e-9)
    # DDP keeps the two replicas identical
    assert infos[0]["param_sum"] == pytest.approx(infos[1]["param_sum"], rel=1e-6, abs=1e-6)
    assert infos[0]["param_norm"] == pytest.approx(infos[1]["param_norm"], rel=1e-6)
