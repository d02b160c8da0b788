"""The same loop with no window: for servers, tests, and machines with no display.

It ticks as fast as the source allows, records every frame, and reports the
model FPS and where the clip went.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from engine.actions import StickyRandom, read_key_script
from engine.errors import SkyloopError
from engine.play.session import PlaySession

KEY_SOURCES = ("random", "tour")  # --keys names that are not files


def _tour_scene(session: PlaySession):
    """The ground-truth scene whose state the tour reads: the one played, or the one running beside a world."""
    for source in (session.source, session.companion):
        scene = getattr(source, "scene", None)
        if scene is not None and scene.keyset.names == session.source.keyset.names:
            return scene
    return None


def key_source(session: PlaySession, keys: str | None, seed: int):
    """A function tick -> key names: sticky random keys, the tour (scenes/tour.py), or a script read from a
    file (repeated if short). Generated keys never hold a key with its opposite; a script plays as written."""
    keyset = session.source.keyset
    rng = np.random.default_rng(seed)
    if keys in (None, "random"):
        policy = StickyRandom.for_keyset(keyset, rng)
        return lambda t: keyset.without_opposites(keyset.held_names(policy.act()))
    if keys == "tour":
        from scenes.tour import blind_tour, make_tour

        scene = _tour_scene(session)
        if scene is None:
            print(
                "note: no ground-truth scene runs beside this world (started from a file, or its scene is not here); "
                "the tour holds sticky keys instead of walking the level"
            )
            blind = blind_tour(keyset, rng)
            return lambda t: blind.act()
        tour = make_tour(scene, rng)  # reads the scene each tick: the session steps it with these keys
        return lambda t: keyset.without_opposites(tour.act(scene))
    if not Path(keys).exists():
        raise SkyloopError(f"--keys {keys!r}: not one of {', '.join(KEY_SOURCES)}, and no such key file (.txt, .csv or .jsonl)")
    script = read_key_script(keys, keyset)
    return lambda t: script[(t - 1) % len(script)]


def run_headless(session: PlaySession, frames: int, keys: str | None = None, record: bool = True, quiet: bool = False) -> dict:
    """Plays `frames` ticks; returns figures and the files written."""
    next_keys = key_source(session, keys, session.seed)
    session.reset()
    for notice in session.notices:
        print(f"note: {notice}")
    if record:
        session.start_recording()
    step_ms = []
    start = time.perf_counter()
    from engine.play.stop import STOP

    try:
        for t in range(1, frames + 1):
            if STOP.is_set():
                print(f"\nstopped at tick {t - 1} by a signal")
                break
            session.step(next_keys(t))
            step_ms.append(session.step_ms)
            if not quiet and (t % max(1, frames // 10) == 0 or t == frames):
                print(f"\rtick {t}/{frames}  model {1000 / max(np.median(step_ms), 1e-6):.1f} FPS", end="", flush=True)
    finally:
        files = session.close()
        if not quiet:
            print()
    wall = time.perf_counter() - start
    ms = np.asarray(step_ms) if step_ms else np.zeros(1)
    result = {
        "frames": len(step_ms),
        "model_fps": float(1000 / np.median(ms)) if len(step_ms) else 0.0,
        "model_ms_p50": float(np.median(ms)),
        "model_ms_p99": float(np.percentile(ms, 99)),
        "loop_fps": len(step_ms) / wall if wall > 0 else 0.0,
        "files": [str(p) for p in files],
        **session.source.describe(),
    }
    return result


def default_clip_dir() -> Path:
    return Path("recordings")
