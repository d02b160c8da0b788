"""What the game loop drives: anything with `reset` and `step`.

`WorldSource` wraps a learned world, `SceneSource` a ground-truth scene. The
loop cannot tell them apart, which is what makes side-by-side view free.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.files import sha256_file
from engine.keys import KeySet


def describe_context(context, seed: int) -> dict:
    """How a play session started, as stored in action logs (enough to start it again)."""
    if context is None:
        return {"kind": "seed", "seed": int(seed)}
    path = Path(context)
    return {"kind": "file", "path": str(path.resolve()), "sha256": sha256_file(path)}


class WorldSource:
    learned = True

    def __init__(self, world):
        self.world = world
        self.keyset: KeySet = world.keyset
        self.frame_size = world.frame_size
        self.tick_hz = world.spec.tick_hz
        self.name = Path(world.path).name if world.path else "world"

    def reset(self, context, seed: int) -> np.ndarray:
        return self.world.reset(context, seed=seed)

    def step(self, keys: list[str]) -> np.ndarray:
        return self.world.step(keys)

    @property
    def notices(self) -> list[str]:
        return self.world.notices

    def describe(self) -> dict:
        return self.world.describe()

    def header(self) -> dict:
        w = self.world
        return {
            "source": "world",
            "world": str(w.path),
            "world_sha256": w.sha256,
            "scene": w.spec.scene,
            "scene_options": w.spec.scene_options,
            "sampler": w.sampler_cfg.to_json(),
            **self.describe(),
        }

    def companion_scene(self):
        """The ground-truth scene this world learned, if it can run here (for side-by-side)."""
        from scenes import SCENES, make_scene

        spec = self.world.spec
        if spec.scene not in SCENES and not spec.scene.startswith("gym:"):
            return None
        return SceneSource(make_scene(spec.scene, size=self.frame_size, **spec.scene_options))


class SceneSource:
    """A ground-truth scene in the loop. A game that ends starts again on the next tick (scenes/restarting.py)."""

    learned = False

    def __init__(self, scene):
        from scenes.restarting import Restarting

        self.scene = Restarting(scene)
        self.keyset: KeySet = scene.keyset
        self.frame_size = scene.size
        self.tick_hz = 15.0
        self.name = scene.name
        self.notices: list[str] = []
        self.last_step_ms = 0.0

    def reset(self, context, seed: int) -> np.ndarray:
        if context is not None:
            self.notices = [f"a ground-truth scene starts from a seed; ignoring {context}"]
        return self.scene.reset(seed)

    def step(self, keys: list[str]) -> np.ndarray:
        return self.scene.step(keys)

    def describe(self) -> dict:
        return {"backend": "scene", "device": "cpu", **({"games_restarted": self.scene.restarts} if self.scene.restarts else {})}

    def header(self) -> dict:
        options = self.scene.options() if hasattr(self.scene, "options") else {}
        return {"source": "scene", "scene": self.scene.name, "scene_options": options, **self.describe()}

    def companion_scene(self):
        return None

    def close(self) -> None:
        self.scene.close()
