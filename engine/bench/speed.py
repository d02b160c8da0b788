"""`skyloop bench speed`: per-frame latency of a world, the whole step (sampler + decode).

Warm-up first, then repeated timed runs; the figures are medians over the
runs. The report names the machine, backend, device, providers and threads.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from engine.actions import StickyRandom
from engine.bench.machine import machine, machine_line, write_report
from engine.bench.plots import latency_plot


def time_world(world, frames: int, warmup: int, repeats: int, seed: int = 0) -> dict:
    """Latency of world.step over `repeats` runs of `frames` steps; keys are sticky random."""
    policy = StickyRandom.for_keyset(world.keyset, np.random.default_rng(seed))
    world.reset(None, seed=seed)
    for _ in range(warmup):
        world.step(policy.act())
    runs = []
    for r in range(repeats):
        world.reset(None, seed=seed + r + 1)
        ms = np.empty(frames)
        for i in range(frames):
            keys = policy.act()
            start = time.perf_counter()
            world.step(keys)  # returns host numpy frames: no device work is left pending
            ms[i] = (time.perf_counter() - start) * 1000
        runs.append(ms)
    p50 = float(np.median([np.median(m) for m in runs]))
    p99 = float(np.median([np.percentile(m, 99) for m in runs]))
    mean = float(np.median([m.mean() for m in runs]))
    return {
        "ms_p50": p50,
        "ms_p99": p99,
        "ms_mean": mean,
        "fps": 1000.0 / mean,
        "fps_p50": 1000.0 / p50,
        "frames": frames,
        "repeats": repeats,
        "warmup": warmup,
        "series": runs[len(runs) // 2],
    }


def bench_speed(
    world_path: str | Path,
    backends: list[str],
    frames: int = 200,
    warmup: int = 20,
    repeats: int = 3,
    threads: int | None = None,
    device: str | None = None,
    batch: int = 1,
    out: str | Path = "runs/bench-speed",
    sampler: dict | None = None,
) -> dict:
    from engine.world.default_backend import resolve_backend
    from engine.world.session import World

    results = {}
    for backend in [resolve_backend(b, device) for b in backends]:  # "auto" times the default backend
        world = World.load(world_path, backend=backend, device=device, threads=threads, sampler=sampler)
        if batch > 1:
            world.reset([None] * batch)  # a batch of worlds; reset() inside time_world keeps the batch size
        info = world.describe()
        r = time_world(world, frames, warmup, repeats)
        r.update(info)
        r["sampler_steps"] = world.sampler_cfg.steps
        results[backend] = r
        print(
            f"{backend:8s} {info['device']:28s} {r['fps']:7.1f} FPS   p50 {r['ms_p50']:6.2f} ms   p99 {r['ms_p99']:6.2f} ms"
            + (f"   providers {info['providers']}" if "providers" in info else "")
        )
    info = machine()
    spec = world.spec
    report = {
        "benchmark": "speed",
        "world": str(world_path),
        "frame_size": list(spec.frame_size),
        "machine": info,
        "preset": spec.training.get("preset"),
        "batch": batch,
        "results": {k: {kk: vv for kk, vv in v.items() if kk != "series"} for k, v in results.items()},
    }
    lines = [
        f"# Speed of {Path(world_path).name}\n",
        f"Machine: {machine_line(info)}\n",
        f"Frame {spec.frame_size[0]}x{spec.frame_size[1]}, batch {batch}, {frames} timed frames x {repeats} runs after "
        f"{warmup} warm-up frames; whole step = sampler ({results[backends[-1]]['sampler_steps']} steps) + context commit + decode. "
        "Figures are medians over the runs.\n",
        "![latency](latency.png)\n",
        "| backend | device | providers | threads | FPS | p50 ms | p99 ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} | {r['device']} | {', '.join(r.get('providers', ['-']))} | {r.get('threads', '-')} | "
            f"{r['fps']:.1f} | {r['ms_p50']:.2f} | {r['ms_p99']:.2f} |"
        )
    last = results[backends[-1]]
    line = {
        "benchmark": "speed",
        "backend": backends[-1],
        "device": last["device"],
        "fps": round(last["fps"], 2),
        "ms_p50": round(last["ms_p50"], 3),
        "ms_p99": round(last["ms_p99"], 3),
        "all": {k: {"fps": round(v["fps"], 2), "ms_p50": round(v["ms_p50"], 3), "ms_p99": round(v["ms_p99"], 3)} for k, v in results.items()},
    }
    report["summary"] = line  # kept in report.json: tools/remeasure.py puts a speed run into a consistency report
    out = write_report(out, report, "\n".join(lines) + "\n")
    latency_plot(out / "latency.png", {k: v["series"] for k, v in results.items()}, f"{Path(world_path).name} on {info['cpu'][:40]}")
    print(f"report: {out / 'report.md'}")
    print(json.dumps(line))
    return report
