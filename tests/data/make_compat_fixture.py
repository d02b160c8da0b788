"""Makes tests/data/world_v1.safetensors and its expected rollout (run once per world-format version).

The compatibility test loads this file with the current code and checks the rollout still matches:
a world saved by an earlier version keeps working. Usage: .venv/bin/python tests/data/make_compat_fixture.py
"""
import functools
import tempfile
from pathlib import Path

import numpy as np

from engine.data.collect import collect
from engine.train.config import resolve_preset
from engine.train.run import train_world
from engine.world.session import World
from scenes import make_scene
from scenes.explore import make_policy

HERE = Path(__file__).parent
KEYS = [["up"], ["up", "left"], [], ["right"], ["down"], ["down", "right"], ["left"], []]


def main():
    with tempfile.TemporaryDirectory() as tmp:
        data = collect(Path(tmp) / "data", functools.partial(make_scene, "overworld", size=(32, 32)), make_policy, episodes=6, steps=40,
                       seed=1, progress=False)
        train_world(data.root, resolve_preset("tiny", steps=60, tokenizer_steps=60, eval_every=60, checkpoint_every=1000),
                    HERE / "world_v1.safetensors", run_dir=Path(tmp) / "run", threads=1, progress=False,
                    command="tests/data/make_compat_fixture.py")
    world = World.load(HERE / "world_v1.safetensors", backend="torch")
    frames = [world.reset(None, seed=5)] + [world.step(k) for k in KEYS]
    np.save(HERE / "world_v1_rollout.npy", np.stack(frames))
    print("wrote", HERE / "world_v1.safetensors", HERE / "world_v1_rollout.npy")


if __name__ == "__main__":
    main()
