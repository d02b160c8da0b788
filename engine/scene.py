"""The Scene protocol: what a ground-truth world offers the engine. Part of the small shared types that
scenes/ may import."""

from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable

import numpy as np

from engine.keys import KeySet


@runtime_checkable
class Scene(Protocol):
    """What the engine, the collector and the benchmarks drive.

    Frames are uint8 H x W x 3 RGB. Same seed and same key sequence give the
    same frames, bit for bit.
    """

    name: str
    keyset: KeySet
    size: tuple[int, int]  # (height, width) of the frames

    def reset(self, seed: int) -> np.ndarray: ...

    def step(self, keys: np.ndarray | Sequence[str]) -> np.ndarray: ...

    def state(self) -> dict: ...

    def close(self) -> None: ...
