"""`maze`: a first-person 3D maze of rooms and corridors, rendered with ModernGL.

The level (the map) is fixed by `level`; `reset(seed)` only picks where the
player starts. That is how a game works, and it is what lets a learned world
remember places beyond its context window.

The pose is fixed-point (positions in 1/1024 of a cell, yaw in 1/72 of a turn),
so walking forward L ticks and back L ticks lands on exactly the same pose, and
the frames are bit-identical for the same seed and keys.
"""

from __future__ import annotations

import math
import os

import numpy as np

from engine.errors import SkyloopError
from engine.keys import KeySet, default_bindings
from scenes.base import SceneBase

UNIT = 1024  # fixed-point units per cell
YAW_STEPS = 72  # yaw resolution: 5 degrees
TURN = 2  # yaw steps per tick (10 degrees)
SPEED = 160  # units per tick (0.156 cells)
RADIUS = 256  # collision half-size of the player, in units
EYE = 0.5  # eye height, cells
FOV_Y = 62.0  # vertical field of view, degrees
SUPERSAMPLE = 2  # render at 2x and average: no shimmering patterns at 64x64

_KEY_NAMES = ("forward", "back", "turn_left", "turn_right", "strafe_left", "strafe_right")
KEYS = KeySet(_KEY_NAMES, default_bindings(_KEY_NAMES))  # W/↑ forward, S/↓ back, ←/Q and →/E turn, A/D strafe

# Step vectors for every yaw, rounded once to integers so that moves are exact.
_COS = [round(SPEED * math.cos(2 * math.pi * a / YAW_STEPS)) for a in range(YAW_STEPS)]
_SIN = [round(SPEED * math.sin(2 * math.pi * a / YAW_STEPS)) for a in range(YAW_STEPS)]

# Wall materials: a colour and a pattern each, so places can be told apart.
MATERIALS = [
    ((0.72, 0.25, 0.20), 0),  # red brick
    ((0.22, 0.40, 0.80), 1),  # blue vertical stripes
    ((0.25, 0.65, 0.30), 2),  # green checks
    ((0.85, 0.75, 0.25), 3),  # yellow dots
    ((0.60, 0.30, 0.70), 4),  # purple diagonals
    ((0.90, 0.50, 0.15), 5),  # orange bands
    ((0.20, 0.70, 0.70), 6),  # cyan panels
    ((0.80, 0.80, 0.78), 7),  # white framed
]
FLOOR_MAT, CEILING_MAT = 100, 101

_VERTEX = """
#version 330
uniform mat4 mvp;
in vec3 in_pos;
in vec2 in_uv;
in float in_mat;
in float in_shade;
out vec3 v_world;
out vec2 v_uv;
flat out int v_mat;
out float v_shade;
void main() {
    gl_Position = mvp * vec4(in_pos, 1.0);
    v_world = in_pos;
    v_uv = in_uv;
    v_mat = int(in_mat + 0.5);
    v_shade = in_shade;
}
"""

_FRAGMENT = """
#version 330
uniform vec3 eye;
uniform vec3 colors[8];
uniform int patterns[8];
in vec3 v_world;
in vec2 v_uv;
flat in int v_mat;
in float v_shade;
out vec4 f_color;

float pattern(int p, vec2 uv) {
    if (p == 0) {  // bricks: staggered rows with mortar
        vec2 b = uv * vec2(2.0, 4.0);
        if (mod(floor(b.y), 2.0) > 0.5) b.x += 0.5;
        vec2 f = fract(b);
        return (f.x < 0.08 || f.y < 0.12) ? 0.45 : 1.0;
    } else if (p == 1) {  // vertical stripes
        return fract(uv.x * 3.0) < 0.5 ? 1.0 : 0.55;
    } else if (p == 2) {  // checks
        vec2 c = floor(uv * 2.0);
        return mod(c.x + c.y, 2.0) < 0.5 ? 1.0 : 0.5;
    } else if (p == 3) {  // dots
        vec2 f = fract(uv * 2.0) - 0.5;
        return dot(f, f) < 0.09 ? 0.45 : 1.0;
    } else if (p == 4) {  // diagonals
        return fract((uv.x + uv.y) * 2.0) < 0.5 ? 1.0 : 0.5;
    } else if (p == 5) {  // horizontal bands
        return fract(uv.y * 3.0) < 0.4 ? 0.5 : 1.0;
    } else if (p == 6) {  // panels
        vec2 f = fract(uv * vec2(2.0, 1.0));
        return (f.x < 0.1 || f.x > 0.9 || f.y < 0.1 || f.y > 0.9) ? 0.4 : 1.0;
    }
    // framed plain
    return (uv.x < 0.12 || uv.x > 0.88 || uv.y < 0.12 || uv.y > 0.88) ? 0.55 : 1.0;
}

void main() {
    vec3 c;
    if (v_mat == 100) {
        vec2 cell = floor(v_world.xz);
        c = mod(cell.x + cell.y, 2.0) < 0.5 ? vec3(0.42, 0.36, 0.30) : vec3(0.30, 0.26, 0.22);
    } else if (v_mat == 101) {
        vec2 cell = floor(v_world.xz * 0.5);
        c = mod(cell.x + cell.y, 2.0) < 0.5 ? vec3(0.20, 0.22, 0.28) : vec3(0.16, 0.17, 0.22);
    } else {
        c = colors[v_mat] * pattern(patterns[v_mat], v_uv);
    }
    float d = distance(v_world, eye);
    float fog = exp(-0.16 * d);
    f_color = vec4(mix(vec3(0.05, 0.05, 0.08), c * v_shade, fog), 1.0);
}
"""


def generate_level(level: int, cells: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """A grid of rooms joined by corridors: (walls[cells, cells] bool, material[cells, cells] int).

    Every open cell is reachable from every other; the border is wall.
    """
    rng = np.random.default_rng(1_000_003 + level)
    walls = np.ones((cells, cells), bool)
    rooms: list[tuple[int, int, int, int]] = []  # (row, col, height, width)
    for _ in range(200):
        if len(rooms) >= 7:
            break
        h, w = int(rng.integers(2, 5)), int(rng.integers(2, 5))
        r, c = int(rng.integers(1, cells - h - 1)), int(rng.integers(1, cells - w - 1))
        if any(r - 1 < rr + hh and rr - 1 < r + h and c - 1 < cc + ww and cc - 1 < c + w for rr, cc, hh, ww in rooms):
            continue
        rooms.append((r, c, h, w))
        walls[r : r + h, c : c + w] = False
    centres = [(r + h // 2, c + w // 2) for r, c, h, w in rooms]
    # Connect rooms in a chain (sorted by position), then add two loops.
    order = sorted(range(len(rooms)), key=lambda i: centres[i][0] * cells + centres[i][1])
    links = list(zip(order, order[1:]))
    for _ in range(2):
        a, b = rng.choice(len(rooms), 2, replace=False)
        links.append((int(a), int(b)))
    for a, b in links:
        (r0, c0), (r1, c1) = centres[a], centres[b]
        if rng.integers(2):
            walls[r0, min(c0, c1) : max(c0, c1) + 1] = False
            walls[min(r0, r1) : max(r0, r1) + 1, c1] = False
        else:
            walls[min(r0, r1) : max(r0, r1) + 1, c0] = False
            walls[r1, min(c0, c1) : max(c0, c1) + 1] = False
    # Each wall takes the material of the nearest room: districts you can recognise.
    rr, cc = np.mgrid[0:cells, 0:cells]
    dist = np.stack([(rr - r) ** 2 + (cc - c) ** 2 for r, c in centres])
    material = np.argmin(dist, axis=0) % len(MATERIALS)
    return walls, material


class Maze(SceneBase):
    """First-person maze. Keys: forward, back, turn_left, turn_right, strafe_left, strafe_right."""

    name = "maze"
    keyset = KEYS
    # Each key undone by another: L ticks out and the inverses in reverse order come back (when nothing blocks).
    inverse_keys = {
        "forward": "back",
        "back": "forward",
        "turn_left": "turn_right",
        "turn_right": "turn_left",
        "strafe_left": "strafe_right",
        "strafe_right": "strafe_left",
    }

    def __init__(self, size=(64, 64), level: int = 0):
        super().__init__(size)
        self.level = int(level)
        self.walls, self.material = generate_level(self.level)
        self.cells = self.walls.shape[0]
        self.open_cells = np.argwhere(~self.walls)  # (row, col) pairs
        self._gl = None
        self.x = self.y = self.yaw = 0

    def options(self) -> dict:
        return {"level": self.level}

    # ---- simulation -------------------------------------------------------
    def _blocked(self, x: int, y: int) -> bool:
        """Whether a player centred at (x, y) (units) overlaps a wall cell."""
        c0, c1 = (x - RADIUS) // UNIT, (x + RADIUS - 1) // UNIT
        r0, r1 = (y - RADIUS) // UNIT, (y + RADIUS - 1) // UNIT
        if r0 < 0 or c0 < 0 or r1 >= self.cells or c1 >= self.cells:
            return True
        return bool(self.walls[r0 : r1 + 1, c0 : c1 + 1].any())

    def _reset_state(self, rng: np.random.Generator) -> None:
        r, c = self.open_cells[rng.integers(len(self.open_cells))]
        self.x, self.y = int(c) * UNIT + UNIT // 2, int(r) * UNIT + UNIT // 2
        self.yaw = int(rng.integers(YAW_STEPS // TURN)) * TURN

    def _advance(self, held: np.ndarray) -> None:
        fwd = int(held[0]) - int(held[1])
        turn = int(held[3]) - int(held[2])
        strafe = int(held[5]) - int(held[4])
        self.yaw = (self.yaw + TURN * turn) % YAW_STEPS
        # Forward is +yaw direction; strafe right is yaw + 90 degrees.
        side = (self.yaw + YAW_STEPS // 4) % YAW_STEPS
        dx = fwd * _COS[self.yaw] + strafe * _COS[side]
        dy = fwd * _SIN[self.yaw] + strafe * _SIN[side]
        if dx == 0 and dy == 0:
            return
        if not self._blocked(self.x + dx, self.y + dy):
            self.x, self.y = self.x + dx, self.y + dy
        elif not self._blocked(self.x + dx, self.y):  # slide along the wall
            self.x += dx
        elif not self._blocked(self.x, self.y + dy):
            self.y += dy

    def state(self) -> dict:
        return {
            "x": self.x / UNIT,
            "y": self.y / UNIT,
            "yaw_deg": self.yaw * 360.0 / YAW_STEPS,
            "pose": (self.x, self.y, self.yaw),
            "cell": (self.y // UNIT, self.x // UNIT),
            "tick": self.tick,
        }

    # ---- rendering --------------------------------------------------------
    def _mesh(self) -> np.ndarray:
        """Triangles of every wall face next to an open cell, plus floor and ceiling."""
        verts: list[tuple] = []

        def quad(p0, p1, p2, p3, mat, shade):
            uv = ((0, 0), (1, 0), (1, 1), (0, 1))
            for i in (0, 1, 2, 0, 2, 3):
                verts.append((*(p0, p1, p2, p3)[i], *uv[i], mat, shade))

        n = self.cells
        for r in range(n):
            for c in range(n):
                if not self.walls[r, c]:
                    continue
                m = float(self.material[r, c])
                # (neighbour row, col, face corners in x-z at the shared edge, shade)
                for dr, dc, a, b, shade in (
                    (-1, 0, (c + 1, r), (c, r), 0.85),
                    (1, 0, (c, r + 1), (c + 1, r + 1), 0.85),
                    (0, -1, (c, r), (c, r + 1), 1.0),
                    (0, 1, (c + 1, r + 1), (c + 1, r), 1.0),
                ):
                    rr, cc = r + dr, c + dc
                    if 0 <= rr < n and 0 <= cc < n and not self.walls[rr, cc]:
                        quad((a[0], 0, a[1]), (b[0], 0, b[1]), (b[0], 1, b[1]), (a[0], 1, a[1]), m, shade)
        quad((0, 0, 0), (n, 0, 0), (n, 0, n), (0, 0, n), FLOOR_MAT, 1.0)
        quad((0, 1, 0), (0, 1, n), (n, 1, n), (n, 1, 0), CEILING_MAT, 1.0)
        return np.asarray(verts, np.float32)

    def _init_gl(self) -> None:
        import moderngl

        os.environ.setdefault("LP_NUM_THREADS", "1")  # one core per scene: collectors run one per core
        try:
            ctx = moderngl.create_standalone_context(backend="egl")
        except Exception as exc:  # noqa: BLE001 - glcontext raises bare Exceptions
            raise SkyloopError(f"maze needs OpenGL through EGL and could not get it ({exc}). On Debian/Ubuntu: apt-get install libegl1 libgl1") from exc
        prog = ctx.program(vertex_shader=_VERTEX, fragment_shader=_FRAGMENT)
        prog["colors"].write(np.asarray([m[0] for m in MATERIALS], np.float32).tobytes())
        prog["patterns"].write(np.asarray([m[1] for m in MATERIALS], np.int32).tobytes())
        vbo = ctx.buffer(self._mesh().tobytes())
        vao = ctx.vertex_array(prog, [(vbo, "3f 2f 1f 1f", "in_pos", "in_uv", "in_mat", "in_shade")])
        h, w = self.size
        fbo = ctx.simple_framebuffer((w * SUPERSAMPLE, h * SUPERSAMPLE), components=3)
        self._gl = (ctx, prog, vao, fbo)

    def _view_projection(self) -> np.ndarray:
        h, w = self.size
        eye = np.array([self.x / UNIT, EYE, self.y / UNIT])
        ang = 2 * math.pi * self.yaw / YAW_STEPS
        fwd = np.array([math.cos(ang), 0.0, math.sin(ang)])
        right = np.array([-math.sin(ang), 0.0, math.cos(ang)])
        up = np.array([0.0, 1.0, 0.0])
        view = np.eye(4)
        view[0, :3], view[1, :3], view[2, :3] = right, up, -fwd
        view[:3, 3] = -view[:3, :3] @ eye
        f = 1.0 / math.tan(math.radians(FOV_Y) / 2)
        near, far = 0.05, 40.0
        proj = np.zeros((4, 4))
        proj[0, 0], proj[1, 1] = f * h / w, f
        proj[2, 2], proj[2, 3] = (far + near) / (near - far), 2 * far * near / (near - far)
        proj[3, 2] = -1.0
        return (proj @ view).astype(np.float32)

    def render(self) -> np.ndarray:
        if self._gl is None:
            self._init_gl()
        ctx, prog, vao, fbo = self._gl
        fbo.use()
        fbo.clear(0.0, 0.0, 0.0)
        ctx.enable(ctx.DEPTH_TEST)
        prog["mvp"].write(self._view_projection().T.copy().tobytes())  # column-major for GL
        prog["eye"].value = (self.x / UNIT, EYE, self.y / UNIT)
        vao.render()
        h, w = self.size
        s = SUPERSAMPLE
        raw = np.frombuffer(fbo.read(components=3), np.uint8).reshape(h * s, w * s, 3)[::-1]
        # Box-average the supersamples with integer rounding: exact and deterministic.
        acc = raw.reshape(h, s, w, s, 3).astype(np.uint16).sum(axis=(1, 3))
        return ((acc + s * s // 2) // (s * s)).astype(np.uint8)

    def close(self) -> None:
        if self._gl is not None:
            self._gl[0].release()
            self._gl = None
