"""Few-step flow-matching sampler, as a plain class apart from the network.

Noisy tokens at level sigma are x_sigma = (1 - sigma) * x0 + sigma * noise.
The network predicts x0. From noise (sigma = 1) the sampler walks down a
schedule sigma_0 = 1 > sigma_1 > ... > sigma_S = 0:
- deterministic (DDIM-like): re-uses the noise implied by the current estimate;
- stochastic: draws fresh noise at every step (consistency-model style).
Noise comes from a numpy Generator, so the torch and ONNX backends draw the same
numbers and a seeded world is reproducible on any backend.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np


@dataclass
class SamplerConfig:
    steps: int = 2  # network evaluations per frame (1-4)
    context_noise: float = 0.0  # std of additive noise on generated frames as they enter the context (the cache)
    stochastic: bool = False  # fresh noise at each step instead of the implied noise
    schedule_power: float = 1.0  # sigma_k = (1 - k/S) ** power; >1 spends more steps at low noise

    def sigmas(self) -> list[float]:
        if not 1 <= self.steps <= 16:
            raise ValueError(f"sampler steps must be 1..16, got {self.steps}")
        return [float((1 - k / self.steps) ** self.schedule_power) for k in range(self.steps + 1)]

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, obj: dict) -> "SamplerConfig":
        return cls(**obj)


class FlowSampler:
    def __init__(self, cfg: SamplerConfig):
        self.cfg = cfg
        self.sigmas = cfg.sigmas()

    def sample(self, denoise: Callable[[np.ndarray, float], np.ndarray], shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        """denoise(x_sigma, sigma) -> x0 estimate; returns the final x0 [shape], float32."""
        x = rng.standard_normal(shape, dtype=np.float32)
        x0 = x
        for sigma, nxt in zip(self.sigmas, self.sigmas[1:]):
            x0 = denoise(x, sigma)
            if nxt <= 0:
                break
            if self.cfg.stochastic:
                noise = rng.standard_normal(shape, dtype=np.float32)
            else:
                noise = (x - (1 - sigma) * x0) / sigma  # the noise this estimate implies
            x = ((1 - nxt) * x0 + nxt * noise).astype(np.float32)
        return x0

    def context_version(self, x0: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, float]:
        """The tokens and level with which a generated frame enters the context."""
        s = self.cfg.context_noise
        if s <= 0:
            return x0, 0.0
        noise = rng.standard_normal(x0.shape, dtype=np.float32)
        return (x0 + s * noise).astype(np.float32), s
