"""Frame <-> latent grid <-> latent patches.

A small convolutional autoencoder: a frame [B, 3, H, W] in [0, 1] becomes a
latent grid [B, C, H/f, W/f] (f = 2 ** downsamples), and patches of p x p grid
cells become the tokens the dynamics model works on. Latents are standardised
with per-channel statistics measured on the training data, so the dynamics
model sees unit-scale inputs whatever the tokenizer learned.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange


@dataclass
class TokenizerConfig:
    frame_size: tuple[int, int] = (64, 64)  # (height, width) of frames; both divisible by 2 ** len(widths[1:]) * patch
    pixel_patch: int = 4  # space-to-depth factor applied to pixels before the first conv (cheap on CPU)
    widths: tuple[int, ...] = (128, 192)  # channels at the first level, then after each 2x downsample
    blocks: int = 1  # residual blocks per resolution level
    latent_channels: int = 16  # channels C of the latent grid
    patch: int = 2  # latent patch side p: one token covers p x p grid cells
    latent_noise: float = 0.1  # std of noise added to latents while training, so the decoder tolerates prediction error

    @property
    def downsample(self) -> int:
        return self.pixel_patch * 2 ** (len(self.widths) - 1)

    @property
    def grid(self) -> tuple[int, int]:
        """Latent grid (h, w)."""
        return self.frame_size[0] // self.downsample, self.frame_size[1] // self.downsample

    @property
    def token_grid(self) -> tuple[int, int]:
        """Token grid (h, w): latent grid cells grouped by patch."""
        h, w = self.grid
        return h // self.patch, w // self.patch

    @property
    def tokens_per_frame(self) -> int:
        return self.token_grid[0] * self.token_grid[1]

    @property
    def token_dim(self) -> int:
        return self.latent_channels * self.patch * self.patch

    def check(self) -> None:
        step = self.downsample * self.patch
        h, w = self.frame_size
        if h % step or w % step:
            raise ValueError(f"frame size {h}x{w} must divide by {step} (downsampling {self.downsample} x patch {self.patch})")

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, obj: dict) -> "TokenizerConfig":
        obj = dict(obj)
        obj["frame_size"] = tuple(obj["frame_size"])
        obj["widths"] = tuple(obj["widths"])
        return cls(**obj)


class ResBlock(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.conv1 = nn.Conv2d(ch, ch, 3, padding=1)
        self.conv2 = nn.Conv2d(ch, ch, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)  # starts as identity: deep stacks train from step one
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x):
        return x + self.conv2(F.silu(self.conv1(F.silu(x))))


class Encoder(nn.Module):
    def __init__(self, cfg: TokenizerConfig):
        super().__init__()
        w = cfg.widths
        self.unshuffle = nn.PixelUnshuffle(cfg.pixel_patch)
        self.stem = nn.Conv2d(3 * cfg.pixel_patch**2, w[0], 3, padding=1)
        layers: list[nn.Module] = []
        for i in range(len(w)):
            layers += [ResBlock(w[i]) for _ in range(cfg.blocks)]
            if i + 1 < len(w):
                layers.append(nn.Conv2d(w[i], w[i + 1], 4, stride=2, padding=1))  # 2x down
        self.body = nn.Sequential(*layers)
        self.head = nn.Conv2d(w[-1], cfg.latent_channels, 1)

    def forward(self, x):
        return self.head(F.silu(self.body(self.stem(self.unshuffle(x)))))


class Decoder(nn.Module):
    def __init__(self, cfg: TokenizerConfig):
        super().__init__()
        w = cfg.widths[::-1]
        self.stem = nn.Conv2d(cfg.latent_channels, w[0], 3, padding=1)
        layers: list[nn.Module] = []
        for i in range(len(w)):
            layers += [ResBlock(w[i]) for _ in range(cfg.blocks)]
            if i + 1 < len(w):
                layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(w[i], w[i + 1], 3, padding=1)]
        self.body = nn.Sequential(*layers)
        self.head = nn.Conv2d(w[-1], 3 * cfg.pixel_patch**2, 3, padding=1)
        self.shuffle = nn.PixelShuffle(cfg.pixel_patch)

    def forward(self, z):
        return self.shuffle(self.head(F.silu(self.body(self.stem(z)))))


class Tokenizer(nn.Module):
    """encode: frames uint8 [B, H, W, 3] -> tokens [B, N, D]; decode: tokens -> frames in [0, 1] [B, 3, H, W]."""

    def __init__(self, cfg: TokenizerConfig):
        super().__init__()
        cfg.check()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        # Per-channel latent statistics, set from data after training (see fit_latent_stats).
        self.register_buffer("latent_mean", torch.zeros(cfg.latent_channels))
        self.register_buffer("latent_std", torch.ones(cfg.latent_channels))

    # ---- pixels <-> grid ---------------------------------------------------
    @staticmethod
    def to_input(frames_uint8: torch.Tensor) -> torch.Tensor:
        x = frames_uint8.float() / 255.0
        return rearrange(x, "b h w c -> b c h w") * 2 - 1  # [-1, 1] for the network

    def encode_grid(self, frames_uint8: torch.Tensor) -> torch.Tensor:
        """uint8 [B, H, W, 3] -> raw latent grid [B, C, h, w]."""
        return self.encoder(self.to_input(frames_uint8))

    def decode_grid(self, grid: torch.Tensor) -> torch.Tensor:
        """raw latent grid -> frames in [0, 1] (unclamped) [B, 3, H, W]."""
        return self.decoder(grid) * 0.5 + 0.5

    # ---- grid <-> tokens (standardised) ------------------------------------
    def grid_to_tokens(self, grid: torch.Tensor) -> torch.Tensor:
        z = (grid - self.latent_mean[:, None, None]) / self.latent_std[:, None, None]
        p = self.cfg.patch
        return rearrange(z, "b c (h p1) (w p2) -> b (h w) (c p1 p2)", p1=p, p2=p)  # tokens of one frame

    def tokens_to_grid(self, tokens: torch.Tensor) -> torch.Tensor:
        p = self.cfg.patch
        h, w = self.cfg.token_grid
        z = rearrange(tokens, "b (h w) (c p1 p2) -> b c (h p1) (w p2)", h=h, w=w, p1=p, p2=p)
        return z * self.latent_std[:, None, None] + self.latent_mean[:, None, None]

    def encode(self, frames_uint8: torch.Tensor) -> torch.Tensor:
        """uint8 [B, H, W, 3] -> standardised tokens [B, N, D]."""
        return self.grid_to_tokens(self.encode_grid(frames_uint8))

    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        """standardised tokens [B, N, D] -> frames in [0, 1] [B, 3, H, W] (clamped)."""
        return self.decode_grid(self.tokens_to_grid(tokens)).clamp(0, 1)

    def forward(self, frames_uint8: torch.Tensor) -> torch.Tensor:
        """Reconstruction in [0, 1], [B, 3, H, W] (used for training: noise on the latent)."""
        grid = self.encode_grid(frames_uint8)
        if self.training and self.cfg.latent_noise > 0:
            grid = grid + self.cfg.latent_noise * grid.detach().std() * torch.randn_like(grid)
        return self.decode_grid(grid)

    def loss(self, frames_uint8: torch.Tensor, forward=None) -> torch.Tensor:
        """The training objective: reconstruction MSE + 0.1 L1 in [0, 1] (weight-free, no pretrained network),
        through the noisy latent of `forward`. forward: the module to run, a DDP wrapper of this one (default: this one)."""
        recon = (self if forward is None else forward)(frames_uint8).float()  # not `or`: a compiled module has no truth value
        return reconstruction_loss(recon, frames_to_unit(frames_uint8))

    @torch.no_grad()
    def fit_latent_stats(self, frames_uint8: torch.Tensor, batch: int = 256) -> None:
        """Sets latent_mean / latent_std from a sample of frames."""
        grids = torch.cat([self.encode_grid(frames_uint8[i : i + batch]) for i in range(0, len(frames_uint8), batch)])
        self.latent_mean.copy_(grids.mean(dim=(0, 2, 3)))
        self.latent_std.copy_(grids.std(dim=(0, 2, 3)).clamp_min(1e-4))


def reconstruction_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MSE + 0.1 L1 between frames in [0, 1]: what the decoder is trained on (weight-free)."""
    return (pred - target).pow(2).mean() + 0.1 * (pred - target).abs().mean()


def frames_to_unit(frames_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 [B, H, W, 3] -> float [B, 3, H, W] in [0, 1]: the target space of reconstruction."""
    return rearrange(frames_uint8.float() / 255.0, "b h w c -> b c h w")


def unit_to_frames(x: torch.Tensor) -> torch.Tensor:
    """float [B, 3, H, W] in [0, 1] -> uint8 [B, H, W, 3], rounded."""
    return rearrange((x.clamp(0, 1) * 255.0).round().to(torch.uint8), "b c h w -> b h w c")
