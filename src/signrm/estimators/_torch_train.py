"""Mini-batch torch training of reward heads (MLP heads; linear heads when streaming/DDP).

Pairwise losses see ``(xa, xb, y)``; the pointwise CLF loss sees ``(x, label)``. Training keeps a
held-out share for early stopping and restores the best epoch.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from signrm import losses


@dataclass
class TrainConfig:
    """Optimiser settings shared by the torch-trained heads."""

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
    epochs: list[dict] = field(default_factory=list)
    best_epoch: int = -1

    def add(self, **row) -> None:
        self.epochs.append(row)


def seed_everything(random_state) -> torch.Generator:
    seed = (
        int(np.random.SeedSequence(random_state).generate_state(1)[0])
        if random_state is None
        else int(random_state) % (2**31)
    )
    torch.manual_seed(seed)
    gen = torch.Generator()
    gen.manual_seed(seed)
    return gen


def _split_index(n: int, fraction: float, gen: torch.Generator, groups=None):
    """(train, validation) index tensors; with ``groups`` (n,) ints, whole groups go to one side."""
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


def _tensor(a, dtype=torch.float32):
    return None if a is None else torch.as_tensor(np.ascontiguousarray(a), dtype=dtype)


def _pair_margins(head: nn.Module, xa: torch.Tensor, xb: torch.Tensor) -> torch.Tensor:
    r = head(torch.cat([xa, xb], dim=0))
    return r[: xa.shape[0]] - r[xa.shape[0] :]


@torch.no_grad()
def predict_rewards(head: nn.Module, X: np.ndarray, batch_size: int = 8192) -> np.ndarray:
    """Rewards of ``X`` (n, d) under ``head`` as float64 (n,)."""
    head.eval()
    out = []
    for start in range(0, X.shape[0], batch_size):
        xb = torch.as_tensor(
            np.ascontiguousarray(X[start : start + batch_size]), dtype=torch.float32
        )
        out.append(head(xb).double().numpy())
    return np.concatenate(out) if out else np.zeros(0)


class MarginScale:
    """Running (EMA) standard deviation of margins: makes lambda dimensionless for MLP heads."""

    def __init__(self, momentum: float = 0.05) -> None:
        self.momentum = momentum
        self.value: float | None = None

    def update(self, margins: torch.Tensor) -> float:
        sd = float(margins.detach().std()) if margins.numel() > 1 else 1.0
        if not math.isfinite(sd) or sd <= 0:
            sd = self.value or 1.0
        self.value = (
            sd if self.value is None else (1 - self.momentum) * self.value + self.momentum * sd
        )
        return self.value


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
) -> History:
    """Train ``head`` on pairs with ``loss`` in {"bt", "probit", "sign"}.

    For ``"bt"``/``"probit"``: Adam with early stopping on the held-out loss (patience epochs).
    For ``"sign"``: a BT warm start with early stopping, then ``len(lambdas)`` stages of
    ``stage_epochs`` epochs of the smoothed sign loss with lambda annealed upward on margins
    normalised by a running standard deviation; the checkpoint with the best held-out exact
    agreement is kept (patience applies in the last stage). Returns the per-epoch history.
    """
    gen = seed_everything(config.random_state)
    Xa, Xb, Y = _tensor(xa), _tensor(xb), _tensor(y)
    W = _tensor(weight)
    OFF = _tensor(margin_offset)
    tr, va = _split_index(len(Y), config.validation_fraction, gen)
    opt = torch.optim.Adam(
        head.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    history = History()
    pick = lambda t, idx: None if t is None else t[idx]  # noqa: E731

    def batch_loss(idx, kind, lam=None, scale=None):
        m = _pair_margins(head, Xa[idx], Xb[idx])
        if kind == "bt":
            val = losses.bt_loss(m, Y[idx], pick(W, idx), pick(OFF, idx))
        elif kind == "probit":
            val = losses.probit_loss(m, Y[idx], pick(W, idx), pick(OFF, idx))
        else:
            val = losses.sign_loss(m, Y[idx], lam, pick(W, idx), scale=scale.update(m))
        if center_coef > 0:
            r = head(torch.cat([Xa[idx], Xb[idx]]))
            val = val + losses.centering_penalty(r[: len(idx)], r[len(idx) :], center_coef)
        return val

    @torch.no_grad()
    def evaluate(kind):
        if va is None:
            return None
        head.eval()
        m = torch.cat([_pair_margins(head, Xa[c], Xb[c]) for c in va.split(8192)])
        head.train()
        if kind == "agreement":
            return -float(losses.zero_one_agreement(m, Y[va], pick(W, va)))
        if kind == "probit":
            return float(losses.probit_loss(m, Y[va], pick(W, va), pick(OFF, va)))
        return float(losses.bt_loss(m, Y[va], pick(W, va), pick(OFF, va)))

    def run_epoch(kind, lam=None, scale=None):
        head.train()
        order = tr[torch.randperm(len(tr), generator=gen)]
        total, count = 0.0, 0
        for idx in order.split(config.batch_size):
            opt.zero_grad(set_to_none=True)
            val = batch_loss(idx, kind, lam, scale)
            val.backward()
            opt.step()
            total += float(val.detach()) * len(idx)
            count += len(idx)
        return total / max(count, 1)

    best_state, best_val, bad = copy.deepcopy(head.state_dict()), math.inf, 0
    warm_kind = "probit" if loss == "probit" else "bt"
    criterion = warm_kind if loss != "sign" else "agreement"
    epoch = 0
    from tqdm.auto import tqdm

    bar = tqdm(
        total=config.max_epochs, desc=f"{loss} head", disable=not config.progress, leave=False
    )
    # Phase 1: likelihood training (the model itself for bt/probit, the warm start for sign).
    for _ in range(config.max_epochs):
        train_loss = run_epoch(warm_kind)
        val = evaluate(warm_kind)
        crit = val if criterion == warm_kind else evaluate("agreement")
        history.add(epoch=epoch, phase=warm_kind, train_loss=train_loss, val=crit)
        epoch += 1
        bar.update(1)
        if crit is None:
            best_state = copy.deepcopy(head.state_dict())
            continue
        if crit < best_val - 1e-6:
            best_val, bad, best_state = crit, 0, copy.deepcopy(head.state_dict())
            history.best_epoch = epoch - 1
        else:
            bad += 1
            if bad >= config.patience:
                break
    bar.close()
    head.load_state_dict(best_state)
    if loss != "sign":
        return history
    # Phase 2: sign loss, lambda annealed over stages, margins on a running-std scale.
    scale = MarginScale()
    with torch.no_grad():
        probe = tr[: min(len(tr), 4096)]
        scale.update(_pair_margins(head, Xa[probe], Xb[probe]))
    lambdas = np.asarray(lambdas if lambdas is not None else losses.lambda_schedule(), dtype=float)
    for stage, lam in enumerate(lambdas):
        last = stage == len(lambdas) - 1
        n_epochs = config.max_epochs if last else stage_epochs
        bad = 0
        for _ in range(n_epochs):
            train_loss = run_epoch("sign", float(lam), scale)
            crit = evaluate("agreement")
            history.add(epoch=epoch, phase="sign", lam=float(lam), train_loss=train_loss, val=crit)
            epoch += 1
            if crit is None:
                best_state = copy.deepcopy(head.state_dict())
                continue
            if crit < best_val - 1e-6:
                best_val, bad, best_state = crit, 0, copy.deepcopy(head.state_dict())
                history.best_epoch = epoch - 1
            elif last:
                bad += 1
                if bad >= config.patience:
                    break
    head.load_state_dict(best_state)
    history.final_scale = scale.value  # type: ignore[attr-defined]
    return history


def train_pointwise(
    head: nn.Module,
    X: np.ndarray,
    labels: np.ndarray,
    weight: np.ndarray | None,
    config: TrainConfig,
    groups: np.ndarray | None = None,
) -> History:
    """Train ``head`` as a binary classifier on single alternatives (CLF reward model).

    ``groups`` (m,) keeps the rows of one comparison on the same side of the validation split.
    """
    gen = seed_everything(config.random_state)
    Xt, L, W = _tensor(X), _tensor(labels), _tensor(weight)
    tr, va = _split_index(len(L), config.validation_fraction, gen, groups)
    opt = torch.optim.Adam(
        head.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    history = History()
    pick = lambda t, idx: None if t is None else t[idx]  # noqa: E731
    best_state, best_val, bad = copy.deepcopy(head.state_dict()), math.inf, 0
    for epoch in range(config.max_epochs):
        head.train()
        order = tr[torch.randperm(len(tr), generator=gen)]
        total = 0.0
        for idx in order.split(config.batch_size):
            opt.zero_grad(set_to_none=True)
            val = losses.clf_loss(head(Xt[idx]), L[idx], pick(W, idx))
            val.backward()
            opt.step()
            total += float(val.detach()) * len(idx)
        if va is None:
            history.add(epoch=epoch, train_loss=total / len(tr), val=None)
            best_state = copy.deepcopy(head.state_dict())
            continue
        head.eval()
        with torch.no_grad():
            logits = torch.cat([head(Xt[c]) for c in va.split(8192)])
            crit = float(losses.clf_loss(logits, L[va], pick(W, va)))
        history.add(epoch=epoch, train_loss=total / len(tr), val=crit)
        if crit < best_val - 1e-6:
            best_val, bad, best_state = crit, 0, copy.deepcopy(head.state_dict())
            history.best_epoch = epoch
        else:
            bad += 1
            if bad >= config.patience:
                break
    head.load_state_dict(best_state)
    return history
