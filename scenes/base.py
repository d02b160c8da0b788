"""What every built-in scene shares: seeding, key parsing, the tick counter."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from engine.errors import SkyloopError
from engine.keys import KeySet


class SceneBase:
    """Subclasses set `name` and `keyset` and implement `_reset_state`, `_advance`, `render`, `state`."""

    name: str = ""
    keyset: KeySet
    inverse_keys: dict[str, str] | None = None  # key -> the key that undoes it, where moves can be undone exactly

    def __init__(self, size: tuple[int, int] = (64, 64)):
        h, w = (int(v) for v in size)
        if h < 16 or w < 16:
            raise SkyloopError(f"{self.name}: frame size {h}x{w} is too small (each side must be at least 16)")
        self.size = (h, w)
        self.tick = 0
        self._started = False

    def options(self) -> dict:
        """Constructor options other than size, as stored in a dataset manifest."""
        return {}

    def reset(self, seed: int) -> np.ndarray:
        self.tick = 0
        self._started = True
        self._reset_state(np.random.default_rng(int(seed)))
        return self.render()

    def step(self, keys: np.ndarray | Sequence[str]) -> np.ndarray:
        if not self._started:
            raise SkyloopError(f"{self.name}: call reset(seed) before step()")
        self._advance(self.keyset.vector(keys))
        self.tick += 1
        return self.render()

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # subclasses ------------------------------------------------------------
    def _reset_state(self, rng: np.random.Generator) -> None:
        raise NotImplementedError

    def _advance(self, held: np.ndarray) -> None:
        raise NotImplementedError

    def render(self) -> np.ndarray:
        raise NotImplementedError

    def state(self) -> dict:
        raise NotImplementedError
