"""How long a world holds still when the player lets go: PSNR of its frames against the real start frame under no keys.

For games that stand still without keys (maze, overworld: every no-key tick of their data keeps its frame), the real
frame never changes, so any fall is the world redrawing its own picture. Starts from one real frame and from the same
frame repeated over the whole context, held-out seeds, ONNX Runtime with the world's sampler.

Usage: .venv/bin/python tools/still_check.py WORLD [WORLD ...] [--seeds 16] [--ticks 32]
"""

import argparse

import numpy as np

from engine.bench import metrics as M
from engine.bench.consistency import eval_seeds
from engine.world.session import World


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("worlds", nargs="+")
    ap.add_argument("--seeds", type=int, default=16)
    ap.add_argument("--ticks", type=int, default=32)
    args = ap.parse_args()
    at = [t for t in (1, 2, 4, 8, 16, 32, 64, 128, 256) if t <= args.ticks]
    print("| world | context | tokenizer | " + " | ".join(f"@{t}" for t in at) + " |")
    print("|---|---|---|" + "---|" * len(at))
    for path in args.worlds:
        world = World.load(path, backend="onnx")
        seeds = eval_seeds(world.spec, args.seeds)
        first = np.stack([world.context_frames(s)[-1] for s in seeds])
        recon = M.psnr(world.decode(world.encode(first)).reshape(first.shape), first).mean()
        for copies in (1, world.spec.dynamics.context):
            world.reset([np.stack([f] * copies) for f in first])
            none = np.zeros((len(seeds), len(world.keyset)), np.uint8)
            got = {}
            for t in range(1, args.ticks + 1):
                frame = world.step(none)
                if t in at:
                    got[t] = M.psnr(frame, first).mean()
            print(f"| {path} | {copies} frame(s) | {recon:.2f} | " + " | ".join(f"{got[t]:.2f}" for t in at) + " |", flush=True)


if __name__ == "__main__":
    main()
