"""How far a world's own rollouts drift from the truth, and how much its keys still move the next frame from them.

From random windows of recorded episodes: the world's own rollout (its stored sampler, the real keys) continues
`context` real frames for `--depth` ticks. Printed:
1) drift by depth: the mean squared latent error of the own frame against the real one (median and quartiles), and
   for scale how far the real frame has moved from the last real context frame;
2) turn direction by depth: where the real picture moved sideways, how often the own rollout's picture moves the same
   way (and, for the ceiling, the real frames' decoded latents);
3) the key-contrast term's view: how much further from the real frame the prediction under the opposite keys lands
   than under the held keys, from the real context and from an own one;
4) key sensitivity: the mean squared latent difference between next-frame predictions under two different keys
   (turn left vs turn right, forward vs none, ...) from the real context, from an own context `context` ticks deep,
   and from the real context blurred by `--blur` pixels (decoded frames blurred and re-encoded);
5) one step under the real keys from each of those contexts and from mixtures (the real or the own last frame held
   still, one own frame after real ones, ...): which way it moves the picture, and how sharp the context's last
   frame is; it tells what in an own context costs the turn (its blur, its keys, the content of its last frame).
The maze's figures are in docs/ablations.md ("Anchored self forcing", "Key contrast", "Where the maze's turns go").

    .venv/bin/python tools/own_context_probe.py worlds/maze.safetensors --data data/maze
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F


def gaussian_blur(frames: torch.Tensor, sigma: float) -> torch.Tensor:
    """uint8 [B, H, W, 3] -> the same frames blurred by a separable Gaussian of `sigma` pixels, uint8."""
    from engine.bench.metrics import _gaussian_kernel

    r = max(1, int(3 * sigma))
    g = torch.from_numpy(_gaussian_kernel(sigma, r)).float()
    x = frames.permute(0, 3, 1, 2).float()
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), g.view(1, 1, 1, -1).repeat(3, 1, 1, 1), groups=3)
    x = F.conv2d(F.pad(x, (0, 0, r, r), mode="replicate"), g.view(1, 1, -1, 1).repeat(3, 1, 1, 1), groups=3)
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("world")
    ap.add_argument("--data", required=True, help="a folder of episodes (ep_*.npz)")
    ap.add_argument("--episodes", type=int, default=20, help="the last N episodes of the folder (training holds out the last ones)")
    ap.add_argument("--per-episode", type=int, default=3)
    ap.add_argument("--depth", type=int, default=24, help="own rollout depth for the drift table")
    ap.add_argument("--blur", default="1.5", help="blur of the real context in the last two tables, pixels (comma-separated for several)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sampler", action="append", default=[], metavar="NAME=VALUE", help="override a setting of the stored sampler (repeatable)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from engine.data.dataset import Dataset
    from engine.dynamics.cache import torch_rollout
    from engine.dynamics.self_forcing import own_rollouts
    from engine.train.config import set_field
    from engine.train.latents import encode_episodes
    from engine.world.bundle import load_bundle

    bundle = load_bundle(args.world)
    tok, dyn, sampler = bundle.tokenizer, bundle.dynamics, bundle.spec.sampler
    for item in args.sampler:
        name, _, value = item.partition("=")
        sampler = set_field(sampler, "sampler", name, value, f"--sampler {item}")
    print(f"sampler: {sampler}")
    w, n_keys = bundle.spec.dynamics.context, bundle.spec.dynamics.num_keys
    names = list(bundle.spec.keyset.names)
    length = w + max(args.depth, w + 1)
    rng = np.random.default_rng(1)
    ds = Dataset.open(Path(args.data))
    frames, keys = [], []
    for entry in ds.manifest.episodes[-args.episodes :]:
        f, k = ds.load(entry)
        for _ in range(args.per_episode):
            s = int(rng.integers(0, len(f) - length))
            frames.append(f[s : s + length])
            keys.append(k[s : s + length])
    frames, keys = np.stack(frames), np.stack(keys).astype(np.float32)
    b = len(frames)
    tokens = torch.from_numpy(np.stack(encode_episodes(tok, zip(frames, keys), "cpu")).astype(np.float32))  # as training sees them
    own = own_rollouts(dyn, tokens, torch.from_numpy(keys), w, sampler, seed=0)  # [B, length - w, N, D]
    real = tokens[:, w:].numpy()
    drift = ((own - real) ** 2).mean(axis=(2, 3))
    move = ((real - tokens[:, w - 1 : w].numpy()) ** 2).mean(axis=(2, 3))
    print(f"{b} windows of {args.data}, latent variance {tokens.var():.2f}")
    print("depth | own vs real: median (quartiles) | real move since the context, median")
    for r in (1, 2, 4, 8, 12, 16, 24, 32, 48, 64):
        if r <= args.depth:
            q1, med, q3 = np.percentile(drift[:, r - 1], [25, 50, 75])
            print(f"{r:5d} | {med:.3f} ({q1:.3f}-{q3:.3f}) | {np.median(move[:, r - 1]):.3f}")

    # Does the picture turn the way the real one does? Sign of the horizontal shift between consecutive frames,
    # where the real frames moved more than a pixel: decoded real latents (the tokenizer's ceiling) and the own rollout
    # (depth 1 = one step from the real context).
    from engine.bench.metrics import horizontal_shift

    def pictures(latents: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            x = tok.decode(torch.from_numpy(latents.reshape(-1, *latents.shape[-2:])).float())
        return (x.permute(0, 2, 3, 1) * 255).round().to(torch.uint8).numpy().reshape(*latents.shape[:2], *frames.shape[2:])

    real_pics, own_pics = pictures(tokens[:, w - 1 :].numpy()), pictures(np.concatenate([tokens[:, w - 1 : w].numpy(), own], axis=1))
    print("\nturn direction: share of real moves (> 1 px sideways) whose sign the frames reproduce, by depth band")
    from engine.bench.consistency import sideways_keys

    sideways = sideways_keys(names)
    print(
        "depths | moves | decoded real latents | own rollout | own moves > 1 px | right way where it moves | |shift| own / real, median"
        " | moves under a sideways key: how many, own rollout the right way (the benchmark's figure since 2026-11-29)"
    )
    for lo, hi in ((1, 1), (2, 3), (4, 8), (9, 16), (17, 24), (25, 32), (33, 64)):
        if lo > args.depth:
            break
        right_rec = right_own = moves = moved = right_moved = keyed = right_keyed = 0
        mags_own, mags_real = [], []
        for r in range(lo, min(hi, args.depth) + 1):
            for i in range(b):
                real_shift = horizontal_shift(frames[i, w + r - 2], frames[i, w + r - 1])
                if abs(real_shift) <= 1.0:
                    continue
                moves += 1
                right_rec += np.sign(horizontal_shift(real_pics[i, r - 1], real_pics[i, r])) == np.sign(real_shift)
                own_shift = horizontal_shift(own_pics[i, r - 1], own_pics[i, r])
                right_own += np.sign(own_shift) == np.sign(real_shift)
                if keys[i, w + r - 1, sideways].any():  # the keys that made this frame decide its sideways move
                    keyed += 1
                    right_keyed += np.sign(own_shift) == np.sign(real_shift)
                mags_own.append(abs(own_shift))
                mags_real.append(abs(real_shift))
                if abs(own_shift) > 1.0:
                    moved += 1
                    right_moved += np.sign(own_shift) == np.sign(real_shift)
        if moves:
            print(
                f"{lo:>2}-{min(hi, args.depth):<3} | {moves:5d} | {right_rec / moves:.2f} | {right_own / moves:.2f} | {moved / moves:.2f}"
                f" | {right_moved / max(moved, 1):.2f} | {np.median(mags_own):.1f} / {np.median(mags_real):.1f}"
                f" | {keyed}, {right_keyed / max(keyed, 1):.2f}"
            )

    # The key-contrast term's view (dynamics.key_contrast): windows of the real frames w..2w, their targets predicted
    # under the held keys and under the opposite keys, from the real context and from the own one (1..w deep).
    from engine.dynamics.model import KEY_CONTRAST_MIN_SIGMA, KEY_CONTRAST_RATIO, key_swap_matrix

    swap = key_swap_matrix(bundle.spec.keyset)
    window_tokens, window_keys = tokens[:, w : 2 * w + 1], torch.from_numpy(keys[:, w : 2 * w + 1])
    print(f"\nkey contrast: targets noisier than {KEY_CONTRAST_MIN_SIGMA:g} whose keys have opposites, predicted under the held and the opposite keys")
    print("context | targets | error, held keys | error ratio opposite/held, median | under the margin " + f"({KEY_CONTRAST_RATIO:g}x)")
    for label, ctx in (("real", None), (f"own, 1-{w} deep", torch.from_numpy(own[:, :w]))):
        with torch.no_grad():
            inputs = dyn.training_inputs(window_tokens, window_keys, ctx, torch.Generator().manual_seed(0))
            target = inputs.pop("target_clean")
            inputs["visible"] = torch.full_like(inputs["visible"], w)  # the whole context, as play sees it
            err_held, err_opposite, graded = dyn.key_contrast_errors(inputs, target, swap)
        ratio = (err_opposite / err_held)[graded]
        print(
            f"{label} | {int(graded.sum())} | {float(err_held[graded].mean()):.3f} | {float(ratio.median()):.2f} | {float((ratio < KEY_CONTRAST_RATIO).float().mean()):.0%}"
        )

    with torch.no_grad():
        blurred = {}
        for px in (float(v) for v in args.blur.split(",")):
            x = gaussian_blur(torch.from_numpy(frames[:, w : 2 * w].reshape(-1, *frames.shape[2:])), px)
            blurred[f"real, blurred {px:g} px"] = tok.encode(x).reshape(b, w, *tokens.shape[2:]).numpy()
    ctx_keys = keys[:, w : 2 * w]

    def step(context: np.ndarray, held: list[str]) -> np.ndarray:
        k = np.zeros((b, n_keys), np.float32)
        for name in held:
            k[:, names.index(name)] = 1
        roll = torch_rollout(dyn, b, "cpu", sampler)
        roll.reset(context.astype(np.float32), ctx_keys, seed=0)
        return roll.step(k)

    pairs = [(a, c) for a, c in (("turn_left", "turn_right"), ("left", "right"), ("forward", None), ("up", None)) if a in names and (c is None or c in names)]
    if not pairs:
        pairs = [(names[0], names[1] if len(names) > 1 else None)]
    contexts = {"real": tokens[:, w : 2 * w].numpy(), f"own, {w} deep": own[:, :w], **blurred}
    print("\nkey sensitivity: mean squared latent difference between the next-frame predictions under two keys")
    heads = [f" | {a} vs {c or 'none'}" for a, c in pairs]
    print("context".ljust(22) + "".join(heads) + " | context vs real")
    for label, ctx in contexts.items():
        diffs = [float(((step(ctx, [a]) - step(ctx, [c] if c else [])) ** 2).mean()) for a, c in pairs]
        gap = float(((ctx - contexts["real"]) ** 2).mean())
        print(label.ljust(22) + "".join(f" | {d:.3f}".ljust(len(h)) for d, h in zip(diffs, heads)) + f" | {gap:.3f}")

    # Which part of an own context costs the direction: its blur, or where it has drifted to? One step under the real
    # keys from each context; the sign of its sideways move from the context's last frame against the real one's.
    real_shift = np.array([horizontal_shift(frames[i, 2 * w - 1], frames[i, 2 * w]) for i in range(b)])
    moved = np.abs(real_shift) > 1.0
    print(f"\none step from each context under the real keys: the real picture moved > 1 px sideways in {int(moved.sum())} windows")
    print("context | right way | moves > 1 px | right way where it moves | sharpness of its last frame / real")
    real_grad = float(np.mean([np.abs(np.diff(frames[i, 2 * w - 1].astype(np.float32), axis=1)).mean() for i in range(b)]))
    real_ctx, own_ctx, none = contexts["real"], contexts[f"own, {w} deep"], np.zeros_like(ctx_keys)
    variants = {label: (ctx, ctx_keys) for label, ctx in contexts.items()}
    variants.update(
        {
            "real, no context keys": (real_ctx, none),
            f"real last frame x{w}, no keys": (np.repeat(real_ctx[:, -1:], w, 1), none),
            f"own last frame x{w}, no keys": (np.repeat(own_ctx[:, -1:], w, 1), none),
            f"real x{w - 1}, then the own last frame": (np.concatenate([real_ctx[:, :-1], own_ctx[:, -1:]], 1), ctx_keys),
            f"own x{w - 1}, then the real last frame": (np.concatenate([own_ctx[:, :-1], real_ctx[:, -1:]], 1), ctx_keys),
        }
    )
    by_keys = {}
    for label, (ctx, ctx_k) in variants.items():
        k = np.ascontiguousarray(keys[:, 2 * w])
        roll = torch_rollout(dyn, b, "cpu", sampler)
        roll.reset(ctx.astype(np.float32), ctx_k, seed=0)
        nxt = pictures(roll.step(k)[:, None])[:, 0]
        last = pictures(ctx[:, -1:])[:, 0]
        shift = np.array([horizontal_shift(last[i], nxt[i]) for i in range(b)])
        right = np.sign(shift) == np.sign(real_shift)
        big = np.abs(shift) > 1.0
        grad = float(np.mean([np.abs(np.diff(last[i].astype(np.float32), axis=1)).mean() for i in range(b)]))
        print(f"{label} | {right[moved].mean():.2f} | {big[moved].mean():.2f} | {right[moved & big].mean():.2f} | {grad / real_grad:.2f}")
        by_keys[label] = right
    # The same by the keys held at the step (combinations of at least 5 of the moved windows): a turn moves the whole
    # picture, a strafe or a step moves it by parallax, which needs the depth of what the frame shows.
    held = ["+".join(n for n, on in zip(names, row) if on) or "none" for row in keys[:, 2 * w] > 0]
    combos = [c for c in sorted(set(held)) if sum(h == c and m for h, m in zip(held, moved)) >= 5]
    print("\nthe same, by the keys held at the step: share the right way (windows)")
    print("context | " + " | ".join(f"{c} ({sum(h == c and m for h, m in zip(held, moved))})" for c in combos))
    for label, right in by_keys.items():
        cells = [right[moved & np.array([h == c for h in held])].mean() for c in combos]
        print(f"{label} | " + " | ".join(f"{v:.2f}" for v in cells))


if __name__ == "__main__":
    main()
