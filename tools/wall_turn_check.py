"""Can a first-person world turn away from a wall? Walk the real maze forward until a wall stops the player, give
the world the last 8 frames of that walk, then hold a turn key for 18 ticks (180 degrees) in both, and score the
world's frames against the real ones. The real view opens onto a corridor or a room within a few ticks; a world
caught in the wall trap keeps sliding the wall's pattern sideways.

    .venv/bin/python tools/wall_turn_check.py worlds/maze.safetensors [more worlds...] [--starts 16] [--sheet PNG]

Prints PSNR against the real frames at ticks 3, 6, 12 and 18 of the turn, the mean over the 18 ticks, the share of
the world's frames whose bottom rows show floor where the real ones do, and, from the second world on, the paired
difference of the mean against the first world with a 95% bootstrap interval over the starts.
"""

import argparse

import numpy as np

from engine.bench import metrics as M
from engine.world.session import World
from scenes import make_scene

FLOOR_ROWS = 6  # the bottom rows: floor in a view with depth, wall in a close-up


def wall_starts(n: int, first_seed: int = 2000) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(turn key, the walk's last 8 frames [8, H, W, 3], the real turn's 18 frames) for n starts at a wall."""
    scene = make_scene("maze")
    starts = []
    try:
        for seed in range(first_seed, first_seed + 100 * n):
            prev = scene.reset(seed)
            frames = [prev]
            for _ in range(30):
                frames.append(scene.step(["forward"]))
                if np.array_equal(frames[-1], prev):
                    break
                prev = frames[-1]
            else:
                continue
            if len(frames) < 9 or M.block_contrast(frames[-1][None])[0] > 20:  # blocked at a wall that fills the view
                continue
            turn = ("turn_left", "turn_right")[len(starts) % 2]
            starts.append((turn, np.stack(frames[-8:]), np.stack([scene.step([turn]) for _ in range(18)])))
            if len(starts) == n:
                break
    finally:
        scene.close()
    return starts


def floor_seen(frames: np.ndarray, floor: np.ndarray) -> np.ndarray:
    """[T] bool: the bottom rows' mean colour is within 20 grey levels of the floor's."""
    bottom = frames[:, -FLOOR_ROWS:].astype(np.float32).mean(axis=(1, 2))
    return np.abs(bottom - floor).max(-1) < 20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("worlds", nargs="+")
    ap.add_argument("--starts", type=int, default=16)
    ap.add_argument("--sheet", help="write a PNG: the real turn, then each world's, for the first two starts")
    args = ap.parse_args()
    starts = wall_starts(args.starts)
    reals = np.stack([r for _, _, r in starts])  # [S, 18, H, W, 3]
    # the floor's colour: the most common bottom-row colour of the real turns' frames that show depth
    bottoms = reals[:, :, -FLOOR_ROWS:].astype(np.float32).mean(axis=(2, 3)).reshape(-1, 3)
    floor = np.median(bottoms[np.argsort(bottoms.std(-1))[: len(bottoms) // 3]], axis=0)
    real_floor = floor_seen(reals.reshape(-1, *reals.shape[2:]), floor)
    print(f"{len(starts)} starts; the real turn shows floor in {real_floor.mean():.0%} of its frames")
    first, rows = None, [np.concatenate(list(r[1::2]), 1) for _, _, r in starts[:2]]
    for path in args.worlds:
        world = World.load(path)
        psnr, made = [], []
        for turn, context, real in starts:
            world.reset(context, context_keys=np.tile(world.keyset.vector(["forward"]), (len(context), 1)))
            frames = np.stack([world.step([turn]) for _ in range(len(real))])
            psnr.append(M.psnr(frames, real))
            made.append(frames)
        psnr, made = np.array(psnr), np.stack(made)
        floor_world = floor_seen(made.reshape(-1, *made.shape[2:]), floor)
        both = (floor_world & real_floor).sum() / max(real_floor.sum(), 1)
        line = f"{path}: PSNR @3/@6/@12/@18 " + " ".join(f"{psnr[:, i].mean():.2f}" for i in (2, 5, 11, 17))
        line += f", mean {psnr.mean():.2f} dB; floor where the real turn shows it: {both:.0%}"
        mean = psnr.mean(1)
        if first is None:
            first = mean
        else:
            d = mean - first
            boot = np.random.default_rng(0).choice(d, (4000, len(d))).mean(1)
            line += " (vs the first world %+.2f dB, %+.2f..%+.2f)" % (d.mean(), *np.quantile(boot, [0.025, 0.975]))
        print(line, flush=True)
        rows += [np.concatenate(list(m[1::2]), 1) for m in made[:2]]
    if args.sheet:
        from PIL import Image

        sheet = np.concatenate(rows, 0)
        Image.fromarray(sheet).resize((sheet.shape[1] * 2, sheet.shape[0] * 2), Image.NEAREST).save(args.sheet)
        print(f"sheet: {args.sheet} (rows: the real turns, then each world's, two starts each)")


if __name__ == "__main__":
    main()
