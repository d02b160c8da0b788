"""`overworld`: a top-down 2D world of grass, sand, water, trees and rocks.

The camera follows the player, who stays in the centre of the frame. Water,
trees and rocks block. The terrain is fixed by `level`; `reset(seed)` picks the
spawn point. Positions are integers (16 units per tile), so moves are exact.
"""

from __future__ import annotations

import numpy as np

from engine.keys import KeySet, default_bindings
from scenes.base import SceneBase

TILE_UNITS = 16  # position units per tile
SPEED = 4  # units per tick: a quarter tile
HALF_BOX = 5  # player hitbox half-size, units
VIEW_TILES = 8  # tiles across the shorter side of the frame
GRASS, SAND, WATER, TREE, ROCK = range(5)
BLOCKING = (WATER, TREE, ROCK)

_KEY_NAMES = ("up", "down", "left", "right")
KEYS = KeySet(_KEY_NAMES, default_bindings(_KEY_NAMES))  # arrows and WASD


def _value_noise(rng: np.random.Generator, n: int, cell: int) -> np.ndarray:
    """Smooth noise on an n x n grid: random values every `cell` tiles, bilinearly blended."""
    coarse = rng.random((n // cell + 2, n // cell + 2))
    t = (np.arange(n) % cell) / cell
    t = t * t * (3 - 2 * t)  # smoothstep
    i = np.arange(n) // cell
    top = coarse[i][:, i] * (1 - t)[None, :] + coarse[i][:, i + 1] * t[None, :]
    bottom = coarse[i + 1][:, i] * (1 - t)[None, :] + coarse[i + 1][:, i + 1] * t[None, :]
    return top * (1 - t)[:, None] + bottom * t[:, None]


def generate_terrain(level: int, tiles: int = 48) -> np.ndarray:
    """Tile types [tiles, tiles]: islands of grass and sand in water, with trees and rocks."""
    rng = np.random.default_rng(2_000_029 + level)
    height = 0.65 * _value_noise(rng, tiles, 8) + 0.35 * _value_noise(rng, tiles, 4)
    yy, xx = np.mgrid[0:tiles, 0:tiles] / (tiles - 1) * 2 - 1
    height = height - 0.35 * (xx**2 + yy**2)  # an island: water towards the edges
    moisture = _value_noise(rng, tiles, 6)
    scatter = rng.random((tiles, tiles))
    terrain = np.full((tiles, tiles), GRASS, np.uint8)
    terrain[height < 0.36] = SAND
    terrain[height < 0.30] = WATER
    land = terrain == GRASS
    terrain[land & (moisture > 0.55) & (scatter < 0.22)] = TREE
    terrain[land & (moisture < 0.35) & (scatter < 0.08)] = ROCK
    terrain[[0, -1], :] = WATER
    terrain[:, [0, -1]] = WATER
    return terrain


def _tile_sprites(px: int) -> np.ndarray:
    """One px x px RGB sprite per tile type, drawn procedurally."""
    yy, xx = (np.mgrid[0:px, 0:px] + 0.5) / px  # pixel centres in [0, 1]
    sprites = np.zeros((5, px, px, 3), np.float32)
    grass = np.array([0.36, 0.62, 0.25])
    sprites[GRASS] = grass
    blade = ((xx * 4 + yy * 2) % 1.0 < 0.18) & ((yy * 3) % 1.0 < 0.5)
    sprites[GRASS][blade] = grass * 0.8
    sprites[SAND] = (0.86, 0.79, 0.52)
    grain = ((xx * 3 + 0.3) % 1.0 < 0.2) & ((yy * 3 + 0.6) % 1.0 < 0.2)
    sprites[SAND][grain] = (0.74, 0.66, 0.42)
    sprites[WATER] = (0.18, 0.38, 0.78)
    wave = np.abs(((yy * 2 + 0.25 * np.sin(xx * 2 * np.pi)) % 1.0) - 0.5) < 0.07
    sprites[WATER][wave] = (0.45, 0.62, 0.92)
    sprites[TREE] = sprites[GRASS]
    trunk = (np.abs(xx - 0.5) < 0.1) & (yy > 0.6)
    sprites[TREE][trunk] = (0.40, 0.26, 0.12)
    canopy = (xx - 0.5) ** 2 + (yy - 0.42) ** 2 < 0.33**2
    sprites[TREE][canopy] = (0.10, 0.38, 0.14)
    sprites[TREE][canopy & ((xx - 0.42) ** 2 + (yy - 0.32) ** 2 < 0.12**2)] = (0.18, 0.50, 0.20)
    sprites[ROCK] = sprites[GRASS]
    rock = ((xx - 0.5) / 0.42) ** 2 + ((yy - 0.56) / 0.34) ** 2 < 1
    sprites[ROCK][rock] = (0.52, 0.52, 0.55)
    sprites[ROCK][rock & ((xx - 0.4) ** 2 + (yy - 0.45) ** 2 < 0.1**2)] = (0.72, 0.72, 0.75)
    return np.round(sprites * 255).astype(np.uint8)


def _player_sprites(px: int) -> np.ndarray:
    """Player sprites facing up, down, left, right: a red body with a white visor on the facing side."""
    yy, xx = (np.mgrid[0:px, 0:px] + 0.5) / px - 0.5  # centred coordinates in [-0.5, 0.5]
    body = xx**2 + yy**2 < 0.36**2
    out = np.zeros((4, px, px, 4), np.uint8)  # RGBA
    for i, (fx, fy) in enumerate(((0, -1), (0, 1), (-1, 0), (1, 0))):
        sprite = out[i]
        sprite[body] = (200, 40, 40, 255)
        visor = (xx - 0.2 * fx) ** 2 + (yy - 0.2 * fy) ** 2 < 0.13**2
        sprite[visor & body] = (245, 245, 245, 255)
    return out


class Overworld(SceneBase):
    """Top-down island. Keys: up, down, left, right (arrows or WASD)."""

    name = "overworld"
    keyset = KEYS
    inverse_keys = {"up": "down", "down": "up", "left": "right", "right": "left"}  # see Maze.inverse_keys

    def __init__(self, size=(64, 64), level: int = 0):
        super().__init__(size)
        self.level = int(level)
        self.terrain = generate_terrain(self.level)
        h, w = self.size
        self.px = max(4, min(h, w) // VIEW_TILES)  # pixels per tile
        tiles = self.terrain.shape[0]
        sprites = _tile_sprites(self.px)
        world = sprites[self.terrain]  # [ty, tx, px, px, 3]
        world = world.transpose(0, 2, 1, 3, 4).reshape(tiles * self.px, tiles * self.px, 3)
        # Pad with water so the view never leaves the image.
        self.pad = max(h, w) // 2 + 2 * self.px
        water = sprites[WATER]
        reps = (tiles * self.px + 2 * self.pad) // self.px + 1
        padded = np.tile(water, (reps, reps, 1))[: tiles * self.px + 2 * self.pad, : tiles * self.px + 2 * self.pad]
        padded = padded.copy()
        padded[self.pad : self.pad + tiles * self.px, self.pad : self.pad + tiles * self.px] = world
        self.world = padded
        self.player = _player_sprites(self.px)
        free = np.argwhere((self.terrain == GRASS) | (self.terrain == SAND))
        self.spawn_tiles = free
        self.x = self.y = 0
        self.facing = 1

    def options(self) -> dict:
        return {"level": self.level}

    def _blocked(self, x: int, y: int) -> bool:
        t0, t1 = (x - HALF_BOX) // TILE_UNITS, (x + HALF_BOX - 1) // TILE_UNITS
        r0, r1 = (y - HALF_BOX) // TILE_UNITS, (y + HALF_BOX - 1) // TILE_UNITS
        n = self.terrain.shape[0]
        if r0 < 0 or t0 < 0 or r1 >= n or t1 >= n:
            return True
        return bool(np.isin(self.terrain[r0 : r1 + 1, t0 : t1 + 1], BLOCKING).any())

    def _reset_state(self, rng: np.random.Generator) -> None:
        r, c = self.spawn_tiles[rng.integers(len(self.spawn_tiles))]
        self.x, self.y = int(c) * TILE_UNITS + TILE_UNITS // 2, int(r) * TILE_UNITS + TILE_UNITS // 2
        self.facing = 1

    def _advance(self, held: np.ndarray) -> None:
        dy = int(held[1]) - int(held[0])
        dx = int(held[3]) - int(held[2])
        if dx or dy:
            # Facing follows the last pressed axis; horizontal wins ties so diagonals face sideways.
            self.facing = (2 if dx < 0 else 3) if dx else (0 if dy < 0 else 1)
        for ddx, ddy in ((dx * SPEED, 0), (0, dy * SPEED)):  # each axis on its own: slide along coasts
            if (ddx or ddy) and not self._blocked(self.x + ddx, self.y + ddy):
                self.x, self.y = self.x + ddx, self.y + ddy

    def state(self) -> dict:
        return {
            "x": self.x / TILE_UNITS,
            "y": self.y / TILE_UNITS,
            "pose": (self.x, self.y, self.facing),
            "facing": ("up", "down", "left", "right")[self.facing],
            "tile": (self.y // TILE_UNITS, self.x // TILE_UNITS),
            "tick": self.tick,
        }

    def render(self) -> np.ndarray:
        h, w = self.size
        cx = self.pad + self.x * self.px // TILE_UNITS
        cy = self.pad + self.y * self.px // TILE_UNITS
        frame = self.world[cy - h // 2 : cy - h // 2 + h, cx - w // 2 : cx - w // 2 + w].copy()
        sprite = self.player[self.facing]
        y0, x0 = h // 2 - self.px // 2, w // 2 - self.px // 2
        region = frame[y0 : y0 + self.px, x0 : x0 + self.px]
        mask = sprite[..., 3:] > 0
        np.copyto(region, sprite[..., :3], where=mask)
        return frame
