"""`skyloop bench train`: training throughput of a preset, phase by phase, through the code training runs.

Each phase is the very object `skyloop train` fits (TokenizerPhase, DynamicsPhase), built on random
frames and keys of the preset's shapes (throughput does not depend on content), and each timed step
is fit.py's `train_step`: the phase's loss (tokenizer: MSE + L1 through the noisy latent; dynamics:
window sampling, self forcing when the recipe has it, two-stream noising and short-context masks,
x0 MSE), backward, gradient clipping, the optimizer step and the EMA when the recipe has one.
Warm-up steps first (and the compile, with --compile), then timed steps; medians.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from engine.bench.machine import machine, machine_line, write_report

TIMES = (
    "phase loss (fit.py train_step: loss, backward, clip, optimizer step, EMA); tokenizer: MSE + L1 through the noisy latent; "
    "dynamics: window sampling, self forcing if set, two-stream noising, short-context masks, x0 MSE"
)


def _time(step, steps: int, warmup: int, sync) -> np.ndarray:
    for i in range(warmup):
        step(i)
    sync()
    out = np.empty(steps)
    for i in range(steps):
        start = time.perf_counter()
        step(warmup + i)
        sync()  # CUDA work is asynchronous: wait for it before reading the clock
        out[i] = time.perf_counter() - start
    return out


def _random_episodes(preset, keys: int, count: int, length: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    h, w = preset.tokenizer.frame_size
    return [(rng.integers(0, 256, (length, h, w, 3), dtype=np.uint8), (rng.random((length, keys)) < 0.3).astype(np.uint8)) for _ in range(count)]


def bench_train(
    preset_name: str = "small",
    size=(64, 64),
    keys: int = 6,
    steps: int = 10,
    warmup: int = 3,
    batch: int | None = None,
    device: str | None = None,
    threads: int | None = None,
    precision: str = "auto",
    compile: bool = False,
    settings: list[str] | None = None,
    out="runs/bench-train",
) -> dict:
    from engine.train.config import resolve_preset
    from engine.train.context import RunContext
    from engine.train.distributed import Dist
    from engine.train.dynamics_phase import DynamicsPhase
    from engine.train.fit import train_step
    from engine.train.tokenizer_phase import TokenizerPhase

    preset = resolve_preset(preset_name, settings or [], batch=batch).for_data(tuple(size), keys)
    dist = Dist(device=device, threads=threads)
    dev = dist.device
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    length = max(32, 2 * (preset.dynamics.context + 1))
    results = {}
    with tempfile.TemporaryDirectory(prefix="skyloop-bench-train-") as tmp:
        ctx = RunContext(
            dist,
            preset,
            Path(tmp),
            None,
            _random_episodes(preset, keys, 3, length),
            _random_episodes(preset, keys, 1, length, 1),
            out=Path(tmp) / "unused.safetensors",
            progress=False,
            precision=precision,
            compile=compile,
        )
        with ctx.autocast():
            mode = "bf16 autocast" if torch.is_autocast_enabled(dev.type) else "fp32"
        cfg = preset.train
        tokenizer_phase = TokenizerPhase(ctx)
        tokenizer_phase.build(None)
        t = _time(lambda i: train_step(tokenizer_phase, i, cfg.tokenizer_lr, cfg.grad_clip), steps, warmup, sync)
        results["tokenizer"] = {
            "batch": tokenizer_phase.local,
            "s_per_step": float(np.median(t)),
            "frames_per_s": float(tokenizer_phase.frames_per_step / np.median(t)),
        }
        tokenizer = tokenizer_phase.tokenizer.eval()
        dynamics_phase = DynamicsPhase(ctx, tokenizer)
        dynamics_phase.build(None)
        w = preset.dynamics.context
        t = _time(lambda i: train_step(dynamics_phase, i, cfg.dynamics_lr, cfg.grad_clip), steps, warmup + (2 if compile else 0), sync)
        results["dynamics"] = {
            "batch": dynamics_phase.local,
            "window": w + 1,
            "s_per_step": float(np.median(t)),
            "frames_per_s": float(dynamics_phase.frames_per_step / np.median(t)),
            "target_frames_per_s": float(dynamics_phase.local * w / np.median(t)),
            "self_forcing": preset.dynamics.rollout_p,
            "ema": cfg.ema,
        }
    info = machine()
    device_name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    report = {
        "benchmark": "train",
        "preset": preset_name,
        "settings": list(settings or []),
        "frame_size": list(size),
        "device": device_name,
        "precision": mode,
        "compile": compile,
        "times": TIMES,
        "machine": info,
        "results": results,
    }
    recipe = f" with {' '.join(settings)}" if settings else ""
    lines = [
        f"# Training throughput of preset `{preset_name}`{recipe}\n",
        f"Machine: {machine_line(info)}. Device {device_name}, {mode}{', torch.compile' if compile else ''}. "
        f"Median of {steps} steps after {warmup} warm-up steps. Times the step `skyloop train` runs: {TIMES}.\n",
        "| phase | batch | s/step | frames/s |",
        "|---|---|---|---|",
        f"| tokenizer | {results['tokenizer']['batch']} | {results['tokenizer']['s_per_step']:.3f} | {results['tokenizer']['frames_per_s']:.0f} |",
        f"| dynamics (windows of {w + 1}) | {results['dynamics']['batch']} | {results['dynamics']['s_per_step']:.3f} | "
        f"{results['dynamics']['frames_per_s']:.0f} |",
    ]
    write_report(out, report, "\n".join(lines) + "\n")
    print("\n".join(lines[2:]))
    print(f"report: {Path(out) / 'report.md'}")
    line = {
        "benchmark": "train",
        "preset": preset_name,
        "device": device_name,
        "precision": mode,
        "tokenizer_frames_per_s": round(results["tokenizer"]["frames_per_s"], 1),
        "dynamics_frames_per_s": round(results["dynamics"]["frames_per_s"], 1),
    }
    print(json.dumps(line))
    return report
