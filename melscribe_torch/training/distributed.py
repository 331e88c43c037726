"""Multi-process (torchrun) plumbing: init from env vars, rank-0 writes, gathers, gradient averaging.

``torchrun --nproc_per_node=N train.py ...`` sets WORLD_SIZE/RANK/LOCAL_RANK; without them
(or WORLD_SIZE=1) every function here is a no-op for a single process. Backend: nccl on
CUDA, gloo on CPU.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist
from torch import nn


def init_distributed(cuda: bool | None = None) -> tuple[int, int, torch.device | None]:
    """Join the process group when launched with WORLD_SIZE>1.

    Args:
        cuda: whether the ranks train on GPUs (nccl, one GPU per rank) or on CPU (gloo);
            None: on GPUs when CUDA is available. CPU ranks on a CUDA machine need False:
            nccl cannot move CPU tensors.

    Returns:
        (rank, world_size, device): device is this rank's GPU under CUDA, else None (the
        caller's default).
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return 0, 1, None
    if cuda is None:
        cuda = torch.cuda.is_available()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    device = None
    if cuda:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    return dist.get_rank(), dist.get_world_size(), device


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def barrier() -> None:
    """Wait for every rank (e.g. until rank 0 has written an artifact)."""
    if is_distributed():
        dist.barrier()


def gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order (a one-item list for a single process)."""
    if not is_distributed():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_parameters(model: nn.Module) -> None:
    """Copy rank 0's weights to every rank, so all start identical."""
    if is_distributed():
        for tensor in model.state_dict().values():
            dist.broadcast(tensor, src=0)


def average_gradients(model: nn.Module) -> None:
    """Average gradients over ranks (after the last accumulation micro-batch, before clipping).

    Done by hand rather than with DistributedDataParallel because each step runs three
    forward passes (requests, positives, negatives) before one backward.
    """
    if not is_distributed():
        return
    world_size = dist.get_world_size()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])  # one collective instead of one per tensor
    dist.all_reduce(flat)
    flat /= world_size
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
