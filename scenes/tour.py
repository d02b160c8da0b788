"""The tour: keys that play a scene the way a person shows it to a friend.

Where `explore` covers a level for training data (random keys, out-and-back
excursions), the tour is for looking at: it walks the corridors to a junction,
a room or a dead end, turns there, now and then stops to look around, and
every few places comes back to where it started. It reads the scene's own
state (pose and map) to choose keys, so it drives a ground-truth scene, or the
real scene that runs alongside a learned world. Same seed, same keys.

`make_tour(scene, rng)` gives a policy whose `act(scene)` returns the key
names to hold this tick; `blind_tour(keyset, rng)` is the fallback when no
scene state is at hand. Opposite keys are never held together: every policy's
keys pass through `KeySet.without_opposites`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from engine.keys import KeySet
from scenes.explore import _bfs_path


def _bfs_distances(free: np.ndarray, start: tuple[int, int]) -> np.ndarray:
    """Steps from start to every free cell (4-connected); -1 where unreachable."""
    dist = np.full(free.shape, -1, np.int32)
    dist[start] = 0
    queue = deque([start])
    rows, cols = free.shape
    while queue:
        r, c = queue.popleft()
        for nr, nc in ((r + 1, c), (r - 1, c), (r, c + 1), (r, c - 1)):
            if 0 <= nr < rows and 0 <= nc < cols and free[nr, nc] and dist[nr, nc] < 0:
                dist[nr, nc] = dist[r, c] + 1
                queue.append((nr, nc))
    return dist


@dataclass(frozen=True)
class TourConfig:
    reach: tuple[int, int] = (4, 14)  # how far (in cells, by path) the next place may be
    home_every: int = 3  # every n-th place is the start again: the tour comes back
    look_p: float = 0.5  # chance of looking around on arriving at a place
    arrive: float = 0.3  # within this share of a cell of a waypoint's centre, it is reached
    sight: int = 8  # waypoints looked ahead along the path for a straight line to walk
    stuck_ticks: int = 8  # ticks without moving (while walking) before backing off and choosing again


class GridTour:
    """Walks a grid level from place to place along shortest paths, cutting corners only where the
    player's own collision box fits (the scene's `_blocked`), so it turns at junctions and walks
    straight down corridors.

    The scene adapter gives: `free` cells, `unit` (pose units per cell), `position(scene) -> (x, y)`
    in pose units, `steer(scene, (x, y)) -> keys` and optionally `look(rng) -> [keys per tick]`.
    """

    def __init__(
        self, keyset: KeySet, free: np.ndarray, unit: int, position, steer, rng: np.random.Generator, look=None, backoff=None, cfg: TourConfig = TourConfig()
    ):
        self.keyset = keyset
        self.free = free
        self.unit = unit
        self.position = position
        self.steer = steer
        self.look = look
        self.backoff = backoff or (lambda rng: [])
        self.rng = rng
        self.cfg = cfg
        open_neighbours = sum(np.roll(free, shift, axis) for shift, axis in ((1, 0), (-1, 0), (1, 1), (-1, 1)))
        places = free & (open_neighbours != 2)  # junctions, rooms and dead ends: where a person would stop
        self.places = np.argwhere(places) if places.sum() >= 4 else np.argwhere(free)
        self.visits = np.zeros(free.shape, np.int32)  # arrivals per place: the tour prefers new ones
        self.home: tuple[int, int] | None = None
        self.path: list[tuple[int, int]] = []
        self.script: list[list[str]] = []  # keys queued for the next ticks (looking around, backing off)
        self.arrivals = 0
        self.last_pos = None
        self.still = 0

    # ---- geometry ---------------------------------------------------------------
    def _cell(self, pos) -> tuple[int, int]:
        return int(pos[1]) // self.unit, int(pos[0]) // self.unit

    def _centre(self, cell) -> tuple[int, int]:
        return cell[1] * self.unit + self.unit // 2, cell[0] * self.unit + self.unit // 2

    def _clear(self, scene, a, b) -> bool:
        """Whether the player's box fits all along the straight line a -> b (pose units)."""
        n = max(1, int(4 * max(abs(b[0] - a[0]), abs(b[1] - a[1])) / self.unit))
        for i in range(1, n + 1):
            x, y = a[0] + (b[0] - a[0]) * i // n, a[1] + (b[1] - a[1]) * i // n
            if scene._blocked(int(x), int(y)):
                return False
        return True

    # ---- choosing where to go ---------------------------------------------------------
    def _next_place(self, here) -> None:
        dist = _bfs_distances(self.free, here)
        lo, hi = self.cfg.reach
        goal = None
        if self.home is not None and self.arrivals % self.cfg.home_every == self.cfg.home_every - 1 and dist[self.home] >= 3:
            goal = self.home  # come back to where the tour started
        else:
            d = dist[self.places[:, 0], self.places[:, 1]]
            ok = (d >= lo) & (d <= hi)
            if not ok.any():
                ok = d > 0
            if ok.any():
                cands = self.places[ok]
                score = self.visits[cands[:, 0], cands[:, 1]] + self.rng.random(len(cands))  # fewest visits, then chance
                goal = tuple(int(v) for v in cands[int(np.argmin(score))])
        self.path = _bfs_path(self.free, here, goal)[1:] if goal else []

    def _arrive(self, here) -> None:
        self.arrivals += 1
        self.visits[here] += 1
        if self.look is not None and self.rng.random() < self.cfg.look_p:
            self.script = list(self.look(self.rng))

    # ---- one tick ------------------------------------------------------------------
    def act(self, scene) -> list[str]:
        return self.keyset.without_opposites(self._act(scene))

    def _act(self, scene) -> list[str]:
        pos = self.position(scene)
        here = self._cell(pos)
        if self.home is None:
            self.home = here
        pose = scene.state()["pose"]  # position and heading: turning in place is not being stuck
        self.still = self.still + 1 if not self.script and pose == self.last_pos else 0
        self.last_pos = pose
        if self.script:
            return self.script.pop(0)
        if self.still >= self.cfg.stuck_ticks:  # pressed against something: back off, then choose again
            self.still, self.path = 0, []
            self.script = list(self.backoff(self.rng))
            if self.script:
                return self.script.pop(0)
        if not self.path:
            self._next_place(here)
            if not self.path:
                return []
        # The farthest of the next few waypoints that a straight walk reaches.
        target = 0
        for i in range(1, min(self.cfg.sight, len(self.path))):
            if not self._clear(scene, pos, self._centre(self.path[i])):
                break
            target = i
        del self.path[:target]  # committed: going back for a waypoint the straight line passed by would flip-flop
        centre = self._centre(self.path[0])
        if max(abs(centre[0] - pos[0]), abs(centre[1] - pos[1])) <= self.cfg.arrive * self.unit:
            del self.path[0]
            if not self.path:
                self._arrive(here)
                return self.script.pop(0) if self.script else []
            centre = self._centre(self.path[0])
        return self.steer(scene, centre)


# ---- per-scene tours ------------------------------------------------------------
def _maze_tour(scene, rng):
    from scenes import maze

    def position(s):
        return (s.x, s.y)

    def steer(s, target):
        want = np.arctan2(target[1] - s.y, target[0] - s.x) / (2 * np.pi) * maze.YAW_STEPS
        err = (want - s.yaw + maze.YAW_STEPS / 2) % maze.YAW_STEPS - maze.YAW_STEPS / 2
        if abs(err) <= maze.TURN / 2:
            return ["forward"]
        turn = "turn_right" if err > 0 else "turn_left"
        return [turn, "forward"] if abs(err) < 3 * maze.TURN else [turn]  # sharp turns in place: at junctions

    quarter = maze.YAW_STEPS // 4 // maze.TURN  # ticks of turning for 90 degrees

    def look(rng):
        side, other = ("turn_left", "turn_right") if rng.random() < 0.5 else ("turn_right", "turn_left")
        if rng.random() < 0.25:  # the whole way round
            return [[side]] * (4 * quarter) + [[]] * 2
        k = int(rng.integers(quarter // 2, quarter + 1))  # one side, the other, and back: 45 to 90 degrees
        pause = [[]] * int(rng.integers(2, 5))
        return [[side]] * k + pause + [[other]] * (2 * k) + pause + [[side]] * k

    def backoff(rng):
        turn = "turn_left" if rng.random() < 0.5 else "turn_right"
        return [["back"]] * 3 + [[turn]] * int(rng.integers(3, quarter + 1))

    return GridTour(scene.keyset, ~scene.walls, maze.UNIT, position, steer, rng, look=look, backoff=backoff, cfg=TourConfig(reach=(3, 9), look_p=0.6))


def _overworld_tour(scene, rng):
    from scenes import overworld as ow

    free = ~np.isin(scene.terrain, ow.BLOCKING)

    def position(s):
        return (s.x, s.y)

    def steer(s, target):
        keys = []
        if target[1] < s.y - ow.SPEED // 2:
            keys.append("up")
        elif target[1] > s.y + ow.SPEED // 2:
            keys.append("down")
        if target[0] < s.x - ow.SPEED // 2:
            keys.append("left")
        elif target[0] > s.x + ow.SPEED // 2:
            keys.append("right")
        return keys

    def look(rng):  # a short stop to take in the view
        return [[]] * int(rng.integers(2, 6))

    def backoff(rng):
        return [[str(rng.choice(["up", "down", "left", "right"]))]] * 3

    return GridTour(scene.keyset, free, ow.TILE_UNITS, position, steer, rng, look=look, backoff=backoff, cfg=TourConfig(reach=(6, 20)))


class BounceTour:
    """Keeps the block under the ball nearest the floor and jumps when one comes down on it, with
    some wandering so it does not look like a machine."""

    def __init__(self, keyset: KeySet, rng: np.random.Generator):
        self.keyset = keyset
        self.rng = rng
        self.wander: list[list[str]] = []

    def act(self, scene) -> list[str]:
        return self.keyset.without_opposites(self._act(scene))

    def _act(self, scene) -> list[str]:
        if self.wander:
            return self.wander.pop(0)
        if self.rng.random() < 0.03:
            side = str(self.rng.choice(["left", "right"]))
            self.wander = [[side]] * int(self.rng.integers(3, 10)) + [[]] * int(self.rng.integers(0, 4))
            return self.wander.pop(0)
        px, py = scene.player[0], scene.player[1]
        ball = max(scene.balls, key=lambda b: b[1])  # lowest ball (y points down)
        keys = []
        if ball[0] < px - 0.04:
            keys.append("left")
        elif ball[0] > px + 0.04:
            keys.append("right")
        if abs(ball[0] - px) < 0.15 and 0 < py - ball[1] < 0.35 and ball[3] > 0:
            keys.append("jump")
        return keys


class StickyTour:
    """Random keys held for a while, one key or a non-opposing pair at a time, mostly not nothing.

    For games whose state the tour cannot read (Gymnasium games; a learned world with no real scene
    beside it). A Gymnasium scene takes one action per tick, so there it holds one key at a time.
    """

    def __init__(self, keyset: KeySet, rng: np.random.Generator, pairs: bool = True, hold: float = 8.0):
        names = keyset.names
        combos = [(n,) for n in names]
        if pairs:
            combos += [(a, b) for i, a in enumerate(names) for b in names[i + 1 :] if keyset.opposite(a) != b]
        self.combos = combos
        self.keyset = keyset
        self.rng = rng
        self.p_change = 1.0 / hold
        self.current: list[str] = list(combos[int(rng.integers(len(combos)))]) if combos else []

    def act(self, scene=None) -> list[str]:
        if self.combos and self.rng.random() < self.p_change:
            # A short rest now and then; otherwise another key or pair.
            self.current = [] if self.rng.random() < 0.1 else list(self.combos[int(self.rng.integers(len(self.combos)))])
        return self.keyset.without_opposites(self.current)


def blind_tour(keyset: KeySet, rng: np.random.Generator) -> StickyTour:
    """A tour with no scene state to read: sticky keys and non-opposing pairs."""
    return StickyTour(keyset, rng)


def make_tour(scene, rng: np.random.Generator):
    """The tour policy for a scene: scene-aware for maze, overworld and bounce; sticky keys otherwise."""
    recipes = {"maze": _maze_tour, "overworld": _overworld_tour, "bounce": lambda s, r: BounceTour(s.keyset, r)}
    if scene.name in recipes:
        return recipes[scene.name](scene, rng)
    if scene.name.startswith("gym:"):
        return StickyTour(scene.keyset, rng, pairs=False, hold=6.0)  # one discrete action per tick
    return blind_tour(scene.keyset, rng)
