"""Exploration policies for collecting training data.

A learned world only knows what its data showed it. The collector mixes:
- sticky random keys (every key and combination, held for a while, as players do);
- a scene-aware explorer that walks to far, rarely visited places by shortest
  path, so the data covers the whole level;
- out-and-back excursions: L ticks of play, then the exact inverse keys in
  reverse order, so the data teaches that returning shows the same place.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from engine.actions import StickyRandom
from engine.keys import KeySet


def _bfs_path(free: np.ndarray, start: tuple[int, int], goal: tuple[int, int]) -> list[tuple[int, int]]:
    """Shortest 4-connected path over `free` cells from start to goal (both included); [] if none."""
    if start == goal:
        return [start]
    prev = {start: start}
    queue = deque([start])
    rows, cols = free.shape
    while queue:
        r, c = queue.popleft()
        for nr, nc in ((r + 1, c), (r - 1, c), (r, c + 1), (r, c - 1)):
            if 0 <= nr < rows and 0 <= nc < cols and free[nr, nc] and (nr, nc) not in prev:
                prev[(nr, nc)] = (r, c)
                if (nr, nc) == goal:
                    path = [(nr, nc)]
                    while path[-1] != start:
                        path.append(prev[path[-1]])
                    return path[::-1]
                queue.append((nr, nc))
    return []


class GridExplorer:
    """Walks to rarely visited cells of a grid level by shortest path.

    Scene adapters give: the free-cell grid, the current cell, and how to steer
    towards a point (`steer(scene, target_xy) -> key names`).
    """

    def __init__(self, free: np.ndarray, cell_of, steer, rng: np.random.Generator):
        self.free = free
        self.cell_of = cell_of
        self.steer = steer
        self.rng = rng
        self.visits = np.zeros(free.shape, np.int32)
        self.path: list[tuple[int, int]] = []
        self.stuck = 0
        self.last_cell = None

    def _new_target(self, here: tuple[int, int]) -> None:
        cells = np.argwhere(self.free)
        candidates = cells[self.rng.choice(len(cells), size=min(12, len(cells)), replace=False)]
        scores = self.visits[candidates[:, 0], candidates[:, 1]] - 0.05 * np.abs(candidates - np.array(here)).sum(1)
        goal = tuple(int(v) for v in candidates[int(np.argmin(scores))])
        self.path = _bfs_path(self.free, here, goal)[1:]

    def act(self, scene) -> list[str]:
        here = self.cell_of(scene)
        self.visits[here] += 1
        if here == self.last_cell:
            self.stuck += 1
        else:
            self.stuck, self.last_cell = 0, here
        while self.path and self.path[0] == here:
            self.path.pop(0)
        if not self.path or self.stuck > 40:
            self.stuck = 0
            self._new_target(here)
            if not self.path:
                return []
        return self.steer(scene, self.path[0])


class OutAndBack:
    """Wraps a policy; now and then plays L ticks of it, then the inverse keys in reverse order."""

    def __init__(self, inner, keyset: KeySet, inverse: dict[str, str], rng: np.random.Generator, p_start: float = 0.02, length=(4, 48)):
        self.inner = inner
        self.keyset = keyset
        self.perm = np.array([keyset.names.index(inverse.get(n, n)) for n in keyset.names])
        self.rng = rng
        self.p_start = p_start
        self.length = length
        self.outbound: list[np.ndarray] = []
        self.remaining_out = 0
        self.returning: list[np.ndarray] = []

    def act(self, scene) -> np.ndarray:
        if self.returning:
            return self.returning.pop()
        if self.remaining_out == 0 and self.rng.random() < self.p_start:
            self.remaining_out = int(self.rng.integers(self.length[0], self.length[1] + 1))
            self.outbound = []
        keys = self.keyset.vector(self.inner.act(scene))
        if self.remaining_out > 0:
            self.outbound.append(keys)
            self.remaining_out -= 1
            if self.remaining_out == 0:
                self.returning = [k[self.perm] for k in self.outbound]  # popped from the end: reverse order
        return keys


class Mixture:
    """Switches between policies in segments of random length."""

    def __init__(self, policies: list, weights: list[float], rng: np.random.Generator, segment=(20, 120)):
        self.policies = policies
        self.weights = np.asarray(weights, float) / sum(weights)
        self.rng = rng
        self.segment = segment
        self.left = 0
        self.active = policies[0]

    def act(self, scene):
        if self.left <= 0:
            self.active = self.policies[self.rng.choice(len(self.policies), p=self.weights)]
            self.left = int(self.rng.integers(*self.segment))
        self.left -= 1
        return self.active.act(scene)


# ---- per-scene recipes ---------------------------------------------------
def _maze_policy(scene, rng):
    from scenes import maze

    combos = [
        (),
        ("forward",),
        ("forward",),
        ("back",),
        ("turn_left",),
        ("turn_right",),
        ("strafe_left",),
        ("strafe_right",),
        ("forward", "turn_left"),
        ("forward", "turn_right"),
        ("back", "turn_left"),
        ("forward", "strafe_left"),
        ("forward", "strafe_right"),
    ]

    def cell_of(s):
        return (s.y // maze.UNIT, s.x // maze.UNIT)

    def steer(s, target):
        tx, ty = (target[1] + 0.5) * maze.UNIT, (target[0] + 0.5) * maze.UNIT
        want = np.arctan2(ty - s.y, tx - s.x) / (2 * np.pi) * maze.YAW_STEPS
        err = (want - s.yaw + maze.YAW_STEPS / 2) % maze.YAW_STEPS - maze.YAW_STEPS / 2
        if abs(err) <= maze.TURN / 2:
            return ["forward"]
        turn = "turn_right" if err > 0 else "turn_left"
        return [turn, "forward"] if abs(err) < 3 * maze.TURN else [turn]

    explorer = GridExplorer(~scene.walls, cell_of, steer, rng)
    inverse = scene.inverse_keys
    sticky = StickyRandom(scene.keyset, combos, rng)
    return Mixture([OutAndBack(explorer, scene.keyset, inverse, rng), OutAndBack(sticky, scene.keyset, inverse, rng, p_start=0.04)], [0.6, 0.4], rng)


def _overworld_policy(scene, rng):
    from scenes import overworld as ow

    combos = [(), ("up",), ("down",), ("left",), ("right",), ("up", "left"), ("up", "right"), ("down", "left"), ("down", "right")]
    free = ~np.isin(scene.terrain, ow.BLOCKING)

    def cell_of(s):
        return (s.y // ow.TILE_UNITS, s.x // ow.TILE_UNITS)

    def steer(s, target):
        tx, ty = target[1] * ow.TILE_UNITS + ow.TILE_UNITS // 2, target[0] * ow.TILE_UNITS + ow.TILE_UNITS // 2
        keys = []
        if ty < s.y - ow.SPEED // 2:
            keys.append("up")
        elif ty > s.y + ow.SPEED // 2:
            keys.append("down")
        if tx < s.x - ow.SPEED // 2:
            keys.append("left")
        elif tx > s.x + ow.SPEED // 2:
            keys.append("right")
        return keys

    explorer = GridExplorer(free, cell_of, steer, rng)
    inverse = scene.inverse_keys
    sticky = StickyRandom(scene.keyset, combos, rng)
    return Mixture([OutAndBack(explorer, scene.keyset, inverse, rng), OutAndBack(sticky, scene.keyset, inverse, rng, p_start=0.04)], [0.6, 0.4], rng)


def _bounce_policy(scene, rng):
    combos = [(), (), ("left",), ("right",), ("jump",), ("left", "jump"), ("right", "jump")]
    return StickyRandom(scene.keyset, combos, rng, hold=5.0)


def make_policy(scene, rng: np.random.Generator):
    """The exploration policy for a scene: scene-aware where we know the scene, sticky random otherwise."""
    recipes = {"maze": _maze_policy, "overworld": _overworld_policy, "bounce": _bounce_policy}
    if scene.name in recipes:
        return recipes[scene.name](scene, rng)
    combos = [()] + [(n,) for n in scene.keyset.names]
    return StickyRandom(scene.keyset, combos, rng)
