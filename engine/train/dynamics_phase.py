"""Phase 2: the dataset is encoded once; the dynamics model learns next-frame prediction
with flow matching on the targets and noise-augmented context (two-stream teacher forcing)."""
from __future__ import annotations

import copy
import hashlib
import time
from pathlib import Path

import numpy as np
import torch

from engine.dynamics.model import Dynamics
from engine.dynamics.self_forcing import SelfForcing
from engine.tokenizer.model import Tokenizer
from engine.train.checkpoint import Checkpoint, flatten_optimizer, restore_optimizer, restore_rng, rng_state
from engine.train.context import RunContext, lr_at
from engine.train.evaluate import evaluate_dynamics


def tokenizer_fingerprint(tokenizer: Tokenizer) -> str:
    digest = hashlib.sha256()
    for name, value in sorted(tokenizer.state_dict().items()):
        digest.update(name.encode())
        digest.update(value.detach().cpu().float().numpy().tobytes())
    return digest.hexdigest()


@torch.no_grad()
def encode_episodes(tokenizer: Tokenizer, episodes, device, batch: int = 256) -> list[np.ndarray]:
    tokenizer.eval()
    out = []
    for frames, _ in episodes:
        parts = [tokenizer.encode(torch.from_numpy(frames[i:i + batch]).to(device)).cpu() for i in range(0, len(frames), batch)]
        out.append(torch.cat(parts).to(torch.float16).numpy())
    return out


def load_or_encode_latents(ctx: RunContext, tokenizer: Tokenizer) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Token arrays [T, N, D] (float16) for the train and held-out episodes, cached in the run folder."""
    from safetensors import safe_open
    from safetensors.numpy import save_file

    path = ctx.run_dir / "latents.safetensors"
    fingerprint = tokenizer_fingerprint(tokenizer)
    n_train, n_hold = len(ctx.train_episodes), len(ctx.holdout_episodes)

    def read():
        with safe_open(str(path), framework="np") as fh:
            meta = fh.metadata() or {}
            if meta.get("tokenizer") != fingerprint or meta.get("episodes") != f"{n_train}+{n_hold}":
                return None
            return [fh.get_tensor(f"train.{i}") for i in range(n_train)], [fh.get_tensor(f"holdout.{i}") for i in range(n_hold)]

    cached = read() if path.exists() else None
    if cached is None:
        if ctx.dist.main:
            start = time.perf_counter()
            train = encode_episodes(tokenizer, ctx.train_episodes, ctx.dist.device)
            hold = encode_episodes(tokenizer, ctx.holdout_episodes, ctx.dist.device)
            tensors = {f"train.{i}": t for i, t in enumerate(train)} | {f"holdout.{i}": t for i, t in enumerate(hold)}
            tmp = path.with_name(path.name + ".tmp")
            save_file(tensors, str(tmp), metadata={"tokenizer": fingerprint, "episodes": f"{n_train}+{n_hold}"})
            tmp.replace(path)
            frames = sum(len(t) for t in train) + sum(len(t) for t in hold)
            ctx.say(f"encoded {frames} frames to latent tokens in {time.perf_counter() - start:.0f} s ({path})")
        ctx.dist.barrier()
        cached = read()
    return cached


class WindowSampler:
    """Uniform random windows of `length` consecutive frames over all episodes."""

    def __init__(self, tokens: list[np.ndarray], keys: list[np.ndarray], length: int):
        self.tokens, self.keys, self.length = tokens, keys, length
        counts = np.array([max(0, len(t) - length + 1) for t in tokens])
        if counts.sum() == 0:
            raise ValueError(f"no episode is long enough for windows of {length} frames")
        self.cum = np.cumsum(counts)

    def sample(self, rng: np.random.Generator, batch: int) -> tuple[np.ndarray, np.ndarray]:
        flat = rng.integers(0, self.cum[-1], batch)
        ep = np.searchsorted(self.cum, flat, side="right")
        start = flat - np.concatenate([[0], self.cum[:-1]])[ep]
        toks = np.stack([self.tokens[e][s:s + self.length] for e, s in zip(ep, start)]).astype(np.float32)
        keys = np.stack([self.keys[e][s:s + self.length] for e, s in zip(ep, start)]).astype(np.float32)
        return toks, keys


def train_dynamics(ctx: RunContext, tokenizer: Tokenizer, state) -> Path | None:
    cfg, dist, dcfg = ctx.cfg, ctx.dist, ctx.preset.dynamics
    train_tokens, hold_tokens = load_or_encode_latents(ctx, tokenizer)
    train_keys = [k for _, k in ctx.train_episodes]
    sampler = WindowSampler(train_tokens, train_keys, dcfg.context + 1)
    dynamics = Dynamics(dcfg).to(dist.device)
    if ctx.init_from is not None and state is None:  # continue a world's weights with a fresh optimizer
        from engine.world.bundle import load_bundle

        dynamics.load_state_dict(load_bundle(ctx.init_from).dynamics.float().state_dict())
        ctx.say(f"dynamics: starting from the weights of {ctx.init_from}")
    ema = copy.deepcopy(dynamics).eval() if cfg.ema > 0 else None
    model = dist.wrap(dynamics)
    if ctx.compile:
        ctx.say("dynamics: compiling the training step (a minute or two)")
        model = torch.compile(model)
    opt = torch.optim.AdamW(dynamics.optimizer_groups(cfg.weight_decay), lr=cfg.dynamics_lr, betas=(0.9, 0.95))
    rng = np.random.default_rng([cfg.seed, dist.rank, 2])
    start = 0
    cpu_before = 0.0  # process CPU seconds of this phase in earlier runs (resume)
    if state is not None:
        dynamics.load_state_dict(state.module("dynamics"))
        if ema is not None:
            ema.load_state_dict(state.module("ema"))
        restore_optimizer(opt, state.tensors, "opt", state.extra["opt_groups"])
        restore_rng(state.tensors, state.extra["rng"], rng)
        start = state.step
        cpu_before = float(state.extra.get("cpu_seconds", 0.0))
        ctx.say(f"dynamics: resuming at step {start}")
    n_params = sum(p.numel() for p in dynamics.parameters())
    ctx.say(f"dynamics: {n_params / 1e6:.2f} M parameters, {dcfg.tokens_per_frame} tokens per frame, context {dcfg.context} frames"
            + (f", self forcing on {dcfg.rollout_p:.0%} of windows (up to {dcfg.rollout_frames} generated context frames)" if dcfg.rollout_p > 0 else "")
            + (f"; budget {cfg.cpu_minutes:g} CPU-minutes" if cfg.cpu_minutes > 0 else ""))
    total = cfg.dynamics_steps
    budget = cfg.cpu_minutes * 60.0  # process CPU seconds (all threads); 0 = no budget, run every step
    cpu_start = time.process_time()

    def cpu_used() -> float:
        return cpu_before + time.process_time() - cpu_start
    local = dist.local_batch(cfg.dynamics_batch)
    w = dcfg.context
    from tqdm import tqdm

    bar = tqdm(total=total, initial=start, desc="dynamics", unit="step", disable=not ctx.progress, mininterval=1.0, dynamic_ncols=True)
    tick, seen = time.perf_counter(), 0
    metrics: dict = {}

    def save(step: int, phase: str = "dynamics") -> None:
        if not dist.main:
            return
        opt_tensors, groups = flatten_optimizer(opt, "opt")
        rng_t, rng_m = rng_state(rng)
        tensors = ({f"tokenizer.{k}": v for k, v in tokenizer.state_dict().items()}
                   | {f"dynamics.{k}": v for k, v in dynamics.state_dict().items()}
                   | ({f"ema.{k}": v for k, v in ema.state_dict().items()} if ema is not None else {})
                   | opt_tensors | rng_t)
        Checkpoint.of(ctx, phase, step, tensors, opt_groups=groups, rng=rng_m, cpu_seconds=cpu_used()).save(ctx.run_dir / "checkpoint.safetensors")

    if start == 0 and dist.main:
        save(0)  # the tokenizer is done: a kill from here on does not redo it
    self_forcing = SelfForcing(dcfg, ctx.preset.sampler, np.random.default_rng([cfg.seed, dist.rank, 3]))
    for step in range(start, total):
        progress = max(step / total, cpu_used() / budget if budget else 0.0)  # the schedule follows steps or CPU time
        lr = lr_at(step, progress, cfg.dynamics_lr, cfg.warmup)
        for group in opt.param_groups:
            group["lr"] = lr
        toks, keys = sampler.sample(rng, local)
        x = torch.from_numpy(toks).to(dist.device)  # [B, W+1, N, D]
        k = torch.from_numpy(keys).to(dist.device)
        b = x.shape[0]
        context_clean = self_forcing.context(dynamics, x, k)  # self forcing: some windows' latest context frames are the model's own
        with ctx.autocast():
            loss = dynamics.training_loss(x, k, context_clean=context_clean, forward=model)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(dynamics.parameters(), cfg.grad_clip)
        opt.step()
        if ema is not None:  # EMA with warm-up: early on the average follows the weights closely
            decay = min(cfg.ema, (1 + step) / (10 + step))
            with torch.no_grad():
                torch._foreach_lerp_(list(ema.parameters()), list(dynamics.parameters()), 1 - decay)
        seen += b * dist.world
        if (step + 1) % 25 == 0 or step + 1 == total:
            now = time.perf_counter()
            rate = seen * (w + 1) / (now - tick)  # frames per second through the model
            tick, seen = now, 0
            loss_v = dist.mean(loss.item())
            bar.set_postfix(loss=f"{loss_v:.4f}", frames_s=f"{rate:.0f}")
            ctx.log({"phase": "dynamics", "step": step + 1, "loss": loss_v, "lr": lr, "frames_per_s": rate})
        if dist.main and ((step + 1) % cfg.eval_every == 0 or step + 1 == total):
            metrics = evaluate_dynamics(ema or dynamics, tokenizer, ctx, hold_tokens, step + 1, ctx.preset.sampler)
            ctx.log({"phase": "dynamics", "step": step + 1, "eval": metrics})
            bar.write(f"dynamics step {step + 1}: 1-step PSNR {metrics['psnr_1step']:.2f} dB (tokenizer ceiling "
                      f"{metrics['psnr_tokenizer']:.2f}), autoregressive PSNR@8 {metrics['psnr_ar'].get('8', float('nan')):.2f} dB")
        # Under DDP every rank must stop at the same step: any rank out of budget stops them all.
        out_of_budget = budget > 0 and dist.mean(float(cpu_used() >= budget)) > 0
        if out_of_budget and step + 1 < total:
            ctx.say(f"\ndynamics: CPU budget of {cfg.cpu_minutes:g} minutes used up at step {step + 1}")
            total = step + 1
            if dist.main:
                metrics = evaluate_dynamics(ema or dynamics, tokenizer, ctx, hold_tokens, total, ctx.preset.sampler)
                ctx.log({"phase": "dynamics", "step": total, "eval": metrics})
            bar.update(1)
            break
        if (step + 1) % cfg.checkpoint_every == 0 and step + 1 < total:
            save(step + 1)
        bar.update(1)
    bar.close()
    ctx.cpu_seconds = cpu_used()
    if not dist.main:
        dist.barrier()
        return None
    save(total, phase="done")
    if not metrics:  # resumed after the last step: evaluate what gets written
        metrics = evaluate_dynamics(ema or dynamics, tokenizer, ctx, hold_tokens, total, ctx.preset.sampler)
    path = write_bundle(ctx, tokenizer, ema or dynamics, total, metrics)
    dist.barrier()
    return path


def write_bundle(ctx: RunContext, tokenizer: Tokenizer, dynamics: Dynamics, steps: int, metrics: dict) -> Path:
    from engine.world.bundle import WorldSpec, save_bundle

    manifest = ctx.dataset.manifest
    seconds = round(time.time() - ctx.started)
    starts = np.stack([f[0] for f, _ in (ctx.holdout_episodes + ctx.train_episodes)[:8]])
    spec = WorldSpec(
        tokenizer=ctx.preset.tokenizer,
        dynamics=ctx.preset.dynamics,
        sampler=ctx.preset.sampler,
        keyset=manifest.keyset,
        scene=manifest.scene,
        scene_options=manifest.scene_options,
        dataset={"content_hash": manifest.content_hash(), "path": str(ctx.dataset.root), "episodes": len(manifest.episodes),
                 "frames": sum(e.frames for e in manifest.episodes), "collection": manifest.collection},
        training={"preset": ctx.preset.name, "tokenizer_steps": None if ctx.tokenizer_from else ctx.cfg.tokenizer_steps,
                  "tokenizer_from": str(ctx.tokenizer_from) if ctx.tokenizer_from else None, "dynamics_steps": steps,
                  "train": ctx.cfg.to_json(), "command": ctx.command, "seconds": seconds,
                  "dynamics_cpu_seconds": round(ctx.cpu_seconds, 1), "init_from": str(ctx.init_from) if ctx.init_from else None,
                  "device": str(ctx.dist.device), "ranks": ctx.dist.world,
                  "tokenizer_psnr": ctx.tokenizer_psnr, "eval": metrics,
                  "cumulative": cumulative_training(ctx, steps, seconds)},
    )
    sha = save_bundle(ctx.out, spec, tokenizer, dynamics.float(), extra={"start_frames": torch.from_numpy(starts)})
    size = ctx.out.stat().st_size / 2**20
    ctx.say(f"world written to {ctx.out} ({size:.1f} MiB, sha256 {sha[:12]}); run folder {ctx.run_dir}")
    return ctx.out


def cumulative_training(ctx: RunContext, steps: int, seconds: float) -> dict:
    """Compute that went into this world so far, across sessions: this run plus, with --init-from, the world it continued
    (its own cumulative record, or its single-run record for worlds written before this field existed).
    Hours are wall-clock hours of the machine the run had (`device`), split by CPU and GPU."""
    gpu = ctx.dist.device.type == "cuda"
    total = {"runs": 1, "tokenizer_steps": 0 if ctx.tokenizer_from else ctx.cfg.tokenizer_steps, "dynamics_steps": steps,
             "cpu_hours": 0.0 if gpu else seconds / 3600, "gpu_hours": seconds / 3600 if gpu else 0.0}
    if ctx.init_from is not None:
        from engine.world.bundle import read_spec

        before = read_spec(ctx.init_from).training
        prior = before.get("cumulative") or {
            "runs": 1, "tokenizer_steps": before.get("tokenizer_steps") or before.get("train", {}).get("tokenizer_steps", 0),
            "dynamics_steps": before.get("dynamics_steps", 0),
            "cpu_hours": 0.0 if str(before.get("device", "cpu")).startswith("cuda") else before.get("seconds", 0) / 3600,
            "gpu_hours": before.get("seconds", 0) / 3600 if str(before.get("device", "cpu")).startswith("cuda") else 0.0}
        total = {k: total[k] + prior.get(k, 0) for k in total}
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in total.items()}
