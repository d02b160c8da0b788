"""`skyloop bench train`: training throughput of a preset (frames per second through each phase).

Random frames and keys of the preset's shapes stand in for data (throughput does not depend on
content). Warm-up steps first (and the compile, with --compile), then timed steps; medians.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from engine.bench.machine import machine, machine_line, write_report


def _time(step, steps: int, warmup: int, sync) -> np.ndarray:
    for _ in range(warmup):
        step()
    sync()
    out = np.empty(steps)
    for i in range(steps):
        start = time.perf_counter()
        step()
        sync()  # CUDA work is asynchronous: wait for it before reading the clock
        out[i] = time.perf_counter() - start
    return out


def bench_train(preset_name: str = "small", size=(64, 64), keys: int = 6, steps: int = 10, warmup: int = 3, batch: int | None = None,
                device: str | None = None, precision: str = "auto", compile: bool = False, out="runs/bench-train") -> dict:
    from engine.dynamics.model import Dynamics
    from engine.tokenizer.model import Tokenizer, frames_to_unit
    from engine.train.config import get_preset
    from engine.train.context import autocast

    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    preset = get_preset(preset_name).for_data(tuple(size), keys)
    cfg = preset.train
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    results = {}
    with autocast(dev, precision):
        mode = "bf16 autocast" if torch.is_autocast_enabled(dev.type) else "fp32"

    # Tokenizer phase.
    tb = batch or cfg.tokenizer_batch
    tok = Tokenizer(preset.tokenizer).to(dev)
    opt = torch.optim.Adam(tok.parameters(), lr=1e-4)
    frames = torch.randint(0, 256, (tb, *size, 3), dtype=torch.uint8, device=dev)
    target = frames_to_unit(frames)

    def tok_step():
        with autocast(dev, precision):
            loss = (tok(frames).float() - target).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    t = _time(tok_step, steps, warmup, sync)
    results["tokenizer"] = {"batch": tb, "s_per_step": float(np.median(t)), "frames_per_s": float(tb / np.median(t))}

    # Dynamics phase: one window = context + 1 frames, all targets trained at once.
    db = batch or cfg.dynamics_batch
    c = preset.dynamics
    dyn = Dynamics(c).to(dev)
    model = torch.compile(dyn) if compile else dyn
    opt = torch.optim.AdamW(dyn.parameters(), lr=1e-4)
    w, n, d = c.context, c.tokens_per_frame, c.token_dim
    args = [torch.randn(db, w, n, d, device=dev), torch.rand(db, w, device=dev), torch.randn(db, w, n, d, device=dev),
            torch.rand(db, w, device=dev), torch.randint(0, 2, (db, w + 1, c.num_keys), device=dev).float()]
    target = torch.randn(db, w, n, d, device=dev)

    def dyn_step():
        with autocast(dev, precision):
            loss = (model(*args).float() - target).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    t = _time(dyn_step, steps, warmup + (2 if compile else 0), sync)
    results["dynamics"] = {"batch": db, "window": w + 1, "s_per_step": float(np.median(t)),
                           "frames_per_s": float(db * (w + 1) / np.median(t)), "target_frames_per_s": float(db * w / np.median(t))}
    info = machine()
    device_name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    report = {"benchmark": "train", "preset": preset_name, "frame_size": list(size), "device": device_name, "precision": mode,
              "compile": compile, "machine": info, "results": results}
    lines = [f"# Training throughput of preset `{preset_name}`\n", f"Machine: {machine_line(info)}. Device {device_name}, {mode}"
             f"{', torch.compile' if compile else ''}. Median of {steps} steps after {warmup} warm-up steps.\n",
             "| phase | batch | s/step | frames/s |", "|---|---|---|---|",
             f"| tokenizer | {tb} | {results['tokenizer']['s_per_step']:.3f} | {results['tokenizer']['frames_per_s']:.0f} |",
             f"| dynamics (windows of {w + 1}) | {db} | {results['dynamics']['s_per_step']:.3f} | {results['dynamics']['frames_per_s']:.0f} |"]
    write_report(out, report, "\n".join(lines) + "\n")
    print("\n".join(lines[2:]))
    print(f"report: {Path(out) / 'report.md'}")
    line = {"benchmark": "train", "preset": preset_name, "device": device_name, "precision": mode,
            "tokenizer_frames_per_s": round(results["tokenizer"]["frames_per_s"], 1),
            "dynamics_frames_per_s": round(results["dynamics"]["frames_per_s"], 1)}
    print(json.dumps(line))
    return report
