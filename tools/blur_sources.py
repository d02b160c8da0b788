"""Where a world's blur comes from: the decoder alone, or the prediction.

From real contexts of held-out episodes it measures the benchmark's sharpness (gradient energy, world/real) of
1) the tokenizer's reconstruction of the real next frame and 2) the one-step prediction of it (World.predict),
for each sampler given, plus the prediction's PSNR. A world whose reconstruction is already well below 1 cannot
reach the sharpness target by better dynamics alone.

  .venv/bin/python tools/blur_sources.py worlds/maze.safetensors --data data/maze-eval --samplers 2,4,4fresh,8
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from engine.bench.metrics import psnr, sharpness


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("world")
    ap.add_argument("--data", required=True, help="a folder of held-out episodes (ep_*.npz with frames and keys)")
    ap.add_argument("--samplers", default="2,4,4fresh,8", help="sampler steps to try; a 'fresh' suffix draws fresh noise between steps")
    ap.add_argument("--episodes", type=int, default=4)
    ap.add_argument("--starts", default="20,100,180", help="frame indices predicted in each episode (each needs 8 frames before it)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    from engine.world.session import World

    episodes = sorted(Path(args.data).glob("*.npz"))[: args.episodes]
    if not episodes:
        raise SystemExit(f"{args.data}: no episodes (*.npz)")
    starts = [int(s) for s in args.starts.split(",")]
    for spec in args.samplers.split(","):
        steps, fresh = int(spec.removesuffix("fresh")), spec.endswith("fresh")
        world = World.load(args.world, backend="onnx", sampler={"steps": steps, "stochastic": fresh}, threads=args.threads)
        context = world.spec.dynamics.context
        recon, pred, db = [], [], []
        for path in episodes:
            ep = np.load(path)
            frames, keys = ep["frames"], ep["keys"]
            for t in starts:
                if not context <= t < len(frames):
                    continue
                world.reset(frames[t - context : t], seed=0, context_keys=keys[t - context : t])
                guess = world.predict(keys[t])
                real = frames[t]
                energy = sharpness(real[None])[0]
                recon.append(sharpness(world.decode(world.encode(real[None])))[0] / energy)
                pred.append(sharpness(guess[None])[0] / energy)
                db.append(psnr(guess.astype(np.float32), real.astype(np.float32)))
        print(
            f"{spec:>7} steps: {len(pred)} windows; sharpness ratio of the reconstruction {np.mean(recon):.2f}, "
            f"of the one-step prediction {np.mean(pred):.2f}; prediction PSNR {np.mean(db):.2f} dB"
        )


if __name__ == "__main__":
    main()
