import os
import subprocess
import sys
from pathlib import Path

import pytest

# Headless everywhere: no display, no audio, GL through EGL.
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.pop("DISPLAY", None)

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args, cwd=None, env=None, timeout=600, check=False):
    """Runs `python -m engine ARGS` as a subprocess, returning the CompletedProcess."""
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "engine", *map(str, args)], cwd=cwd or ROOT, env=full_env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"skyloop {' '.join(map(str, args))} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="session")
def cli():
    return run_cli


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """A small overworld dataset at 32x32 (collected once per test session)."""
    import functools

    from engine.data.collect import collect
    from scenes import make_scene
    from scenes.explore import make_policy

    out = tmp_path_factory.mktemp("data") / "overworld"
    collect(out, functools.partial(make_scene, "overworld", size=(32, 32)), make_policy, episodes=8, steps=48, seed=3, progress=False)
    return out


@pytest.fixture(scope="session")
def tiny_world(tiny_dataset, tmp_path_factory):
    """A tiny world trained for a few steps: enough to exercise every path, not to look good."""
    from engine.train.config import resolve_preset
    from engine.train.run import train_world

    root = tmp_path_factory.mktemp("world")
    out = root / "tiny.safetensors"
    preset = resolve_preset("tiny", steps=40, tokenizer_steps=40, eval_every=40, checkpoint_every=1000)
    train_world(tiny_dataset, preset, out, run_dir=root / "run", threads=1, progress=False, command="tests")
    return out


def rewrite_metadata(src, dst, edit):
    """Copies a world file to `dst` through `edit(metadata_object, tensors)`: a world the trainer would not write."""
    import json

    from safetensors import safe_open
    from safetensors.numpy import save_file as save_np

    with safe_open(str(src), framework="np") as fh:
        meta = dict(fh.metadata())
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    obj = json.loads(meta["skyloop"])
    edit(obj, tensors)
    meta["skyloop"] = json.dumps(obj)
    save_np(tensors, str(dst), metadata=meta)


@pytest.fixture(scope="session")
def spatial_world(tiny_world, tmp_path_factory):
    """The tiny world's weights with dynamics.spatial_rope on (no weight depends on it: the same weights, other scores)."""
    out = tmp_path_factory.mktemp("spatial") / "spatial.safetensors"
    rewrite_metadata(tiny_world, out, lambda o, t: o["dynamics"].update(spatial_rope=True))
    return out


@pytest.fixture(scope="session")
def tiny_export(tiny_world, tmp_path_factory):
    from engine.export.onnx_export import export_world

    return export_world(tiny_world, tmp_path_factory.mktemp("onnx") / "tiny")
