"""Retrace memory, checked two ways (docs/ablations.md, "Retrace memory for the maze").

1. Real episodes: how often the frame a one-key undo recalls is the real game's frame (per key of the undone step).
2. A world with and without it along the benchmark's exploration keys (8 held-out seeds): PSNR against the real
   frames at the undo ticks and at every other tick, and the mean over all ticks per seed, paired, with a 95%
   bootstrap interval.

    .venv/bin/python tools/retrace_check.py worlds/maze.safetensors data/maze-eval [--ticks 1000]
"""

import argparse
import functools
from collections import defaultdict

import numpy as np

from engine.bench import metrics as M
from engine.bench.consistency import Scenes, eval_seeds, policy_keys
from engine.data.dataset import Dataset
from engine.world.session import World
from engine.world.trail import Trail, inverse_indices
from scenes import make_scene


def real_undos(data: str, keyset) -> None:
    exact = defaultdict(list)
    for frames, keys in Dataset.open(data).load_all():
        trail = Trail(inverse_indices(keyset))
        trail.start(frames[0], np.zeros(1))
        for t in range(1, len(frames)):
            last = trail.steps[-1][2]
            recalled = trail.undo(keys[t])
            if recalled is None:
                trail.record(frames[t], np.zeros(1), keys[t])
            else:
                exact["+".join(keyset.held_names(last))].append(np.array_equal(recalled[0], frames[t]))
    for name, v in sorted(exact.items(), key=lambda kv: -len(kv[1])):
        print(f"real undos of {name:14s} {len(v):5d}, the recalled frame is the real one in {np.mean(v):.0%}")


def world_run(path: str, ticks: int) -> None:
    on = World.load(path, sampler={"retrace": True})
    off = World.load(path, sampler={"retrace": False})
    seeds = eval_seeds(on.spec, 8)
    scenes = Scenes(functools.partial(make_scene, on.spec.scene, size=on.frame_size, **on.spec.scene_options), seeds)
    keys, real, _ = policy_keys(scenes, ticks, tag=2)  # the benchmark's autoregressive run
    scenes.close()
    on.reset(list(real[0]))
    off.reset(list(real[0]))
    p_on, p_off, undo = [], [], []
    before = np.zeros(len(seeds), int)
    for t in range(ticks):
        p_on.append(M.psnr(on.step(keys[t]), real[t + 1]))
        p_off.append(M.psnr(off.step(keys[t]), real[t + 1]))
        now = np.array([len(trail) for trail in on.trails])
        undo.append(now < before)
        before = now
    p_on, p_off, undo = np.array(p_on), np.array(p_off), np.array(undo)
    print(f"undo ticks: {undo.mean():.1%} (per seed {undo.sum(0).tolist()})")
    print(f"PSNR at undo ticks: with {p_on[undo].mean():.2f} dB, without {p_off[undo].mean():.2f} dB")
    print(f"PSNR at other ticks: with {p_on[~undo].mean():.2f} dB, without {p_off[~undo].mean():.2f} dB")
    d = p_on.mean(0) - p_off.mean(0)
    boot = np.random.default_rng(0).choice(d, (4000, len(d))).mean(1)
    lo, hi = np.quantile(boot, [0.025, 0.975])
    print(f"mean over all ticks, with - without, per seed {np.round(d, 2).tolist()}: {d.mean():+.2f} dB ({lo:+.2f}..{hi:+.2f})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("world")
    ap.add_argument("data", help="held-out episodes of the world's scene")
    ap.add_argument("--ticks", type=int, default=1000)
    args = ap.parse_args()
    real_undos(args.data, World.load(args.world).keyset)
    world_run(args.world, args.ticks)


if __name__ == "__main__":
    main()
