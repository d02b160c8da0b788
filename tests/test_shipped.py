"""The worlds we ship under worlds/: they load, say how they were made, and predict their scene.

The quality bars here are loose on purpose (the real figures come from `skyloop bench
consistency`, see docs/RESULTS.md); they catch a broken, untrained or mismatched file, e.g. a
world whose keys are wired to the wrong scene or whose weights are another world's.
"""

from pathlib import Path

import numpy as np
import pytest

from engine.bench.consistency import eval_seeds
from engine.bench.metrics import psnr
from engine.world.bundle import read_spec
from engine.world.session import World
from scenes import make_scene

WORLDS = Path(__file__).resolve().parents[1] / "worlds"
SHIPPED = ["maze", "overworld", "bounce"]
HELD = {"maze": "turn_left", "overworld": "right", "bounce": "right"}  # a key that always changes the view


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_world_metadata(name):
    path = WORLDS / f"{name}.safetensors"
    assert path.exists(), f"{path} is not in the checkout"
    assert path.stat().st_size <= 16 * 2**20
    spec = read_spec(path)
    scene = make_scene(name)
    assert spec.scene == name and spec.frame_size == (64, 64)
    assert spec.keyset.names == scene.keyset.names
    assert all(spec.keyset.bindings[k] for k in spec.keyset.names)
    assert spec.training["preset"] == "small" and spec.training["dynamics_steps"] > 0
    assert "skyloop train" in spec.training["command"] and f"data/{name}" in spec.training["command"]
    recipe = spec.dataset["collection"]
    assert recipe["seed"] == 0 and recipe["episodes"] == spec.dataset["episodes"] > 0
    assert spec.training["tokenizer_psnr"] > 30


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_world_predicts_its_scene(name):
    """Real context from an unseen seed, then the world and the scene step with the same keys."""
    world = World.load(WORLDS / f"{name}.safetensors", backend="torch")
    scene = make_scene(name)
    seed = eval_seeds(world.spec, 1)[0]
    keys = np.zeros((14, len(scene.keyset)), np.uint8)
    keys[:, scene.keyset.names.index(HELD[name])] = 1
    real = [scene.reset(seed)] + [scene.step(k) for k in keys[:8]]
    world.reset(np.stack(real), context_keys=np.concatenate([np.zeros((1, keys.shape[1]), np.uint8), keys[:8]]), seed=0)
    truth = np.stack([scene.step(k) for k in keys[8:]])
    pred = np.stack([world.step(k) for k in keys[8:]])
    assert pred.shape == truth.shape and pred.dtype == np.uint8
    scores = psnr(pred, truth)
    floor = psnr(np.repeat(real[-1][None], len(truth), 0), truth)  # repeat the last real frame
    assert scores[0] > floor[0] + 2, f"{name}: first predicted frame {scores[0]:.1f} dB, repeating the last frame gives {floor[0]:.1f}"
    assert scores.mean() > floor.mean() + 1, f"{name}: six predicted frames {scores.mean():.1f} dB vs {floor.mean():.1f} for repeat-last"
    other = make_scene(name).reset(seed + 1)  # another place entirely: the prediction must be nearer the truth
    assert scores[0] > psnr(pred[0], other) + 3
