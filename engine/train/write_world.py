"""The world file a run writes at its end: both models, the configs, the data it came from and the training record."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from engine.dynamics.model import Dynamics
from engine.tokenizer.model import Tokenizer
from engine.train.context import RunContext


def write_bundle(ctx: RunContext, tokenizer: Tokenizer, dynamics: Dynamics, steps: int, metrics: dict) -> Path:
    from engine.world.bundle import WorldSpec, save_bundle

    manifest = ctx.dataset.manifest
    seconds = round(time.time() - ctx.started)
    starts = np.stack([f[0] for f, _ in (ctx.holdout_episodes + ctx.train_episodes)[:8]])
    spec = WorldSpec(
        tokenizer=ctx.preset.tokenizer,
        dynamics=ctx.preset.dynamics,
        sampler=ctx.preset.sampler,
        keyset=manifest.keyset,
        scene=manifest.scene,
        scene_options=manifest.scene_options,
        dataset={
            "content_hash": manifest.content_hash(),
            "path": str(ctx.dataset.root),
            "episodes": len(manifest.episodes),
            "frames": sum(e.frames for e in manifest.episodes),
            "collection": manifest.collection,
        },
        training={
            "preset": ctx.preset.name,
            "tokenizer_steps": None if ctx.tokenizer_from else ctx.cfg.tokenizer_steps,
            "tokenizer_from": str(ctx.tokenizer_from) if ctx.tokenizer_from else None,
            "dynamics_steps": steps,
            "train": ctx.cfg.to_json(),
            "command": ctx.command,
            "seconds": seconds,
            "dynamics_cpu_seconds": round(ctx.cpu_seconds, 1),
            "init_from": str(ctx.init_from) if ctx.init_from else None,
            "device": str(ctx.dist.device),
            "gpu_name": torch.cuda.get_device_name(ctx.dist.device) if ctx.dist.device.type == "cuda" else None,
            "ranks": ctx.dist.world,
            "tokenizer_psnr": ctx.tokenizer_psnr,
            "eval": metrics,
            "cumulative": cumulative_training(ctx, steps, seconds),
        },
    )
    sha = save_bundle(ctx.out, spec, tokenizer, dynamics.float(), extra={"start_frames": torch.from_numpy(starts)}, weights=ctx.cfg.weights)
    size = ctx.out.stat().st_size / 2**20
    ctx.say(f"world written to {ctx.out} ({size:.1f} MiB, sha256 {sha[:12]}); run folder {ctx.run_dir}")
    return ctx.out


def cumulative_training(ctx: RunContext, steps: int, seconds: float) -> dict:
    """Compute that went into this world so far, across sessions: this run plus, with --init-from, the world it continued
    (its own cumulative record, or its single-run record for worlds written before this field existed).
    Hours are wall-clock hours of the machine the run had (`device`), split by CPU and GPU."""
    gpu = ctx.dist.device.type == "cuda"
    total = {
        "runs": 1,
        "tokenizer_steps": 0 if ctx.tokenizer_from else ctx.cfg.tokenizer_steps,
        "dynamics_steps": steps,
        "cpu_hours": 0.0 if gpu else seconds / 3600,
        "gpu_hours": seconds / 3600 if gpu else 0.0,
    }
    if ctx.init_from is not None:
        from engine.world.bundle import read_spec

        before = read_spec(ctx.init_from).training
        prior = before.get("cumulative") or {
            "runs": 1,
            "tokenizer_steps": before.get("tokenizer_steps") or before.get("train", {}).get("tokenizer_steps", 0),
            "dynamics_steps": before.get("dynamics_steps", 0),
            "cpu_hours": 0.0 if str(before.get("device", "cpu")).startswith("cuda") else before.get("seconds", 0) / 3600,
            "gpu_hours": before.get("seconds", 0) / 3600 if str(before.get("device", "cpu")).startswith("cuda") else 0.0,
        }
        total = {k: total[k] + prior.get(k, 0) for k in total}
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in total.items()}
