"""The process group every fit runs in: a group of one, or the ``torch.distributed`` group.

Solvers sum their objectives and gradients over the local rows and call
:meth:`ProcessGroup.allreduce_sum`; with one process that is the identity, so the single-process
fit *is* the multi-process fit with no-op collectives.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ProcessGroup:
    """``rank`` in ``range(world_size)``; rank 0 is the main process (it saves and reports).

    ``device`` is where this process's tensors and collectives live: ``"cpu"`` (gloo) or
    ``"cuda:k"`` (nccl, one GPU per process).
    """

    rank: int = 0
    world_size: int = 1
    device: str = "cpu"

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def allreduce_sum(self, value):
        """Sum ``value`` (float or numpy array) over the processes; returns the same type."""
        if not self.distributed:
            return value
        import torch
        import torch.distributed as dist

        arr = np.asarray(value, dtype=np.float64)
        t = torch.from_numpy(np.ascontiguousarray(arr).reshape(-1).copy()).to(self.device)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        out = t.cpu().numpy().reshape(arr.shape)
        return float(out) if np.ndim(value) == 0 else out

    def barrier(self) -> None:
        if self.distributed:
            import torch.distributed as dist

            dist.barrier()

    def local_rows(self, start: int, n_rows: int) -> np.ndarray | None:
        """Boolean mask of this process's rows among global rows ``start .. start + n_rows - 1``
        (row ``i`` belongs to rank ``i % world_size``); ``None`` means all rows (one process)."""
        if not self.distributed:
            return None
        return (np.arange(start, start + n_rows) % self.world_size) == self.rank


def current_group() -> ProcessGroup:
    """The group of this process: ``torch.distributed``'s when initialised, else a group of one."""
    try:
        import torch.distributed as dist
    except ImportError:  # pragma: no cover - torch is a dependency
        return ProcessGroup()
    if dist.is_available() and dist.is_initialized():
        device = "cpu"
        if dist.get_backend() == "nccl":
            import torch

            device = f"cuda:{torch.cuda.current_device()}"
        return ProcessGroup(rank=dist.get_rank(), world_size=dist.get_world_size(), device=device)
    return ProcessGroup()
