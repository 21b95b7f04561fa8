"""Process groups for ``torchrun``: rank, world size and device from its environment variables."""

from __future__ import annotations

import datetime
import logging
import os
from dataclasses import dataclass
from typing import Any

from pipeline.score.model import resolve_device

log = logging.getLogger(__name__)

# Rank 0 evaluates while the others wait in a barrier: allow long evaluations (PyTorch's default
# is 10 minutes for NCCL, 30 for gloo).
COLLECTIVE_TIMEOUT = datetime.timedelta(hours=2)


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: str = "cpu"

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str = "auto") -> DistInfo:
    """Join the process group when started by ``torchrun`` (WORLD_SIZE > 1); else a single process.

    The backend is NCCL on GPUs, gloo on CPUs; each rank uses the GPU of its LOCAL_RANK.
    """
    import torch
    import torch.distributed as dist

    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    device = resolve_device(device)
    if world_size == 1:
        return DistInfo(device=device)
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.startswith("cuda"):
        device = f"cuda:{local_rank}"
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        dist.init_process_group(backend=backend, timeout=COLLECTIVE_TIMEOUT)
    log.info("rank %d of %d on %s", rank, world_size, device)
    return DistInfo(rank, world_size, local_rank, device)


def all_gather_objects(info: DistInfo, obj: Any) -> list[Any]:
    """``obj`` of every rank, in rank order (picklable objects; small ones only)."""
    if info.world_size == 1:
        return [obj]
    import torch.distributed as dist

    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def barrier(info: DistInfo) -> None:
    """Wait for every rank."""
    if info.world_size > 1:
        import torch.distributed as dist

        dist.barrier()


def shutdown(info: DistInfo) -> None:
    """Leave the process group."""
    if info.world_size > 1:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
