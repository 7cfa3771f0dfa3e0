"""Fit an estimator on comparisons on one process or several: ``signrm train`` / ``python -m
signrm.train``, the torchrun entry point.

::

    torchrun --standalone --nproc_per_node 2 -m signrm.train \\
        --data prefs.parquet --estimator sign --head mlp --out model/
    signrm train --nproc 2 ...                # the same: re-launches itself under torchrun
    python -m signrm.train ...                # one process, no process group

Each process initialises the process group (gloo on CPU, nccl when GPUs exist), builds the
estimator from the registry's names (:mod:`signrm.registry`), loads the whole data set and calls
``estimator.fit(data)`` — the estimator's own fit, exactly as in memory. The engine does the
sharing: the torch trainer (:mod:`signrm.engine.torch_train`, MLP heads) gives each process its
share of every global batch, and the linear solvers (:mod:`signrm.engine.linear`, L-BFGS) sum the
objective and its gradient over the group. The solver follows the estimator's ``head``, not the
entry point. Rank 0 saves the model (``signrm.load`` reads it; ``metadata_["world_size"]`` records
the number of processes). From your own torchrun script: ``estimator.fit(data)`` on every rank.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = [
    "DESCRIPTION",
    "add_arguments",
    "build_parser",
    "estimator_from_args",
    "fit_distributed",
    "launch",
    "load_data",
    "main",
    "run",
]

DESCRIPTION = (
    "Fit a reward model on comparisons, on one process or on N (torchrun; gloo on CPU, nccl on "
    "GPU). Every process runs the estimator's own fit: MLP heads train by Adam with each process "
    "taking its share of each global batch; linear heads are solved by L-BFGS over all processes' "
    "rows. Rank 0 saves the model."
)
_OLD_NAMES = {"clf": "clf-mlp"}  # earlier name, still accepted
# (flag, type, default, help) of the torch trainer's settings (TrainConfig)
_MLP_OPTIONS = (
    ("--lr", float, 1e-3, "Adam learning rate"),
    ("--batch-size", int, 256, "comparisons per optimiser step over all processes (split evenly)"),
    ("--epochs", int, 50, "maximum epochs per phase"),
    ("--patience", int, 3, "epochs without improvement before stopping"),
    ("--validation-fraction", float, 0.2, "held-out share for early stopping"),
    ("--weight-decay", float, 0.0, "Adam weight decay"),
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``signrm train`` and ``python -m signrm.train``."""
    from signrm.registry import estimator_names

    names = estimator_names(distributed=True)
    p.add_argument(
        "--data",
        required=True,
        help="comparisons: csv/parquet/jsonl file, a directory of Parquet shards, or an npy "
        "directory (xa.npy, xb.npy, y.npy); every process loads all of it",
    )
    p.add_argument("--out", required=True, help="model directory (written by rank 0)")
    p.add_argument(
        "--estimator",
        choices=(*names, *_OLD_NAMES),
        default="sign",
        help="estimator name (signrm.registry; 'clf' = 'clf-mlp')",
    )
    p.add_argument(
        "--head",
        choices=("linear", "mlp"),
        default="mlp",
        help="reward head: linear (L-BFGS) or mlp (Adam); clf-mlp takes mlp only",
    )
    p.add_argument("--hidden", default="1024,512", help="MLP hidden sizes, comma separated")
    for flag, kind, default, text in _MLP_OPTIONS:
        p.add_argument(flag, type=kind, default=default, help=f"MLP heads: {text}")
    p.add_argument("--lambdas", default="1,15", help="sign: lambda start,stop (or a schedule)")
    p.add_argument("--n-stages", type=int, default=5, help="sign: annealing stages")
    p.add_argument(
        "--stage-epochs", type=int, default=2, help="sign, MLP head: epochs per early stage"
    )
    p.add_argument("--seed", type=int, default=0, help="random_state of the estimator")
    p.add_argument(
        "--nproc",
        type=int,
        default=1,
        help="processes: > 1 re-launches this command under torchrun",
    )
    p.add_argument(
        "--backend",
        choices=("auto", "gloo", "nccl"),
        default="auto",
        help="torch.distributed backend (auto: nccl with GPUs, else gloo)",
    )
    p.add_argument("--threads", type=int, default=None, help="torch threads per process")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m signrm.train", description=DESCRIPTION)
    add_arguments(p)
    return p


def estimator_from_args(args: argparse.Namespace):
    """The unfitted estimator the options describe (names and checks from the registry)."""
    from signrm.errors import UserError
    from signrm.registry import estimator_spec, make_estimator

    name = _OLD_NAMES.get(args.estimator, args.estimator)
    spec = estimator_spec(name)
    params = dict(
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
    if spec.heads:
        params["head"] = args.head
    elif args.head != "mlp":
        raise UserError(f"--estimator {name} trains an MLP classifier: use --head mlp")
    if name == "sign":
        lambdas = tuple(float(v) for v in str(args.lambdas).split(",") if v.strip())
        params.update(lambdas=lambdas, n_stages=args.n_stages, stage_epochs=args.stage_epochs)
    return make_estimator(name, **params)


def load_data(path: str | os.PathLike):
    """Comparisons for training, in memory: a csv / parquet / jsonl file
    (:meth:`PreferenceData.read`), or a feature directory (Parquet shards; ``xa.npy`` +
    ``xb.npy`` + ``y.npy``) read whole through :func:`signrm.data.open_source`."""
    from signrm.data import PreferenceData, open_source

    p = Path(path)
    if p.is_dir():
        return open_source(p).to_data()
    return PreferenceData.read(p)


def fit_distributed(estimator, data):
    """``estimator.fit(data)``: kept for torchrun scripts written for earlier versions (the fit
    itself runs on the current process group)."""
    return estimator.fit(data)


def launch(nproc: int, argv: Sequence[str]) -> int:
    """Run ``python -m signrm.train argv`` on ``nproc`` local processes via torchrun.

    Spawns ``python -m torch.distributed.run --standalone --nproc_per_node nproc -m signrm.train
    ...`` and returns its exit code (0 = success).
    """
    if int(nproc) < 1:
        raise ValueError(f"nproc must be >= 1, got {nproc}")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    cmd += [f"--nproc_per_node={int(nproc)}", "-m", "signrm.train", *argv]
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // int(nproc))))
    return subprocess.call(cmd, env=env)


def _as_argv(args: argparse.Namespace) -> list[str]:
    """The command-line options that give ``args`` (without ``--nproc``)."""
    out: list[str] = []
    for action in build_parser()._actions:
        if not action.option_strings or action.dest in ("help", "nproc"):
            continue
        value = getattr(args, action.dest)
        if value == action.default and not action.required:
            continue
        flag = max(action.option_strings, key=len)
        out += [flag] if action.nargs == 0 else [flag, str(value)]
    return out


def _under_torchrun() -> bool:
    return "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ


def _start_process_group(backend: str) -> bool:
    """Initialise ``torch.distributed`` from torchrun's environment; True if started here."""
    import torch
    import torch.distributed as dist

    if not _under_torchrun() or int(os.environ["WORLD_SIZE"]) < 2 or dist.is_initialized():
        return False
    if backend == "auto":
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    dist.init_process_group(backend=backend)
    return True


def run(args: argparse.Namespace) -> int:
    """Fit and save as ``args`` say: re-launch under torchrun for ``--nproc`` > 1, else fit in
    this process (one rank of the group, or the only process)."""
    if args.nproc > 1 and not _under_torchrun():
        return launch(args.nproc, _as_argv(args))
    import torch

    from signrm.engine.group import current_group

    if args.threads:
        torch.set_num_threads(int(args.threads))
    started = _start_process_group(args.backend)
    try:
        group = current_group()
        estimator = estimator_from_args(args)
        estimator.fit(load_data(args.data))
        if group.is_main:
            estimator.save(
                args.out,
                metadata={"trained_with": "signrm train", "world_size": group.world_size},
            )
            print(
                f"saved {type(estimator).__name__}(head={getattr(estimator, 'head', None)!r}) "
                f"fitted on {group.world_size} process(es) -> {args.out}"
            )
        group.barrier()
        return 0
    finally:
        if started:
            import torch.distributed as dist

            dist.destroy_process_group()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m signrm.train`` / ``torchrun ... -m signrm.train``."""
    from signrm.errors import SignrmError

    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except (SignrmError, ValueError, OSError) as exc:
        rank, world = os.environ.get("RANK", "0"), os.environ.get("WORLD_SIZE", "1")
        where = f" (rank {rank} of {world})" if world != "1" else ""
        print(f"error{where}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
