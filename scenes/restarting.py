"""A scene whose game never stays over: when it ends, the next tick starts a new one.

Games end (a point lost, a life gone, a timer). Collection ends the episode
there, but play and the long benchmark runs go on: the tick after the game
ends shows the first frame of a new game (the keys of that tick are not
played). The k-th restart after `reset(seed)` uses seed + RESTART_STRIDE * k,
so a run is as deterministic as the scene itself (a replay gets the same
frames). Scenes that never end pass through unchanged.
"""

from __future__ import annotations

import numpy as np

RESTART_STRIDE = 7919  # a prime: restarts of nearby seeds do not collide soon


class Restarting:
    def __init__(self, scene):
        self.scene = scene
        self.seed = 0
        self.restarts = 0  # games started again since the last reset
        self.done = False  # never over, seen from outside

    def __getattr__(self, name):  # keyset, size, name, options, state, inverse_keys, ... of the scene
        if name == "scene":  # not set yet (copy, unpickle): no recursion
            raise AttributeError(name)
        return getattr(self.scene, name)

    def reset(self, seed: int) -> np.ndarray:
        self.seed, self.restarts = int(seed), 0
        return self.scene.reset(seed)

    def step(self, keys) -> np.ndarray:
        if getattr(self.scene, "done", False):
            self.restarts += 1
            return self.scene.reset(self.seed + RESTART_STRIDE * self.restarts)
        return self.scene.step(keys)

    def close(self) -> None:
        self.scene.close()
