"""A learned world as a `gymnasium.Env`: train an agent inside the dream.

Actions are the multi-hot held-keys vector (MultiBinary), observations the RGB
frames. The world gives no reward of its own: pass `reward_fn(frame, keys)`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import gymnasium as gym
import numpy as np


class WorldEnv(gym.Env):
    metadata = {"render_modes": ["rgb_array"], "render_fps": 15}
    # backend: "auto" (onnx when onnxruntime is installed, else torch), "torch", "compile" or "onnx", as World.load

    def __init__(
        self,
        world="worlds/maze.safetensors",
        backend: str = "auto",
        context=None,
        max_steps: int = 1000,
        reward_fn: Callable[[np.ndarray, np.ndarray], float] | None = None,
        render_mode: str | None = "rgb_array",
        device: str | None = None,
        threads: int | None = None,
    ):
        from engine.world.session import World

        self.world = world if isinstance(world, World) else World.load(Path(world), backend=backend, device=device, threads=threads)
        h, w = self.world.frame_size
        self.observation_space = gym.spaces.Box(0, 255, (h, w, 3), np.uint8)
        self.action_space = gym.spaces.MultiBinary(len(self.world.keyset))
        self.context = context
        self.max_steps = int(max_steps)
        self.reward_fn = reward_fn
        self.render_mode = render_mode
        self.metadata = {**self.metadata, "render_fps": self.world.spec.tick_hz}
        self.frame: np.ndarray | None = None
        self.ticks = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        world_seed = int(self.np_random.integers(2**31)) if seed is None else int(seed)
        context = (options or {}).get("context", self.context)
        self.frame = self.world.reset(context, seed=world_seed)
        self.ticks = 0
        return self.frame, {"keys": list(self.world.keyset.names), "notices": list(self.world.notices)}

    def step(self, action):
        keys = np.asarray(action, np.uint8).reshape(-1)
        self.frame = self.world.step(keys)
        self.ticks += 1
        reward = float(self.reward_fn(self.frame, keys)) if self.reward_fn else 0.0
        truncated = self.ticks >= self.max_steps
        return self.frame, reward, False, truncated, {"tick": self.ticks}

    def render(self):
        return self.frame


gym.register("skyloop/World-v0", entry_point="engine.world.env:WorldEnv") if "skyloop/World-v0" not in gym.registry else None
