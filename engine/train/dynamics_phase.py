"""Phase 2: the dynamics model learns next-frame prediction on the dataset's latent tokens
(its loss: `Dynamics.training_loss`, two-stream teacher forcing; optionally self forcing on some
windows), with an EMA of its weights, optionally under a CPU-time budget; then the world file is written.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path

import numpy as np
import torch

from engine.dynamics.model import Dynamics, key_swap_matrix
from engine.dynamics.self_forcing import SelfForcing
from engine.errors import SkyloopError
from engine.tokenizer.model import Tokenizer
from engine.train.checkpoint import Checkpoint
from engine.train.context import RunContext, lr_at
from engine.train.evaluate import evaluate_dynamics
from engine.train.latents import WindowSampler, hold_still, load_or_encode_latents, noop_changes
from engine.train.optim import MuonAdam
from engine.train.write_world import write_bundle


class DynamicsPhase:
    name = "dynamics"
    checkpoint_at_start = True  # the tokenizer is done: a kill from here on does not redo it

    def __init__(self, ctx: RunContext, tokenizer: Tokenizer):
        self.ctx, self.tokenizer = ctx, tokenizer
        self.total = ctx.cfg.dynamics_steps
        self.budget = ctx.cfg.cpu_minutes * 60.0  # process CPU seconds (all threads); 0 = no budget, run every step
        self.wall_budget = ctx.cfg.wall_minutes * 60.0  # wall-clock seconds; 0 = no budget

    def skip(self, checkpoint: Checkpoint | None) -> None:
        return None  # always trains (a finished run resumed writes its world again)

    def build(self, checkpoint: Checkpoint | None) -> None:
        ctx, cfg, dist, dcfg = self.ctx, self.ctx.cfg, self.ctx.dist, self.ctx.preset.dynamics
        train_tokens, self.hold_tokens = load_or_encode_latents(ctx, self.tokenizer)
        self.windows = WindowSampler(train_tokens, [k for _, k in ctx.train_episodes], dcfg.context + 1)
        if dcfg.hold_still_p > 0:
            ticks, changed = noop_changes(train_tokens, [k for _, k in ctx.train_episodes])
            if ticks == 0 or changed:
                raise SkyloopError(
                    f"dynamics.hold_still_p={dcfg.hold_still_p:g} teaches that the game stands still when no key is held, but in this data "
                    + (f"{changed} of {ticks} no-key ticks changed the frame" if ticks else "no tick has no key held")
                    + "; leave it at 0 for this game"
                )
            ctx.say(f"dynamics: {dcfg.hold_still_p:.0%} of windows end held still (the data's {ticks} no-key ticks all stand still)")
        self.dynamics = self.trained = Dynamics(dcfg).to(dist.device)
        if ctx.init_from is not None and checkpoint is None:  # continue a world's weights with a fresh optimizer
            from engine.world.bundle import load_bundle

            world = load_bundle(ctx.init_from)
            state = world.dynamics.float().state_dict()
            if world.spec.dynamics.depth < dcfg.depth:  # --set dynamics.depth=N deeper than the world (continued_preset)
                new = self.dynamics.load_shallower(state)
                ctx.say(f"dynamics: starting from the weights of {ctx.init_from}, grown to {dcfg.depth} blocks (new, as identity: {new})")
            else:
                self.dynamics.load_state_dict(state)
                ctx.say(f"dynamics: starting from the weights of {ctx.init_from}")
        self.ema = copy.deepcopy(self.dynamics).eval() if cfg.ema > 0 else None
        self.ema_decay = cfg.ema
        self.model = dist.wrap(self.dynamics)
        if ctx.compile:
            ctx.say("dynamics: compiling the training step (a minute or two)")
            self.model = torch.compile(self.model)
        if cfg.optimizer == "muon":
            self.optimizer = MuonAdam(
                self.dynamics.optimizer_groups(cfg.weight_decay, muon=True), lr=cfg.dynamics_lr, betas=(0.9, 0.95), muon_scale=cfg.muon_scale
            )
        else:
            self.optimizer = torch.optim.AdamW(self.dynamics.optimizer_groups(cfg.weight_decay), lr=cfg.dynamics_lr, betas=(0.9, 0.95))
        self.rngs = {
            "numpy": np.random.default_rng([cfg.seed, dist.rank, 2]),  # window sampling ("numpy": its name in older checkpoints)
            "self_forcing": np.random.default_rng([cfg.seed, dist.rank, 3]),
            "hold_still": np.random.default_rng([cfg.seed, dist.rank, 4]),
        }
        draw = None
        if dcfg.rollout_p > 0 and dcfg.rollout_refresh > 0:  # a rollout buffer: real sequences of warm-up + rollout + target
            draw = WindowSampler(train_tokens, [k for _, k in ctx.train_episodes], dcfg.context + dcfg.rollout_frames + 1).sample
        self.self_forcing = SelfForcing(dcfg, ctx.preset.sampler, self.rngs["self_forcing"], draw)
        self.key_swap = None  # the keys' opposites: only the key-contrast term needs them (and a dataset's key names)
        if dcfg.key_contrast > 0:
            if ctx.dataset is None:
                raise SkyloopError(f"dynamics.key_contrast={dcfg.key_contrast:g} needs the dataset's key names (their opposites)")
            self.key_swap = key_swap_matrix(ctx.dataset.keyset).to(dist.device)
            if torch.equal(self.key_swap, torch.eye(len(self.key_swap), device=dist.device)):
                raise SkyloopError(
                    f"dynamics.key_contrast={dcfg.key_contrast:g} grades predictions under the opposite keys, but none of this game's keys "
                    f"{list(ctx.dataset.keyset.names)} has an opposite; leave it at 0 for this game"
                )
        self.modules = {"tokenizer": self.tokenizer, "dynamics": self.dynamics} | ({"ema": self.ema} if self.ema is not None else {})
        self.local = dist.local_batch(cfg.dynamics_batch)
        self.frames_per_step = self.local * (dcfg.context + 1)
        self.cpu_before = 0.0  # process CPU seconds of this phase in earlier sessions (resume)
        self.cpu_start = time.process_time()
        self.wall_before = 0.0  # wall-clock seconds of this phase in earlier sessions (resume)
        self.wall_start = time.perf_counter()
        n_params = sum(p.numel() for p in self.dynamics.parameters())
        ctx.say(
            f"dynamics: {n_params / 1e6:.2f} M parameters, {dcfg.tokens_per_frame} tokens per frame, context {dcfg.context} frames"
            + (f", self forcing on {dcfg.rollout_p:.0%} of windows ({self.self_forcing.describe()})" if dcfg.rollout_p > 0 else "")
            + (f", key contrast {dcfg.key_contrast:g}" if dcfg.key_contrast > 0 else "")
            + (f"; budget {cfg.budget_text()}" if cfg.budget_text() else "")
        )

    def cpu_used(self) -> float:
        return self.cpu_before + time.process_time() - self.cpu_start

    def wall_used(self) -> float:
        return self.wall_before + time.perf_counter() - self.wall_start

    def budget_used(self) -> float:
        """Share of the tighter of the CPU and wall-clock budgets already spent (0 when there is none)."""
        return max(self.cpu_used() / self.budget if self.budget else 0.0, self.wall_used() / self.wall_budget if self.wall_budget else 0.0)

    def lr(self, step: int) -> float:
        cfg = self.ctx.cfg
        progress = max(step / self.total, self.budget_used())  # the schedule follows steps or the budget, whichever is further along
        return lr_at(step, progress, cfg.dynamics_lr, cfg.warmup)

    def loss(self, step: int) -> torch.Tensor:
        device = self.ctx.dist.device
        tokens, keys = self.windows.sample(self.rngs["numpy"], self.local)
        if self.ctx.preset.dynamics.hold_still_p > 0:
            hold_still(tokens, keys, self.rngs["hold_still"], self.ctx.preset.dynamics.hold_still_p)
        window_tokens = torch.from_numpy(tokens).to(device)  # [B, W+1, N, D]
        window_keys = torch.from_numpy(keys).to(device)  # [B, W+1, K]
        # no gradient, outside autocast; a rollout buffer swaps the rolled-out windows for its own
        window_tokens, window_keys, context_clean = self.self_forcing.batch(self.dynamics, window_tokens, window_keys)
        with self.ctx.autocast():
            return self.dynamics.training_loss(window_tokens, window_keys, context_clean=context_clean, forward=self.model, key_swap=self.key_swap)

    def evaluate(self, step: int) -> tuple[dict, str]:
        m = evaluate_dynamics(self.ema or self.dynamics, self.tokenizer, self.ctx, self.hold_tokens, step, self.ctx.preset.sampler)
        return m, (
            f"dynamics step {step}: 1-step PSNR {m['psnr_1step']:.2f} dB (tokenizer ceiling {m['psnr_tokenizer']:.2f}), "
            f"autoregressive PSNR@8 {m['psnr_ar'].get('8', float('nan')):.2f} dB"
        )

    def out_of_budget(self) -> bool:
        # Under DDP every rank must stop at the same step: any rank out of budget stops them all.
        has_budget = self.budget > 0 or self.wall_budget > 0
        return has_budget and self.ctx.dist.mean(float(self.budget_used() >= 1.0)) > 0

    def state(self) -> dict:
        return {"cpu_seconds": self.cpu_used(), "wall_seconds": self.wall_used()}

    def restore(self, checkpoint: Checkpoint) -> None:
        self.cpu_before = float(checkpoint.extra.get("cpu_seconds", 0.0))
        self.wall_before = float(checkpoint.extra.get("wall_seconds", 0.0))

    def finish(self, steps: int, metrics: dict, save) -> Path | None:
        """Writes the world file (rank 0), with the EMA weights when there are some."""
        ctx, dist = self.ctx, self.ctx.dist
        ctx.cpu_seconds = self.cpu_used()
        if not dist.main:
            dist.barrier()
            return None
        save(steps, "done")
        if not metrics:  # resumed after the last step: evaluate what gets written
            metrics, _ = self.evaluate(steps)
        path = write_bundle(ctx, self.tokenizer, self.ema or self.dynamics, steps, metrics)
        dist.barrier()
        return path
