"""TRL integration: train an LLM reward model with the sign loss (or BT / CLF) in ``RewardTrainer``.

:class:`SignRewardTrainer` is a drop-in ``trl.RewardTrainer`` that trains an
``AutoModelForSequenceClassification`` (``num_labels=1``) on TRL preference data (``prompt``,
``chosen``, ``rejected``, optional ``margin``) with one of three losses:

- ``"bt"``: Bradley-Terry cross-entropy (TRL's own loss, via :func:`signrm.losses.bt_loss`).
- ``"sign"``: the sign estimator's smoothed 0-1 loss :func:`signrm.losses.sign_loss` on
  *normalised* margins ``m / s`` (``s`` = running root-mean-square of the margins, detached), with
  lambda annealed stage-wise over the training steps from ``lambda_start`` to ``lambda_stop``
  (:func:`signrm.losses.lambda_schedule`). The first ``sign_warmup_ratio`` of the steps use the BT
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

import json
import math
import os
from dataclasses import dataclass, field
from typing import Any

import torch

try:
    from trl import RewardConfig, RewardTrainer
    from trl.trainer.reward_trainer import DataCollatorForPreference
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError("signrm.integrations.trl needs trl: pip install 'signrm[trl]'") from exc

from signrm.losses import bt_loss, centering_penalty, clf_loss, lambda_schedule, sign_loss

__all__ = [
    "SignRewardConfig",
    "SignRewardTrainer",
    "SignPreferenceCollator",
    "LOSS_TYPES",
    "ANNOTATOR_INDEX",
]

LOSS_TYPES = ("bt", "sign", "clf")
#: integer column the trainer adds for the annotator of each comparison
ANNOTATOR_INDEX = "annotator_idx"


@dataclass
class SignRewardConfig(RewardConfig):
    r"""``RewardConfig`` plus the signrm options.

    Parameters
    ----------
    loss_type : ``"sign"`` (default), ``"bt"`` or ``"clf"``.
    lambda_start, lambda_stop, lambda_stages : geometric lambda schedule of the sign loss, spread
        evenly over the steps after the warm-up (the paper anneals lambda from 1 to 15).
    sign_warmup_ratio : share of the training steps trained with the BT loss before the sign loss.
    margin_scale_momentum : EMA momentum of the running margin RMS that normalises the margins.
    annotator_column, weight_column : names of the optional columns.
    max_logged_annotators : per-annotator accuracies logged individually (the rest only enter the
        macro mean and the minimum).
    """

    loss_type: str = field(default="sign", metadata={"help": "bt | sign | clf"})
    lambda_start: float = field(default=1.0, metadata={"help": "first lambda of the sign loss"})
    lambda_stop: float = field(default=15.0, metadata={"help": "last lambda of the sign loss"})
    lambda_stages: int = field(default=5, metadata={"help": "number of lambda stages"})
    sign_warmup_ratio: float = field(
        default=0.1, metadata={"help": "share of steps with the BT loss before the sign loss"}
    )
    margin_scale_momentum: float = field(
        default=0.9, metadata={"help": "EMA momentum of the running margin RMS"}
    )
    annotator_column: str = field(default="annotator_id", metadata={"help": "annotator ids"})
    weight_column: str = field(default="weight", metadata={"help": "per-comparison weights"})
    max_logged_annotators: int = field(
        default=20, metadata={"help": "per-annotator accuracies logged individually"}
    )

    def __post_init__(self):
        super().__post_init__()
        if self.loss_type not in LOSS_TYPES:
            raise ValueError(f"loss_type must be one of {LOSS_TYPES}, got {self.loss_type!r}")
        if not 0.0 <= self.sign_warmup_ratio < 1.0:
            raise ValueError(f"sign_warmup_ratio must be in [0, 1), got {self.sign_warmup_ratio}")
        if not 0.0 <= self.margin_scale_momentum < 1.0:
            raise ValueError("margin_scale_momentum must be in [0, 1)")
        lambda_schedule(self.lambda_start, self.lambda_stop, self.lambda_stages)  # validates


@dataclass
class SignPreferenceCollator(DataCollatorForPreference):
    """TRL's preference collator that also carries ``annotator_idx`` (long) and ``weight``
    (float) tensors of shape (batch,) when the examples have them."""

    def torch_call(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        out = super().torch_call(examples)
        if ANNOTATOR_INDEX in examples[0]:
            out[ANNOTATOR_INDEX] = torch.tensor(
                [int(ex[ANNOTATOR_INDEX]) for ex in examples], dtype=torch.long
            )
        if "weight" in examples[0]:
            out["weight"] = torch.tensor(
                [float(ex["weight"]) for ex in examples], dtype=torch.float
            )
        return out


def _column_names(dataset) -> list[str]:
    names = getattr(dataset, "column_names", None)
    return list(names or [])


class SignRewardTrainer(RewardTrainer):
    """``trl.RewardTrainer`` with ``loss_type`` in {bt, sign, clf} and per-annotator accuracy.

    Takes the arguments of ``RewardTrainer``; ``args`` should be a :class:`SignRewardConfig` (a
    plain ``RewardConfig`` works with the defaults). ``loss_type=`` overrides ``args.loss_type``.
    After training, :attr:`annotator_names` maps annotator indices to the original ids.
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
        self._opt = {
            k: getattr(args, k, getattr(SignRewardConfig, k))
            for k in (
                "lambda_start",
                "lambda_stop",
                "lambda_stages",
                "sign_warmup_ratio",
                "margin_scale_momentum",
                "annotator_column",
                "weight_column",
                "max_logged_annotators",
            )
        }
        self.lambdas = lambda_schedule(
            self._opt["lambda_start"], self._opt["lambda_stop"], self._opt["lambda_stages"]
        )
        # map annotator ids to 0..K-1 before TRL tokenises (extra columns survive its .map)
        eval_sets = (
            list(eval_dataset.values()) if isinstance(eval_dataset, dict) else [eval_dataset]
        )
        self.annotator_names = self._annotator_vocab([train_dataset, *eval_sets])
        if train_dataset is not None:
            train_dataset = self._add_columns(train_dataset)
        if isinstance(eval_dataset, dict):
            eval_dataset = {k: self._add_columns(v) for k, v in eval_dataset.items()}
        elif eval_dataset is not None:
            eval_dataset = self._add_columns(eval_dataset)
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
        self._margin_ms: float | None = None  # running mean of squared margins
        k = max(1, len(self.annotator_names))
        self._ann = {m: (torch.zeros(k), torch.zeros(k)) for m in ("train", "eval")}
        self.last_annotator_accuracy: dict[str, float] = {}
        #: comparisons per annotator behind ``last_annotator_accuracy`` (all processes)
        self.last_annotator_counts: dict[str, int] = {}

    # -- data --------------------------------------------------------------------------------
    def _annotator_vocab(self, datasets) -> list[str]:
        col = self._opt["annotator_column"]
        names: set[str] = set()
        for ds in datasets:
            if ds is None or col not in _column_names(ds):
                continue
            names.update(str(v) for v in ds[col])
        return sorted(names)

    def _add_columns(self, dataset):
        col, wcol = self._opt["annotator_column"], self._opt["weight_column"]
        cols = _column_names(dataset)
        if col in cols:
            where = {name: i for i, name in enumerate(self.annotator_names)}
            dataset = dataset.map(lambda ex: {ANNOTATOR_INDEX: where[str(ex[col])]})
        if wcol in cols and wcol != "weight":
            dataset = dataset.rename_column(wcol, "weight")
        return dataset

    def _set_signature_columns_if_needed(self):
        if self._signature_columns is None:
            self._signature_columns = ["chosen_ids", "rejected_ids", "margin", "weight"]
            self._signature_columns.append(ANNOTATOR_INDEX)

    # -- loss --------------------------------------------------------------------------------
    def current_lambda(self) -> float | None:
        """Lambda of the sign loss at the current step, or None during the BT warm-up."""
        max_steps = max(1, int(self.state.max_steps or 1))
        progress = min(1.0, self.state.global_step / max_steps)
        warm = self._opt["sign_warmup_ratio"]
        if progress < warm:
            return None
        rest = (progress - warm) / (1.0 - warm)
        stage = min(len(self.lambdas) - 1, int(math.floor(rest * len(self.lambdas))))
        return float(self.lambdas[stage])

    def _margin_scale(self, margins: torch.Tensor, training: bool) -> torch.Tensor:
        ms = float(margins.detach().float().pow(2).mean())
        if training:
            mom = self._opt["margin_scale_momentum"]
            self._margin_ms = (
                ms if self._margin_ms is None else mom * self._margin_ms + (1 - mom) * ms
            )
        ref = self._margin_ms if self._margin_ms is not None else ms
        return torch.tensor(max(math.sqrt(ref), 1e-6), dtype=margins.dtype, device=margins.device)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        mode = "train" if self.model.training else "eval"
        annotators = inputs.pop(ANNOTATOR_INDEX, None)
        weight = inputs.pop("weight", None)
        offset = inputs.pop("margin", None)
        inputs["use_cache"] = False
        outputs = model(**inputs)
        rewards_chosen, rewards_rejected = torch.chunk(outputs.logits.squeeze(-1), chunks=2)
        margins = rewards_chosen - rewards_rejected
        ones = torch.ones_like(margins)

        lam = None
        if self.loss_type == "bt":
            loss = bt_loss(margins, ones, weight=weight, margin_offset=offset)
        elif self.loss_type == "clf":
            logits = torch.cat([rewards_chosen, rewards_rejected])
            labels = torch.cat([ones, torch.zeros_like(margins)])
            w = None if weight is None else torch.cat([weight, weight])
            loss = clf_loss(logits, labels, weight=w)
        else:
            lam = self.current_lambda()
            if lam is None:  # warm start from BT
                loss = bt_loss(margins, ones, weight=weight, margin_offset=offset)
            else:
                shifted = margins if offset is None else margins - offset
                scale = self._margin_scale(shifted, training=mode == "train")
                loss = sign_loss(shifted, ones, lam, weight=weight, scale=scale)
                self._metrics[mode]["margin_scale"].append(float(scale))
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
            if annotators is not None:
                hits, totals = self._ann[mode]
                a = annotators.detach().cpu()
                hits.index_add_(0, a, correct.detach().float().cpu())
                totals.index_add_(0, a, torch.ones_like(a, dtype=torch.float))
        return (loss, outputs) if return_outputs else loss

    # -- logging -----------------------------------------------------------------------------
    def annotator_accuracy(self, mode: str = "train") -> dict[str, float]:
        """Accuracy per annotator id over the comparisons this process has seen since the last
        log (the logged values are summed over all processes, see :meth:`log`)."""
        hits, totals = self._ann[mode]
        return self._accuracy(hits, totals)

    def _accuracy(self, hits: torch.Tensor, totals: torch.Tensor) -> dict[str, float]:
        return {
            name: float(hits[i] / totals[i])
            for i, name in enumerate(self.annotator_names)
            if totals[i] > 0
        }

    def _global_counts(self, mode: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-annotator (correct, total) counts summed over all processes (a collective call
        under DDP: every process calls it at each log, which the Trainer does)."""
        hits, totals = self._ann[mode]
        acc = getattr(self, "accelerator", None)
        if acc is None or acc.num_processes <= 1:
            return hits, totals
        counts = torch.stack([hits, totals]).to(acc.device)
        counts = acc.reduce(counts, reduction="sum").cpu()
        return counts[0], counts[1]

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        mode = "train" if self.model.training else "eval"
        per: dict[str, float] = {}
        if self.annotator_names:  # the same on every process, so all take part in the reduce
            hits, totals = self._global_counts(mode)
            per = self._accuracy(hits, totals)
            counts = {n: int(totals[i]) for i, n in enumerate(self.annotator_names) if totals[i]}
        if per:
            prefix = "eval_" if mode == "eval" else ""
            values = list(per.values())
            logs[f"{prefix}annotator_accuracy_macro"] = sum(values) / len(values)
            logs[f"{prefix}annotator_accuracy_min"] = min(values)
            for name in list(per)[: self._opt["max_logged_annotators"]]:
                logs[f"{prefix}annotator_accuracy/{name}"] = per[name]
            if mode == "eval":
                self.last_annotator_accuracy = per
                self.last_annotator_counts = counts
            hits, totals = self._ann[mode]
            hits.zero_()
            totals.zero_()
        super().log(logs, start_time)

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False):
        super().save_model(output_dir, _internal_call)
        out = output_dir or self.args.output_dir
        if self.args.should_save:
            info = {
                "loss_type": self.loss_type,
                "lambdas": [float(v) for v in self.lambdas],
                "sign_warmup_ratio": self._opt["sign_warmup_ratio"],
                "annotators": self.annotator_names,
            }
            os.makedirs(out, exist_ok=True)
            tmp = os.path.join(out, ".signrm_reward.json.tmp")
            with open(tmp, "w", encoding="utf-8") as fh:
                json.dump(info, fh, indent=2)
            os.replace(tmp, os.path.join(out, "signrm_reward.json"))
