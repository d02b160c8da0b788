"""Few-step flow-matching sampler, as a plain class apart from the network.

Noisy tokens at level sigma are x_sigma = (1 - sigma) * x0 + sigma * noise.
The network predicts x0. From noise (sigma = 1) the sampler walks down a
schedule sigma_0 = 1 > sigma_1 > ... > sigma_S = 0:
- deterministic (DDIM-like): re-uses the noise implied by the current estimate;
- stochastic: draws fresh noise at every step (consistency-model style).
Key guidance (classifier-free guidance with "no keys held" as the reference, training-free since
no keys is an ordinary action in the data): on the first `guided_steps` steps the estimate is pushed
away from what the world would do with no keys, x0 + w * (x0 - x0_nokeys). It strengthens the keys'
effect where a world under-responds; it costs one more network evaluation per guided step.
History guidance (Diffusion Forcing's, training-free since training shows some windows only their last 1-3
frames): on the first `history_steps` steps the estimate is pushed away from what the world would predict seeing
only its last `history_frames` frames, x0 + w * (x0 - x0_short), so it leans on its longer memory. It costs one
more network evaluation per guided step and one more commit per frame (a second, short KV cache).
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
    key_guidance: float = 0.0  # w of x0 + w * (x0 - x0 with no keys held); 0 = off
    guided_steps: int = 1  # how many of the first (highest-noise) steps are guided
    history_guidance: float = 0.0  # w of x0 + w * (x0 - x0 seeing only the last history_frames frames); 0 = off
    history_frames: int = 1  # the short history of that reference (training showed 1..short_context_max)
    history_steps: int = 1  # how many of the first steps history guidance applies to
    canvas: bool = False  # canvas memory (engine/world/canvas.py): keep what a scrolling top-down world showed, in
    #   world coordinates, and show it again on return; for worlds whose camera scrolls over a still scene only
    canvas_shift: int = 4  # the largest camera move per tick the canvas looks for, in pixels
    retrace: bool = False  # retrace memory (engine/world/trail.py): keys that undo the last move show the frame from
    #   before it again; for worlds whose moves have exact inverses and that stand still with no key held

    def sigmas(self) -> list[float]:
        if not 1 <= self.steps <= 16:
            raise ValueError(f"sampler steps must be 1..16, got {self.steps}")
        return [float((1 - k / self.steps) ** self.schedule_power) for k in range(self.steps + 1)]

    def to_json(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        """One line for reports and world descriptions, e.g. '4 steps, fresh noise between steps, context noise 0.1'."""
        text = f"{self.steps} steps, {'fresh' if self.stochastic else 'implied'} noise between steps, context noise {self.context_noise:g}"
        if self.schedule_power != 1:
            text += f", schedule power {self.schedule_power:g}"
        if self.key_guidance:
            text += f", key guidance {self.key_guidance:g} on the first {min(self.guided_steps, self.steps)} step(s)"
        if self.history_guidance:
            text += (
                f", history guidance {self.history_guidance:g} against the last {self.history_frames} frame(s)"
                f" on the first {min(self.history_steps, self.steps)} step(s)"
            )
        if self.canvas:
            text += f", canvas memory (camera moves up to {self.canvas_shift} px a tick)"
        if self.retrace:
            text += ", retrace memory"
        return text

    @classmethod
    def from_json(cls, obj: dict) -> "SamplerConfig":
        return cls(**obj)


class FlowSampler:
    def __init__(self, cfg: SamplerConfig):
        self.cfg = cfg
        self.sigmas = cfg.sigmas()
        if not (np.isfinite(cfg.key_guidance) and cfg.key_guidance >= 0):
            raise ValueError(f"key guidance must be a finite number >= 0, got {cfg.key_guidance}")
        if cfg.guided_steps < 0:
            raise ValueError(f"guided steps must be >= 0, got {cfg.guided_steps}")
        if not (np.isfinite(cfg.history_guidance) and cfg.history_guidance >= 0):
            raise ValueError(f"history guidance must be a finite number >= 0, got {cfg.history_guidance}")
        if cfg.history_frames < 1 or cfg.history_steps < 0:
            raise ValueError(f"history guidance needs history frames >= 1 and steps >= 0, got {cfg.history_frames} and {cfg.history_steps}")
        if cfg.canvas and cfg.canvas_shift < 1:
            raise ValueError(f"canvas shift must be >= 1 pixel, got {cfg.canvas_shift}")

    def sample(
        self,
        denoise: Callable[[np.ndarray, float], np.ndarray],
        shape: tuple[int, ...],
        rng: np.random.Generator,
        paired: Callable[[np.ndarray, float], tuple[np.ndarray, np.ndarray]] | None = None,
        history: Callable[[np.ndarray, float], tuple[np.ndarray, np.ndarray]] | None = None,
    ) -> np.ndarray:
        """denoise(x_sigma, sigma) -> x0 estimate; returns the final x0 [shape], float32.

        paired(x_sigma, sigma) -> (the estimate, the same with no keys held), for key guidance's steps (None: no key
        is held, guidance is a no-op); history(x_sigma, sigma) -> (the estimate, the same from the short history), for
        history guidance's steps (None: off). Both guidance terms are taken against the same unguided estimate (where
        both apply to a step, the one `paired` gives)."""
        x = rng.standard_normal(shape, dtype=np.float32)
        x0 = x
        w, wh = self.cfg.key_guidance, self.cfg.history_guidance
        for k, (sigma, nxt) in enumerate(zip(self.sigmas, self.sigmas[1:])):
            keyed = bool(w) and paired is not None and k < self.cfg.guided_steps
            looked_back = bool(wh) and history is not None and k < self.cfg.history_steps
            if keyed:
                plain, none = paired(x, sigma)
            if looked_back:
                estimate, short = history(x, sigma)
            if not keyed:
                plain = estimate if looked_back else denoise(x, sigma)
            x0 = plain
            if keyed:
                x0 = x0 + w * (plain - none)
            if looked_back:
                x0 = x0 + wh * (plain - short)
            x0 = np.asarray(x0, np.float32)
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
