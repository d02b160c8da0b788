"""Single process or torchrun DDP, with the same code: rank, device, barriers, reductions."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


class Dist:
    def __init__(self, device: str | None = None, threads: int | None = None):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        want_cuda = device.startswith("cuda") if device else torch.cuda.is_available()
        if want_cuda and not torch.cuda.is_available():
            from engine.errors import SkyloopError

            raise SkyloopError("--device cuda was asked for, but torch sees no CUDA GPU here; use --device cpu")
        if want_cuda:
            self.device = torch.device("cuda", self.local_rank if self.world > 1 else torch.device(device or "cuda").index or 0)
            torch.cuda.set_device(self.device)
        else:
            self.device = torch.device("cpu")
            # Share the cores between ranks; OpenMP threads that outnumber cores spin and crawl.
            torch.set_num_threads(threads or max(1, (os.cpu_count() or 1) // self.world))
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group(backend="nccl" if want_cuda else "gloo")

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def mean(self, value: float) -> float:
        """Average of a number over ranks (for logging)."""
        if self.world == 1:
            return float(value)
        t = torch.tensor([float(value)], device=self.device)
        dist.all_reduce(t)
        return float(t.item()) / self.world

    def wrap(self, module: torch.nn.Module) -> torch.nn.Module:
        if self.world == 1:
            return module
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(module, device_ids=[self.device.index] if self.cuda else None)

    def local_batch(self, global_batch: int) -> int:
        return max(1, global_batch // self.world)

    def close(self) -> None:
        if self.world > 1 and dist.is_initialized():
            dist.destroy_process_group()
