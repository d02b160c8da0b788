"""Does a world use its keys? Teacher-forced next-frame PSNR with the true keys, with the keys of another time, with
no keys, and the floor of copying the last frame (held-out episodes, 8 real context frames, the world's sampler).

    skyloop collect --scene maze --episodes 8 --steps 200 --seed 5000 --out data/maze-eval    # held-out episodes
    .venv/bin/python tools/key_use_check.py worlds/maze.safetensors data/maze-eval

Shipped maze (2026-11-28, ONNX): true keys 28.24 dB, other keys 19.75, no keys 23.16, copy the last frame 25.17 (48 points; the figures swing with the points drawn: at 2 per episode 28.36, 20.91, 24.78, 28.27, where the player mostly stood still):
the conditioning works; the weak key response of `bench consistency` comes from the rollouts, not from the keys.
"""

import argparse

import numpy as np

from engine.bench.metrics import psnr
from engine.data.dataset import Dataset
from engine.world.session import World


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("world")
    ap.add_argument("data", help="held-out episodes (seeds not used in training)")
    ap.add_argument("--per-episode", type=int, default=6, help="prediction points per episode")
    args = ap.parse_args()
    world = World.load(args.world)
    w = world.spec.dynamics.context
    rng = np.random.default_rng(0)
    res = {k: [] for k in ("true keys", "other keys", "no keys", "copy the last frame")}

    for frames, keys in Dataset.open(args.data).load_all():
        for t in rng.choice(np.arange(w, len(frames) - 1), args.per_episode, replace=False):
            nxt, k = frames[t + 1], keys[t + 1]
            other = keys[rng.integers(1, len(keys))]
            while (other == k).all():
                other = keys[rng.integers(1, len(keys))]
            for name, kk in (("true keys", k), ("other keys", other), ("no keys", np.zeros_like(k))):
                world.reset(frames[t - w + 1 : t + 1], context_keys=keys[t - w + 1 : t + 1], seed=0)
                res[name].append(psnr(world.predict(world.keyset.held_names(kk)), nxt))
            res["copy the last frame"].append(psnr(frames[t], nxt))
    for k, v in res.items():
        print(f"{k:22s} {np.mean(v):6.2f} dB")


if __name__ == "__main__":
    main()
