"""A Skyloop scene as a `gymnasium.Env`: MultiBinary key actions, RGB frames as observations.

The reward is 0: the scenes are worlds, not tasks. Wrap the env to add one.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np


class SceneEnv(gym.Env):
    metadata = {"render_modes": ["rgb_array"], "render_fps": 15}

    def __init__(self, scene: str = "maze", size=(64, 64), render_mode: str | None = "rgb_array", **options):
        from scenes import make_scene

        self.scene = make_scene(scene, size=size, **options)
        self.render_mode = render_mode
        h, w = self.scene.size
        self.observation_space = gym.spaces.Box(0, 255, (h, w, 3), np.uint8)
        self.action_space = gym.spaces.MultiBinary(len(self.scene.keyset))
        self._frame = None

    def reset(self, *, seed: int | None = None, options=None):
        super().reset(seed=seed)
        scene_seed = int(self.np_random.integers(2**31)) if seed is None else int(seed)
        self._frame = self.scene.reset(scene_seed)
        return self._frame, {"state": self.scene.state()}

    def step(self, action):
        self._frame = self.scene.step(np.asarray(action, np.uint8))
        return self._frame, 0.0, False, False, {"state": self.scene.state()}

    def render(self):
        return self._frame

    def close(self):
        self.scene.close()
