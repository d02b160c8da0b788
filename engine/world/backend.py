"""The interface the world backends share (torch_backend.TorchBackend, onnx_backend.OnnxBackend).

A backend runs a world's two networks: the tokenizer at the edges (pixels <-> tokens) and the dynamics
through a `Stepper` per batch size. The session (session.World) drives any backend the same way.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from engine.dynamics.stepper import Stepper


@runtime_checkable
class Backend(Protocol):
    name: str  # "torch", "compile" or "onnx": reported in the HUD, recordings and benchmarks

    @property
    def device_name(self) -> str:
        """Where it runs, in words (e.g. "cpu (2 threads)", "cuda (NVIDIA H100)")."""

    def details(self) -> dict:
        """Versions, threads, providers: what a benchmark report names."""

    def stepper(self, batch: int, window: int | None = None) -> Stepper:
        """A stepper with its own KV cache for `batch` worlds (allocated once); `window` < context: each frame sees
        only its last `window` frames (history guidance's reference)."""

    def encode(self, frames: np.ndarray) -> np.ndarray:
        """uint8 [B, H, W, 3] -> tokens [B, N, D] float32."""

    def decode_unit(self, tokens: np.ndarray) -> np.ndarray:
        """tokens [B, N, D] -> float frames [B, H, W, 3] in [0, 1]."""

    def decode(self, tokens: np.ndarray) -> np.ndarray:
        """tokens [B, N, D] -> uint8 [B, H, W, 3], quantised on the host exactly as every backend does."""
