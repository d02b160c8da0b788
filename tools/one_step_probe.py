"""How well a world predicts one frame from real frames: the first thing a rollout rests on.

From `--per-episode` random windows of each of `--episodes` episodes (the last ones of the folder by default: training
holds those out; `--first` takes the first ones, which it trained on), the world sees `context` real frames and the
real keys and predicts the next frame. Printed, as PSNR against the real frame (dB):
- the ceiling: the tokenizer's reconstruction of the real frame;
- the floor: the last real frame copied;
- the network's mean estimate (one sampler step, no guidance), and the world's stored sampler with and without key
  guidance;
- the mean estimate and the copy by the key held on the predicted tick;
- with `--bands N`: the same by vertical band of the frame, left to right, per key: where in the picture the error is
  (at the edge a turn or strafe reveals, or across the frame).
A world far under its ceiling here cannot be rescued by rollout training or memory: the gap is in one step. The
maze's figures are in docs/ablations.md ("The maze, 3,000 more steps on the faster CPU").

    .venv/bin/python tools/one_step_probe.py worlds/maze.safetensors --data data/maze
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("world")
    ap.add_argument("--data", required=True, help="a folder of episodes recorded from the world's scene")
    ap.add_argument("--episodes", type=int, default=20)
    ap.add_argument("--per-episode", type=int, default=4)
    ap.add_argument("--first", action="store_true", help="the first episodes of the folder (trained on) instead of the last")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--bands", type=int, default=0, help="also print PSNR by N vertical bands of the frame, per key")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from engine.bench.metrics import psnr
    from engine.data.dataset import Dataset
    from engine.dynamics.cache import torch_rollout
    from engine.errors import SkyloopError
    from engine.train.evaluate import decode
    from engine.train.latents import encode_episodes
    from engine.world.bundle import load_bundle

    bundle = load_bundle(args.world)
    tok, dyn, stored = bundle.tokenizer, bundle.dynamics, bundle.spec.sampler
    w = bundle.spec.dynamics.context
    ds = Dataset.open(Path(args.data))
    if ds.manifest.scene != bundle.spec.scene:
        raise SkyloopError(f"{args.data} holds the {ds.manifest.scene!r} scene, the world was trained on {bundle.spec.scene!r}")
    entries = ds.manifest.episodes[: args.episodes] if args.first else ds.manifest.episodes[-args.episodes :]
    rng = np.random.default_rng(1)
    frames, keys = [], []
    for entry in entries:
        f, k = ds.load(entry)
        if len(f) < w + 2:
            continue
        for _ in range(args.per_episode):
            s = int(rng.integers(0, len(f) - w - 1))
            frames.append(f[s : s + w + 1])
            keys.append(k[s : s + w + 1])
    if not frames:
        raise SkyloopError(f"no episode in {args.data} is longer than the world's context of {w} frames")
    tokens = np.stack(encode_episodes(tok, zip(frames, keys), "cpu")).astype(np.float32)  # as training sees them
    frames, keys = np.stack(frames), np.stack(keys).astype(np.float32)
    n = len(frames)
    real = frames[:, w]
    copy = psnr(frames[:, w - 1], real)
    print(f"{n} windows of {len(entries)} {'first' if args.first else 'last'} episodes of {args.data}; context {w} real frames")
    recon = decode(tok, tokens[:, w], "cpu")
    print(f"{'tokenizer reconstruction (ceiling)':44s} {psnr(recon, real).mean():6.2f}")
    print(f"{'copy the last real frame (floor)':44s} {copy.mean():6.2f}")

    def predict_frames(cfg) -> np.ndarray:
        roll = torch_rollout(dyn, n, "cpu", cfg)
        roll.reset(tokens[:, :w], keys[:, :w], seed=0)
        return decode(tok, roll.predict(keys[:, w]), "cpu")

    def predict(cfg) -> np.ndarray:
        return psnr(predict_frames(cfg), real)

    mean_frames = predict_frames(replace(stored, steps=1, key_guidance=0.0, history_guidance=0.0))
    mean = psnr(mean_frames, real)
    print(f"{'mean estimate (1 step, no guidance)':44s} {mean.mean():6.2f}")
    print(f"{'stored sampler without key guidance':44s} {predict(replace(stored, key_guidance=0.0)).mean():6.2f}")
    print(f"{'stored sampler, as played':44s} {predict(stored).mean():6.2f}  ({stored.describe()})")
    print("by the key held on the predicted tick (windows, mean estimate, copy):")
    held = keys[:, w] > 0
    groups = [(name, held[:, j]) for j, name in enumerate(bundle.spec.keyset.names)] + [("no key", ~held.any(1))]
    for name, m in groups:
        if m.any():
            print(f"  {name:14s} {int(m.sum()):4d} {mean[m].mean():6.2f} {copy[m].mean():6.2f}")
    if args.bands > 0:
        print(f"by vertical band, left to right (PSNR of the band's pixels over the key's windows; {args.bands} bands):")
        for name, m in groups:
            if m.any():
                for label, guess in (("ceiling", recon), ("mean estimate", mean_frames), ("copy", frames[:, w - 1])):
                    row = band_psnr(guess[m], real[m], args.bands)
                    print(f"  {name:14s} {label:14s} " + " ".join(f"{v:6.2f}" for v in row))


def band_psnr(guess: np.ndarray, real: np.ndarray, bands: int) -> list[float]:
    """PSNR (0-255 scale, as `psnr`) of each of `bands` vertical bands, left to right, the squared error pooled over
    frames [B, H, W, C]."""
    err = ((guess.astype(np.float64) - real.astype(np.float64)) / 255.0) ** 2  # [B, H, W, C]
    cols = err.mean(axis=(0, 1, 3))  # [W]
    return [float(10 * np.log10(1.0 / max(c.mean(), 1e-12))) for c in np.array_split(cols, bands)]


if __name__ == "__main__":
    from engine.errors import SkyloopError

    try:
        main()
    except SkyloopError as exc:
        raise SystemExit(f"one_step_probe: {exc}") from None
