"""DistributedDataParallel plumbing: one entry point for 1 process and for ``torchrun``.

Under ``torchrun`` (``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` set) the process group is started with
NCCL on CUDA and gloo on CPU. The global batch of the recipe is preserved: each rank trains on
``batch / world_size`` patches, a disjoint slice of the same global batch every rank draws (see
``srbench.training.data.PatchSampler``), and DDP averages the gradients, so a run on N processes
follows the 1-process run up to floating-point summation order. Only rank 0 writes files.

:func:`spawn_local` runs a function on N local gloo processes (CPU tests, quick checks).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    initialized_here: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def env_world() -> tuple[int, int, int]:
    """(rank, world_size, local_rank) from the torchrun environment (0, 1, 0 without it)."""
    return (
        int(os.environ.get("RANK", "0")),
        int(os.environ.get("WORLD_SIZE", "1")),
        int(os.environ.get("LOCAL_RANK", "0")),
    )


def is_main_process() -> bool:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return env_world()[0] == 0


def setup(device: str) -> DistContext:
    """Start the process group if the environment asks for more than one process."""
    rank, world, local = env_world()
    if world <= 1:
        return DistContext()
    if dist.is_initialized():
        return DistContext(dist.get_rank(), dist.get_world_size(), local, False)
    backend = "nccl" if torch.device(device).type == "cuda" else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(local)
    dist.init_process_group(backend=backend, rank=rank, world_size=world)
    return DistContext(rank, world, local, True)


def teardown(ctx: DistContext) -> None:
    if ctx.initialized_here and dist.is_initialized():
        dist.destroy_process_group()


def rank_device(device: str, ctx: DistContext) -> torch.device:
    """``cuda`` -> ``cuda:LOCAL_RANK`` under DDP; anything else as given."""
    dev = torch.device(device)
    if dev.type == "cuda" and ctx.enabled and dev.index is None:
        return torch.device("cuda", ctx.local_rank)
    return dev


def barrier(ctx: DistContext) -> None:
    if ctx.enabled:
        dist.barrier()


def mean_across(ctx: DistContext, values: torch.Tensor) -> torch.Tensor:
    """Mean of a tensor over the ranks (identity for 1 process)."""
    if not ctx.enabled:
        return values
    values = values.clone()
    dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values / ctx.world_size


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _worker(
    local_rank: int, world_size: int, port: int, threads: int, fn: Callable, kwargs: dict
) -> None:
    os.environ.update(
        {
            "RANK": str(local_rank),
            "LOCAL_RANK": str(local_rank),
            "WORLD_SIZE": str(world_size),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
        }
    )
    torch.set_num_threads(threads)
    fn(**kwargs)


def spawn_local(
    fn: Callable[..., Any], world_size: int, threads_per_process: int = 1, **kwargs: Any
) -> None:
    """Run ``fn(**kwargs)`` on ``world_size`` fresh local processes set up like ``torchrun``.

    ``fn`` must be importable (a module-level function); results travel through files.
    """
    import torch.multiprocessing as mp

    port = free_port()
    mp.spawn(
        _worker,
        args=(world_size, port, threads_per_process, fn, kwargs),
        nprocs=world_size,
        join=True,
    )
