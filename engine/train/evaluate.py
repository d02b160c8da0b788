"""Evaluation during training: the tokenizer's held-out reconstruction PSNR; the dynamics' held-out
1-step and autoregressive PSNR, and a PNG strip.

Uses the same cached rollout the world session uses, so what it reports is
what a player would get from the world file at that step.
"""

from __future__ import annotations

import numpy as np
import torch

from engine.bench.metrics import psnr
from engine.dynamics.cache import torch_rollout
from engine.dynamics.sampler import FlowSampler, SamplerConfig
from engine.tokenizer.model import Tokenizer, unit_to_frames


@torch.no_grad()
def tokenizer_psnr(tokenizer: Tokenizer, frames: np.ndarray, device, batch: int = 128) -> float:
    """Mean reconstruction PSNR (dB) through the standardised token path, as the world uses it: frames decoded to
    uint8 and scored by the benchmarks' own `psnr`, so this is the tokenizer ceiling a benchmark reports."""
    tokenizer.eval()
    scores = []
    for i in range(0, len(frames), batch):
        x = torch.from_numpy(frames[i : i + batch]).to(device)
        scores.append(psnr(unit_to_frames(tokenizer.decode(tokenizer.encode(x))).cpu().numpy(), frames[i : i + batch]))
    tokenizer.train()
    return float(np.concatenate(scores).mean())


@torch.no_grad()
def decode(tokenizer: Tokenizer, tokens: np.ndarray, device) -> np.ndarray:
    return unit_to_frames(tokenizer.decode(torch.from_numpy(np.asarray(tokens, np.float32)).to(device))).cpu().numpy()


@torch.no_grad()
def evaluate_dynamics(
    model,
    tokenizer: Tokenizer,
    ctx,
    hold_tokens: list[np.ndarray],
    step: int,
    sampler_cfg: SamplerConfig,
    windows: int = 32,
    ar_frames: int = 32,
    ar_starts: int = 4,
) -> dict:
    from PIL import Image

    model.eval()
    device = ctx.dist.device
    cfg = model.cfg
    w = cfg.context
    sampler = FlowSampler(sampler_cfg)
    episodes = [(t, f, k) for t, (f, k) in zip(hold_tokens, ctx.holdout_episodes) if len(t) > w]
    if not episodes:
        episodes = [(t, f, k) for t, (f, k) in zip(hold_tokens, ctx.holdout_episodes)]
    rng = np.random.default_rng(1234)  # the same windows at every evaluation
    picks = [(e, int(rng.integers(0, len(episodes[e][0]) - min(w, len(episodes[e][0]) - 1)))) for e in rng.integers(0, len(episodes), windows)]
    # Teacher forcing: real context (up to W frames), predict the next frame.
    ctx_len = min(w, min(len(episodes[e][0]) - s - 1 for e, s in picks))
    toks = np.stack([episodes[e][0][s : s + ctx_len + 1] for e, s in picks]).astype(np.float32)
    keys = np.stack([episodes[e][2][s : s + ctx_len + 1] for e, s in picks]).astype(np.float32)
    real = np.stack([episodes[e][1][s + ctx_len] for e, s in picks])
    roll = torch_rollout(model, len(picks), device, sampler)
    roll.reset(toks[:, :ctx_len], keys[:, :ctx_len], seed=0)
    pred = decode(tokenizer, roll.predict(keys[:, ctx_len]), device)
    recon = decode(tokenizer, toks[:, ctx_len], device)
    metrics = {
        "step": step,
        "psnr_1step": float(psnr(pred, real).mean()),
        "psnr_tokenizer": float(psnr(recon, real).mean()),
        "psnr_repeat_last": float(psnr(np.stack([episodes[e][1][s + ctx_len - 1] for e, s in picks]), real).mean()),
    }
    # Autoregressive: start from one real frame, follow the episode's keys.
    starts = [(i % len(episodes)) for i in range(ar_starts)]
    n = min(ar_frames, min(len(episodes[e][0]) for e in starts) - 1)
    ar = torch_rollout(model, len(starts), device, sampler)
    ar.reset(np.stack([episodes[e][0][:1] for e in starts]).astype(np.float32), seed=0)
    generated = []
    for t in range(1, n + 1):
        generated.append(decode(tokenizer, ar.step(np.stack([episodes[e][2][t] for e in starts]).astype(np.float32)), device))
    generated = np.stack(generated, 1)  # [S, n, H, W, 3]
    truth = np.stack([episodes[e][1][1 : n + 1] for e in starts])
    curve = psnr(generated, truth).mean(0)
    metrics["psnr_ar"] = {str(k): float(curve[k - 1]) for k in (1, 4, 8, 16, 32) if k <= n}
    # Strip: real row, autoregressive row (first start), teacher-forced predictions vs their truth.
    cols = min(16, n)
    gap = np.full((real.shape[1], 1, 3), 255, np.uint8)

    def row(frames):
        return np.concatenate([x for f in frames for x in (f, gap)], axis=1)

    k = min(cols, len(real))
    strip = np.concatenate(
        [
            row(truth[0, :cols]),
            row(generated[0, :cols]),
            np.pad(row(real[:k]), ((0, 0), (0, max(0, (cols - k) * (real.shape[2] + 1))), (0, 0))),
            np.pad(row(pred[:k]), ((0, 0), (0, max(0, (cols - k) * (real.shape[2] + 1))), (0, 0))),
        ],
        axis=0,
    )
    path = ctx.run_dir / f"eval_{step:07d}.png"
    Image.fromarray(strip).resize((strip.shape[1] * 2, strip.shape[0] * 2), Image.NEAREST).save(path)
    metrics["strip"] = str(path)
    model.train()
    return metrics
