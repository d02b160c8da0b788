"""Any Gymnasium game as a scene, and our scenes as Gymnasium envs.

`GymScene` wraps a `gymnasium.Env` that has `render_mode="rgb_array"` and a
`Discrete` action space. Its keys are the names of actions 1..n-1; action 0 is
what the game does when no key is held (Atari's NOOP, CartPole's push-left).
When several keys are held, the first in key order wins: a discrete game takes
one action per tick. Frames are area-resized to the scene's size.

When the game ends (terminated or truncated), `done` turns true and the next
`step` raises; the collector ends the episode there, and `Restarting`
(scenes/restarting.py) starts a new game for play and long benchmark runs.

`GymScene.make` finds and imports the package that registers the id
(scenes/gym_registry.py) and passes keyword arguments to `gymnasium.make`;
`options()` records the id, that module and those arguments, so every place
that makes the scene again (a world's benchmark, side-by-side play) gets the
same game.
"""

from __future__ import annotations

import re

import numpy as np

from engine.errors import SkyloopError
from engine.frames import area_resize
from engine.keys import KeySet, default_bindings


def _action_names(env, n: int) -> list[str]:
    meanings = getattr(env.unwrapped, "get_action_meanings", None)
    names = list(meanings()) if callable(meanings) else [f"action_{i}" for i in range(n)]
    names = [re.sub(r"[^a-z0-9]+", "_", str(m).lower()).strip("_") or f"action_{i}" for i, m in enumerate(names)]
    seen: dict[str, int] = {}
    for i, name in enumerate(names):  # make them unique
        if name in seen:
            names[i] = f"{name}_{i}"
        seen[names[i]] = i
    return names


class GymScene:
    """A Gymnasium env with rgb_array rendering and a Discrete action space, driven like a scene."""

    def __init__(self, env, size=(64, 64), env_id: str | None = None):
        import gymnasium as gym

        self.env_id = env_id or getattr(getattr(env, "spec", None), "id", None) or type(env).__name__
        if not isinstance(env.action_space, gym.spaces.Discrete):
            raise SkyloopError(
                f"{self.env_id}: only Discrete action spaces can be played with keys, this env has {env.action_space}. "
                "Many games have an option that makes it Discrete: pass it with --gym-kwargs "
                "(e.g. continuous=False for CarRacing or LunarLander)"
            )
        if getattr(env, "render_mode", None) != "rgb_array":
            raise SkyloopError(f"{self.env_id}: the env must be made with render_mode='rgb_array' (it has {env.render_mode!r})")
        self.env = env
        self.name = f"gym:{self.env_id}"
        self.size = (int(size[0]), int(size[1]))
        names = _action_names(env, int(env.action_space.n))
        self.action_names = names
        self.keyset = KeySet(tuple(names[1:]), default_bindings(names[1:]))
        self.done = False
        self.tick = 0
        self._last_obs = None
        self.module: str | None = None  # the module imported to register env_id, if any
        self.env_kwargs: dict = {}  # keyword arguments given to gymnasium.make

    @classmethod
    def make(cls, env_id: str, size=(64, 64), module: str | None = None, env_kwargs: dict | None = None) -> "GymScene":
        import gymnasium as gym

        from scenes.gym_registry import ensure_registered, not_found_message

        env_id, module = ensure_registered(env_id, module)
        env_kwargs = dict(env_kwargs or {})
        if "render_mode" in env_kwargs:
            raise SkyloopError(f"{env_id}: render_mode is not an option here (a scene always renders rgb_array frames)")
        try:
            env = gym.make(env_id, render_mode="rgb_array", **env_kwargs)
        except gym.error.Error as exc:
            raise SkyloopError(f"{not_found_message(env_id)} ({exc})") from exc
        except TypeError as exc:  # an option the game does not take
            raise SkyloopError(f"{env_id} does not take the options {env_kwargs}: {exc}") from exc
        scene = cls(env, size, env_id=env_id)
        scene.module, scene.env_kwargs = module, env_kwargs
        return scene

    def options(self) -> dict:
        """What `make_scene(self.name, size, **options)` needs to make this very game again."""
        out: dict = {"env_id": self.env_id}
        if self.module:
            out["module"] = self.module
        if self.env_kwargs:
            out["env_kwargs"] = dict(self.env_kwargs)
        return out

    def _frame(self) -> np.ndarray:
        frame = self.env.render()
        if frame is None or np.asarray(frame).ndim != 3:
            raise SkyloopError(f"{self.env_id}: render() returned no RGB frame")
        return area_resize(np.ascontiguousarray(np.asarray(frame)[..., :3], dtype=np.uint8), self.size)

    def reset(self, seed: int) -> np.ndarray:
        self._last_obs, _ = self.env.reset(seed=int(seed))
        self.env.action_space.seed(int(seed))
        self.done = False
        self.tick = 0
        return self._frame()

    def action_of(self, keys) -> int:
        held = self.keyset.vector(keys)
        nonzero = np.flatnonzero(held)
        return int(nonzero[0]) + 1 if len(nonzero) else 0

    def step(self, keys) -> np.ndarray:
        if self.done:
            raise SkyloopError(f"{self.env_id}: the game is over; reset(seed) to start again")
        self._last_obs, _, terminated, truncated, _ = self.env.step(self.action_of(keys))
        self.done = bool(terminated or truncated)
        self.tick += 1
        return self._frame()

    def state(self) -> dict:
        obs = self._last_obs
        out = {"tick": self.tick, "done": self.done}
        if isinstance(obs, np.ndarray) and obs.size <= 64:
            out["observation"] = obs.tolist()
        return out

    def close(self) -> None:
        self.env.close()


def register_envs() -> None:
    """Register our scenes as Gymnasium envs: skyloop/Maze-v0, skyloop/Overworld-v0, skyloop/Bounce-v0."""
    import gymnasium as gym

    for name in ("maze", "overworld", "bounce"):
        env_id = f"skyloop/{name.capitalize()}-v0"
        if env_id not in gym.registry:
            gym.register(env_id, entry_point="scenes.gym_env:SceneEnv", kwargs={"scene": name}, max_episode_steps=1000)
