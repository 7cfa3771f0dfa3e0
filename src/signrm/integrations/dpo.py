"""Direct alignment with the sign loss (sign-DPO, METHODS.md section 3.5) in ``trl.DPOTrainer``.

DPO's implicit reward is ``r(x, y) = beta log pi(y | x) / pi_ref(y | x)``; the margin of a pair
is ``m = r(x, chosen) - r(x, rejected)``. :class:`SignDPOTrainer` trains on

- ``margin_loss="sign"`` (default): the first ``sign_warmup_ratio`` of the steps on the standard
  DPO loss ``-log sigmoid(m)`` (:func:`signrm.losses.bt_loss` on the implicit margins), then the
  sign estimator's smoothed 0-1 loss ``-tanh(lambda m / (2 s))`` (:func:`signrm.losses.sign_loss`)
  with ``s`` the running standard deviation of the margins
  (:class:`signrm.engine.scale.RunningScale`, global batch under DDP) and lambda annealed
  stage-wise over the remaining steps (or chosen by held-out agreement with
  ``lambda_schedule="adaptive"``): the construction of
  :class:`signrm.integrations.trl.SignRewardTrainer`.
- ``margin_loss="sigmoid"``: the standard DPO loss at every step (TRL's ``loss_type="sigmoid"``),
  with the same per-annotator logging, as the baseline.

An ``annotator_id`` column is kept through preprocessing and the collator and the trainer logs
per-annotator accuracy of the implicit reward (summed over processes under DDP); a ``weight``
column weights each pair. Supported: TRL's reverse-KL DPO with summed log-probabilities
(``f_divergence_type="reverse_kl"``, ``ld_alpha=None``, no WPO weighting), with a reference
model, a PEFT adapter, or precomputed reference log-probabilities.

Example (a real model and GPU; see docs/llm.md)::

    from signrm.integrations.dpo import SignDPOConfig, SignDPOTrainer
    args = SignDPOConfig(output_dir="dpo-sign", beta=0.1, bf16=True)
    trainer = SignDPOTrainer(model="Qwen/Qwen2.5-0.5B-Instruct", args=args, train_dataset=ds)
    trainer.train()
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

try:
    from trl import DPOConfig, DPOTrainer
    from trl.trainer.dpo_trainer import DataCollatorForPreference
    from trl.trainer.utils import add_fused_lm_head  # noqa: F401 - the log-prob path used here
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError(
        "signrm.integrations.dpo needs a trl whose DPOTrainer computes log-probs with the fused "
        "LM head (tested with trl 1.16): pip install -U 'signrm[trl]'"
    ) from exc

from signrm.integrations._common import (
    ANNOTATOR_INDEX,
    SignOptions,
    SignTrainerMixin,
    carry_extras,
    check_sign_options,
)
from signrm.losses import bt_loss, sign_loss

__all__ = [
    "SignDPOConfig",
    "SignDPOTrainer",
    "SignDPOCollator",
    "MARGIN_LOSSES",
    "sequence_logps",
]

MARGIN_LOSSES = ("sign", "sigmoid")
_NON_MODEL_KEYS = {"completion_mask", "ref_chosen_logps", "ref_rejected_logps"}


@dataclass
class SignDPOConfig(SignOptions, DPOConfig):
    """``DPOConfig`` plus ``margin_loss`` (``"sign"`` default, or ``"sigmoid"`` = standard DPO)
    and the signrm options of :class:`signrm.integrations._common.SignOptions`."""

    margin_loss: str = field(default="sign", metadata={"help": "sign | sigmoid"})

    def __post_init__(self):
        super().__post_init__()
        if self.margin_loss not in MARGIN_LOSSES:
            raise ValueError(
                f"margin_loss must be one of {MARGIN_LOSSES}, got {self.margin_loss!r}"
            )
        if list(self.loss_type) != ["sigmoid"]:
            raise ValueError(
                f"SignDPOConfig replaces TRL's loss: loss_type must be ['sigmoid'], got "
                f"{self.loss_type!r} (choose the loss with margin_loss)"
            )
        if self.f_divergence_type != "reverse_kl" or self.ld_alpha is not None:
            raise ValueError("SignDPOConfig supports f_divergence_type='reverse_kl', ld_alpha=None")
        if self.use_weighting:
            raise ValueError("SignDPOConfig does not support use_weighting (WPO)")
        check_sign_options(self)


@dataclass
class SignDPOCollator(DataCollatorForPreference):
    """TRL's DPO collator that also carries ``annotator_idx`` and ``weight`` (batch,) tensors."""

    def torch_call(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        return carry_extras(examples, super().torch_call(examples))


class SignDPOTrainer(SignTrainerMixin, DPOTrainer):
    """``trl.DPOTrainer`` whose loss is the sign loss on the implicit reward margins.

    Takes the arguments of ``DPOTrainer``; ``args`` should be a :class:`SignDPOConfig`.
    After training, :attr:`annotator_names` maps annotator indices to the original ids and
    :attr:`margin_scale` holds the running scale of the implicit margins.
    """

    _tag_names = ["trl", "dpo", "signrm"]

    def __init__(self, model, ref_model=None, args: SignDPOConfig | None = None, **kw):
        if args is None:
            name = model if isinstance(model, str) else model.config._name_or_path
            args = SignDPOConfig(f"{str(name).split('/')[-1]}-SignDPO")
        if not isinstance(args, SignDPOConfig):
            raise TypeError(f"args must be a SignDPOConfig, got {type(args).__name__}")
        self.margin_loss = args.margin_loss
        self._read_options(args, SignDPOConfig)
        self._check_adaptive(args, kw.get("eval_dataset"))
        kw["train_dataset"], kw["eval_dataset"] = self._prepare_annotators(
            kw.get("train_dataset"), kw.get("eval_dataset")
        )
        collator = kw.pop("data_collator", None)
        super().__init__(model, ref_model=ref_model, args=args, data_collator=collator, **kw)
        if collator is None:
            base = self.data_collator
            self.data_collator = SignDPOCollator(
                pad_token_id=base.pad_token_id,
                max_length=base.max_length,
                truncation_mode=base.truncation_mode,
                pad_to_multiple_of=base.pad_to_multiple_of,
            )
        self._init_sign_state()

    def _set_signature_columns_if_needed(self):
        super()._set_signature_columns_if_needed()
        for name in ("weight", ANNOTATOR_INDEX):
            if name not in self._signature_columns:
                self._signature_columns.append(name)

    # -- loss --------------------------------------------------------------------------------
    def margin_loss_value(self, margins, weight=None, mode: str = "train"):
        """Loss on implicit margins ``beta (log-ratio chosen - log-ratio rejected)``, shape
        (batch,); returns (loss, lambda), lambda None outside the sign phase."""
        ones = torch.ones_like(margins)
        lam = self.current_lambda() if self.margin_loss == "sign" else None
        if lam is None:  # standard DPO (also the sign loss's warm-up)
            return bt_loss(margins, ones, weight=weight), None
        scale = self._margin_scale(margins, training=mode == "train")
        self._metrics[mode]["margin_scale"].append(float(scale))
        return sign_loss(margins, ones, lam, weight=weight, scale=scale), lam

    def _policy_logps(self, model, inputs):
        """Summed completion log-probabilities (2 * batch,) and the model outputs."""
        kwargs = {k: v for k, v in inputs.items() if k not in _NON_MODEL_KEYS}
        kwargs["use_cache"] = False
        completion_mask = inputs["completion_mask"]
        labels = inputs["input_ids"].masked_fill(completion_mask == 0, -100)
        outputs = model(**kwargs, labels=labels, fused_lm_head=True)
        seq_len = completion_mask.size(1) - 1
        return outputs.log_probs[:, -seq_len:].sum(dim=1), outputs

    def _ref_logps(self, inputs):
        if self.precompute_ref_logps:
            return inputs["ref_chosen_logps"], inputs["ref_rejected_logps"]
        return self.compute_ref_log_probs(self.ref_model or self.model, inputs)

    def implicit_margins(self, model, inputs) -> tuple[torch.Tensor, Any]:
        """``beta * (log-ratio chosen - log-ratio rejected)``, shape (batch,), and the outputs."""
        logps, outputs = self._policy_logps(model, inputs)
        chosen, rejected = logps.chunk(2, dim=0)
        ref_chosen, ref_rejected = self._ref_logps(inputs)
        margins = self.beta * ((chosen - ref_chosen) - (rejected - ref_rejected))
        return margins, outputs

    def _compute_loss(self, model, inputs, return_outputs):
        mode = "train" if self.model.training else "eval"
        annotators = inputs.pop(ANNOTATOR_INDEX, None)
        weight = inputs.pop("weight", None)
        margins, outputs = self.implicit_margins(model, inputs)
        loss, lam = self.margin_loss_value(margins, weight, mode)
        if self.aux_loss_enabled:
            loss = loss + self.router_aux_loss_coef * outputs.aux_loss

        if mode == "train":
            n_tok = self.accelerator.gather_for_metrics(inputs["attention_mask"].sum()).sum().item()
            self._total_train_tokens += n_tok // self._tp_size
        self._metrics[mode]["num_tokens"] = [self._total_train_tokens]
        with torch.no_grad():
            metrics = self._metrics[mode]
            correct = (margins > 0).float()
            metrics["rewards/accuracies"].append(self.accelerator.gather(correct).mean().item())
            metrics["rewards/margins"].append(
                self.accelerator.gather(margins.detach()).mean().item()
            )
            if self.margin_loss == "sign":
                metrics["lambda"].append(0.0 if lam is None else lam)
            self._count_annotators(mode, annotators, correct)
            self._keep_eval_margins(margins, weight)
        if return_outputs:  # as TRL: the fused head builds no logits, so run a plain forward
            with torch.no_grad():
                kwargs = {k: v for k, v in inputs.items() if k not in _NON_MODEL_KEYS}
                outputs = model(**kwargs)
            return loss, outputs
        return loss

    # -- logging -----------------------------------------------------------------------------
    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        self._add_annotator_logs(logs)
        super().log(logs, start_time)

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False):
        super().save_model(output_dir, _internal_call)
        info = {"margin_loss": self.margin_loss, "beta": float(self.beta)}
        self._write_info(output_dir, "signrm_dpo.json", info)


@torch.no_grad()
def sequence_logps(
    model, tokenizer, prompts: list[str], responses: list[str], batch_size: int = 16
) -> torch.Tensor:
    """Summed log-probability of each response given its prompt, shape (n,) float32 (CPU).

    Tokenised as ``trl.DPOTrainer`` does for plain text: ``prompt + response + eos_token`` as one
    string, the response's tokens being those after the common prefix with the prompt's tokens.
    """
    if len(prompts) != len(responses):
        raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
    device = next(model.parameters()).device
    eos = tokenizer.eos_token or ""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    out = []
    for start in range(0, len(prompts), batch_size):
        ps = prompts[start : start + batch_size]
        rs = responses[start : start + batch_size]
        p_ids = tokenizer(ps)["input_ids"]
        seqs = tokenizer([p + r + eos for p, r in zip(ps, rs)])["input_ids"]
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        target = torch.zeros_like(ids, dtype=torch.bool)
        for i, (p, s) in enumerate(zip(p_ids, seqs)):
            n_prefix = next(
                (j for j, (a, b) in enumerate(zip(p, s)) if a != b), min(len(p), len(s))
            )
            ids[i, : len(s)] = torch.tensor(s)
            mask[i, : len(s)] = 1
            target[i, n_prefix : len(s)] = True
        ids, mask, target = ids.to(device), mask.to(device), target.to(device)
        logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits.float()
        logp = torch.log_softmax(logits[:, :-1], dim=-1)
        tok = logp.gather(-1, ids[:, 1:, None]).squeeze(-1)
        out.append((tok * target[:, 1:]).sum(dim=1).cpu())
    return torch.cat(out) if out else torch.zeros(0)
