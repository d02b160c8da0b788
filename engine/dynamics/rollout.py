"""Autoregressive generation over latent tokens: the sampler driving a one-frame stepper.

A stepper (`stepper.Stepper`: torch or ONNX Runtime) owns the KV cache and offers
`denoise(tokens, sigma, keys, time) -> clean tokens` and
`commit(tokens, sigma, keys, time)`. This class knows tokens only: pixels are
converted at the edges, by the world session.
"""

from __future__ import annotations

import numpy as np

from engine.dynamics.sampler import FlowSampler
from engine.dynamics.stepper import Stepper


class Rollout:
    def __init__(self, stepper: Stepper, sampler: FlowSampler, tokens_shape: tuple[int, int, int], num_keys: int, short: Stepper | None = None):
        """short: a stepper whose cache shows only the last `history_frames` frames (history guidance); every frame
        is committed to it too."""
        self.stepper = stepper
        self.short = short
        self.sampler = sampler
        self.shape = tokens_shape  # (B, N, D)
        self.num_keys = num_keys
        self.time = 0
        self.rng = np.random.default_rng(0)

    @property
    def steppers(self) -> list[Stepper]:
        return [self.stepper] if self.short is None else [self.stepper, self.short]

    def reset(self, context_tokens: np.ndarray, context_keys: np.ndarray | None = None, seed: int = 0) -> None:
        """context_tokens [B, T, N, D] of real frames, committed clean at times 0..T-1."""
        b, t = context_tokens.shape[:2]
        if context_keys is None:
            context_keys = np.zeros((b, t, self.num_keys), np.float32)
        self.rng = np.random.default_rng(seed)
        for s in self.steppers:
            s.clear()
        for i in range(t):
            self._commit(context_tokens[:, i], 0.0, context_keys[:, i], i)
        self.time = t

    def step(self, keys: np.ndarray) -> np.ndarray:
        """Generates the next frame's clean tokens [B, N, D] for keys [B, K] and puts it into the context."""
        x0 = self.predict(keys)
        self.commit_own(x0, keys)
        return x0

    def commit_own(self, x0: np.ndarray, keys: np.ndarray) -> None:
        """Puts a generated frame's clean tokens [B, N, D] into the context as the next tick (with the sampler's
        context noise), advancing time. `step` is predict + this; a world that edits its frame (canvas memory)
        commits the edited tokens here instead."""
        ctx_tokens, ctx_sigma = self.sampler.context_version(x0, self.rng)
        self._commit(ctx_tokens, ctx_sigma, np.asarray(keys, np.float32), self.time)
        self.time += 1

    def predict(self, keys: np.ndarray) -> np.ndarray:
        """The next frame's tokens without committing them (for teacher forcing: commit the real frame instead)."""
        t = self.time
        keys = np.asarray(keys, np.float32)
        return self._sample(keys, t)

    def _sample(self, keys: np.ndarray, t: int) -> np.ndarray:
        paired = None
        if self.sampler.cfg.key_guidance and keys.any():  # with no key held anywhere the reference is the estimate itself
            none = np.zeros_like(keys)
            paired = lambda x, s: self.stepper.denoise_pair(x, s, keys, none, t)  # noqa: E731
        history = None if self.short is None else (lambda x, s: self.stepper.denoise_alongside(self.short, x, s, keys, t))  # noqa: E731
        return self.sampler.sample(lambda x, s: self.stepper.denoise(x, s, keys, t), self.shape, self.rng, paired, history)

    def _commit(self, tokens: np.ndarray, sigma: float, keys: np.ndarray, t: int) -> None:
        if self.short is None:
            self.stepper.commit(tokens, sigma, keys, t)
        else:
            self.stepper.commit_alongside(self.short, tokens, sigma, keys, t)

    def snapshot(self):
        """Everything the future depends on: cache, time, noise state (a game's save state)."""
        return [s.snapshot() for s in self.steppers], self.time, self.rng.bit_generator.state

    def restore(self, state) -> None:
        caches, self.time, rng_state = state
        for s, cache in zip(self.steppers, caches):
            s.restore(cache)
        self.rng.bit_generator.state = rng_state

    def commit_real(self, tokens: np.ndarray, keys: np.ndarray) -> None:
        """Puts a real frame into the context (clean), advancing time."""
        self._commit(tokens, 0.0, np.asarray(keys, np.float32), self.time)
        self.time += 1
