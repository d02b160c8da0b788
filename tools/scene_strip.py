"""Draws docs/scenes.png: a strip of frames from each built-in scene, driven by the exploration policy.

Usage: .venv/bin/python tools/scene_strip.py [--out docs/scenes.png] [--size 64x64]
"""

import argparse

import numpy as np
from PIL import Image

from engine.data.collect import episode_seeds, record_episode
from engine.frames import parse_size
from scenes import make_scene
from scenes.explore import make_policy


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="docs/scenes.png")
    ap.add_argument("--size", default="64x64")
    ap.add_argument("--frames", type=int, default=10, help="frames per row")
    ap.add_argument("--every", type=int, default=8, help="ticks between shown frames")
    ap.add_argument("--scale", type=int, default=2)
    args = ap.parse_args()
    rows = []
    for name in ("maze", "overworld", "bounce"):
        scene = make_scene(name, size=parse_size(args.size))
        seed, rng = episode_seeds(1, 0)
        frames, _ = record_episode(scene, make_policy(scene, rng), seed, args.frames * args.every)
        scene.close()
        picked = frames[:: args.every][: args.frames]
        gap = np.full((picked.shape[1], 2, 3), 255, np.uint8)
        rows.append(np.concatenate([x for f in picked for x in (f, gap)][:-1], axis=1))
        rows.append(np.full((2, rows[-1].shape[1], 3), 255, np.uint8))
    strip = np.concatenate(rows[:-1], axis=0)
    img = Image.fromarray(strip)
    img = img.resize((img.width * args.scale, img.height * args.scale), Image.NEAREST)
    img.save(args.out)
    print(f"wrote {args.out} ({img.width}x{img.height}): rows maze, overworld, bounce; a frame every {args.every} ticks")


if __name__ == "__main__":
    main()
