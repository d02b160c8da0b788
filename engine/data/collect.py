"""Recording episodes from a scene with an exploration policy.

Each episode is seeded from (dataset seed, episode index) alone, so the output
does not depend on the number of workers, and running the same command again
finishes what is missing and redoes nothing.

This module knows scenes only through the callables it is given (it imports
numpy and nothing of `scenes`).
"""
from __future__ import annotations

import multiprocessing as mp
import os
import time
from pathlib import Path
from typing import Callable

import numpy as np

from engine.data.dataset import Dataset, EpisodeEntry, Manifest
from engine.data.episodes import write_episode
from engine.errors import SkyloopError
from engine.files import sha256_file


def episode_seeds(seed: int, index: int) -> tuple[int, np.random.Generator]:
    """(scene seed, policy rng) of episode `index` of a dataset collected with `seed`."""
    scene_seed = int(np.random.SeedSequence([seed, index, 0]).generate_state(1)[0] & 0x7FFFFFFF)
    return scene_seed, np.random.default_rng([seed, index, 1])


def record_episode(scene, policy, scene_seed: int, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Plays `steps` ticks (fewer if a game ends) and returns (frames [T, H, W, 3], keys [T, K])."""
    first = scene.reset(scene_seed)
    h, w = first.shape[:2]
    frames = np.empty((steps + 1, h, w, 3), np.uint8)
    keys = np.zeros((steps + 1, len(scene.keyset)), np.uint8)
    frames[0] = first
    t = 0
    for t in range(1, steps + 1):
        held = scene.keyset.vector(policy.act(scene))
        keys[t] = held
        frames[t] = scene.step(held)
        if getattr(scene, "done", False):
            break
    return frames[: t + 1], keys[: t + 1]


def _work(job) -> tuple[int, str, str, int, int, float]:
    make_scene, make_policy, out_dir, index, seed, steps = job
    scene = _worker_scene(make_scene)
    scene_seed, rng = episode_seeds(seed, index)
    start = time.perf_counter()
    frames, keys = record_episode(scene, make_policy(scene, rng), scene_seed, steps)
    elapsed = time.perf_counter() - start
    name = f"ep_{index:06d}.npz"
    digest = write_episode(Path(out_dir) / name, frames, keys)
    return index, name, digest, len(frames), scene_seed, elapsed


_SCENE = None


def _worker_scene(make_scene):
    """One scene per process, reused across episodes (a GL context costs ~50 ms to make)."""
    global _SCENE
    if _SCENE is None:
        _SCENE = make_scene()
    return _SCENE


def collect(
    out_dir: str | os.PathLike,
    make_scene: Callable[[], object],
    make_policy: Callable[[object, np.random.Generator], object],
    episodes: int,
    steps: int,
    seed: int = 0,
    workers: int = 1,
    describe: dict | None = None,
    progress: bool = True,
) -> Dataset:
    """Collects `episodes` episodes of `steps` ticks into `out_dir`; resumable.

    `make_scene` and `make_policy` must be picklable when workers > 1.
    """
    if episodes < 1 or steps < 1:
        raise SkyloopError(f"need at least 1 episode and 1 step (got --episodes {episodes} --steps {steps})")
    out_dir = Path(out_dir)
    probe = make_scene()
    collection = {"source": "collect", "seed": seed, "steps": steps, "episodes": episodes, **(describe or {})}
    manifest = Manifest(
        scene=probe.name, keyset=probe.keyset, frame_size=tuple(probe.size),
        scene_options=probe.options() if hasattr(probe, "options") else {}, collection=collection,
    )
    probe.close()
    done: dict[int, EpisodeEntry] = {}
    if (out_dir / "manifest.json").exists():
        old = Dataset.open(out_dir).manifest
        mine = (manifest.scene, manifest.scene_options, manifest.frame_size, manifest.keyset.names)
        theirs = (old.scene, old.scene_options, old.frame_size, old.keyset.names)
        same_recipe = all(old.collection.get(k) == collection[k] for k in ("seed", "steps"))
        if mine != theirs or not same_recipe:
            raise SkyloopError(
                f"{out_dir} already holds a different dataset (scene {old.scene} {old.frame_size[0]}x{old.frame_size[1]}, "
                f"seed {old.collection.get('seed')}, steps {old.collection.get('steps')}); choose another --out"
            )
        for entry in old.episodes:
            index = int(entry.file[3:9])
            path = out_dir / entry.file
            if index < episodes and path.exists() and sha256_file(path) == entry.sha256:
                done[index] = entry
    out_dir.mkdir(parents=True, exist_ok=True)
    dataset = Dataset(out_dir, manifest)

    def save():
        manifest.episodes = [done[i] for i in sorted(done)]
        dataset.save_manifest()

    todo = [i for i in range(episodes) if i not in done]
    if not todo:
        save()
        print(f"{out_dir}: all {episodes} episodes already there, nothing to do")
        return dataset
    if done:
        print(f"{out_dir}: resuming, {len(done)} episodes already there, {len(todo)} to go")
    jobs = [(make_scene, make_policy, str(out_dir), i, seed, steps) for i in todo]
    from tqdm import tqdm

    bar = tqdm(total=len(todo) * (steps + 1), unit="frame", unit_scale=True, desc=f"collect {manifest.scene}",
               disable=not progress, mininterval=0.5, smoothing=0.1)
    workers = max(1, min(workers, len(todo)))
    try:
        if workers == 1:
            results = map(_work, jobs)
            pool = None
        else:
            pool = mp.get_context("spawn").Pool(workers)  # spawn: GL contexts do not survive fork
            results = pool.imap_unordered(_work, jobs)
        for index, name, digest, n_frames, scene_seed, _elapsed in results:
            done[index] = EpisodeEntry(name, digest, n_frames, scene_seed)
            save()  # after every episode: a killed run resumes from here
            bar.update(n_frames)
        if pool is not None:
            pool.close()
            pool.join()
    finally:
        bar.close()
        global _SCENE
        if _SCENE is not None:
            _SCENE.close()
            _SCENE = None
    save()
    total = sum(e.frames for e in manifest.episodes)
    print(f"wrote {len(manifest.episodes)} episodes ({total} frames) to {out_dir}")
    return dataset
