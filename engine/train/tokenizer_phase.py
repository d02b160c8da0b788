"""Phase 1: the tokenizer learns to reconstruct frames (its loss: `Tokenizer.loss`), then its latents are standardised.

Or it is taken ready-made: from another world or run (--tokenizer-from), or from this run's checkpoint
when an earlier session finished it.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from engine.tokenizer.model import Tokenizer
from engine.train.checkpoint import Checkpoint
from engine.train.context import RunContext, lr_at
from engine.train.evaluate import tokenizer_psnr


def frame_pool(episodes) -> np.ndarray:
    return np.concatenate([f for f, _ in episodes])


class TokenizerPhase:
    name = "tokenizer"
    ema = None  # the tokenizer is saved as trained
    ema_decay = 0.0
    checkpoint_at_start = False  # nothing before it to protect

    def __init__(self, ctx: RunContext, previous=None):  # the first phase: nothing comes before it
        self.ctx = ctx
        self.total = ctx.cfg.tokenizer_steps

    # ---- a tokenizer that needs no training ------------------------------------
    def skip(self, checkpoint: Checkpoint | None) -> Tokenizer | None:
        ctx = self.ctx
        if ctx.tokenizer_from is not None and (checkpoint is None or not checkpoint.past(self.name)):
            return reuse_tokenizer(ctx)
        if checkpoint is None or not checkpoint.past(self.name):
            return None
        tokenizer = Tokenizer(ctx.preset.tokenizer).to(ctx.dist.device)
        tokenizer.load_state_dict(checkpoint.module("tokenizer"))
        tokenizer.eval()
        eval_frames = frame_pool(ctx.holdout_episodes)
        ctx.tokenizer_psnr = tokenizer_psnr(tokenizer, eval_frames[:: max(1, len(eval_frames) // 256)], ctx.dist.device)
        ctx.say(f"tokenizer: done in an earlier run (checkpoint at {checkpoint.phase} step {checkpoint.step}), held-out PSNR {ctx.tokenizer_psnr:.2f} dB")
        return tokenizer

    # ---- training ------------------------------------------------------------------
    def build(self, checkpoint: Checkpoint | None) -> None:
        ctx, cfg, dist = self.ctx, self.ctx.cfg, self.ctx.dist
        self.tokenizer = self.trained = Tokenizer(ctx.preset.tokenizer).to(dist.device)
        self.rngs = {"numpy": np.random.default_rng([cfg.seed, dist.rank, 1])}  # batch sampling ("numpy": its name in older checkpoints)
        self.model = dist.wrap(self.tokenizer)
        self.optimizer = torch.optim.Adam(self.tokenizer.parameters(), lr=cfg.tokenizer_lr)
        self.modules = {"tokenizer": self.tokenizer}
        self.train_frames = frame_pool(ctx.train_episodes)
        eval_frames = frame_pool(ctx.holdout_episodes)
        self.eval_frames = eval_frames[np.linspace(0, len(eval_frames) - 1, min(256, len(eval_frames))).astype(int)]
        self.local = dist.local_batch(cfg.tokenizer_batch)
        self.frames_per_step = self.local

    def lr(self, step: int) -> float:
        cfg = self.ctx.cfg
        return lr_at(step, (step - cfg.warmup) / max(1, self.total - cfg.warmup), cfg.tokenizer_lr, cfg.warmup)

    def loss(self, step: int) -> torch.Tensor:
        picks = self.rngs["numpy"].integers(0, len(self.train_frames), self.local)
        batch = torch.from_numpy(self.train_frames[picks]).to(self.ctx.dist.device)
        with self.ctx.autocast():
            return self.tokenizer.loss(batch, forward=self.model)

    def evaluate(self, step: int) -> tuple[dict, str]:
        score = tokenizer_psnr(self.tokenizer, self.eval_frames, self.ctx.dist.device)
        return {"psnr_heldout": score}, f"tokenizer step {step}: held-out reconstruction PSNR {score:.2f} dB"

    def out_of_budget(self) -> bool:
        return False  # the CPU budget is the dynamics phase's

    def budget_used(self) -> float:
        return 0.0

    def state(self) -> dict:
        return {}

    def restore(self, checkpoint: Checkpoint) -> None:
        pass

    def finish(self, steps: int, metrics: dict, save) -> Tokenizer:
        """Standardises the latents with statistics of the training frames (the same sample on every rank)."""
        ctx, cfg = self.ctx, self.ctx.cfg
        frames = self.train_frames
        sample = frames[np.random.default_rng(cfg.seed).choice(len(frames), min(4096, len(frames)), replace=False)]
        self.tokenizer.eval()
        self.tokenizer.fit_latent_stats(torch.from_numpy(sample).to(ctx.dist.device))
        score = tokenizer_psnr(self.tokenizer, self.eval_frames, ctx.dist.device)
        ctx.say(f"tokenizer: held-out reconstruction PSNR {score:.2f} dB after {steps} steps")
        ctx.log({"phase": self.name, "step": steps, "eval": {"psnr_heldout_final": score}})
        ctx.tokenizer_psnr = score
        return self.tokenizer


def _checkpoint_tokenizer(path, device) -> Tokenizer:
    """The trained tokenizer inside a run's checkpoint (one saved after the tokenizer phase)."""
    from engine.errors import SkyloopError

    checkpoint = Checkpoint.load(path)
    if not checkpoint.past("tokenizer"):
        raise SkyloopError(f"{path}: this run's tokenizer is still training (step {checkpoint.step}); resume it, or use a later checkpoint")
    tokenizer = Tokenizer(checkpoint.preset.tokenizer)
    tokenizer.load_state_dict(checkpoint.module("tokenizer"))
    return tokenizer.to(device).eval()


def asked_patch(preset) -> int | None:
    """The token patch a run asked for with --set tokenizer.patch=N (a value other than its preset's default), else None."""
    from engine.train.config import get_preset

    patch = preset.tokenizer.patch
    return patch if patch != get_preset(preset.name).tokenizer.patch else None


def reuse_tokenizer(ctx: RunContext) -> Tokenizer:
    """The tokenizer of another world or run (--tokenizer-from): same frames, no tokenizer phase."""
    from safetensors import safe_open

    from engine.errors import SkyloopError
    from engine.world.bundle import load_tokenizer

    with safe_open(str(ctx.tokenizer_from), framework="pt") as fh:
        is_checkpoint = "checkpoint" in (fh.metadata() or {})
    if is_checkpoint:
        tokenizer = _checkpoint_tokenizer(ctx.tokenizer_from, ctx.dist.device)
    else:
        _, tokenizer = load_tokenizer(ctx.tokenizer_from, device=ctx.dist.device)
    tcfg = tokenizer.cfg
    if tuple(tcfg.frame_size) != tuple(ctx.dataset.frame_size):
        raise SkyloopError(
            f"{ctx.tokenizer_from}: its tokenizer takes {tcfg.frame_size[0]}x{tcfg.frame_size[1]} frames, "
            f"the dataset has {ctx.dataset.frame_size[0]}x{ctx.dataset.frame_size[1]}"
        )
    patch = asked_patch(ctx.preset)
    if patch is not None and patch != tcfg.patch:
        # Grouping latent cells into tokens is weight-free: the same encoder and decoder, a finer (or coarser) token
        # grid for new dynamics (a turn's few-pixel shift then moves smaller tokens instead of re-mixing large ones).
        h, w = tcfg.grid
        if h % patch or w % patch:
            raise SkyloopError(f"tokenizer.patch={patch} does not divide {ctx.tokenizer_from}'s {h}x{w} latent grid")
        tcfg = replace(tcfg, patch=patch)
        tokenizer.cfg = tcfg
        ctx.say(f"tokenizer: tokens of {patch}x{patch} latent cells: {tcfg.tokens_per_frame} tokens of {tcfg.token_dim} per frame")
    ctx.preset = replace(ctx.preset, tokenizer=tcfg, dynamics=replace(ctx.preset.dynamics, token_dim=tcfg.token_dim, token_grid=tcfg.token_grid))
    eval_frames = frame_pool(ctx.holdout_episodes)
    ctx.tokenizer_psnr = tokenizer_psnr(tokenizer, eval_frames[:: max(1, len(eval_frames) // 256)], ctx.dist.device)
    ctx.say(f"tokenizer: taken from {ctx.tokenizer_from}, held-out PSNR {ctx.tokenizer_psnr:.2f} dB on this data")
    return tokenizer
