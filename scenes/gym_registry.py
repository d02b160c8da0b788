"""Finding the package that registers a Gymnasium env id, and importing it.

Gymnasium 1.x loads no env plugins by itself: `ALE/Breakout-v5` is unknown
("Namespace ALE not found") until `ale_py` has been imported, even when ale-py
is installed. `ensure_registered` makes an id known, trying in order:
1. the module the user named (`--gym-module PKG`, or gymnasium's own
   `PKG:NS/Name-vN` form);
2. nothing, when the id is already registered (Gymnasium's own games);
3. the well-known packages below, by id prefix;
4. `gymnasium.envs` entry points named after the namespace (older plugins);
5. modules named after the namespace or the id's first word, lowercased
   (`tinygames/Dodge-v0` -> `tinygames`), when such a module is installed.
It returns the id without a module prefix and the module it imported, which
the scene stores so the env can be made again in another process.
"""

from __future__ import annotations

import importlib
import importlib.util
import re

from engine.errors import SkyloopError

# id prefix -> (module that registers the envs on import, the package to pip install)
KNOWN_PACKAGES: dict[str, tuple[str, str]] = {
    "ALE/": ("ale_py", "ale-py"),
    "MiniGrid-": ("minigrid", "minigrid"),
    "BabyAI-": ("minigrid", "minigrid"),
    "MiniWorld-": ("miniworld", "miniworld"),
    "highway-": ("highway_env", "highway-env"),
    "merge-": ("highway_env", "highway-env"),
    "roundabout-": ("highway_env", "highway-env"),
    "parking-": ("highway_env", "highway-env"),
    "intersection-": ("highway_env", "highway-env"),
    "racetrack-": ("highway_env", "highway-env"),
    "FlappyBird-": ("flappy_bird_gymnasium", "flappy-bird-gymnasium"),
    "Vizdoom": ("vizdoom.gymnasium_wrapper", "vizdoom"),
}


def known_package(env_id: str) -> tuple[str, str] | None:
    """(module, pip package) of a well-known id prefix, or None."""
    for prefix, provider in KNOWN_PACKAGES.items():
        if env_id.startswith(prefix):
            return provider
    return None


def _registered(env_id: str) -> bool:
    import gymnasium as gym

    try:
        gym.spec(env_id)
    except gym.error.Error:
        return False
    return True


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package that is missing or broken
        return False


def _import(module: str, why: str) -> None:
    try:
        importlib.import_module(module)
    except ImportError as exc:
        raise SkyloopError(f"could not import {module} ({why}): {exc}") from exc


def _namespace(env_id: str) -> str | None:
    return env_id.split("/", 1)[0] if "/" in env_id else None


def _guessed_modules(env_id: str) -> list[str]:
    """Module names a package for this id is likely to have: the namespace or first word, lowercased."""
    words = [_namespace(env_id) or re.split(r"[-_]", env_id, maxsplit=1)[0]]
    out = []
    for word in words:
        base = re.sub(r"[^a-z0-9_]+", "_", word.lower()).strip("_")
        out += [base, f"{base}_env", f"{base}_envs", f"{base}_gymnasium", f"gymnasium_{base}"] if base else []
    return out


def _from_entry_points(env_id: str) -> str | None:
    """Loads the `gymnasium.envs` entry point named after the id's namespace (Gymnasium 0.26-0.29 plugins)."""
    from importlib.metadata import entry_points

    name = _namespace(env_id) or "__root__"
    for ep in entry_points(group="gymnasium.envs"):
        if ep.name == name:
            loaded = ep.load()
            if callable(loaded):
                loaded()  # a register function
            if _registered(env_id):
                return ep.value.split(":")[0]
    return None


def ensure_registered(env_id: str, module: str | None = None) -> tuple[str, str | None]:
    """Makes `env_id` known to Gymnasium; returns (id without a module prefix, module imported for it or None)."""
    if ":" in env_id:  # gymnasium's own PKG:NS/Name-vN form
        prefix, env_id = env_id.split(":", 1)
        if module and module != prefix:
            _import(module, "--gym-module")
        module = prefix
    if module:
        _import(module, f"named to register {env_id}")
        if not _registered(env_id):
            raise SkyloopError(f"importing {module} did not register the Gymnasium env {env_id!r}. {_registered_list(env_id)}")
        return env_id, module
    if _registered(env_id):
        return env_id, None
    known = known_package(env_id)
    if known and _installed(known[0].split(".")[0]):
        _import(known[0], f"it registers {env_id}")
        if _registered(env_id):
            return env_id, known[0]
    found = _from_entry_points(env_id)
    if found:
        return env_id, found
    for guess in _guessed_modules(env_id):
        if _installed(guess):
            _import(guess, f"guessed from {env_id}")
            if _registered(env_id):
                return env_id, guess
    raise SkyloopError(not_found_message(env_id, known))


def not_found_message(env_id: str, known: tuple[str, str] | None = None) -> str:
    """What to do about an id Gymnasium does not know: install its package, or name the module that registers it."""
    known = known or known_package(env_id)
    if known and not _installed(known[0].split(".")[0]):
        return (
            f"the Gymnasium env {env_id!r} comes from the package {known[1]}, which is not installed here: "
            f"pip install {known[1]} (Skyloop then imports {known[0]} by itself)"
        )
    ns = _namespace(env_id)
    what = f"no installed package registers the namespace {ns!r}" if ns else "no installed package registers it"
    return (
        f"unknown Gymnasium env {env_id!r}: {what}. Gymnasium 1.x loads no env plugins by itself: install the game's "
        f"package, and if Skyloop does not find it, name the module that registers the env on import: "
        f"--gym-module PKG, or --gym PKG:{env_id}. {_registered_list(env_id)}"
    )


def _registered_list(env_id: str) -> str:
    import gymnasium as gym

    ns = _namespace(env_id)
    same_ns = sorted(k for k in gym.registry if ns and k.startswith(f"{ns}/"))
    known = same_ns or sorted(k for k in gym.registry if "/" not in k) or sorted(gym.registry)
    return f"Registered envs include: {', '.join(known[:40])}{' ...' if len(known) > 40 else ''}"
