"""TRL integration: train an LLM reward model with the sign loss (or BT / CLF) in ``RewardTrainer``.

:class:`SignRewardTrainer` is a drop-in ``trl.RewardTrainer`` that trains an
``AutoModelForSequenceClassification`` (``num_labels=1``) on TRL preference data (``prompt``,
``chosen``, ``rejected``, optional ``margin``) with one of three losses:

- ``"bt"``: Bradley-Terry cross-entropy (TRL's own loss, via :func:`signrm.losses.bt_loss`).
- ``"sign"``: the sign estimator's smoothed 0-1 loss :func:`signrm.losses.sign_loss` on
  *normalised* margins ``m / s`` (``s`` = :class:`signrm.engine.scale.RunningScale`, the running
  standard deviation of the margins over global batches, detached), with
  lambda annealed stage-wise over the training steps from ``lambda_start`` to ``lambda_stop``
  (:func:`signrm.losses.lambda_schedule`), or, with ``lambda_schedule="adaptive"``, chosen phase by
  phase by held-out agreement on the evaluation split
  (:class:`signrm.integrations.adaptive.AdaptiveLambda`). The first ``sign_warmup_ratio`` of the steps use the BT
  loss: the sign estimator is warm-started from the BT solution, as in the paper.
- ``"clf"``: the classification reward model (seed 003): each response is a labelled example,
  chosen = 1, rejected = 0 (:func:`signrm.losses.clf_loss`).

An ``annotator_id`` column (any hashable ids) is kept through preprocessing and the collator (TRL
drops unknown columns by default) and the trainer logs per-annotator accuracy
(``annotator_accuracy/<id>`` for the first ``max_logged_annotators`` ids, plus the macro mean and
the minimum over annotators); under DDP the per-annotator counts of all processes are summed
before each log, so every process logs the same, global, accuracies. A ``weight`` column (>= 0)
weights each comparison in every loss.

Example (a real model; see the README)::

    from signrm.integrations.trl import SignRewardConfig, SignRewardTrainer
    args = SignRewardConfig(output_dir="rm-sign", loss_type="sign", per_device_train_batch_size=8)
    trainer = SignRewardTrainer(model="Qwen/Qwen2.5-0.5B-Instruct", args=args, train_dataset=ds)
    trainer.train()
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

try:
    from trl import RewardConfig, RewardTrainer
    from trl.trainer.reward_trainer import DataCollatorForPreference
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError("signrm.integrations.trl needs trl: pip install 'signrm[trl]'") from exc

from signrm.integrations._common import (
    ANNOTATOR_INDEX,
    SignOptions,
    SignTrainerMixin,
    carry_extras,
    check_sign_options,
)
from signrm.losses import bt_loss, centering_penalty, clf_loss, sign_loss

__all__ = [
    "SignRewardConfig",
    "SignRewardTrainer",
    "SignPreferenceCollator",
    "LOSS_TYPES",
    "ANNOTATOR_INDEX",
]

LOSS_TYPES = ("bt", "sign", "clf")


@dataclass
class SignRewardConfig(SignOptions, RewardConfig):
    """``RewardConfig`` plus ``loss_type`` (``"sign"`` default, ``"bt"``, ``"clf"``) and the
    signrm options of :class:`signrm.integrations._common.SignOptions`."""

    loss_type: str = field(default="sign", metadata={"help": "bt | sign | clf"})

    def __post_init__(self):
        super().__post_init__()
        if self.loss_type not in LOSS_TYPES:
            raise ValueError(f"loss_type must be one of {LOSS_TYPES}, got {self.loss_type!r}")
        check_sign_options(self)


@dataclass
class SignPreferenceCollator(DataCollatorForPreference):
    """TRL's preference collator that also carries ``annotator_idx`` (long) and ``weight``
    (float) tensors of shape (batch,) when the examples have them."""

    def torch_call(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        return carry_extras(examples, super().torch_call(examples))


class SignRewardTrainer(SignTrainerMixin, RewardTrainer):
    """``trl.RewardTrainer`` with ``loss_type`` in {bt, sign, clf} and per-annotator accuracy.

    Takes the arguments of ``RewardTrainer``; ``args`` should be a :class:`SignRewardConfig` (a
    plain ``RewardConfig`` works with the defaults). ``loss_type=`` overrides ``args.loss_type``.
    After training, :attr:`annotator_names` maps annotator indices to the original ids and
    :attr:`margin_scale` holds the running margin scale.
    """

    _tag_names = ["trl", "reward-trainer", "signrm"]

    def __init__(
        self,
        model,
        args: RewardConfig | None = None,
        *,
        train_dataset=None,
        eval_dataset=None,
        data_collator=None,
        loss_type: str | None = None,
        **kw,
    ):
        if args is None:
            name = model if isinstance(model, str) else model.config._name_or_path
            args = SignRewardConfig(f"{str(name).split('/')[-1]}-SignReward")
        self.loss_type = loss_type or getattr(args, "loss_type", "sign")
        if self.loss_type not in LOSS_TYPES:
            raise ValueError(f"loss_type must be one of {LOSS_TYPES}, got {self.loss_type!r}")
        self._read_options(args, SignRewardConfig)
        self._check_adaptive(args, eval_dataset)
        train_dataset, eval_dataset = self._prepare_annotators(train_dataset, eval_dataset)
        super().__init__(
            model,
            args,
            data_collator=data_collator,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            **kw,
        )
        if data_collator is None:
            self.data_collator = SignPreferenceCollator(
                pad_token_id=self.processing_class.pad_token_id,
                pad_to_multiple_of=self.args.pad_to_multiple_of,
            )
        self._init_sign_state()

    def _set_signature_columns_if_needed(self):
        if self._signature_columns is None:
            self._signature_columns = ["chosen_ids", "rejected_ids", "margin", "weight"]
            self._signature_columns.append(ANNOTATOR_INDEX)

    # -- loss --------------------------------------------------------------------------------
    def reward_loss(self, rewards_chosen, rewards_rejected, weight=None, offset=None, mode="train"):
        """The loss of ``self.loss_type`` on rewards of shape (batch,); returns (loss, lambda)
        with lambda None outside the sign phase. Updates the margin scale in training."""
        margins = rewards_chosen - rewards_rejected
        ones = torch.ones_like(margins)
        if self.loss_type == "clf":
            logits = torch.cat([rewards_chosen, rewards_rejected])
            labels = torch.cat([ones, torch.zeros_like(margins)])
            w = None if weight is None else torch.cat([weight, weight])
            return clf_loss(logits, labels, weight=w), None
        lam = self.current_lambda() if self.loss_type == "sign" else None
        if lam is None:  # BT, or the sign loss's warm start from BT
            return bt_loss(margins, ones, weight=weight, margin_offset=offset), None
        shifted = margins if offset is None else margins - offset
        scale = self._margin_scale(shifted, training=mode == "train")
        self._metrics[mode]["margin_scale"].append(float(scale))
        return sign_loss(shifted, ones, lam, weight=weight, scale=scale), lam

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        mode = "train" if self.model.training else "eval"
        annotators = inputs.pop(ANNOTATOR_INDEX, None)
        weight = inputs.pop("weight", None)
        offset = inputs.pop("margin", None)
        inputs["use_cache"] = False
        outputs = model(**inputs)
        rewards_chosen, rewards_rejected = torch.chunk(outputs.logits.squeeze(-1), chunks=2)
        margins = rewards_chosen - rewards_rejected
        loss, lam = self.reward_loss(rewards_chosen, rewards_rejected, weight, offset, mode)
        if self.args.center_rewards_coefficient is not None:
            loss = loss + centering_penalty(
                rewards_chosen, rewards_rejected, self.args.center_rewards_coefficient
            )

        if mode == "train":
            n_tok = self.accelerator.gather_for_metrics(inputs["attention_mask"].sum()).sum().item()
            self._total_train_tokens += n_tok // self._tp_size
        self._metrics[mode]["num_tokens"] = [self._total_train_tokens]
        with torch.no_grad():
            metrics = self._metrics[mode]
            all_rewards = self.accelerator.gather(outputs.logits)
            metrics["min_reward"].append(all_rewards.min().item())
            metrics["mean_reward"].append(all_rewards.mean().item())
            metrics["max_reward"].append(all_rewards.max().item())
            correct = (margins > 0).float()
            acc = self.accelerator.gather_for_metrics(correct.mean()).mean().item()
            metrics["accuracy"].append(acc)
            metrics["margin"].append(margins.mean().item())
            if self.loss_type == "sign":
                metrics["lambda"].append(0.0 if lam is None else lam)
            self._count_annotators(mode, annotators, correct)
            self._keep_eval_margins(margins, weight)
        return (loss, outputs) if return_outputs else loss

    # -- logging -----------------------------------------------------------------------------
    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        self._add_annotator_logs(logs)
        super().log(logs, start_time)

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False):
        super().save_model(output_dir, _internal_call)
        self._write_info(output_dir, "signrm_reward.json", {"loss_type": self.loss_type})
