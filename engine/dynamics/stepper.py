"""The interface the one-frame steppers share (torch: cache.TorchStepper; ONNX Runtime: world/onnx_backend.OnnxStepper).

A stepper owns a KV cache of W frames for a batch of worlds and runs the dynamics model one frame at a
time against it. `Rollout` drives any stepper; it knows tokens, never pixels or backends.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Stepper(Protocol):
    def denoise(self, tokens: np.ndarray, sigma: float, keys: np.ndarray, time: int) -> np.ndarray:
        """Clean-token estimate [B, N, D] for frame `time` from its noisy tokens at level sigma; reads the cache, never writes it."""

    def denoise_pair(self, tokens: np.ndarray, sigma: float, keys: np.ndarray, other_keys: np.ndarray, time: int) -> tuple[np.ndarray, np.ndarray]:
        """denoise() under keys and under other_keys, as one call where the backend can (key guidance's two estimates)."""

    def commit(self, tokens: np.ndarray, sigma: float, keys: np.ndarray, time: int) -> None:
        """Puts frame `time` into the context (tokens with additive noise of std sigma, 0 for clean)."""

    def denoise_alongside(self, other: "Stepper", tokens: np.ndarray, sigma: float, keys: np.ndarray, time: int) -> tuple[np.ndarray, np.ndarray]:
        """denoise() of this stepper and of `other` (same world, own cache: history guidance's short one), as one call where the backend can."""

    def commit_alongside(self, other: "Stepper", tokens: np.ndarray, sigma: float, keys: np.ndarray, time: int) -> None:
        """commit() into this stepper and `other`, as one call where the backend can."""

    def clear(self) -> None:
        """Empties the context (the cache stays allocated)."""

    def snapshot(self):
        """A copy of the cache (save states)."""

    def restore(self, state) -> None:
        """Writes a snapshot back, in place."""


def hidden_slots(time: int, window: int, context: int, commit: bool) -> np.ndarray:
    """Which of the ring's `context` slots (bool [context]) frame `time` may not see with a history of `window`
    frames: predicting it sees frames time-window..time-1, committing it time-window+1..time-1 (plus itself)."""
    if not 1 <= window <= context:
        raise ValueError(f"a history window must be 1..{context} frames, got {window}")
    seen = range(time - window + int(commit), time)
    hidden = np.ones(context, bool)
    hidden[[t % context for t in seen]] = False
    return hidden


def hidden_token_table(window: int, context: int, tokens_per_frame: int) -> np.ndarray:
    """hidden_slots for every (commit, time % context), spread over each slot's tokens: bool [2, context, context *
    tokens_per_frame]. hidden_slots depends on time only modulo the context, so a stepper looks its masks up here."""
    return np.array([[np.repeat(hidden_slots(t, window, context, commit), tokens_per_frame) for t in range(context)] for commit in (False, True)])
