"""The KV cache of the dynamics model: a ring of W frames, allocated once and written in place.

Frame t lives in slot t mod W. Predicting frame t attends to every filled slot
(frames t-W..t-1). Committing frame t into the context attends to the slots of
frames t-W+1..t-1 (not the one it is about to replace) and to itself, which is
exactly the attention pattern the model was trained with (two_stream_mask).

A cache with a shorter `window` v < W shows each frame only its last v frames (committing: the last v - 1 and
itself), the pattern of training's short windows (`visible`): the reference of history guidance.
"""

from __future__ import annotations

import numpy as np
import torch

from engine.dynamics.model import Dynamics, DynamicsConfig
from engine.dynamics.rollout import Rollout
from engine.dynamics.sampler import FlowSampler, SamplerConfig
from engine.dynamics.stepper import hidden_token_table


class KVCache:
    def __init__(self, cfg: DynamicsConfig, batch: int, device, dtype=torch.float32, window: int | None = None):
        shape = (cfg.depth, batch, cfg.heads, cfg.cache_tokens, cfg.head_dim)
        self.cfg = cfg
        self.window = cfg.context if window is None else window
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.bias = torch.full((batch, cfg.cache_tokens), float("-inf"), device=device, dtype=dtype)
        self.scratch = self.bias.clone()  # the bias one frame attends with
        self.hidden = torch.from_numpy(hidden_token_table(self.window, cfg.context, cfg.tokens_per_frame)).to(device)  # [commit, t % W, tokens]

    def clear(self) -> None:
        self.bias.fill_(float("-inf"))

    def slot(self, time: int) -> slice:
        n = self.cfg.tokens_per_frame
        s = time % self.cfg.context
        return slice(s * n, (s + 1) * n)

    def bias_for_commit(self, time: int) -> torch.Tensor:
        """Committing frame `time`: the filled slots of its window, not the one it replaces."""
        return self._bias_for(time, True)

    def bias_for_denoise(self, time: int) -> torch.Tensor:
        """Predicting frame `time`: the filled slots of its window (every filled slot without a shorter window)."""
        return self.bias if self.window == self.cfg.context else self._bias_for(time, False)

    def _bias_for(self, time: int, commit: bool) -> torch.Tensor:
        self.scratch.copy_(self.bias)
        return self.scratch.masked_fill_(self.hidden[int(commit), time % self.cfg.context], float("-inf"))

    def write(self, time: int, k: torch.Tensor, v: torch.Tensor) -> None:
        s = self.slot(time)
        self.k[:, :, :, s] = k  # in place: memory does not grow with the number of steps
        self.v[:, :, :, s] = v
        self.bias[:, s] = 0.0


class TorchStepper:
    """Runs the dynamics model one frame at a time against a KVCache (numpy in, numpy out)."""

    def __init__(self, dynamics: Dynamics, batch: int, device="cpu", window: int | None = None):
        self.model = dynamics
        self.device = torch.device(device)
        self.cache = KVCache(dynamics.cfg, batch, self.device, window=window)
        self.batch = batch

    def _inputs(self, tokens: np.ndarray, sigma: float, keys: np.ndarray, time: int):
        b = tokens.shape[0]
        return (
            torch.from_numpy(np.ascontiguousarray(tokens, np.float32)).to(self.device),
            torch.full((b,), float(sigma), device=self.device),
            torch.from_numpy(np.ascontiguousarray(keys, np.float32)).to(self.device),
            torch.full((b,), int(time), dtype=torch.long, device=self.device),
        )

    @torch.inference_mode()
    def denoise(self, tokens: np.ndarray, sigma: float, keys: np.ndarray, time: int) -> np.ndarray:
        """Clean-token estimate for frame `time` from its noisy tokens; the cache is read, not written."""
        x, s, k, t = self._inputs(tokens, sigma, keys, time)
        out, _, _ = self.model.step(x, s, k, t, torch.zeros_like(s), self.cache.k, self.cache.v, self.cache.bias_for_denoise(time))
        return out.float().cpu().numpy()

    def denoise_pair(self, tokens: np.ndarray, sigma: float, keys: np.ndarray, other_keys: np.ndarray, time: int) -> tuple[np.ndarray, np.ndarray]:
        """denoise() under two sets of keys (key guidance)."""
        return self.denoise(tokens, sigma, keys, time), self.denoise(tokens, sigma, other_keys, time)

    def denoise_alongside(self, other, tokens: np.ndarray, sigma: float, keys: np.ndarray, time: int) -> tuple[np.ndarray, np.ndarray]:
        """denoise() of this stepper and of `other` (history guidance's short cache)."""
        return self.denoise(tokens, sigma, keys, time), other.denoise(tokens, sigma, keys, time)

    def commit_alongside(self, other, tokens: np.ndarray, sigma: float, keys: np.ndarray, time: int) -> None:
        """commit() into this stepper and `other`."""
        self.commit(tokens, sigma, keys, time)
        other.commit(tokens, sigma, keys, time)

    @torch.inference_mode()
    def commit(self, tokens: np.ndarray, sigma: float, keys: np.ndarray, time: int) -> None:
        """Puts frame `time` into the context (tokens with additive noise of std sigma, 0 for clean)."""
        x, s, k, t = self._inputs(tokens, sigma, keys, time)
        _, new_k, new_v = self.model.step(x, s, k, t, torch.ones_like(s), self.cache.k, self.cache.v, self.cache.bias_for_commit(time))
        self.cache.write(time, new_k, new_v)

    def clear(self) -> None:
        self.cache.clear()

    def snapshot(self):
        c = self.cache
        return c.k.clone(), c.v.clone(), c.bias.clone()

    def restore(self, state) -> None:
        for dst, src in zip((self.cache.k, self.cache.v, self.cache.bias), state):
            dst.copy_(src)


def torch_rollout(dynamics: Dynamics, batch: int, device, sampler: SamplerConfig | FlowSampler) -> Rollout:
    """A Rollout of `batch` worlds on the torch stepper with `sampler`, as a world session makes it: with history
    guidance, a second, short-history cache too (training's own rollouts and evaluations then match play)."""
    sampler = sampler if isinstance(sampler, FlowSampler) else FlowSampler(sampler)
    cfg = dynamics.cfg
    short = TorchStepper(dynamics, batch, device, window=sampler.cfg.history_frames) if sampler.cfg.history_guidance else None
    return Rollout(TorchStepper(dynamics, batch, device), sampler, (batch, cfg.tokens_per_frame, cfg.token_dim), cfg.num_keys, short)
