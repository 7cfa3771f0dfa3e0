"""Multi-process training of torch reward heads with ``torch.distributed`` (DDP).

Start it with torchrun (gloo on CPU, nccl when GPUs exist)::

    torchrun --standalone --nproc_per_node 2 -m signrm.train \\
        --data prefs.parquet --estimator sign --head mlp --out model/
    python -m signrm.train --nproc 2 ...      # the same: spawns torchrun for you
    python -m signrm.train ...                # one process, no process group

or from Python inside your own torchrun script: ``fit_distributed(estimator, data)``.

How the processes share the work. Every process loads the comparisons and draws the same
validation split from ``random_state``. Each epoch a :class:`~torch.utils.data.DistributedSampler`
(seeded, ``set_epoch``) shuffles the training rows and gives process ``r`` the positions
``r, r + N, ...``; process ``r`` takes ``batch_size / N`` of its rows per step, so the union of the
processes' step-``k`` batches is exactly the ``k``-th global batch of ``batch_size`` rows.
DistributedDataParallel averages the gradients; each process scales its (weighted-mean) loss by
``N * local weight / global weight`` of the step (one all-reduce of two scalars), so the averaged
gradient is the gradient of the global batch's weighted mean — the same update as one process with
the same ``batch_size``. The sign loss's running margin scale uses the global batch's margin
standard deviation, and early stopping uses the held-out loss all-reduced over the processes, so
every process takes the same decisions. Result: N processes follow the single-process trajectory
up to floating-point summation order. The losses are those of :mod:`signrm.losses` and the heads
those of :mod:`signrm.heads`; rank 0 saves the model with ``estimator.save`` (load it with
``signrm.load``).
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import subprocess
import sys
from collections.abc import Sequence

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from signrm import losses
from signrm.estimators._torch_train import History, TrainConfig, _split_index

__all__ = ["fit_distributed", "launch", "main", "build_parser"]

_ESTIMATORS = ("bt", "thurstone", "sign", "clf")


# --------------------------------------------------------------------------- process group
class _Ctx:
    """Rank, world size, device, and scalar all-reduce (no-ops without a process group)."""

    def __init__(self, device: torch.device | None = None) -> None:
        self.on = dist.is_available() and dist.is_initialized()
        self.world = dist.get_world_size() if self.on else 1
        self.rank = dist.get_rank() if self.on else 0
        if device is None:
            device = torch.device("cpu")
            if self.on and dist.get_backend() == "nccl":
                device = torch.device("cuda", torch.cuda.current_device())
        self.device = device

    def sum(self, values: Sequence[float]) -> list[float]:
        t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=self.device)
        if self.on:
            dist.all_reduce(t)
        return t.tolist()

    def common_seed(self, random_state) -> int:
        """``random_state`` as an int, or one drawn on rank 0 and broadcast (None)."""
        if random_state is not None:
            return int(random_state) % (2**31)
        t = torch.tensor(
            [int(np.random.SeedSequence().generate_state(1)[0]) % (2**31)], device=self.device
        )
        if self.on:
            dist.broadcast(t, 0)
        return int(t.item())


def _sampler(n: int, ctx: _Ctx, seed: int):
    from torch.utils.data import DistributedSampler

    return DistributedSampler(
        range(n), num_replicas=ctx.world, rank=ctx.rank, shuffle=True, seed=seed, drop_last=False
    )


def _local_batch(batch_size: int, ctx: _Ctx) -> int:
    if batch_size % ctx.world:
        raise ValueError(
            f"batch_size {batch_size} is not a multiple of the number of processes {ctx.world}: "
            "the global batch is split evenly over the processes"
        )
    return batch_size // ctx.world


def _wrap(head: nn.Module, ctx: _Ctx) -> nn.Module:
    if not ctx.on:
        return head
    from torch.nn.parallel import DistributedDataParallel as DDP

    ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return DDP(head, device_ids=ids)


class _GlobalScale:
    """EMA of the global batch's margin std (as ``_torch_train.MarginScale``, over processes)."""

    def __init__(self, momentum: float = 0.05) -> None:
        self.momentum = momentum
        self.value: float | None = None

    def update_from(self, n: float, s1: float, s2: float) -> float:
        sd = math.sqrt(max(s2 - s1 * s1 / n, 0.0) / (n - 1)) if n > 1 else 1.0
        if not math.isfinite(sd) or sd <= 0:
            sd = self.value or 1.0
        self.value = (
            sd if self.value is None else (1 - self.momentum) * self.value + self.momentum * sd
        )
        return self.value


class _EarlyStop:
    def __init__(self, head: nn.Module, patience: int) -> None:
        self.head, self.patience = head, patience
        self.best_state = copy.deepcopy(head.state_dict())
        self.best_val, self.bad = math.inf, 0

    def update(self, crit, history: History, epoch: int, count_bad: bool = True) -> bool:
        """Record the epoch's criterion; True when training should stop."""
        if crit is None:
            self.best_state = copy.deepcopy(self.head.state_dict())
            return False
        if crit < self.best_val - 1e-6:
            self.best_val, self.bad = crit, 0
            self.best_state = copy.deepcopy(self.head.state_dict())
            history.best_epoch = epoch
        elif count_bad:
            self.bad += 1
            return self.bad >= self.patience
        return False

    def restore(self) -> None:
        self.head.load_state_dict(self.best_state)


# --------------------------------------------------------------------------- training loops
def train_pairwise_ddp(
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
    ctx: _Ctx | None = None,
) -> History:
    """DDP version of ``_torch_train.train_pairwise`` (same phases, losses and criteria).

    ``xa``, ``xb``: (n, d) features; ``y``: (n,) labels; ``weight``, ``margin_offset``: (n,) or
    None. Every process passes the full arrays; the sampler shards the rows.
    """
    ctx = ctx or _Ctx()
    dev = ctx.device
    seed = ctx.common_seed(config.random_state)
    gen = torch.Generator()
    gen.manual_seed(seed)
    torch.manual_seed(seed)

    def t(a):
        if a is None:
            return None
        return torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float32).to(dev)

    Xa, Xb, Y, W, OFF = t(xa), t(xb), t(y), t(weight), t(margin_offset)
    n = len(Y)
    tr, va = _split_index(n, config.validation_fraction, gen)
    tr, va = tr.to(dev), None if va is None else va.to(dev)
    head.to(dev)
    model = _wrap(head, ctx)
    opt = torch.optim.Adam(
        head.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    sampler = _sampler(len(tr), ctx, seed)
    local_bs = _local_batch(config.batch_size, ctx)
    pick = lambda a, idx: None if a is None else a[idx]  # noqa: E731
    history = History()

    def step(idx, kind, lam=None, scale=None):
        k = len(idx)
        r = model(torch.cat([Xa[idx], Xb[idx]]))
        m = r[:k] - r[k:]
        w = pick(W, idx)
        wloc = float(w.sum()) if w is not None else float(k)
        md = m.detach().double()
        wg, ng, s1, s2 = ctx.sum([wloc, k, md.sum(), (md * md).sum()])
        if kind == "bt":
            val = losses.bt_loss(m, Y[idx], w, pick(OFF, idx))
        elif kind == "probit":
            val = losses.probit_loss(m, Y[idx], w, pick(OFF, idx))
        else:
            val = losses.sign_loss(m, Y[idx], lam, w, scale=scale.update_from(ng, s1, s2))
        scaled = val * (ctx.world * wloc / wg)
        if center_coef > 0:
            pen = losses.centering_penalty(r[:k], r[k:], center_coef)
            scaled = scaled + pen * (ctx.world * k / ng)
            val = val + pen
        return scaled, val

    @torch.no_grad()
    def evaluate(kind):
        if va is None:
            return None
        head.eval()
        mine = va[ctx.rank :: ctx.world]
        num = den = 0.0
        for c in mine.split(8192):
            m = head(Xa[c]) - head(Xb[c])
            w = pick(W, c)
            wsum = float(w.sum()) if w is not None else float(len(c))
            if kind == "agreement":
                v = -float(losses.zero_one_agreement(m, Y[c], w))
            elif kind == "probit":
                v = float(losses.probit_loss(m, Y[c], w, pick(OFF, c)))
            else:
                v = float(losses.bt_loss(m, Y[c], w, pick(OFF, c)))
            num += v * wsum
            den += wsum
        head.train()
        num, den = ctx.sum([num, den])
        return num / den if den > 0 else None

    epoch_counter = [0]

    def run_epoch(kind, lam=None, scale=None):
        head.train()
        sampler.set_epoch(epoch_counter[0])
        order = tr[torch.as_tensor(list(iter(sampler)), dtype=torch.long, device=dev)]
        total = count = 0.0
        for idx in order.split(local_bs):
            opt.zero_grad(set_to_none=True)
            scaled, val = step(idx, kind, lam, scale)
            scaled.backward()
            opt.step()
            total += float(val.detach()) * len(idx)
            count += len(idx)
        total, count = ctx.sum([total, count])
        return total / max(count, 1.0)

    from tqdm.auto import tqdm

    stop = _EarlyStop(head, config.patience)
    warm = "probit" if loss == "probit" else "bt"
    criterion = warm if loss != "sign" else "agreement"
    bar = tqdm(
        total=config.max_epochs,
        desc=f"{loss} head x{ctx.world}",
        disable=not (config.progress and ctx.rank == 0),
        leave=False,
    )
    for _ in range(config.max_epochs):
        train_loss = run_epoch(warm)
        crit = evaluate(warm) if criterion == warm else evaluate("agreement")
        history.add(epoch=epoch_counter[0], phase=warm, train_loss=train_loss, val=crit)
        epoch_counter[0] += 1
        bar.update(1)
        if stop.update(crit, history, epoch_counter[0] - 1):
            break
    bar.close()
    stop.restore()
    if loss != "sign":
        return history
    scale = _GlobalScale()
    with torch.no_grad():
        probe = tr[: min(len(tr), 4096)]
        m0 = (head(Xa[probe]) - head(Xb[probe])).double()
        scale.update_from(len(probe), float(m0.sum()), float((m0 * m0).sum()))
    lambdas = np.asarray(lambdas if lambdas is not None else losses.lambda_schedule(), dtype=float)
    for stage, lam in enumerate(lambdas):
        last = stage == len(lambdas) - 1
        stop.bad = 0
        for _ in range(config.max_epochs if last else stage_epochs):
            train_loss = run_epoch("sign", float(lam), scale)
            crit = evaluate("agreement")
            history.add(
                epoch=epoch_counter[0],
                phase="sign",
                lam=float(lam),
                train_loss=train_loss,
                val=crit,
            )
            epoch_counter[0] += 1
            if stop.update(crit, history, epoch_counter[0] - 1, count_bad=last):
                break
    stop.restore()
    history.final_scale = scale.value  # type: ignore[attr-defined]
    return history


def train_pointwise_ddp(
    head: nn.Module,
    X: np.ndarray,
    labels: np.ndarray,
    weight: np.ndarray | None,
    config: TrainConfig,
    groups: np.ndarray | None = None,
    ctx: _Ctx | None = None,
) -> History:
    """DDP version of ``_torch_train.train_pointwise`` (CLF loss on single alternatives)."""
    ctx = ctx or _Ctx()
    dev = ctx.device
    seed = ctx.common_seed(config.random_state)
    gen = torch.Generator()
    gen.manual_seed(seed)
    torch.manual_seed(seed)
    Xt = torch.as_tensor(np.ascontiguousarray(X), dtype=torch.float32).to(dev)
    L = torch.as_tensor(labels, dtype=torch.float32).to(dev)
    W = None if weight is None else torch.as_tensor(weight, dtype=torch.float32).to(dev)
    tr, va = _split_index(len(L), config.validation_fraction, gen, groups)
    tr, va = tr.to(dev), None if va is None else va.to(dev)
    head.to(dev)
    model = _wrap(head, ctx)
    opt = torch.optim.Adam(
        head.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    sampler = _sampler(len(tr), ctx, seed)
    local_bs = _local_batch(config.batch_size, ctx)
    history = History()
    stop = _EarlyStop(head, config.patience)
    for epoch in range(config.max_epochs):
        head.train()
        sampler.set_epoch(epoch)
        order = tr[torch.as_tensor(list(iter(sampler)), dtype=torch.long, device=dev)]
        total = count = 0.0
        for idx in order.split(local_bs):
            opt.zero_grad(set_to_none=True)
            w = None if W is None else W[idx]
            wloc = float(w.sum()) if w is not None else float(len(idx))
            (wg,) = ctx.sum([wloc])
            val = losses.clf_loss(model(Xt[idx]), L[idx], w)
            (val * (ctx.world * wloc / wg)).backward()
            opt.step()
            total += float(val.detach()) * len(idx)
            count += len(idx)
        total, count = ctx.sum([total, count])
        crit = None
        if va is not None:
            head.eval()
            num = den = 0.0
            with torch.no_grad():
                for c in va[ctx.rank :: ctx.world].split(8192):
                    w = None if W is None else W[c]
                    wsum = float(w.sum()) if w is not None else float(len(c))
                    num += float(losses.clf_loss(head(Xt[c]), L[c], w)) * wsum
                    den += wsum
            num, den = ctx.sum([num, den])
            crit = num / den
        history.add(epoch=epoch, train_loss=total / max(count, 1.0), val=crit)
        if stop.update(crit, history, epoch):
            break
    stop.restore()
    return history


# --------------------------------------------------------------------------- estimators
def fit_distributed(estimator, data, ctx: _Ctx | None = None):
    """Fit a torch-head estimator (BradleyTerry, SignEstimator, ClassificationRM with the MLP
    backend; linear or MLP heads) on all processes of the current process group.

    Call it on every rank with the same ``data`` (a :class:`signrm.PreferenceData`); without a
    process group it trains in this process. The estimator ends fitted on every rank, with the
    same attributes as its own ``fit`` on torch heads, plus ``history_`` and ``world_size_``.
    """
    from signrm.estimators.bradley_terry import BradleyTerry
    from signrm.estimators.classification import ClassificationRM, pointwise_examples
    from signrm.estimators.sign import SignEstimator, _fit_temperature

    ctx = ctx or _Ctx()
    data = estimator._check_data(data)
    data.require_alternatives(f"{type(estimator).__name__} trained by signrm.train")
    config = estimator._train_config()
    d = data.n_features
    head = estimator._new_head(d)
    if isinstance(estimator, ClassificationRM):
        if estimator.backend != "mlp":
            raise ValueError("distributed training of ClassificationRM needs backend='mlp'")
        X, labels, weights, pair = pointwise_examples(data)
        history = train_pointwise_ddp(head, X, labels, weights, config, groups=pair, ctx=ctx)
        estimator.n_train_examples_ = int(len(labels))
        estimator.best_iteration_ = None
        estimator.booster_ = estimator.classifier_ = None
    elif isinstance(estimator, BradleyTerry):
        estimator._validate_params()
        history = train_pairwise_ddp(
            head,
            data.xa,
            data.xb,
            data.y,
            data.weight,
            config,
            loss="bt" if estimator.link == "logit" else "probit",
            margin_offset=data.margin if estimator.use_margin else None,
            center_coef=estimator.center_rewards_coef,
            ctx=ctx,
        )
        estimator.n_iter_ = len(history.epochs)
        estimator.objective_ = None
    elif isinstance(estimator, SignEstimator):
        lambdas = estimator._schedule()
        history = train_pairwise_ddp(
            head,
            data.xa,
            data.xb,
            data.y,
            data.weight,
            config,
            loss="sign",
            lambdas=lambdas,
            stage_epochs=int(estimator.stage_epochs),
            ctx=ctx,
        )
    else:
        raise ValueError(
            f"signrm.train trains BradleyTerry, SignEstimator and ClassificationRM(backend='mlp'), "
            f"not {type(estimator).__name__}"
        )
    head = head.cpu().eval()
    estimator.n_features_in_ = d
    estimator.history_ = history
    estimator.world_size_ = ctx.world
    linear = getattr(estimator, "head", "mlp") == "linear"
    if linear:
        coef = head.weight.detach().double().numpy().copy()
        estimator.head_module_ = None
        estimator.coef_ = coef
    else:
        estimator.head_module_ = head
        if not isinstance(estimator, ClassificationRM):
            estimator.coef_ = None
    if isinstance(estimator, SignEstimator):
        if linear:
            norm = np.linalg.norm(estimator.coef_)
            estimator.coef_ = estimator.coef_ / norm if norm > 0 else estimator.coef_
        estimator.bt_coef_ = None
        estimator.stages_ = None
        estimator.selected_lambda_ = float(estimator._schedule()[-1])
        estimator.validation_agreement_ = None
        wn = np.full(data.n_samples, 1.0 / data.n_samples)
        if data.weight is not None:
            wn = data.weight / data.weight.sum()
        s = data.signs
        margins = estimator.decision_function(data)
        estimator.margin_scale_ = float(np.std(margins)) or 1.0
        lam = float(estimator._schedule()[-1])
        estimator.objective_ = float(
            wn @ (s * np.tanh(0.5 * lam * margins / estimator.margin_scale_))
        )
        agree = float(wn @ (s * np.sign(margins)))
        estimator.agreement_ = agree
        nontie = float(wn[s != 0].sum())
        estimator.zero_one_loss_ = float((nontie - agree) / (2 * nontie))
        estimator.calibration_scale_ = (
            _fit_temperature(margins, data.y, wn)
            if estimator.calibrate
            else 1.0 / estimator.margin_scale_
        )
    estimator.metadata_ = {
        **(getattr(estimator, "metadata_", None) or {}),
        "trained_with": "signrm.train",
        "world_size": ctx.world,
        "epochs": len(history.epochs),
        "best_epoch": history.best_epoch,
    }
    return estimator


# --------------------------------------------------------------------------- command line
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m signrm.train",
        description="Train a torch reward head on comparisons, on one or several processes "
        "(torchrun / DistributedDataParallel; gloo on CPU, nccl on GPU).",
    )
    p.add_argument(
        "--data",
        required=True,
        help="comparisons: csv/parquet/jsonl file, "
        "a directory of Parquet shards, or an npy directory (xa.npy, xb.npy, y.npy)",
    )
    p.add_argument("--out", required=True, help="model directory (written by rank 0)")
    p.add_argument("--estimator", choices=_ESTIMATORS, default="sign")
    p.add_argument("--head", choices=("linear", "mlp"), default="mlp")
    p.add_argument("--hidden", default="1024,512", help="MLP hidden sizes, comma separated")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    p.add_argument("--batch-size", type=int, default=256, help="global batch (all processes)")
    p.add_argument("--epochs", type=int, default=50, help="maximum epochs per phase")
    p.add_argument("--patience", type=int, default=3)
    p.add_argument("--validation-fraction", type=float, default=0.2)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--lambdas", default="1,15", help="sign: lambda start,stop (or a schedule)")
    p.add_argument("--n-stages", type=int, default=5, help="sign: annealing stages")
    p.add_argument("--stage-epochs", type=int, default=2, help="sign: epochs per early stage")
    p.add_argument("--seed", type=int, default=0, help="random_state")
    p.add_argument(
        "--nproc",
        type=int,
        default=1,
        help="processes: > 1 re-launches this command under torchrun",
    )
    p.add_argument("--backend", choices=("auto", "gloo", "nccl"), default="auto")
    p.add_argument("--threads", type=int, default=None, help="torch threads per process")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _estimator_from_args(args):
    from signrm.estimators.bradley_terry import BradleyTerry
    from signrm.estimators.classification import ClassificationRM
    from signrm.estimators.sign import SignEstimator

    common = dict(
        hidden_sizes=tuple(int(h) for h in str(args.hidden).split(",") if h.strip()),
        learning_rate=args.lr,
        batch_size=args.batch_size,
        max_epochs=args.epochs,
        patience=args.patience,
        validation_fraction=args.validation_fraction,
        weight_decay=args.weight_decay,
        random_state=args.seed,
        verbose=not args.quiet,
    )
    if args.estimator == "clf":
        if args.head != "mlp":
            raise ValueError("--estimator clf trains an MLP classifier: use --head mlp")
        return ClassificationRM(backend="mlp", **common)
    if args.estimator in ("bt", "thurstone"):
        link = "logit" if args.estimator == "bt" else "probit"
        return BradleyTerry(head=args.head, link=link, **common)
    lambdas = tuple(float(v) for v in str(args.lambdas).split(",") if v.strip())
    return SignEstimator(
        head=args.head,
        lambdas=lambdas,
        n_stages=args.n_stages,
        stage_epochs=args.stage_epochs,
        **common,
    )


def _load_data(path: str):
    from pathlib import Path

    from signrm.data import PreferenceData

    p = Path(path)
    if p.is_dir():
        from signrm.streaming import open_source

        return open_source(p).to_data()
    return PreferenceData.read(p)


def launch(nproc: int, argv: Sequence[str]) -> int:
    """Run ``python -m signrm.train argv`` on ``nproc`` local processes via torchrun.

    Spawns ``python -m torch.distributed.run --standalone --nproc_per_node nproc -m signrm.train
    ...`` and returns its exit code (0 = success). For use by ``signrm fit --nproc``.
    """
    if int(nproc) < 1:
        raise ValueError(f"nproc must be >= 1, got {nproc}")
    argv = list(argv)
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={int(nproc)}",
        "-m",
        "signrm.train",
        *argv,
    ]
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // int(nproc))))
    return subprocess.call(cmd, env=env)


def _strip_nproc(argv: Sequence[str]) -> list[str]:
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a == "--nproc":
            skip = True
            continue
        if a.startswith("--nproc="):
            continue
        out.append(a)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m signrm.train`` / ``torchrun ... -m signrm.train``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    under_torchrun = "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ
    if args.nproc > 1 and not under_torchrun:
        return launch(args.nproc, _strip_nproc(argv))
    if args.threads:
        torch.set_num_threads(int(args.threads))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    started = False
    device = None
    if under_torchrun and world > 1 and not dist.is_initialized():
        backend = args.backend
        if backend == "auto":
            backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            local = int(os.environ["LOCAL_RANK"])
            torch.cuda.set_device(local)
            device = torch.device("cuda", local)
        dist.init_process_group(backend=backend)
        started = True
    try:
        ctx = _Ctx(device)
        try:
            estimator = _estimator_from_args(args)
            data = _load_data(args.data)
            fit_distributed(estimator, data, ctx)
        except (ValueError, FileNotFoundError) as exc:
            print(f"error (rank {ctx.rank}): {exc}", file=sys.stderr)
            return 2
        if ctx.rank == 0:
            estimator.save(args.out)
            print(
                f"saved {type(estimator).__name__}(head={args.head!r}) trained on "
                f"{ctx.world} process(es), {len(estimator.history_.epochs)} epochs -> {args.out}"
            )
        if ctx.on:
            dist.barrier()
        return 0
    finally:
        if started:
            dist.destroy_process_group()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
