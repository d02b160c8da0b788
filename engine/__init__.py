"""Skyloop: a neural game engine.

`from engine import World, WorldEnv` (imported lazily: `import engine` stays light, and the
render and input parts never pull in torch).
"""

from engine.version import __version__

__all__ = ["World", "WorldEnv", "__version__"]


def __getattr__(name):
    if name == "World":
        from engine.world.session import World

        return World
    if name == "WorldEnv":
        from engine.world.env import WorldEnv

        return WorldEnv
    raise AttributeError(f"module 'engine' has no attribute {name!r}")
