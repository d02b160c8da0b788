"""Decoder tuning: the tokenizer's decoder fitted to the latents the world actually makes, with a small PatchGAN critic.

A world plays from latents its dynamics model predicted, not from latents of real frames. Those are blurred
averages of the futures the model cannot tell apart, and the decoder, trained with MSE + L1 on real latents
only, turns them into smears. Here the dynamics model and the encoder stay frozen and only the decoder learns:

- reconstruction (MSE + 0.1 L1, as the tokenizer was trained) on real latents, so what it decoded before stays;
- reconstruction on the model's own one- and two-step predictions against the real frame they predict
  (short horizons only: further out a prediction is no longer aligned with its real frame, and pairing them
  would teach the decoder to turn a drifted latent into some other frame);
- a hinge adversarial loss from a small patch critic (spectral norm, no pretrained network) on the decoding of
  the model's own rollouts further out than `paired`, up to `horizon` frames, against real frames: no pairing
  needed, it asks only that every patch look like a patch of a real frame.
(Precedents: GameNGen fine-tuned its decoder; a conditional PatchGAN on the decoder as in madebyollin/seraena.)

The pairs come from a buffer of own rollouts from real contexts of the training episodes, refreshed every
`refresh` steps. The world file written keeps everything else; its metadata records the tuning and adds its
CPU time to the world's cumulative compute.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from engine.bench.metrics import psnr, sharpness
from engine.data.dataset import Dataset
from engine.dynamics.cache import torch_rollout
from engine.errors import SkyloopError
from engine.tokenizer.model import frames_to_unit, reconstruction_loss, unit_to_frames
from engine.train.context import lr_at


@dataclass
class DecoderTuneConfig:
    steps: int = 100000  # decoder optimizer steps (a CPU budget may stop it earlier)
    cpu_minutes: float = 0.0  # budget in process CPU minutes (all threads); 0 = none
    batch: int = 32  # frames per step: half real latents, half the model's own
    lr: float = 1e-4  # decoder learning rate (the critic gets 2x)
    warmup: int = 50  # linear warm-up steps
    adversarial: float = 0.05  # weight of the critic's loss on the decoder (0 = reconstruction only)
    energy: float = 0.0  # weight of the local edge-energy loss on the paired decodings (0 = none), see edge_energy_loss
    critic_start: int = 50  # steps the critic trains alone before its loss reaches the decoder
    horizon: int = 16  # own rollouts run this many frames from a real context
    paired: int = 2  # own predictions this many frames out (or fewer) are also paired with their real frame
    windows: int = 64  # rollouts per buffer refresh (windows * horizon own latents)
    refresh: int = 200  # steps between buffer refreshes
    holdout: float = 0.05  # share of episodes held out (as in training)
    seed: int = 0


class PatchCritic(nn.Module):
    """A small PatchGAN: one realism score per ~16x16 patch, spectral-normalised convolutions (stable hinge training)."""

    def __init__(self, width: int = 32):
        super().__init__()
        sn = nn.utils.parametrizations.spectral_norm
        self.net = nn.Sequential(
            sn(nn.Conv2d(3, width, 4, 2, 1)),
            nn.LeakyReLU(0.2),
            sn(nn.Conv2d(width, 2 * width, 4, 2, 1)),
            nn.LeakyReLU(0.2),
            sn(nn.Conv2d(2 * width, 4 * width, 3, 1, 1)),
            nn.LeakyReLU(0.2),
            sn(nn.Conv2d(4 * width, 1, 3, 1, 1)),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: frames in [0, 1], [B, 3, H, W] -> patch scores [B, 1, H/4, W/4]."""
        return self.net(x * 2 - 1)


class OwnRollouts:
    """A buffer of the model's own latents from real contexts: tokens [M, N, D], the real frames they stand for
    [M, H, W, 3] uint8, and how many frames out each was predicted [M]."""

    def __init__(self, tokenizer, dynamics, sampler, episodes, cfg: DecoderTuneConfig, rng: np.random.Generator):
        self.tokenizer, self.dynamics, self.sampler, self.cfg, self.rng = tokenizer, dynamics, sampler, cfg, rng
        self.context = dynamics.cfg.context
        self.episodes = [e for e in episodes if len(e[0]) >= self.context + cfg.horizon]
        if not self.episodes:
            raise SkyloopError(f"no training episode is {self.context + cfg.horizon} frames long (context + horizon); lower --horizon")

    @torch.no_grad()
    def make(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        cfg, w = self.cfg, self.context
        picks = [self.episodes[i] for i in self.rng.integers(len(self.episodes), size=cfg.windows)]
        starts = [int(self.rng.integers(len(f) - w - cfg.horizon + 1)) for f, _ in picks]
        frames = np.stack([f[s : s + w + cfg.horizon] for (f, _), s in zip(picks, starts)])  # [B, W+H, h, w, 3]
        keys = np.stack([k[s : s + w + cfg.horizon] for (_, k), s in zip(picks, starts)]).astype(np.float32)
        b = len(picks)
        ctx = self.tokenizer.encode(torch.from_numpy(frames[:, :w].reshape(b * w, *frames.shape[2:]))).view(b, w, -1, self.tokenizer.cfg.token_dim)
        n, d = ctx.shape[2:]
        roll = torch_rollout(self.dynamics, b, "cpu", self.sampler)
        roll.reset(ctx.numpy(), keys[:, :w], seed=int(self.rng.integers(2**31)))
        own = np.stack([roll.step(keys[:, w + t]) for t in range(cfg.horizon)], axis=1)  # [B, H, N, D]
        tokens = torch.from_numpy(own.reshape(b * cfg.horizon, n, d)).float()
        real = torch.from_numpy(frames[:, w:].reshape(b * cfg.horizon, *frames.shape[2:]))
        ahead = torch.arange(1, cfg.horizon + 1).repeat(b)
        return tokens, real, ahead


def edge_energy(frames: torch.Tensor, radius: int = 2) -> torch.Tensor:
    """Squared image gradients summed over channels and averaged over (2 * radius + 1)^2 neighbourhoods:
    [B, 3, H, W] -> [B, 1, H-1, W-1]. A sharp edge and a soft one have the same total variation but not the
    same energy (an edge spread over 3 pixels has a third of it), and the average forgives an edge drawn a
    pixel or two from where the frame has it."""
    gx, gy = frames.diff(dim=-1)[..., :-1, :], frames.diff(dim=-2)[..., :, :-1]
    energy = (gx.pow(2) + gy.pow(2)).sum(1, keepdim=True)
    return F.avg_pool2d(energy, 2 * radius + 1, 1, radius, count_include_pad=False)


def edge_energy_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 between the local edge energies of decoded and real frames: a decoder that rounds edges off, or paints
    edges where the frame has none, pays; one that draws them sharp within a pixel or two of the truth does not."""
    return (edge_energy(pred) - edge_energy(target)).abs().mean()


def _sample_real(episodes, rng: np.random.Generator, n: int) -> torch.Tensor:
    picks = rng.integers(len(episodes), size=n)
    return torch.from_numpy(np.stack([episodes[i][0][rng.integers(len(episodes[i][0]))] for i in picks]))


@torch.no_grad()
def _held_out_figures(tokenizer, own: tuple, real_frames: torch.Tensor) -> dict:
    """Decoder quality on held-out data: reconstruction PSNR of real latents, PSNR of one-step predictions,
    and the sharpness ratio (the benchmark's gradient energy, decoded / real) of own latents at every horizon."""
    tokens, real, ahead = own
    recon = unit_to_frames(tokenizer.decode(tokenizer.encode(real_frames))).numpy()
    dec = unit_to_frames(tokenizer.decode(tokens)).numpy()
    one = (ahead == 1).numpy()

    def db(a, b_uint8):
        return round(float(psnr(a, b_uint8.numpy()).mean()), 2)

    def sharpness_ratio(a, b_uint8):
        return round(float(sharpness(a).mean() / max(sharpness(b_uint8.numpy()).mean(), 1e-8)), 3)

    return {
        "recon_psnr": db(recon, real_frames),
        "recon_sharpness_ratio": sharpness_ratio(recon, real_frames),
        "own_1step_psnr": db(dec[one], real[one]),
        "own_sharpness_ratio": sharpness_ratio(dec, real),
    }


def tune_decoder(
    world: str | Path, data: str | Path, out: str | Path, cfg: DecoderTuneConfig, *, threads: int | None = None, say=print, command: str = ""
) -> Path:
    """Tunes the decoder of `world` on `data` (the dataset it was trained on) and writes `out`; returns its path."""
    from engine.train.run import split_episodes
    from engine.world.bundle import load_bundle

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng([cfg.seed, 7])
    bundle = load_bundle(world)
    spec = bundle.spec
    dataset = Dataset.open(data)
    if tuple(dataset.frame_size) != tuple(spec.frame_size) or list(dataset.keyset.names) != list(spec.keyset.names):
        raise SkyloopError(
            f"{data}: {dataset.frame_size[0]}x{dataset.frame_size[1]} frames with keys {list(dataset.keyset.names)}, but {world} "
            f"was trained on {spec.frame_size[0]}x{spec.frame_size[1]} with keys {list(spec.keyset.names)}: tune it on its own data"
        )
    train_eps, hold_eps = split_episodes(dataset, cfg.holdout, say)
    tokenizer, dynamics = bundle.tokenizer.float(), bundle.dynamics.float().eval()
    tokenizer.eval()
    for p in list(tokenizer.parameters()) + list(dynamics.parameters()):
        p.requires_grad_(False)
    decoder = tokenizer.decoder
    for p in decoder.parameters():
        p.requires_grad_(True)
    critic = PatchCritic()
    opt_g = torch.optim.Adam(decoder.parameters(), lr=cfg.lr, betas=(0.5, 0.9))
    opt_d = torch.optim.Adam(critic.parameters(), lr=2 * cfg.lr, betas=(0.5, 0.9))
    buffer = OwnRollouts(tokenizer, dynamics, spec.sampler, train_eps, cfg, rng)
    held = OwnRollouts(tokenizer, dynamics, spec.sampler, hold_eps, replace(cfg, windows=16), np.random.default_rng([cfg.seed, 8]))
    held_own = held.make()
    held_real = _sample_real(hold_eps, np.random.default_rng([cfg.seed, 9]), 64)
    before = _held_out_figures(tokenizer, held_own, held_real)
    say(
        f"decoder tuning of {world} on {data}: {sum(p.numel() for p in decoder.parameters()) / 1e6:.2f} M decoder parameters, "
        f"critic {sum(p.numel() for p in critic.parameters()) / 1e6:.2f} M, adversarial weight {cfg.adversarial:g}; "
        f"held-out before: recon {before['recon_psnr']} dB (sharpness ratio {before['recon_sharpness_ratio']}), own 1-step {before['own_1step_psnr']} dB, "
        f"own sharpness ratio {before['own_sharpness_ratio']}"
    )

    def pair_loss(decoded, target):  # what a decoding is fitted with where its real frame is known
        loss = reconstruction_loss(decoded, target)
        return loss + cfg.energy * edge_energy_loss(decoded, target) if cfg.energy > 0 else loss

    budget = cfg.cpu_minutes * 60
    cpu0, wall0 = time.process_time(), time.perf_counter()
    half = cfg.batch // 2
    steps, tokens, real, ahead = 0, None, None, None
    last = wall0
    for step in range(cfg.steps):
        used = (time.process_time() - cpu0) / budget if budget else 0.0
        if budget and used >= 1:
            say(f"decoder: CPU budget of {cfg.cpu_minutes:g} minutes used up at step {step}")
            break
        if step % cfg.refresh == 0:
            tokens, real, ahead = buffer.make()
        lr = lr_at(step, max(step / cfg.steps, used), cfg.lr, cfg.warmup)
        for group in opt_g.param_groups:
            group["lr"] = lr
        for group in opt_d.param_groups:
            group["lr"] = 2 * lr
        real_frames = _sample_real(train_eps, rng, half)
        pick = torch.from_numpy(rng.integers(len(tokens), size=half))
        own_tokens, own_real, own_ahead = tokens[pick], real[pick], ahead[pick]
        with torch.no_grad():
            real_latents = tokenizer.encode(real_frames)
        decoded_real = tokenizer.decode_grid(tokenizer.tokens_to_grid(real_latents))
        decoded_own = tokenizer.decode_grid(tokenizer.tokens_to_grid(own_tokens))
        target_real, target_own = frames_to_unit(real_frames), frames_to_unit(own_real)
        paired = own_ahead <= cfg.paired
        d_loss = None
        loss = pair_loss(decoded_real, target_real)
        if paired.any():
            loss = loss + pair_loss(decoded_own[paired], target_own[paired])
        # The critic judges only what reconstruction cannot teach: own predictions further out than `paired`. Decodings
        # of real latents and of 1-2-step predictions are near copies of real frames; counted as fakes they leave the
        # critic nothing to learn, and it stays at zero (seen: hinge loss 2.00 for 1,000 steps on the maze).
        fake = decoded_own[~paired].clamp(0, 1)
        if cfg.adversarial > 0 and len(fake):
            d_loss = F.relu(1 - critic(torch.cat([target_real, target_own]))).mean() + F.relu(1 + critic(fake.detach())).mean()
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
            if step >= cfg.critic_start:
                loss = loss - cfg.adversarial * critic(fake).mean()
        opt_g.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(decoder.parameters(), 1.0)
        opt_g.step()
        steps = step + 1
        now = time.perf_counter()
        if now - last > 30 or step == 0:
            last = now
            cpu = max(time.process_time() - cpu0, 1e-6)
            eta = (budget - cpu) * (now - wall0) / cpu if budget else float("nan")
            say(
                f"decoder step {step + 1}: loss {loss.item():.4f}"
                + (f", critic {d_loss.item():.3f}" if cfg.adversarial > 0 and d_loss is not None else "")
                + f", {(step + 1) / (now - wall0):.2f} steps/s"
                + (f", about {eta / 60:.1f} min left" if budget else "")
            )
    after = _held_out_figures(tokenizer, held_own, held_real)
    cpu_s, wall_s = time.process_time() - cpu0, time.perf_counter() - wall0
    say(
        f"held-out after {steps} steps ({cpu_s / 60:.1f} CPU-min, {wall_s / 60:.1f} min): recon {before['recon_psnr']} -> {after['recon_psnr']} dB "
        f"(sharpness ratio {before['recon_sharpness_ratio']} -> {after['recon_sharpness_ratio']}), "
        f"own 1-step {before['own_1step_psnr']} -> {after['own_1step_psnr']} dB, own sharpness ratio "
        f"{before['own_sharpness_ratio']} -> {after['own_sharpness_ratio']}"
    )
    training = copy.deepcopy(spec.training)
    tunes = training.get("decoder_tunes", [])
    tunes.append(
        {"config": asdict(cfg), "steps": steps, "cpu_seconds": round(cpu_s, 1), "seconds": round(wall_s), "before": before, "after": after, "command": command}
    )
    training["decoder_tunes"] = tunes
    cumulative = dict(training.get("cumulative") or {})
    if cumulative:
        cumulative["runs"] = cumulative.get("runs", 1) + 1
        cumulative["cpu_hours"] = round(cumulative.get("cpu_hours", 0.0) + wall_s / 3600, 3)
        cumulative["decoder_steps"] = cumulative.get("decoder_steps", 0) + steps
        training["cumulative"] = cumulative
    out = Path(out)
    sha = bundle.save(out, replace(spec, training=training))  # tokenizer and dynamics are the bundle's modules, tuned in place
    say(f"world written to {out} (sha256 {sha[:12]}): {world} with its decoder tuned")
    return out
