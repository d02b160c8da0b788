"""Re-encoding as a training-free lever: autoregressive PSNR with the world's own latents in its context (as it plays)
against decoding each frame, quantising it and encoding it again before it enters the context.

    .venv/bin/python tools/reencode_check.py worlds/maze.safetensors data/maze-eval

Shipped maze (2026-11-28, 8 held-out episodes, ONNX), AR PSNR @1/4/8/16/32/64: own 27.77/20.39/17.50/19.28/18.20/
17.07, re-encoded 27.77/20.88/18.15/18.52/17.08/16.72: no gain past step 8, so play keeps its own latents.
"""

import argparse

import numpy as np

from engine.bench.metrics import psnr
from engine.data.dataset import Dataset
from engine.world.session import World


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("world")
    ap.add_argument("data", help="held-out episodes of at least start + steps + 1 frames")
    ap.add_argument("--start", type=int, default=20)
    ap.add_argument("--steps", type=int, default=64)
    args = ap.parse_args()
    world = World.load(args.world)
    w = world.spec.dynamics.context
    episodes = Dataset.open(args.data).load_all()

    for mode in ("own", "reencode"):
        curves = []
        for frames, keys in episodes:
            s = args.start
            world.reset(frames[s - w + 1 : s + 1], context_keys=keys[s - w + 1 : s + 1], seed=0)
            curve = []
            for i in range(1, args.steps + 1):
                k = world.keyset.held_names(keys[s + i])
                if mode == "own":
                    frame = world.step(k)
                else:
                    frame = world.predict(k)
                    world.observe(frame, k)  # the decoded, quantised frame goes back in through the encoder
                curve.append(psnr(frame, frames[s + i]))
            curves.append(curve)
        m = np.mean(curves, 0)
        print(mode, " ".join(f"@{t}:{m[t - 1]:.2f}" for t in (1, 4, 8, 16, 32, 64) if t <= args.steps), flush=True)


if __name__ == "__main__":
    main()
