"""Phase 1: the tokenizer learns to reconstruct frames (MSE + a little L1: weight-free losses)."""
from __future__ import annotations

import time

import numpy as np
import torch

from engine.bench.metrics import psnr
from engine.tokenizer.model import Tokenizer, unit_to_frames
from engine.train.checkpoint import Checkpoint, flatten_optimizer, restore_optimizer, restore_rng, rng_state
from engine.train.context import RunContext, lr_at


def frame_pool(episodes) -> np.ndarray:
    return np.concatenate([f for f, _ in episodes])


@torch.no_grad()
def tokenizer_psnr(tokenizer: Tokenizer, frames: np.ndarray, device, batch: int = 128) -> float:
    """Mean reconstruction PSNR (dB) through the standardised token path, as the world uses it: frames decoded to
    uint8 and scored by the benchmarks' own `psnr`, so this is the tokenizer ceiling a benchmark reports."""
    tokenizer.eval()
    scores = []
    for i in range(0, len(frames), batch):
        x = torch.from_numpy(frames[i:i + batch]).to(device)
        scores.append(psnr(unit_to_frames(tokenizer.decode(tokenizer.encode(x))).cpu().numpy(), frames[i:i + batch]))
    tokenizer.train()
    return float(np.concatenate(scores).mean())


def _checkpoint_tokenizer(path, device) -> Tokenizer:
    """The trained tokenizer inside a run's checkpoint (one saved after the tokenizer phase)."""
    from engine.tokenizer.model import TokenizerConfig
    from engine.types import SkyloopError

    checkpoint = Checkpoint.load(path)
    if not checkpoint.past("tokenizer"):
        raise SkyloopError(f"{path}: this run's tokenizer is still training (step {checkpoint.step}); resume it, or use a later checkpoint")
    tokenizer = Tokenizer(TokenizerConfig.from_json(checkpoint.preset["tokenizer"]))
    tokenizer.load_state_dict(checkpoint.module("tokenizer"))
    return tokenizer.to(device).eval()


def reuse_tokenizer(ctx: RunContext) -> Tokenizer:
    """The tokenizer of another world or run (--tokenizer-from): same frames, no tokenizer phase."""
    from dataclasses import replace

    from safetensors import safe_open

    from engine.types import SkyloopError
    from engine.world.bundle import load_tokenizer

    with safe_open(str(ctx.tokenizer_from), framework="pt") as fh:
        is_checkpoint = "checkpoint" in (fh.metadata() or {})
    if is_checkpoint:
        tokenizer = _checkpoint_tokenizer(ctx.tokenizer_from, ctx.dist.device)
    else:
        _, tokenizer = load_tokenizer(ctx.tokenizer_from, device=ctx.dist.device)
    tcfg = tokenizer.cfg
    if tuple(tcfg.frame_size) != tuple(ctx.dataset.frame_size):
        raise SkyloopError(f"{ctx.tokenizer_from}: its tokenizer takes {tcfg.frame_size[0]}x{tcfg.frame_size[1]} frames, "
                           f"the dataset has {ctx.dataset.frame_size[0]}x{ctx.dataset.frame_size[1]}")
    ctx.preset = replace(ctx.preset, tokenizer=tcfg,
                         dynamics=replace(ctx.preset.dynamics, token_dim=tcfg.token_dim, token_grid=tcfg.token_grid))
    eval_frames = frame_pool(ctx.holdout_episodes)
    ctx.tokenizer_psnr = tokenizer_psnr(tokenizer, eval_frames[:: max(1, len(eval_frames) // 256)], ctx.dist.device)
    ctx.say(f"tokenizer: taken from {ctx.tokenizer_from}, held-out PSNR {ctx.tokenizer_psnr:.2f} dB on this data")
    return tokenizer


def train_tokenizer(ctx: RunContext, state):
    """Returns (trained tokenizer with latent statistics, checkpoint state to hand to the next phase or None)."""
    cfg, dist = ctx.cfg, ctx.dist
    if ctx.tokenizer_from is not None and (state is None or not state.past("tokenizer")):
        return reuse_tokenizer(ctx), None
    tokenizer = Tokenizer(ctx.preset.tokenizer).to(dist.device)
    rng = np.random.default_rng([cfg.seed, dist.rank, 1])
    if state is not None and state.past("tokenizer"):
        tokenizer.load_state_dict(state.module("tokenizer"))
        tokenizer.eval()
        eval_frames = frame_pool(ctx.holdout_episodes)
        ctx.tokenizer_psnr = tokenizer_psnr(tokenizer, eval_frames[:: max(1, len(eval_frames) // 256)], dist.device)
        ctx.say(f"tokenizer: done in an earlier run (checkpoint at {state.phase} step {state.step}), "
                f"held-out PSNR {ctx.tokenizer_psnr:.2f} dB")
        return tokenizer, state
    model = dist.wrap(tokenizer)
    opt = torch.optim.Adam(tokenizer.parameters(), lr=cfg.tokenizer_lr)
    start = 0
    if state is not None:
        tokenizer.load_state_dict(state.module("tokenizer"))
        restore_optimizer(opt, state.tensors, "opt", state.extra["opt_groups"])
        restore_rng(state.tensors, state.extra["rng"], rng)
        start = state.step
        ctx.say(f"tokenizer: resuming at step {start}")
    train_frames = frame_pool(ctx.train_episodes)
    eval_frames = frame_pool(ctx.holdout_episodes)
    eval_frames = eval_frames[np.linspace(0, len(eval_frames) - 1, min(256, len(eval_frames))).astype(int)]
    local = dist.local_batch(cfg.tokenizer_batch)
    total = cfg.tokenizer_steps
    from tqdm import tqdm

    bar = tqdm(total=total, initial=start, desc="tokenizer", unit="step", disable=not ctx.progress, mininterval=1.0, dynamic_ncols=True)
    tick, seen = time.perf_counter(), 0

    def save(step: int) -> None:
        if not dist.main:
            return
        opt_tensors, groups = flatten_optimizer(opt, "opt")
        rng_t, rng_m = rng_state(rng)
        tensors = {f"tokenizer.{k}": v for k, v in tokenizer.state_dict().items()} | opt_tensors | rng_t
        Checkpoint.of(ctx, "tokenizer", step, tensors, opt_groups=groups, rng=rng_m).save(ctx.run_dir / "checkpoint.safetensors")

    for step in range(start, total):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, (step - cfg.warmup) / max(1, total - cfg.warmup), cfg.tokenizer_lr, cfg.warmup)
        batch = torch.from_numpy(train_frames[rng.integers(0, len(train_frames), local)]).to(dist.device)
        with ctx.autocast():
            loss = tokenizer.loss(batch, forward=model)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(tokenizer.parameters(), cfg.grad_clip)
        opt.step()
        seen += local * dist.world
        if (step + 1) % 25 == 0 or step + 1 == total:
            now = time.perf_counter()
            rate = seen / (now - tick)
            tick, seen = now, 0
            loss_v = dist.mean(loss.item())
            bar.set_postfix(loss=f"{loss_v:.4f}", frames_s=f"{rate:.0f}")
            ctx.log({"phase": "tokenizer", "step": step + 1, "loss": loss_v, "lr": opt.param_groups[0]["lr"], "frames_per_s": rate})
        if dist.main and ((step + 1) % cfg.eval_every == 0 or step + 1 == total):
            score = tokenizer_psnr(tokenizer, eval_frames, dist.device)
            ctx.log({"phase": "tokenizer", "step": step + 1, "eval": {"psnr_heldout": score}})
            bar.write(f"tokenizer step {step + 1}: held-out reconstruction PSNR {score:.2f} dB")
        if (step + 1) % cfg.checkpoint_every == 0 and step + 1 < total:
            save(step + 1)
        bar.update(1)
    bar.close()
    # Standardise latents with statistics of the training frames (same sample on every rank).
    sample = train_frames[np.random.default_rng(cfg.seed).choice(len(train_frames), min(4096, len(train_frames)), replace=False)]
    tokenizer.eval()
    tokenizer.fit_latent_stats(torch.from_numpy(sample).to(dist.device))
    score = tokenizer_psnr(tokenizer, eval_frames, dist.device)
    ctx.say(f"tokenizer: held-out reconstruction PSNR {score:.2f} dB after {total} steps")
    ctx.log({"phase": "tokenizer", "step": total, "eval": {"psnr_heldout_final": score}})
    ctx.tokenizer_psnr = score
    return tokenizer, None
