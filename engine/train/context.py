"""What every phase of a run shares: the run context, autocast and the learning-rate schedule.

The bottom of engine/train: it imports nothing else from the package, so the fit loop, the phases
and the checkpoint can all import it.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from engine.data.dataset import Dataset
    from engine.train.config import Preset, TrainConfig
    from engine.train.distributed import Dist


@dataclass
class RunContext:
    dist: Dist  # rank, device, reductions (single process or torchrun DDP)
    preset: Preset  # fitted to the dataset
    run_dir: Path  # checkpoint, metrics.jsonl, latents, evaluation strips
    dataset: Dataset
    train_episodes: list[tuple[np.ndarray, np.ndarray]]  # (frames, keys)
    holdout_episodes: list[tuple[np.ndarray, np.ndarray]]
    out: Path  # the world file the run writes
    progress: bool = True  # progress bars (rank 0 only)
    command: str = ""  # the command line, stored in the world's metadata
    started: float = field(default_factory=time.time)
    tokenizer_psnr: float | None = None  # held-out reconstruction PSNR once the tokenizer is trained
    precision: str = "auto"  # auto (bf16 on CUDA and AMX CPUs), bf16 or fp32
    compile: bool = False  # torch.compile the training forward passes (slow start, faster steps)
    tokenizer_from: Path | None = None  # take the tokenizer of this world file instead of training one
    init_from: Path | None = None  # start the dynamics from this world file's weights (fresh optimizer)
    cpu_seconds: float = 0.0  # process CPU time the dynamics phase used (all runs of it, resumes included)

    def autocast(self):
        return autocast(self.dist.device, self.precision)

    @property
    def cfg(self) -> TrainConfig:
        return self.preset.train

    def log(self, record: dict) -> None:
        if not self.dist.main:
            return
        record = {"time": round(time.time() - self.started, 2), **record}
        with open(self.run_dir / "metrics.jsonl", "a") as fh:
            fh.write(json.dumps(record) + "\n")

    def say(self, text: str) -> None:
        if self.dist.main:
            print(text, flush=True)


def autocast(device: torch.device, precision: str):
    """bf16 autocast on CUDA, and on CPUs with AMX matrix units (measured 2.6x faster than fp32 there);
    fp32 elsewhere (bf16 without AMX is ~3x slower)."""
    from contextlib import nullcontext

    if precision == "fp32":
        return nullcontext()
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    amx = getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()
    if precision == "bf16" or amx:
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return nullcontext()


def lr_at(step: int, progress: float, peak: float, warmup: int) -> float:
    """Linear warm-up over `warmup` steps, then cosine decay to 10% of the peak as progress goes 0 -> 1
    (progress: share of the schedule already used, in steps after warm-up, or of a CPU-time budget)."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, max(0.0, progress))
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))
