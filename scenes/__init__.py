"""Deterministic ground-truth worlds, and any Gymnasium game as one.

`make_scene("maze", size=(64, 64))`; `make_scene("gym:CartPole-v1")` wraps a
Gymnasium env (`module=` names the package that registers it, `env_kwargs=`
go to `gymnasium.make`). Unknown names get an error that lists what exists.
"""

from __future__ import annotations

from engine.errors import SkyloopError
from engine.frames import parse_size

SCENES = {
    "maze": ("scenes.maze", "Maze", "first-person 3D maze of rooms and corridors (ModernGL, EGL)"),
    "overworld": ("scenes.overworld", "Overworld", "top-down 2D island: grass, sand, water, trees, rocks"),
    "bounce": ("scenes.bounce", "Bounce", "physics box: balls under gravity and a block you push"),
}


def scene_class(name: str):
    import importlib

    if name not in SCENES:
        raise SkyloopError(f"unknown scene {name!r}; scenes: {', '.join(SCENES)} (or gym:ENV_ID for a Gymnasium env)")
    module, cls, _ = SCENES[name]
    return getattr(importlib.import_module(module), cls)


def make_scene(name: str, size=(64, 64), **options):
    """A scene by name. `gym:ENV_ID` makes a Gymnasium env into one."""
    size = parse_size(size)
    if name.startswith("gym:"):
        from scenes.gym_adapter import GymScene

        env_id = options.pop("env_id", None) or name[4:]
        module = options.pop("module", None)
        env_kwargs = {**options.pop("env_kwargs", {}), **options}  # loose options are env keyword arguments too
        return GymScene.make(env_id, size=size, module=module, env_kwargs=env_kwargs)
    return scene_class(name)(size=size, **options)


def _register_gymnasium() -> None:
    """Our scenes as Gymnasium envs: gym.make("scenes:skyloop/Maze-v0") imports this package and finds them."""
    from scenes.gym_adapter import register_envs

    try:
        register_envs()
    except ImportError:  # gymnasium is optional for the built-in scenes themselves (a bare GPU machine may lack it)
        return


_register_gymnasium()
