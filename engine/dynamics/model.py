"""Action-conditioned block-causal transformer over latent patches.

Every frame is a block of N tokens (latent patches). Attention is full inside a
frame and causal across frames, limited to a window of W frames. Each frame is
conditioned, through adaptive layer norm, on the keys held in the tick that
produced it and on the noise level of its tokens.

Training runs two streams over a window of W + 1 frames (teacher forcing, all
targets at once):
- context copies of frames 0..W-1, with additive noise x + s * eps of a random
  std s (given to the model: GameNGen's defence against drift), each attending
  to the context copies of itself and the frames before it;
- target copies of frames 1..W, noised at a random flow-matching level, each
  attending to the context copies of the frames before it and to itself.
The model predicts the clean tokens of every target copy. (Predicting the change
from the previous frame instead learns faster at first, but its rollouts blew up:
errors in the base add up frame after frame. Measured on maze, 500 steps:
autoregressive PSNR@32 12.5 dB with the residual, 17.0 dB without.)

Inference with a KV cache computes exactly the same function: the context
stream is the cache, one frame committed per tick, and a new frame's tokens
attend to the cache and to themselves. `step` is the one-frame function that
is exported to ONNX, with the cache as explicit inputs and the new entries as
outputs.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import repeat


@dataclass
class DynamicsConfig:
    token_dim: int = 64  # D: size of one latent patch (tokenizer's C * p * p)
    token_grid: tuple[int, int] = (4, 4)  # tokens of one frame as (rows, cols); N = rows * cols
    num_keys: int = 6  # K: length of the held-keys vector
    context: int = 8  # W: frames of context the model attends to
    width: int = 256  # transformer width
    depth: int = 6  # transformer blocks
    heads: int = 4  # attention heads
    mlp_ratio: float = 4.0  # MLP hidden size / width
    rope_period: int = 256  # temporal positions are taken modulo this; RoPE frequencies are exact multiples of 2*pi/period
    spatial_rope: bool = False  # also rotate an eighth of each head's dimension pairs by the token's row and column, so
    #   attention can read "the token beside me in the last frame" the same way everywhere on the grid (relative, not
    #   learned per absolute position): what a turn or strafe needs, which shifts the picture by part of a token
    shared_modulation: bool = True  # adaLN-single (PixArt-alpha): one modulation layer for all blocks plus a learned
    #   table per block, instead of a 6*d*d layer in every block (2.4 M fewer parameters at width 256, depth 6)
    short_context_p: float = 0.5  # training: share of windows whose targets see only their last 1..short_context_max
    short_context_max: int = 3  #   context frames: motion cannot be read off a long context there, so the keys must be used
    max_context_noise: float = 0.5  # training: std of the additive context noise is drawn from U(0, this) per frame
    p_full_noise: float = 0.25  # training: share of target frames at noise level 1 (what the first sampler step sees)
    rollout_p: float = 0.0  # training: share of windows whose latest context frames are the model's own rollout
    #   (self forcing: generated with the world's sampler, no gradient through them), so it learns to recover from its errors
    rollout_frames: int = 4  # training: up to this many latest context frames are generated (drawn 1..this each step);
    #   with a buffer, the rollouts' depth: windows are cut 1..this frames after the last real one, so it may exceed context
    rollout_refresh: int = 0  # training: 0 = roll out each batch's windows in place; N = cut them from a buffer of own
    #   rollouts from real warm-up contexts, regenerated every N steps (self_forcing.RolloutBuffer)
    rollout_buffer: int = 64  # training: rollouts in that buffer
    rollout_keep: float = 1.0  # training: windows are cut only from this share of the buffer's (rollout, depth) pairs,
    #   those whose last own context frame is closest to the real one (anchored: a context drifted past recognition has
    #   a target it cannot predict, and teaches the model to ignore its context and keys)
    hold_still_p: float = 0.0  # training: share of windows whose last 1..W frames are the frame before them held still
    #   under no keys (a player letting go), for games that stand still when no key is held: checked on the data
    key_contrast: float = 0.0  # training: weight of the key-contrast term: a target predicted under the opposite keys
    #   (turn_left <-> turn_right, forward <-> back, ...) must land at least KEY_CONTRAST_RATIO times further from the
    #   real frame than under the keys actually held (noise levels above 0.5, where the keys decide the picture)

    @property
    def tokens_per_frame(self) -> int:
        return self.token_grid[0] * self.token_grid[1]

    @property
    def head_dim(self) -> int:
        return self.width // self.heads

    @property
    def cache_tokens(self) -> int:
        return self.context * self.tokens_per_frame

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, obj: dict) -> "DynamicsConfig":
        """Settings from a world file. Training-only settings that were tried and removed are dropped (world files
        made while they existed still load); any other unknown name is refused, by name."""
        obj = {k: v for k, v in obj.items() if k not in RETIRED_SETTINGS}
        unknown = sorted(set(obj) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown dynamics settings {', '.join(unknown)} (a world file from a newer skyloop?)")
        obj["token_grid"] = tuple(obj["token_grid"])
        return cls(**obj)


KEY_CONTRAST_RATIO = 2.0  # the key-contrast margin: error under the opposite keys / error under the held keys
KEY_CONTRAST_MIN_SIGMA = 0.5  # the key-contrast term grades targets noisier than this


# Training-only settings that once existed (they shaped the loss, not the network): a world file that names one loads.
RETIRED_SETTINGS = {"motion_weight"}  # 2026-11-28, dropped in 2113879: lost to plain teacher forcing (docs/ablations.md)


def sigma_features(sigma: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal features of noise levels in [0, 1]: [...] -> [..., dim]."""
    half = dim // 2
    freqs = torch.exp(torch.arange(half, device=sigma.device, dtype=torch.float32) * (-math.log(1000.0) / half))
    angles = sigma.float()[..., None] * 1000.0 * freqs
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


class RMSNorm(nn.Module):
    """Root-mean-square norm with a learned scale (written out: exports to any ONNX opset)."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class TemporalRope(nn.Module):
    """Rotary embedding of frame time on the first half of each head's dimensions.

    Frequencies are 2*pi*m/P for integers m, so time t and t + P rotate alike and
    positions can be taken modulo P: long rollouts keep small, exact angles.
    Tables wider than the temporal pairs carry spatial pairs (`spatial_rope_tables`), which rotate the next dimensions.
    """

    def __init__(self, head_dim: int, period: int):
        super().__init__()
        n = head_dim // 4  # rotate pairs in the first half of the head dims
        multiples = torch.round(torch.logspace(0, math.log10(period / 2), n)).clamp(1, period // 2)
        angles = 2 * math.pi * torch.arange(period)[:, None] * multiples[None, :] / period  # [P, n]
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)
        self.n = n
        self.period = period

    def tables(self, times: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """times [...] integer frame times -> (cos, sin) [..., n]: computed once per call, shared by every block."""
        idx = torch.remainder(times, self.period)
        return self.cos[idx], self.sin[idx]

    def rotate(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        """x [B, H, L, hd]; cos, sin broadcastable to [B, H, L, n] (from `tables`), or to [B, H, L, n + s] with s
        spatial pairs after the temporal ones: pairs (i, i + n) for i < n rotate by time, pairs (2n + j, 2n + s + j)
        for j < s by the token's place in the frame."""
        n, s = self.n, cos.shape[-1] - self.n
        if s == 0:  # the temporal rotation alone: the graph of every world without spatial pairs stays as it was
            x1, x2, rest = x[..., :n], x[..., n : 2 * n], x[..., 2 * n :]
            return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos, rest], dim=-1)
        ct, st, cs, ss = cos[..., :n], sin[..., :n], cos[..., n:], sin[..., n:]
        x1, x2, y1, y2, rest = x[..., :n], x[..., n : 2 * n], x[..., 2 * n : 2 * n + s], x[..., 2 * n + s : 2 * n + 2 * s], x[..., 2 * n + 2 * s :]
        return torch.cat([x1 * ct - x2 * st, x1 * st + x2 * ct, y1 * cs - y2 * ss, y1 * ss + y2 * cs, rest], dim=-1)


def spatial_rope_tables(grid: tuple[int, int], pairs: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(cos, sin) [rows * cols, pairs] of a frame's tokens in row-major order: the first pairs // 2 rotate by the
    token's row, the rest by its column. An axis of extent E gets angles from pi / E (offsets across the whole axis
    stay under pi apart, so no two offsets look alike) up to pi / 2 a token."""
    angles = []
    for extent, count, coord in (
        (grid[0], pairs // 2, torch.arange(grid[0])[:, None].expand(grid).reshape(-1)),
        (grid[1], pairs - pairs // 2, torch.arange(grid[1])[None, :].expand(grid).reshape(-1)),
    ):
        lowest = math.pi / max(extent, 2)
        freqs = lowest * (math.pi / 2 / lowest) ** (torch.arange(count) / max(count - 1, 1))
        angles.append(coord[:, None].float() * freqs[None, :])
    angles = torch.cat(angles, dim=1)
    return angles.cos(), angles.sin()


class Block(nn.Module):
    def __init__(self, cfg: DynamicsConfig):
        super().__init__()
        d = cfg.width
        self.heads = cfg.heads
        self.norm1 = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.qkv = nn.Linear(d, 3 * d)
        self.q_norm = RMSNorm(cfg.head_dim)  # qk-norm: stable attention logits without warm-up tricks
        self.k_norm = RMSNorm(cfg.head_dim)
        self.proj = nn.Linear(d, d)
        self.norm2 = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        hidden = int(d * cfg.mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(d, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, d))
        if cfg.shared_modulation:  # this block's offsets to the shared shift/scale/gate
            self.modulation_table = nn.Parameter(torch.zeros(6 * d))
        else:  # adaLN: shift/scale/gate for attention and MLP, from the frame's conditioning
            self.modulation = nn.Linear(d, 6 * d)
            nn.init.zeros_(self.modulation.weight)
            nn.init.zeros_(self.modulation.bias)

    def qkv_heads(self, h: torch.Tensor, rope: TemporalRope, cos: torch.Tensor, sin: torch.Tensor):
        """h [B, F, N, d] -> q, k, v [B, H, F*N, hd], q and k normed and rotated by the frame times' (cos, sin)."""
        b, f, n, _ = h.shape
        qkv = self.qkv(h).reshape(b, f * n, 3 * self.heads, -1).transpose(1, 2)  # [B, 3H, F*N, hd]
        q, k, v = qkv.chunk(3, dim=1)
        return rope.rotate(self.q_norm(q), cos, sin), rope.rotate(self.k_norm(k), cos, sin), v

    def forward(self, x, cond, rope, cos, sin, mask, cache_k=None, cache_v=None):
        """x [B, F, N, d] tokens of F frames; cond [B, F, d] one conditioning vector per frame, or with
        shared modulation the shared modulation [B, F, 6d] (this block adds its own table); cos, sin: the
        rotary tables of the tokens' frame times, broadcastable to [B, H, F*N, n].

        Without a cache: attention over the F*N tokens under `mask` (bool, True = may attend, or additive).
        With a cache: x is one frame; it attends to the cache and to itself under the additive `mask`
        [B, 1, 1, S + N] (0 = may attend, -inf = not).
        Returns (x, k, v) with this call's keys and values [B, H, F*N, hd].
        Frames stay a dimension of their own, so the per-frame modulation broadcasts over the frame's tokens
        (6*d*d FLOPs per frame, not per token) without reshaping: the one-frame step exports to a lean graph.
        """
        b, f, n, d = x.shape
        mod = cond + self.modulation_table if hasattr(self, "modulation_table") else self.modulation(cond)  # [B, F, 6d]
        shift1, scale1, gate1, shift2, scale2, gate2 = mod[:, :, None].chunk(6, dim=-1)  # [B, F, 1, d] each
        q, k, v = self.qkv_heads(self.norm1(x) * (1 + scale1) + shift1, rope, cos, sin)
        keys, values = (k, v) if cache_k is None else (torch.cat([cache_k, k], dim=2), torch.cat([cache_v, v], dim=2))
        att = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask)  # [B, H, F*N, hd]
        x = x + gate1 * self.proj(att.transpose(1, 2).reshape(b, f, n, d))
        x = x + gate2 * self.mlp(self.norm2(x) * (1 + scale2) + shift2)
        return x, k, v


class Dynamics(nn.Module):
    """Predicts clean latent tokens of a frame from its noisy tokens, the frames before it and the keys held."""

    def __init__(self, cfg: DynamicsConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.width
        self.token_in = nn.Linear(cfg.token_dim, d)
        self.spatial_pos = nn.Parameter(torch.randn(cfg.tokens_per_frame, d) * 0.02)
        self.keys_in = nn.Linear(cfg.num_keys, d)  # multi-hot: the sum of the held keys' embeddings
        self.sigma_in = nn.Sequential(nn.Linear(128, d), nn.SiLU(), nn.Linear(d, d))
        self.context_role = nn.Parameter(torch.zeros(d))  # marks context copies: their sigma means additive noise
        self.rope = TemporalRope(cfg.head_dim, cfg.rope_period)
        if cfg.spatial_rope:  # constant tables of the tokens' places; not saved (made again from the config)
            cos, sin = spatial_rope_tables(cfg.token_grid, cfg.head_dim // 8)
            self.register_buffer("spatial_cos", cos, persistent=False)
            self.register_buffer("spatial_sin", sin, persistent=False)
        self.blocks = nn.ModuleList([Block(cfg) for _ in range(cfg.depth)])
        self.norm_out = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        if cfg.shared_modulation:
            self.modulation = nn.Linear(d, 6 * d)  # shared by every block (each adds its table); zero: blocks start as identity
            nn.init.zeros_(self.modulation.weight)
            nn.init.zeros_(self.modulation.bias)
        self.modulation_out = nn.Linear(d, 2 * d)
        self.token_out = nn.Linear(d, cfg.token_dim)
        for layer in (self.modulation_out, self.token_out):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    # ---- shared pieces -----------------------------------------------------
    def frame_conditioning(self, keys: torch.Tensor, sigma: torch.Tensor, role: torch.Tensor) -> torch.Tensor:
        """keys [B, F, K], sigma [B, F], role [B, F] (1 = context copy, 0 = target) -> [B, F, d]."""
        dtype = self.keys_in.weight.dtype  # float32, or float16 in an fp16 export
        cond = self.keys_in(keys.to(dtype)) + self.sigma_in(sigma_features(sigma, 128).to(dtype))
        return F.silu(cond + role.to(dtype)[..., None] * self.context_role)

    def _embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens [B, F, N, D] -> [B, F, N, d]."""
        return self.token_in(tokens) + self.spatial_pos

    def _rope_tables(self, times: torch.Tensor, frames: int) -> tuple[torch.Tensor, torch.Tensor]:
        """times [B, F'] (F' = frames, or 1 for one time shared by every frame) -> (cos, sin) [B, 1, frames * N, n (+ s)]:
        the rotation of every token, by its frame's time and, with spatial_rope, by its place in the frame."""
        n = self.cfg.tokens_per_frame
        temporal = [repeat(t, "b f m -> b 1 (f n) m", n=n) for t in self.rope.tables(times)]
        if not self.cfg.spatial_rope:
            return temporal[0], temporal[1]
        b = times.shape[0]
        if times.shape[1] != frames:
            temporal = [t.expand(-1, -1, frames * n, -1) for t in temporal]
        spatial = [repeat(t, "n m -> b 1 (f n) m", b=b, f=frames) for t in (self.spatial_cos, self.spatial_sin)]
        return tuple(torch.cat([t, s], dim=-1) for t, s in zip(temporal, spatial))

    def _out(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """x [B, F, N, d], cond [B, F, d] -> clean-token predictions [B, F, N, D]."""
        shift, scale = self.modulation_out(cond)[:, :, None].chunk(2, dim=-1)
        return self.token_out(self.norm_out(x) * (1 + scale) + shift)

    # ---- full sequence (training, and the reference for the cached step) ----
    def load_shallower(self, state: dict[str, torch.Tensor]) -> list[int]:
        """Loads the weights of a network with fewer blocks (else the same shape) into this one, keeping what it computes.

        The old blocks keep their order, spread evenly among the new ones (6 -> 9: a new block after every second old
        one). A new block starts as the identity: its attention and MLP output layers are zero, so its residual adds
        nothing until training gives it work, while its gradients are not zero. Returns the new blocks' positions."""
        old = 1 + max((int(k.split(".")[1]) for k in state if k.startswith("blocks.")), default=-1)
        extra = len(self.blocks) - old
        if old == 0 or extra < 0:
            raise ValueError(f"cannot grow {old} blocks into {len(self.blocks)}")
        place = {i: i + i * extra // old for i in range(old)}
        mine = self.state_dict()
        for k, v in state.items():
            if k.startswith("blocks."):
                _, i, rest = k.split(".", 2)
                k = f"blocks.{place[int(i)]}.{rest}"
            mine[k] = v
        new = sorted(set(range(len(self.blocks))) - set(place.values()))
        for name in (f"blocks.{i}.{layer}.{part}" for i in new for layer in ("proj", "mlp.2") for part in ("weight", "bias")):
            mine[name] = torch.zeros_like(mine[name])
        self.load_state_dict(mine)
        return new

    def forward_frames(self, tokens, sigma, keys, times, role, frame_mask):
        """tokens [B, F, N, D], sigma [B, F], keys [B, F, K], times [B, F] (int), role [B, F], frame_mask [F, F] bool.

        Returns predicted clean tokens [B, F, N, D] of every frame.
        """
        n = tokens.shape[2]
        x = self._embed(tokens)
        cond = self.frame_conditioning(keys, sigma, role)  # [B, F, d]
        cos, sin = self._rope_tables(times, tokens.shape[1])  # one time (and place) per token
        mask = repeat(frame_mask, "... f g -> ... (f n) (g m)", n=n, m=n)  # block structure: frames attend as wholes
        block_cond = self.modulation(cond) if self.cfg.shared_modulation else cond  # computed once for all blocks
        for block in self.blocks:
            x, _, _ = block(x, block_cond, self.rope, cos, sin, mask)
        return self._out(x, cond)

    def forward(self, context_tokens, context_sigma, target_tokens, target_sigma, keys, visible=None, target_keys=None):
        """Training pass over a window of W + 1 frames.

        context_tokens [B, W, N, D]: frames 0..W-1 with additive noise of std context_sigma [B, W];
        target_tokens  [B, W, N, D]: noisy frames 1..W at levels target_sigma [B, W];
        keys [B, W + 1, K]: keys[:, t] produced frame t;
        visible [B] (optional): how many of the latest context frames each window's targets may see (default W);
        target_keys [B, W, K] (optional): keys the target copies are conditioned on instead of keys[:, 1:].
        Returns predicted clean tokens of frames 1..W, [B, W, N, D].
        """
        w = context_tokens.shape[1]
        times = torch.arange(w + 1, device=keys.device)
        all_times = torch.cat([times[:w], times[1:]])[None].expand(keys.shape[0], -1)
        tokens = torch.cat([context_tokens, target_tokens], dim=1)
        sigma = torch.cat([context_sigma, target_sigma], dim=1)
        frame_keys = torch.cat([keys[:, :w], keys[:, 1:] if target_keys is None else target_keys], dim=1)
        role = torch.cat([torch.ones_like(context_sigma), torch.zeros_like(target_sigma)], dim=1)
        mask = two_stream_mask(w, w, keys.device, visible)
        if mask.ndim == 3:  # one mask per window: [B, 1, F, F] broadcasts over heads
            mask = mask[:, None]
        return self.forward_frames(tokens, sigma, frame_keys, all_times, role, mask)[:, w:]

    # ---- the training recipe -------------------------------------------------
    def training_inputs(
        self, window_tokens: torch.Tensor, window_keys: torch.Tensor, context_clean: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> dict:
        """Noised two-stream inputs of `forward` for windows of W + 1 real frames, and the clean targets.

        window_tokens [B, W+1, N, D], window_keys [B, W+1, K]; context_clean [B, W, N, D] replaces the clean
        context copies (frames 0..W-1), e.g. with frames the model generated itself (self forcing).
        Noise comes from `generator` (default: torch's global generator).
        Returns the keyword arguments of `forward` plus "target_clean" [B, W, N, D].
        """
        cfg = self.cfg
        b, dev = window_tokens.shape[0], window_tokens.device
        w = window_tokens.shape[1] - 1
        g = generator

        def uniform(*shape):
            return torch.rand(*shape, device=dev, generator=g)

        def normal_like(x):
            return torch.randn(x.shape, dtype=x.dtype, device=x.device, generator=g)

        context = window_tokens[:, :w] if context_clean is None else context_clean
        ctx_sigma = uniform(b, w) * cfg.max_context_noise
        tgt_sigma = torch.where(uniform(b, w) < cfg.p_full_noise, torch.ones(b, w, device=dev), uniform(b, w))
        noisy_context = context + ctx_sigma[..., None, None] * normal_like(context)  # additive: an unbiased base
        target_clean = window_tokens[:, 1:]
        noise = normal_like(target_clean)
        target = (1 - tgt_sigma[..., None, None]) * target_clean + tgt_sigma[..., None, None] * noise  # flow-matching interpolation
        # Some windows see only their last few context frames: there the keys, not the motion so far, tell what comes next.
        short = uniform(b) < cfg.short_context_p
        visible = torch.where(short, torch.randint(1, cfg.short_context_max + 1, (b,), device=dev, generator=g), torch.full((b,), w, device=dev))
        return {
            "context_tokens": noisy_context,
            "context_sigma": ctx_sigma,
            "target_tokens": target,
            "target_sigma": tgt_sigma,
            "keys": window_keys,
            "visible": visible,
            "target_clean": target_clean,
        }

    def training_loss(
        self,
        window_tokens: torch.Tensor,
        window_keys: torch.Tensor,
        generator: torch.Generator | None = None,
        *,
        context_clean: torch.Tensor | None = None,
        forward=None,
        key_swap: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The training objective on windows of W + 1 frames: noise them (`training_inputs`), predict the clean
        targets, x0-prediction MSE over every target token (float32 whatever the autocast).

        context_clean: own-rollout context (self forcing, see self_forcing.py); forward: the module to run,
        a DDP or compiled wrapper of this one (default: this one); key_swap [K, K]: the permutation that maps each
        key to its opposite (`key_swap_matrix`), needed by `key_contrast` > 0.
        """
        inputs = self.training_inputs(window_tokens, window_keys, context_clean, generator)
        target_clean = inputs.pop("target_clean")
        run = self if forward is None else forward  # not `forward or self`: a compiled module has no truth value
        if self.cfg.key_contrast <= 0:
            return (run(**inputs).float() - target_clean).pow(2).mean()
        if key_swap is None:
            raise ValueError("dynamics.key_contrast needs the keys' opposites (key_swap)")
        err_held, err_opposite, graded = self.key_contrast_errors(inputs, target_clean, key_swap, run)
        mse = err_held.mean()
        if not graded.any():
            return mse + 0.0 * err_opposite.sum()  # every parameter still gets a gradient (DDP)
        gap = torch.log(err_held + 1e-4) - torch.log(err_opposite + 1e-4) + math.log(KEY_CONTRAST_RATIO)
        return mse + self.cfg.key_contrast * F.relu(gap)[graded].mean()

    def key_contrast_errors(self, inputs: dict, target_clean: torch.Tensor, key_swap: torch.Tensor, run=None):
        """What the key-contrast term grades, from `training_inputs` (less "target_clean"): the mean squared error [B, W]
        of each target's prediction under the held keys and under their opposites (key_swap, `key_swap_matrix`), and
        which targets are graded [B, W] (noisier than KEY_CONTRAST_MIN_SIGMA, keys that have an opposite).
        run: the module to run (default: this one)."""
        run = self if run is None else run
        held = inputs["keys"][:, 1:]
        opposite = held @ key_swap.to(held.dtype)
        # held and opposite keys in one batch: the same noisy inputs, only the targets' keys differ
        both = {k: (torch.cat([v, v]) if torch.is_tensor(v) else v) for k, v in inputs.items()}
        predicted = run(**both, target_keys=torch.cat([held, opposite])).float()
        err = (predicted - torch.cat([target_clean, target_clean])).pow(2).mean(dim=(2, 3))  # [2B, W]
        graded = (opposite != held).any(-1) & (inputs["target_sigma"] > KEY_CONTRAST_MIN_SIGMA)
        b = held.shape[0]
        return err[:b], err[b:], graded

    # layers that map into or out of the token, key and noise-level spaces: Adam, not Muon (its rule is for hidden matrices)
    EDGE_LAYERS = ("token_in.", "keys_in.", "sigma_in.0.", "token_out.")

    def optimizer_groups(self, weight_decay: float, muon: bool = False) -> list[dict]:
        """Optimizer groups: matrices decay; norms, biases and position tables do not.
        With `muon`, the hidden matrices (all 2-D weights but the edge layers') form a third group flagged `muon`."""
        decay, no_decay, hidden = [], [], []
        for name, p in self.named_parameters():
            if p.ndim < 2 or "pos" in name:
                no_decay.append(p)
            elif muon and not name.startswith(self.EDGE_LAYERS):
                hidden.append(p)
            else:
                decay.append(p)
        groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        return groups + ([{"params": hidden, "weight_decay": weight_decay, "muon": True}] if muon else [])

    # ---- one frame with a KV cache (inference, ONNX) ------------------------
    def step(self, tokens, sigma, keys, time, role, cache_k, cache_v, cache_bias):
        """One frame against the KV cache.

        tokens [B, N, D] noisy tokens at level sigma [B]; keys [B, K]; time [B] (int64 frame time);
        role [B]: 1 to commit a frame into the context (tokens carry additive noise of std sigma), 0 to denoise a target;
        cache_k, cache_v [L, B, H, S, hd] (post-RoPE keys and values of cached frames);
        cache_bias [B, S]: 0 where a cached token may be attended to, -inf where not.
        Returns (clean tokens [B, N, D], new keys [L, B, H, N, hd], new values [L, B, H, N, hd]).
        """
        x = self._embed(tokens[:, None])  # [B, 1, N, d]
        cond = self.frame_conditioning(keys[:, None], sigma[:, None], role[:, None])  # [B, 1, d]
        if self.cfg.spatial_rope:
            cos, sin = self._rope_tables(time[:, None], 1)  # [B, 1, N, n + s]
        else:
            cos, sin = (t[:, None, None] for t in self.rope.tables(time))  # [B, 1, 1, n]: every token of the frame
        # The frame attends to the cache where its bias is 0 and to all of itself: one additive mask for every block.
        mask = torch.cat([cache_bias, torch.zeros_like(tokens[:, :, 0])], dim=1)[:, None, None, :]  # [B, 1, 1, S + N]
        new_k, new_v = [], []
        block_cond = self.modulation(cond) if self.cfg.shared_modulation else cond
        for i, block in enumerate(self.blocks):
            x, k, v = block(x, block_cond, self.rope, cos, sin, mask, cache_k=cache_k[i], cache_v=cache_v[i])
            new_k.append(k)
            new_v.append(v)
        return self._out(x, cond)[:, 0], torch.stack(new_k), torch.stack(new_v)


def key_swap_matrix(keyset) -> torch.Tensor:
    """[K, K] permutation: multi-hot keys @ it = the same keys with each one swapped for its opposite
    (keyset.opposite; a key without one stays)."""
    names = list(keyset.names)
    swap = torch.zeros(len(names), len(names))
    for i, name in enumerate(names):
        other = keyset.opposite(name)
        swap[i, names.index(other) if other is not None else i] = 1.0
    return swap


def two_stream_mask(n_context: int, n_target: int, device=None, visible: torch.Tensor | None = None) -> torch.Tensor:
    """Frame-level mask [C + T, C + T] (True = may attend) for context frames at times 0..C-1 and
    target frames at times 1..T, window C: the pattern the KV cache reproduces.

    Context frame i sees context frames i-C+1..i; target frame t sees context frames t-C..t-1 and itself.
    With `visible` [B], window b is that short instead: target frame t sees context frames t-visible[b]..t-1
    and context frame i sees i-visible[b]+1..i, so no history older than that reaches a target by any path;
    the mask is then [B, C + T, C + T].
    """
    c = torch.arange(n_context, device=device)
    t = torch.arange(1, n_target + 1, device=device)
    reach = torch.full((1,), n_context, device=device) if visible is None else visible.to(device)
    r = reach[:, None, None]
    ctx_ctx = (c[None, None, :] <= c[None, :, None]) & (c[None, None, :] > c[None, :, None] - r)  # [B', C, C]
    tgt_ctx = (c[None, None, :] < t[None, :, None]) & (c[None, None, :] >= t[None, :, None] - r)  # [B', T, C]
    b = tgt_ctx.shape[0]
    top = torch.cat([ctx_ctx, torch.zeros(b, n_context, n_target, dtype=torch.bool, device=device)], dim=2)
    bottom = torch.cat([tgt_ctx, torch.eye(n_target, dtype=torch.bool, device=device).expand(b, -1, -1)], dim=2)
    mask = torch.cat([top, bottom], dim=1)
    return mask if visible is not None else mask[0]
