"""torch.distributed set-up for runs launched by torchrun (DDP); nothing here when run as one process."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def setup(device_name: str) -> tuple[int, int, torch.device]:
    """Initialise the process group when torchrun started us: (rank, world size, device)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, torch.device(device_name)
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device_name.startswith("cuda"):
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
        dist.init_process_group("nccl")
    else:
        device = torch.device(device_name)
        dist.init_process_group("gloo")
    return rank, world, device


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def is_main(rank: int) -> bool:
    return rank == 0


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def broadcast_object(obj):
    """Rank 0's ``obj`` on every rank (e.g. a run folder whose name holds a timestamp)."""
    if not (dist.is_available() and dist.is_initialized()):
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def mean_and_any(value: float, flag: bool, device: torch.device) -> tuple[float, bool]:
    """(mean of ``value`` over ranks, whether any rank's ``flag`` is set) in one all_reduce; the
    identity in one process. The training loss of a step is its mean over ranks (each rank's is the mean
    of an equal share of the global batch), and a stop request on any rank stops them all."""
    if not (dist.is_available() and dist.is_initialized()):
        return value, flag
    box = torch.tensor([value, float(flag)], dtype=torch.float64, device=device)
    dist.all_reduce(box)
    return box[0].item() / dist.get_world_size(), bool(box[1].item() > 0)
