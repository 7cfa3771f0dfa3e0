"""What the signrm TRL trainers share: annotator columns and accuracy, the lambda schedule over
steps (annealed, or adaptive: :mod:`signrm.integrations.adaptive`), and the running margin scale
(:class:`signrm.engine.scale.RunningScale`).

:class:`SignTrainerMixin` is mixed into ``trl.RewardTrainer`` and ``trl.DPOTrainer`` subclasses;
it reads ``self._opt`` (the signrm options), ``self.state``, ``self.accelerator`` and
``self.model`` of the ``transformers.Trainer`` it is mixed into.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from signrm.engine.scale import RunningScale
from signrm.errors import UserError
from signrm.integrations.adaptive import AdaptiveLambda, default_grid
from signrm.losses import lambda_schedule

#: integer column the trainers add for the annotator of each comparison
ANNOTATOR_INDEX = "annotator_idx"

#: values of ``lambda_schedule``
LAMBDA_SCHEDULES = ("anneal", "adaptive")

#: the signrm options both configs carry (read by :meth:`SignTrainerMixin._read_options`)
SIGN_OPTIONS = (
    "lambda_start",
    "lambda_stop",
    "lambda_stages",
    "lambda_schedule",
    "sign_warmup_ratio",
    "margin_scale_momentum",
    "annotator_column",
    "weight_column",
    "max_logged_annotators",
)


@dataclass
class SignOptions:
    """The signrm fields of both configs (mixed in before the TRL config class).

    lambda_start, lambda_stop, lambda_stages : geometric lambda schedule of the sign loss, spread
        evenly over the steps after the warm-up (the paper anneals lambda from 1 to 15).
    lambda_schedule : ``"anneal"`` (default): that schedule. ``"adaptive"``: lambda chosen phase
        by phase (one phase between two evaluations) by held-out agreement on the evaluation
        split, on the linear estimator's grid 1 -> 64 with its one-standard-error rule
        (:class:`signrm.integrations.adaptive.AdaptiveLambda`; ``lambda_start/stop/stages`` are
        then unused). Needs an ``eval_dataset`` held out from training and
        ``eval_strategy="steps"``.
    sign_warmup_ratio : share of the training steps trained with the standard loss (BT /
        sigmoid DPO) before the sign loss.
    margin_scale_momentum : weight of the NEW batch in the running standard deviation of the
        margins that normalises them (``torch.nn.BatchNorm``'s convention, in (0, 1]; 0.1 = an
        average over about the last 10 steps; 1 = each batch's own standard deviation).
    annotator_column, weight_column : names of the optional columns.
    max_logged_annotators : per-annotator accuracies logged individually (the rest only enter the
        macro mean and the minimum).
    """

    lambda_start: float = field(default=1.0, metadata={"help": "first lambda of the sign loss"})
    lambda_stop: float = field(default=15.0, metadata={"help": "last lambda of the sign loss"})
    lambda_stages: int = field(default=5, metadata={"help": "number of lambda stages"})
    lambda_schedule: str = field(
        default="anneal", metadata={"help": "anneal | adaptive (held-out choice per phase)"}
    )
    sign_warmup_ratio: float = field(
        default=0.1, metadata={"help": "share of steps on the standard loss before the sign loss"}
    )
    margin_scale_momentum: float = field(
        default=0.1, metadata={"help": "weight of the new batch in the running margin sd"}
    )
    annotator_column: str = field(default="annotator_id", metadata={"help": "annotator ids"})
    weight_column: str = field(default="weight", metadata={"help": "per-comparison weights"})
    max_logged_annotators: int = field(
        default=20, metadata={"help": "per-annotator accuracies logged individually"}
    )


def check_sign_options(cfg) -> None:
    """Validate the signrm fields of a config (one-line ``ValueError`` naming the field)."""
    if not 0.0 <= cfg.sign_warmup_ratio < 1.0:
        raise ValueError(f"sign_warmup_ratio must be in [0, 1), got {cfg.sign_warmup_ratio}")
    if not 0.0 < cfg.margin_scale_momentum <= 1.0:
        raise ValueError(
            "margin_scale_momentum is the weight of the new batch (BatchNorm convention) and "
            f"must be in (0, 1], got {cfg.margin_scale_momentum}"
        )
    if cfg.max_logged_annotators < 0:
        raise ValueError(f"max_logged_annotators must be >= 0, got {cfg.max_logged_annotators}")
    lambda_schedule(cfg.lambda_start, cfg.lambda_stop, cfg.lambda_stages)  # validates
    if cfg.lambda_schedule not in LAMBDA_SCHEDULES:
        raise ValueError(
            f"lambda_schedule must be one of {LAMBDA_SCHEDULES}, got {cfg.lambda_schedule!r}"
        )


def carry_extras(examples: list[dict[str, Any]], out: dict[str, Any]) -> dict[str, Any]:
    """Add ``annotator_idx`` (long) and ``weight`` (float) tensors of shape (batch,) to a
    collated batch when the examples have them."""
    if ANNOTATOR_INDEX in examples[0]:
        out[ANNOTATOR_INDEX] = torch.tensor(
            [int(ex[ANNOTATOR_INDEX]) for ex in examples], dtype=torch.long
        )
    if "weight" in examples[0]:
        out["weight"] = torch.tensor([float(ex["weight"]) for ex in examples], dtype=torch.float)
    return out


def _rows(idx: list[int], show: int = 5) -> str:
    """``3, 8, 9 (and 4 more)`` from 0-based row indices."""
    head = ", ".join(str(i) for i in idx[:show])
    return head + (f" (and {len(idx) - show} more)" if len(idx) > show else "")


def check_weights(values, column: str = "weight") -> None:
    """Per-comparison weights must be finite numbers >= 0, not all zero (else a clear error)."""
    try:
        w = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise UserError(f"column {column!r}: weights must be numbers ({exc})") from None
    bad = np.flatnonzero(~np.isfinite(w) | (w < 0)).tolist()
    if bad:
        raise UserError(
            f"column {column!r}: weights must be finite and >= 0; row(s) {_rows(bad)} are not "
            f"(first: {w[bad[0]]!r})"
        )
    if w.size and not np.any(w > 0):
        raise UserError(f"column {column!r}: every weight is 0, nothing to train on")


def _column_names(dataset) -> list[str]:
    names = getattr(dataset, "column_names", None)
    return list(names or [])


def step_lambda(step: int, max_steps: int, warmup: float, lambdas: np.ndarray) -> float | None:
    """Lambda at ``step`` of ``max_steps``: None during the first ``warmup`` share of the steps
    (the standard loss), then the stages of ``lambdas`` spread evenly over the remaining steps."""
    progress = min(1.0, step / max(1, int(max_steps or 1)))
    if progress < warmup:
        return None
    rest = (progress - warmup) / (1.0 - warmup)
    stage = min(len(lambdas) - 1, int(math.floor(rest * len(lambdas))))
    return float(lambdas[stage])


class AcceleratorGroup:
    """A process group over an ``accelerate.Accelerator`` (sums on the accelerator's device, so
    it works on NCCL as well as gloo); the ``allreduce_sum`` duck type of
    :class:`signrm.engine.group.ProcessGroup` that :class:`RunningScale` needs."""

    def __init__(self, accelerator) -> None:
        self.accelerator = accelerator

    def allreduce_sum(self, value):
        acc = self.accelerator
        if acc is None or acc.num_processes <= 1:
            return value
        dtype = torch.float32 if acc.device.type == "mps" else torch.float64
        t = torch.as_tensor(np.asarray(value, dtype=np.float64), dtype=dtype, device=acc.device)
        return acc.reduce(t, reduction="sum").double().cpu().numpy()


class SignTrainerMixin:
    """Annotator ids, per-annotator accuracy, the lambda schedule and the margin scale."""

    def _read_options(self, args, defaults) -> None:
        self._opt = {k: getattr(args, k, getattr(defaults, k)) for k in SIGN_OPTIONS}
        #: the phase-by-phase lambda choice (``lambda_schedule="adaptive"``), else None
        self.adaptive_lambda: AdaptiveLambda | None = None
        if self._opt["lambda_schedule"] == "adaptive":
            grid, patience, slack = default_grid()
            self.adaptive_lambda = AdaptiveLambda(grid, patience=patience, slack=slack)
            self.lambdas = grid
        else:
            self.lambdas = lambda_schedule(
                self._opt["lambda_start"], self._opt["lambda_stop"], self._opt["lambda_stages"]
            )

    def _check_adaptive(self, args, eval_dataset) -> None:
        """``lambda_schedule="adaptive"`` needs one evaluation split and periodic evaluation."""
        if self.adaptive_lambda is None:
            return
        if eval_dataset is None or isinstance(eval_dataset, dict):
            raise ValueError(
                "lambda_schedule='adaptive' needs one eval_dataset (held out from training, not "
                "a dict): lambda is chosen by agreement on it"
            )
        if str(getattr(args.eval_strategy, "value", args.eval_strategy)) != "steps":
            raise ValueError(
                "lambda_schedule='adaptive' needs eval_strategy='steps' (each evaluation ends "
                f"a lambda phase), got eval_strategy={args.eval_strategy!r}"
            )

    # -- data --------------------------------------------------------------------------------
    def _prepare_annotators(self, train_dataset, eval_dataset):
        """Map annotator ids to 0..K-1 (``annotator_idx``) before TRL tokenises (extra columns
        survive its ``.map``); returns the (train, eval) datasets with the new column."""
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
        return train_dataset, eval_dataset

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
        if wcol in cols:
            check_weights(dataset[wcol], wcol)
        if col in cols:
            missing = [i for i, v in enumerate(dataset[col]) if v is None]
            if missing:
                raise UserError(
                    f"column {col!r}: no annotator id in row(s) {_rows(missing)}; give every "
                    "comparison an id, or drop the column"
                )
            where = {name: i for i, name in enumerate(self.annotator_names)}
            dataset = dataset.map(lambda ex: {ANNOTATOR_INDEX: where[str(ex[col])]})
        if wcol in cols and wcol != "weight":
            dataset = dataset.rename_column(wcol, "weight")
        return dataset

    def _init_sign_state(self) -> None:
        """Counters and the running scale (call at the end of ``__init__``)."""
        self.margin_scale = RunningScale(
            self._opt["margin_scale_momentum"], group=AcceleratorGroup(self.accelerator)
        )
        k = max(1, len(self.annotator_names))
        self._ann = {m: (torch.zeros(k), torch.zeros(k)) for m in ("train", "eval")}
        self.last_annotator_accuracy: dict[str, float] = {}
        #: comparisons per annotator behind ``last_annotator_accuracy`` (all processes)
        self.last_annotator_counts: dict[str, int] = {}
        #: (margin, weight) rows of the current evaluation (adaptive lambda), (batch, 2) each
        self._eval_margins: list[torch.Tensor] = []

    # -- loss --------------------------------------------------------------------------------
    def current_lambda(self) -> float | None:
        """Lambda of the sign loss at the current step, or None during the warm-up (and, with
        the adaptive schedule, whenever the BT loss is chosen)."""
        if self.adaptive_lambda is not None:
            return self.adaptive_lambda.current
        return step_lambda(
            self.state.global_step,
            self.state.max_steps,
            self._opt["sign_warmup_ratio"],
            self.lambdas,
        )

    def _margin_scale(self, margins: torch.Tensor, training: bool) -> torch.Tensor:
        """Running standard deviation of the margins (global batch under DDP), detached; in
        evaluation the training value is used unchanged (the batch's own before any step)."""
        if training:
            value = self.margin_scale.update(margins)
        elif self.margin_scale.value is not None:
            value = self.margin_scale.value
        else:
            value = RunningScale(1.0, group=self.margin_scale.group).update(margins)
        return torch.tensor(max(value, 1e-6), dtype=margins.dtype, device=margins.device)

    def _keep_eval_margins(self, margins: torch.Tensor, weight: torch.Tensor | None) -> None:
        """Gather (over processes) the margins (batch,) of an evaluation batch for the adaptive
        lambda (chosen responses preferred: agreement = sign(m))."""
        if self.adaptive_lambda is None or self.model.training:
            return
        w = torch.ones_like(margins) if weight is None else weight.to(margins.dtype)
        pair = torch.stack([margins.detach(), w.detach()], dim=1)
        self._eval_margins.append(self.accelerator.gather_for_metrics(pair).double().cpu())

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval"):
        """The Trainer's evaluation; with the adaptive schedule, an evaluation of the trainer's
        own split during training (after the warm-up) ends a phase and sets the next lambda."""
        self._eval_margins = []
        metrics = super().evaluate(
            eval_dataset=eval_dataset, ignore_keys=ignore_keys, metric_key_prefix=metric_key_prefix
        )
        step, max_steps = self.state.global_step, self.state.max_steps
        if self.adaptive_lambda is None or eval_dataset is not None or not self._eval_margins:
            return metrics
        progress = step / max(1, int(max_steps or 1))
        if 0 < step < max_steps and progress >= self._opt["sign_warmup_ratio"]:
            pairs = torch.cat(self._eval_margins).numpy()
            lam = self.adaptive_lambda.observe(np.sign(pairs[:, 0]), pairs[:, 1])
            metrics[f"{metric_key_prefix}_next_lambda"] = 0.0 if lam is None else lam
            metrics[f"{metric_key_prefix}_sign_agreement"] = self.adaptive_lambda.scores[-1]
        return metrics

    def _count_annotators(self, mode: str, annotators, correct: torch.Tensor) -> None:
        if annotators is None:
            return
        hits, totals = self._ann[mode]
        a = annotators.detach().cpu()
        hits.index_add_(0, a, correct.detach().float().cpu())
        totals.index_add_(0, a, torch.ones_like(a, dtype=torch.float))

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

    def _add_annotator_logs(self, logs: dict[str, float]) -> None:
        """Add the global per-annotator accuracies to ``logs`` and reset the counts."""
        mode = "train" if self.model.training else "eval"
        if not self.annotator_names:  # the same on every process: all take part in the reduce
            return
        hits, totals = self._global_counts(mode)
        per = self._accuracy(hits, totals)
        if not per:
            return
        counts = {n: int(totals[i]) for i, n in enumerate(self.annotator_names) if totals[i]}
        prefix = "eval_" if mode == "eval" else ""
        values = list(per.values())
        logs[f"{prefix}annotator_accuracy_macro"] = sum(values) / len(values)
        logs[f"{prefix}annotator_accuracy_min"] = min(values)
        for name in list(per)[: self._opt["max_logged_annotators"]]:
            logs[f"{prefix}annotator_accuracy/{name}"] = per[name]
        if mode == "eval":
            self.last_annotator_accuracy = per
            self.last_annotator_counts = counts
        for t in self._ann[mode]:
            t.zero_()

    def _write_info(self, output_dir: str | None, filename: str, info: dict) -> None:
        """Write the signrm settings next to a saved model (atomically, main process only)."""
        out = output_dir or self.args.output_dir
        if not self.args.should_save:
            return
        info = {
            **info,
            "lambdas": [float(v) for v in self.lambdas],
            "lambda_schedule": self._opt["lambda_schedule"],
            "adaptive_lambda": self.adaptive_lambda.record() if self.adaptive_lambda else None,
            "sign_warmup_ratio": self._opt["sign_warmup_ratio"],
            "margin_scale_momentum": self._opt["margin_scale_momentum"],
            "margin_scale": self.margin_scale.value,
            "annotators": self.annotator_names,
        }
        os.makedirs(out, exist_ok=True)
        tmp = os.path.join(out, f".{filename}.tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(info, fh, indent=2)
        os.replace(tmp, os.path.join(out, filename))
