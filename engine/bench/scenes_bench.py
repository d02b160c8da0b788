"""Frame rate of the ground-truth scenes, one core each: how fast data can be collected."""

from __future__ import annotations

import json
import os
import time

import numpy as np

from engine.bench.machine import machine, machine_line, write_report
from engine.bench.plots import bar_chart


def bench_scenes(names, size=(64, 64), frames: int = 2000, repeats: int = 3, out: str | os.PathLike = "runs/bench-scenes") -> dict:
    """Median frames/s of reset + random-key steps, timed with perf_counter after a warm-up."""
    os.environ["LP_NUM_THREADS"] = "1"  # one core for the GL rasteriser too
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    from scenes import make_scene

    results = {}
    for name in names:
        scene = make_scene(name, size=size)
        rng = np.random.default_rng(0)
        keys = rng.integers(0, 2, (frames, len(scene.keyset))).astype(np.uint8)
        scene.reset(0)
        for k in keys[:100]:  # warm-up: GL context, shader compile, caches
            scene.step(k)
        rates = []
        for r in range(repeats):
            scene.reset(r + 1)
            start = time.perf_counter()
            for k in keys:
                scene.step(k)
            rates.append(frames / (time.perf_counter() - start))
        scene.close()
        results[name] = float(np.median(rates))
        print(f"{name:10s} {results[name]:8.0f} frames/s per core at {size[0]}x{size[1]}")
    info = machine()
    report = {"benchmark": "scenes", "size": list(size), "frames": frames, "repeats": repeats, "machine": info, "fps_per_core": results}
    lines = [
        "# Scene frame rate\n",
        f"Machine: {machine_line(info)}\n",
        f"Frame size {size[0]}x{size[1]}, one core, median of {repeats} runs of {frames} random-key steps after a warm-up.\n",
        "![frames/s per core](fps.png)\n",
        "| scene | frames/s per core |",
        "|---|---|",
    ]
    lines += [f"| {n} | {v:.0f} |" for n, v in results.items()]
    out = write_report(out, report, "\n".join(lines) + "\n")
    bar_chart(out / "fps.png", results, "frames/s per core", f"Scene frame rate at {size[0]}x{size[1]}")
    print(f"report: {out / 'report.md'}")
    print(json.dumps({"benchmark": "scenes", **{f"fps_{n}": round(v, 1) for n, v in results.items()}}))
    return report
