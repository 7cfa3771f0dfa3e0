"""The one mini-batch torch trainer of reward heads (MLP heads), on one process or on several.

Pairwise losses (:mod:`signrm.losses` BT, probit, sign) see ``(xa, xb, y)``; the pointwise CLF
loss sees ``(x, label)``. Training keeps a held-out share for early stopping and restores the best
epoch.

The single-process trainer *is* the multi-process trainer with a process group of one
(:func:`signrm.engine.group.current_group`; its collectives are the identity). Every process
passes the full arrays and draws the same validation split from the shared seed. Each epoch the
training rows are permuted by a generator seeded ``seed + epoch`` (with several processes a
:class:`~torch.utils.data.DistributedSampler` draws that very permutation and gives process ``r``
the positions ``r, r + N, ...``); each process takes ``batch_size / N`` of its rows per step, so
the processes' step-``k`` batches together are the single-process step-``k`` batch. The head is
wrapped in ``DistributedDataParallel`` only when there are several processes; DDP averages the
gradients, and each process scales its weighted-mean loss by ``N * local weight / global weight``
of the step, so the update is that of the global batch's weighted mean. The sign loss's margin
scale (:class:`signrm.engine.scale.RunningScale`) is the global batch's, and early stopping uses the
held-out criterion summed over the processes, so every process takes the same decisions: N
processes follow the one-process trajectory up to floating-point summation order.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from signrm import losses
from signrm.engine.group import ProcessGroup, current_group
from signrm.engine.scale import RunningScale

__all__ = [
    "EarlyStop",
    "History",
    "TrainConfig",
    "common_seed",
    "epoch_order",
    "local_batch_size",
    "predict_rewards",
    "seed_everything",
    "split_index",
    "train_pairwise",
    "train_pointwise",
]

_EVAL_ROWS = 8192  # held-out rows per forward pass
_PROBE_ROWS = 4096  # training rows that set the first margin scale of the sign phase
_MIN_DELTA = 1e-6  # an epoch improves on the best one by more than this


@dataclass
class TrainConfig:
    """Optimiser settings shared by the torch-trained heads (``batch_size``: global rows/step)."""

    learning_rate: float = 1e-3
    batch_size: int = 256
    max_epochs: int = 50
    patience: int = 3
    validation_fraction: float = 0.2
    weight_decay: float = 0.0
    random_state: int | None = None
    progress: bool = False


@dataclass
class History:
    """Per-epoch rows (``epoch``, ``phase``, ``train_loss``, ``val`` ...) and the kept epoch."""

    epochs: list[dict] = field(default_factory=list)
    best_epoch: int = -1
    world_size: int = 1
    final_scale: float | None = None  # sign loss: running margin scale at the end

    def add(self, **row) -> None:
        self.epochs.append(row)


def common_seed(random_state, group: ProcessGroup | None = None) -> int:
    """``random_state`` as a seed in ``[0, 2**31)``; ``None``: fresh entropy drawn on rank 0 and
    shared with every process (an exact sum: seeds are below 2**53)."""
    if random_state is not None:
        return int(random_state) % (2**31)
    seed = int(np.random.SeedSequence().generate_state(1)[0]) % (2**31)
    group = group or ProcessGroup()
    if group.distributed:
        seed = int(round(group.allreduce_sum(float(seed) if group.is_main else 0.0)))
    return seed


def seed_everything(random_state, group: ProcessGroup | None = None) -> torch.Generator:
    """Seed torch's global generator; returns a generator with the same seed (``initial_seed()``)."""
    seed = common_seed(random_state, group)
    torch.manual_seed(seed)
    gen = torch.Generator()
    gen.manual_seed(seed)
    return gen


def split_index(n: int, fraction: float, gen: torch.Generator, groups=None):
    """(train, validation) index tensors over ``range(n)``; validation ``None`` when empty.

    With ``groups`` (n,) non-negative ints, whole groups go to one side.
    """
    if groups is not None:
        groups = torch.as_tensor(np.asarray(groups), dtype=torch.long)
        n_groups = int(groups.max()) + 1
        val_groups = torch.rand(n_groups, generator=gen) < fraction
        val = val_groups[groups]
        if fraction <= 0 or not val.any() or val.all():
            return torch.randperm(n, generator=gen), None
        return torch.nonzero(~val).squeeze(1), torch.nonzero(val).squeeze(1)
    perm = torch.randperm(n, generator=gen)
    n_val = int(round(fraction * n)) if fraction > 0 else 0
    if n_val < 1 or n - n_val < 1:
        return perm, None
    return perm[n_val:], perm[:n_val]


def epoch_order(n: int, seed: int, epoch: int, group: ProcessGroup) -> torch.Tensor:
    """This process's positions in ``range(n)`` for ``epoch``: the permutation seeded ``seed +
    epoch``, all of it on one process, its rank-strided share (padded to equal length by
    ``DistributedSampler``) on several."""
    if not group.distributed:
        gen = torch.Generator()
        gen.manual_seed(seed + epoch)
        return torch.randperm(n, generator=gen)
    from torch.utils.data import DistributedSampler

    sampler = DistributedSampler(
        range(n), num_replicas=group.world_size, rank=group.rank, seed=seed, drop_last=False
    )
    sampler.set_epoch(epoch)
    return torch.as_tensor(list(sampler), dtype=torch.long)


def local_batch_size(batch_size: int, group: ProcessGroup) -> int:
    """Rows per step on this process: the global ``batch_size`` split evenly over the group."""
    if batch_size % group.world_size:
        raise ValueError(
            f"batch_size {batch_size} is not a multiple of the number of processes "
            f"{group.world_size}: the global batch is split evenly over the processes"
        )
    return batch_size // group.world_size


@torch.no_grad()
def predict_rewards(head: nn.Module, X: np.ndarray, batch_size: int = 8192) -> np.ndarray:
    """Rewards of ``X`` (n, d) under ``head`` (on the CPU) as float64 (n,)."""
    head.eval()
    out = []
    for start in range(0, X.shape[0], batch_size):
        xb = torch.as_tensor(
            np.ascontiguousarray(X[start : start + batch_size]), dtype=torch.float32
        )
        out.append(head(xb).double().numpy())
    return np.concatenate(out) if out else np.zeros(0)


class EarlyStop:
    """Keeps the state of the epoch with the lowest criterion; stops after ``patience`` epochs
    without an improvement. A ``None`` criterion (no held-out rows) keeps the latest state."""

    def __init__(self, module: nn.Module, patience: int) -> None:
        self.module, self.patience = module, int(patience)
        self.best_state = copy.deepcopy(module.state_dict())
        self.best_val, self.best_epoch, self.bad = math.inf, -1, 0

    def update(self, crit: float | None, epoch: int, count_bad: bool = True) -> bool:
        """Record ``epoch``'s criterion (lower is better); True when training should stop."""
        if crit is None:
            self.best_state = copy.deepcopy(self.module.state_dict())
            return False
        if crit < self.best_val - _MIN_DELTA:
            self.best_val, self.best_epoch, self.bad = crit, epoch, 0
            self.best_state = copy.deepcopy(self.module.state_dict())
            return False
        if not count_bad:
            return False
        self.bad += 1
        return self.bad >= self.patience

    def restore(self) -> None:
        self.module.load_state_dict(self.best_state)


def _weight_sum(w: torch.Tensor | None, idx: torch.Tensor) -> float:
    return float(w.sum()) if w is not None else float(len(idx))


def _pick(t: torch.Tensor | None, idx: torch.Tensor) -> torch.Tensor | None:
    return None if t is None else t[idx]


class _Run:
    """One training run: shared seed and split, optimiser, per-process batches, early stopping."""

    def __init__(
        self,
        head: nn.Module,
        n: int,
        config: TrainConfig,
        group: ProcessGroup | None,
        groups: np.ndarray | None = None,
        desc: str = "head",
    ) -> None:
        self.group = group or current_group()
        self.world = self.group.world_size
        self.device = torch.device(self.group.device)
        self.config = config
        gen = seed_everything(config.random_state, self.group)
        self.seed = gen.initial_seed()
        tr, va = split_index(n, config.validation_fraction, gen, groups)
        self.tr = tr.to(self.device)
        self.has_val = va is not None
        # each process scores its rank-strided share of the held-out rows
        self.va = None if va is None else va[self.group.rank :: self.world].to(self.device)
        self.head = head.to(self.device)
        self.model = head
        if self.group.distributed:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = DistributedDataParallel(head, device_ids=ids)
        self.opt = torch.optim.Adam(
            head.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
        )
        self.local_bs = local_batch_size(config.batch_size, self.group)
        self.stop = EarlyStop(head, config.patience)
        self.history = History(world_size=self.world)
        self.epoch = 0
        from tqdm.auto import tqdm

        label = desc if self.world == 1 else f"{desc} x{self.world}"
        show = config.progress and self.group.is_main
        self.bar = tqdm(desc=label, unit="epoch", disable=not show, leave=False)

    def tensor(self, a) -> torch.Tensor | None:
        if a is None:
            return None
        return torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float32).to(self.device)

    def sum(self, *values: float) -> list[float]:
        """``values`` summed over the processes."""
        return [float(v) for v in self.group.allreduce_sum(np.array(values, dtype=np.float64))]

    def train_epoch(self, batch_loss: Callable, weight: torch.Tensor | None) -> float:
        """One pass over this process's share of the epoch's permutation; returns the mean
        training loss over all processes. ``batch_loss(idx)`` -> (weighted-mean loss over the
        rows ``idx``, unweighted-mean penalty or None)."""
        self.head.train()
        order = epoch_order(len(self.tr), self.seed, self.epoch, self.group)
        total = count = 0.0
        for idx in self.tr[order.to(self.device)].split(self.local_bs):
            k = len(idx)
            w_local = _weight_sum(_pick(weight, idx), idx)
            w_global, n_global = self.sum(w_local, k)
            self.opt.zero_grad(set_to_none=True)
            loss, penalty = batch_loss(idx)
            share = self.world * w_local / w_global if w_global > 0 else 0.0
            scaled = loss * share
            if penalty is not None:
                scaled = scaled + penalty * (self.world * k / n_global)
                loss = loss + penalty
            scaled.backward()
            self.opt.step()
            total += float(loss.detach()) * k
            count += k
        total, count = self.sum(total, count)
        return total / max(count, 1.0)

    @torch.no_grad()
    def evaluate(self, metric: Callable) -> float | None:
        """Held-out weighted mean of ``metric(idx) -> (mean value, weight sum)`` (all processes)."""
        if not self.has_val:
            return None
        self.head.eval()
        num = den = 0.0
        for c in self.va.split(_EVAL_ROWS):
            value, wsum = metric(c)
            num, den = num + value * wsum, den + wsum
        self.head.train()
        num, den = self.sum(num, den)
        return num / den if den > 0 else None

    def phase(
        self, n_epochs: int, epoch_fn: Callable, criterion: Callable, count_bad=True, **row
    ) -> None:
        """Up to ``n_epochs`` epochs (patience counts only when ``count_bad``); the latest state
        stays in the head, the best one in ``self.stop``."""
        self.stop.bad = 0
        for _ in range(int(n_epochs)):
            train_loss = epoch_fn()
            crit = criterion()
            self.history.add(epoch=self.epoch, **row, train_loss=train_loss, val=crit)
            self.epoch += 1
            self.bar.update(1)
            if self.stop.update(crit, self.epoch - 1, count_bad):
                break

    def finish(self) -> History:
        """Restore the best epoch's state, move the head back to the CPU; returns the history."""
        self.stop.restore()
        self.bar.close()
        self.history.best_epoch = self.stop.best_epoch
        self.head.cpu()
        return self.history


def train_pairwise(
    head: nn.Module,
    xa: np.ndarray,
    xb: np.ndarray,
    y: np.ndarray,
    weight: np.ndarray | None,
    config: TrainConfig,
    loss: str = "bt",
    lambdas: np.ndarray | None = None,
    stage_epochs: int = 2,
    margin_offset: np.ndarray | None = None,
    center_coef: float = 0.0,
    process_group: ProcessGroup | None = None,
) -> History:
    """Train ``head`` (in place) on pairs with ``loss`` in {"bt", "probit", "sign"}.

    ``xa``, ``xb``: (n, d) features; ``y``: (n,) labels in {0, 0.5, 1}; ``weight``,
    ``margin_offset``: (n,) or None. For ``"bt"``/``"probit"``: Adam with early stopping on the
    held-out loss. For ``"sign"``: a BT warm start, then ``len(lambdas)`` stages of
    ``stage_epochs`` epochs of the smoothed sign loss with lambda annealed upward on margins over a
    running scale; the epoch with the best held-out exact agreement is kept (patience applies in
    the last stage). ``process_group``: default :func:`current_group`. Returns the history.
    """
    if loss not in ("bt", "probit", "sign"):
        raise ValueError(f"loss must be 'bt', 'probit' or 'sign', got {loss!r}")
    run = _Run(head, len(y), config, process_group, desc=f"{loss} head")
    Xa, Xb, Y, W, OFF = (run.tensor(a) for a in (xa, xb, y, weight, margin_offset))
    likelihood = {"bt": losses.bt_loss, "probit": losses.probit_loss}
    warm = "probit" if loss == "probit" else "bt"

    def margins(module, idx):
        r = module(torch.cat([Xa[idx], Xb[idx]]))
        return r[: len(idx)] - r[len(idx) :], r

    def epochs_of(kind, lam=None, scale=None):
        def batch_loss(idx):
            m, r = margins(run.model, idx)
            w = _pick(W, idx)
            if kind == "sign":
                val = losses.sign_loss(m, Y[idx], lam, w, scale=scale.update(m))
            else:
                val = likelihood[kind](m, Y[idx], w, _pick(OFF, idx))
            k = len(idx)
            pen = losses.centering_penalty(r[:k], r[k:], center_coef) if center_coef > 0 else None
            return val, pen

        return lambda: run.train_epoch(batch_loss, W)

    def held_out(kind):
        def metric(c):
            m, _ = margins(head, c)
            w = _pick(W, c)
            if kind == "agreement":
                return -float(losses.zero_one_agreement(m, Y[c], w)), _weight_sum(w, c)
            return float(likelihood[kind](m, Y[c], w, _pick(OFF, c))), _weight_sum(w, c)

        return lambda: run.evaluate(metric)

    criterion = held_out("agreement" if loss == "sign" else warm)
    # Phase 1: likelihood training (the model itself for bt/probit, the warm start for sign).
    run.phase(config.max_epochs, epochs_of(warm), criterion, phase=warm)
    if loss == "sign":
        run.stop.restore()  # anneal from the best warm-start epoch
        # Phase 2: sign loss, lambda annealed over stages, margins over the global running scale.
        scale = RunningScale(group=run.group)
        probe = run.tr[:_PROBE_ROWS][run.group.rank :: run.world]
        with torch.no_grad():
            scale.update(margins(head, probe)[0])
        schedule = losses.lambda_schedule() if lambdas is None else np.asarray(lambdas, float)
        for stage, lam in enumerate(schedule):
            last = stage == len(schedule) - 1
            run.phase(
                config.max_epochs if last else stage_epochs,
                epochs_of("sign", float(lam), scale),
                criterion,
                count_bad=last,
                phase="sign",
                lam=float(lam),
            )
        run.history.final_scale = scale.value
    return run.finish()


def train_pointwise(
    head: nn.Module,
    X: np.ndarray,
    labels: np.ndarray,
    weight: np.ndarray | None,
    config: TrainConfig,
    groups: np.ndarray | None = None,
    process_group: ProcessGroup | None = None,
) -> History:
    """Train ``head`` (in place) as a binary classifier on single alternatives (CLF reward model).

    ``X``: (m, d); ``labels``, ``weight``: (m,); ``groups`` (m,) keeps the rows of one comparison
    on the same side of the validation split. Early stopping on the held-out weighted BCE.
    """
    run = _Run(head, len(labels), config, process_group, groups=groups, desc="clf head")
    Xt, L, W = run.tensor(X), run.tensor(labels), run.tensor(weight)

    def batch_loss(idx):
        return losses.clf_loss(run.model(Xt[idx]), L[idx], _pick(W, idx)), None

    def metric(c):
        w = _pick(W, c)
        return float(losses.clf_loss(head(Xt[c]), L[c], w)), _weight_sum(w, c)

    run.phase(
        config.max_epochs, lambda: run.train_epoch(batch_loss, W), lambda: run.evaluate(metric)
    )
    return run.finish()
