"""`bounce`: a physics box. Balls fall under gravity and collide elastically with
each other, the walls and a block the player pushes (left, right, jump).

The frame is fixed; everything that moves is physics. The simulation runs in
plain Python floats (IEEE double, no vector reductions), so it is bit-identical
on every machine. The box is 1 unit tall and width/height units wide.
"""

from __future__ import annotations

import math

import numpy as np

from engine.keys import KeySet
from scenes.base import SceneBase

TICK = 1 / 15  # seconds per tick
SUBSTEPS = 8
GRAVITY = 2.2  # units / s^2
N_BALLS = 4
MAX_SPEED = 2.5  # units / s: the player can pump energy in; cap it
PLAYER_W, PLAYER_H = 0.22, 0.09
PLAYER_SPEED = 0.9  # units / s
JUMP_SPEED = 1.5  # units / s
BALL_COLOURS = [(235, 90, 70), (80, 170, 240), (250, 210, 70), (120, 220, 120), (220, 120, 230), (240, 150, 60)]

KEYS = KeySet(
    ("left", "right", "jump"),
    {"left": ("left", "a"), "right": ("right", "d"), "jump": ("space", "up", "w")},
)


class Bounce(SceneBase):
    """Balls under gravity plus a block you push. Keys: left, right, jump."""

    name = "bounce"
    keyset = KEYS

    def __init__(self, size=(64, 64), balls: int = N_BALLS):
        super().__init__(size)
        self.n_balls = int(balls)
        h, w = self.size
        self.width = w / h  # box width in units
        # Background: a vertical gradient with a floor stripe, drawn once.
        t = (np.arange(h, dtype=np.float32) + 0.5) / h
        bg = np.empty((h, w, 3), np.float32)
        bg[:] = (np.array([28, 30, 52], np.float32) * (1 - t[:, None]) + np.array([58, 52, 80], np.float32) * t[:, None])[:, None, :]
        self.background = bg
        self.balls: list[list[float]] = []  # [x, y, vx, vy, r] with y pointing down, 0 at the top
        self.player = [0.0, 0.0, 0.0, 0.0]  # x (centre), y (top edge), vx, vy

    def options(self) -> dict:
        return {"balls": self.n_balls}

    # ---- simulation -------------------------------------------------------
    def _reset_state(self, rng: np.random.Generator) -> None:
        self.balls = []
        for _ in range(200):
            if len(self.balls) == self.n_balls:
                break
            r = float(rng.uniform(0.06, 0.1))
            x = float(rng.uniform(r, self.width - r))
            y = float(rng.uniform(r, 0.6))
            if all((x - b[0]) ** 2 + (y - b[1]) ** 2 > (r + b[4] + 0.01) ** 2 for b in self.balls):
                angle = float(rng.uniform(0, 2 * math.pi))
                speed = float(rng.uniform(0.4, 1.2))
                self.balls.append([x, y, speed * math.cos(angle), speed * math.sin(angle), r])
        self.player = [float(rng.uniform(PLAYER_W, self.width - PLAYER_W)), 1.0 - PLAYER_H, 0.0, 0.0]

    def _advance(self, held: np.ndarray) -> None:
        px, py, _, pvy = self.player
        pvx = PLAYER_SPEED * (int(held[1]) - int(held[0]))
        on_floor = py >= 1.0 - PLAYER_H - 1e-9
        if held[2] and on_floor:
            pvy = -JUMP_SPEED
        dt = TICK / SUBSTEPS
        for _ in range(SUBSTEPS):
            # Player: kinematic in x, falls under gravity, stays inside the box.
            pvy += GRAVITY * dt
            px = min(max(px + pvx * dt, PLAYER_W / 2), self.width - PLAYER_W / 2)
            py += pvy * dt
            if py >= 1.0 - PLAYER_H:
                py, pvy = 1.0 - PLAYER_H, 0.0
            self.player = [px, py, pvx, pvy]
            for b in self.balls:
                b[3] += GRAVITY * dt
                b[0] += b[2] * dt
                b[1] += b[3] * dt
                self._walls(b)
                self._hit_player(b)
            self._ball_pairs()
            for b in self.balls:
                speed = math.sqrt(b[2] * b[2] + b[3] * b[3])
                if speed > MAX_SPEED:
                    b[2], b[3] = b[2] * MAX_SPEED / speed, b[3] * MAX_SPEED / speed

    def _walls(self, b: list[float]) -> None:
        r = b[4]
        if b[0] < r:
            b[0], b[2] = r, abs(b[2])
        elif b[0] > self.width - r:
            b[0], b[2] = self.width - r, -abs(b[2])
        if b[1] < r:
            b[1], b[3] = r, abs(b[3])
        elif b[1] > 1.0 - r:
            b[1], b[3] = 1.0 - r, -abs(b[3])

    def _hit_player(self, b: list[float]) -> None:
        """The player block has infinite mass: reflect the ball's velocity relative to it."""
        px, py, pvx, pvy = self.player
        left, right, top, bottom = px - PLAYER_W / 2, px + PLAYER_W / 2, py, py + PLAYER_H
        cx, cy = min(max(b[0], left), right), min(max(b[1], top), bottom)
        dx, dy = b[0] - cx, b[1] - cy
        d2 = dx * dx + dy * dy
        if d2 >= b[4] * b[4]:
            return
        if d2 == 0.0:  # centre inside the block: push straight up
            nx, ny, d = 0.0, -1.0, 0.0
        else:
            d = math.sqrt(d2)
            nx, ny = dx / d, dy / d
        b[0] += nx * (b[4] - d)
        b[1] += ny * (b[4] - d)
        rvx, rvy = b[2] - pvx, b[3] - pvy
        vn = rvx * nx + rvy * ny
        if vn < 0:
            b[2] -= 2 * vn * nx
            b[3] -= 2 * vn * ny

    def _ball_pairs(self) -> None:
        balls = self.balls
        for i in range(len(balls)):
            for j in range(i + 1, len(balls)):
                a, b = balls[i], balls[j]
                dx, dy = b[0] - a[0], b[1] - a[1]
                rr = a[4] + b[4]
                d2 = dx * dx + dy * dy
                if d2 >= rr * rr or d2 == 0.0:
                    continue
                d = math.sqrt(d2)
                nx, ny = dx / d, dy / d
                ma, mb = a[4] * a[4], b[4] * b[4]  # mass ~ area
                # Separate the overlap in inverse proportion to mass.
                overlap = rr - d
                a[0] -= nx * overlap * mb / (ma + mb)
                a[1] -= ny * overlap * mb / (ma + mb)
                b[0] += nx * overlap * ma / (ma + mb)
                b[1] += ny * overlap * ma / (ma + mb)
                vn = (b[2] - a[2]) * nx + (b[3] - a[3]) * ny
                if vn < 0:  # approaching: exchange momentum along the normal (elastic)
                    k = 2 * vn / (ma + mb)
                    a[2] += k * mb * nx
                    a[3] += k * mb * ny
                    b[2] -= k * ma * nx
                    b[3] -= k * ma * ny

    def state(self) -> dict:
        return {
            "balls": [tuple(b) for b in self.balls],
            "player": tuple(self.player),
            "pose": tuple(round(v, 6) for v in self.player[:2]),
            "tick": self.tick,
        }

    # ---- rendering --------------------------------------------------------
    def render(self) -> np.ndarray:
        h, w = self.size
        scale = float(h)  # pixels per unit
        frame = self.background.copy()
        px, py = self.player[0], self.player[1]
        x0, x1 = (px - PLAYER_W / 2) * scale, (px + PLAYER_W / 2) * scale
        y0, y1 = py * scale, (py + PLAYER_H) * scale
        self._fill_rect(frame, x0, x1, y0, y1, np.array([235, 235, 235], np.float32))
        for i, b in enumerate(self.balls):
            self._disc(frame, b[0] * scale, b[1] * scale, b[4] * scale, np.array(BALL_COLOURS[i % len(BALL_COLOURS)], np.float32))
        return np.clip(frame + 0.5, 0, 255).astype(np.uint8)

    @staticmethod
    def _fill_rect(frame: np.ndarray, x0: float, x1: float, y0: float, y1: float, colour: np.ndarray) -> None:
        """Axis-aligned rectangle with exact area coverage at its edges."""
        h, w = frame.shape[:2]
        xs = np.arange(w, dtype=np.float32)
        ys = np.arange(h, dtype=np.float32)
        cover_x = np.clip(np.minimum(xs + 1, np.float32(x1)) - np.maximum(xs, np.float32(x0)), 0, 1)
        cover_y = np.clip(np.minimum(ys + 1, np.float32(y1)) - np.maximum(ys, np.float32(y0)), 0, 1)
        alpha = cover_y[:, None, None] * cover_x[None, :, None]
        frame *= 1 - alpha
        frame += alpha * colour

    @staticmethod
    def _disc(frame: np.ndarray, cx: float, cy: float, r: float, colour: np.ndarray) -> None:
        """Anti-aliased shaded disc, computed only inside its bounding box."""
        h, w = frame.shape[:2]
        ya, yb = max(int(cy - r) - 1, 0), min(int(cy + r) + 2, h)
        xa, xb = max(int(cx - r) - 1, 0), min(int(cx + r) + 2, w)
        if ya >= yb or xa >= xb:
            return
        dy = np.arange(ya, yb, dtype=np.float32)[:, None] + np.float32(0.5 - cy)
        dx = np.arange(xa, xb, dtype=np.float32)[None, :] + np.float32(0.5 - cx)
        dist = np.sqrt(dx * dx + dy * dy)
        alpha = np.clip(np.float32(r + 0.5) - dist, 0, 1)[..., None]
        # Light from the upper left: brighter there, darker at the lower right.
        shade = np.clip(np.float32(1.0) - (dx + dy) * np.float32(0.35 / r), 0.55, 1.3)[..., None]
        region = frame[ya:yb, xa:xb]
        region *= 1 - alpha
        region += alpha * np.minimum(colour * shade, 255)
