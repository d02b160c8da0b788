"""Check: do small moving objects survive the tokenizer, and the context noise the dynamics is trained with?

Real frames of held-out episodes are encoded, given additive latent noise of std sigma (the training context
noise is U(0, max_context_noise)), and decoded; foreground figures (engine.bench.plausibility) against the truth.

    .venv/bin/python tools/object_check.py worlds/bounce.safetensors
"""

from __future__ import annotations

import argparse
import functools
import json

import numpy as np

from engine.bench import metrics as M
from engine.bench.consistency import eval_seeds
from engine.bench.plausibility import FrameBank, masked_psnr, real_bank
from engine.world.session import World
from scenes import make_scene


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("world")
    ap.add_argument("--sigmas", default="0,0.1,0.25,0.5")
    args = ap.parse_args()
    world = World.load(args.world, backend="torch")
    make = functools.partial(make_scene, world.spec.scene, size=world.frame_size, **world.spec.scene_options)
    seeds = eval_seeds(world.spec, 12)
    bank = FrameBank(real_bank(make, seeds[:8], 500))
    truth = real_bank(make, seeds[8:], 100)
    tokens = world.encode(truth)
    mask = bank.foreground(truth)
    rng = np.random.default_rng(0)
    out = {"world": args.world, "frames": len(truth), "foreground_share_real": round(float(mask.mean()), 4)}
    for sigma in (float(s) for s in args.sigmas.split(",")):
        frames = world.decode((tokens + sigma * rng.standard_normal(tokens.shape)).astype(np.float32))
        out[f"sigma={sigma:g}"] = {
            "psnr": round(float(M.psnr(frames, truth).mean()), 2),
            "foreground_psnr": round(float(np.nanmean(masked_psnr(frames, truth, mask))), 2),
            "foreground_share_ratio": round(float(bank.foreground(frames).mean() / mask.mean()), 3),
        }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
