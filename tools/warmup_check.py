"""Check: does a world start better from a full window of real frames than from one? (issue: "check first")

For held-out seeds the real scene idles for W-1 ticks after reset, then follows its exploration policy.
The world starts either from the last idle frame alone (the old start) or from all W idle frames (the
warm-up context), then generates the rest with the same keys; PSNR against the real frames at each step.

    .venv/bin/python tools/warmup_check.py worlds/maze.safetensors [--seeds 8] [--frames 64]
"""

from __future__ import annotations

import argparse
import functools
import json

import numpy as np

from engine.bench import metrics as M
from engine.bench.consistency import eval_seeds
from engine.world.session import World
from scenes import make_scene
from scenes.explore import make_policy


def scene_warmup(scene, seed: int, ticks: int) -> np.ndarray:
    """The scene's first frame for a seed and the `ticks` frames after it with no key held: [1 + ticks, H, W, 3]."""
    frames = [scene.reset(seed)]
    idle = np.zeros(len(scene.keyset), np.uint8)
    for _ in range(ticks):
        frames.append(scene.step(idle))
    return np.stack(frames)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("world")
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--frames", type=int, default=64)
    ap.add_argument("--backend", default="onnx")
    ap.add_argument("--warmup", default="idle", choices=["idle", "explore"], help="what the scene does during the warm-up ticks")
    args = ap.parse_args()
    world = World.load(args.world, backend=args.backend)
    w = world.spec.dynamics.context
    make = functools.partial(make_scene, world.spec.scene, size=world.frame_size, **world.spec.scene_options)
    seeds = eval_seeds(world.spec, args.seeds)
    scenes = [make() for _ in seeds]
    policies = [make_policy(s, np.random.default_rng([seed, 2])) for s, seed in zip(scenes, seeds)]
    if args.warmup == "idle":
        warm = np.stack([scene_warmup(s, seed, w - 1) for s, seed in zip(scenes, seeds)])  # [B, W, H, W, 3]
    else:  # the exploration policy walks during the warm-up: the context shows motion
        warm = [[s.reset(seed)] for s, seed in zip(scenes, seeds)]
        for _ in range(w - 1):
            for frames, s, p in zip(warm, scenes, policies):
                frames.append(s.step(s.keyset.vector(p.act(s))))
        warm = np.stack([np.stack(f) for f in warm])
    keys, real = [], []
    for _ in range(args.frames):
        k = np.stack([s.keyset.vector(p.act(s)) for s, p in zip(scenes, policies)])
        keys.append(k)
        real.append(np.stack([s.step(kk) for s, kk in zip(scenes, k)]))
    steps = M.log_steps(args.frames)
    result = {
        "world": args.world,
        "seeds": len(seeds),
        "context": w,
        "warmup": args.warmup,
        "repeat_last_context_frame": {str(t): round(float(M.psnr(warm[:, -1], real[t - 1]).mean()), 2) for t in steps},
    }
    for name, context in (("one_frame", [c[-1:] for c in warm]), ("warmup_context", list(warm))):
        world.reset(context)
        curve = [M.psnr(world.step(k), r).mean() for k, r in zip(keys, real)]
        result[name] = {str(t): round(float(curve[t - 1]), 2) for t in steps}
    for s in scenes:
        s.close()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
