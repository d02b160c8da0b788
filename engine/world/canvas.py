"""Canvas memory: what a scrolling, top-down world has shown, kept in world coordinates.

A learned world with an 8- or 16-frame context forgets a place as soon as it leaves the frame, so walking back
shows new terrain. The canvas remembers it, from the world's own frames and the keys alone (no simulator state,
no training), in the spirit of GameGAN's memory:

- **Where the camera went.** Each new frame is matched against the one shown before it at every shift up to
  `max_shift` pixels; the best match is the camera's move. Where the match cannot tell (plain grass matches
  every shift alike), the move measured most often under the same keys is taken instead.
- **What stays put.** A pixel is stored once the same world point has looked the same from two camera positions
  at least `settle` pixels apart: terrain does, a player sprite drawn in the middle of the screen does not (the
  world point under it shows terrain once the camera has moved on). Until then it is pending.
- **What belongs to the screen.** A screen pixel where the world keeps drawing something other than the stored
  terrain, tick after tick, is overlay (the player sprite, a score): there the world's own pixels are shown. The
  strip the camera has just revealed does not vote: it is the world's guess at what it could not see.
- **Write once, show always.** From then on a frame shows the stored pixels wherever it overlaps them; the model
  paints only what is new (the strip the camera reveals) and the overlay.

The world then commits the composed frame (re-encoded) instead of its own, so its context agrees with the
memory too. For scenes whose picture does not scroll (a first-person maze, a fixed screen with moving balls)
the memory is wrong and stays off: it is a per-world setting (`SamplerConfig.canvas`), chosen by the
benchmark like any other.

numpy only; frames are float [H, W, 3] in [0, 1].
"""

from __future__ import annotations

import copy

import numpy as np

CHUNK = 64  # canvas storage: square chunks of this many pixels, made as the camera reaches them


class Canvas:
    """The memory of one world (a batch of worlds keeps one each)."""

    def __init__(
        self,
        frame_size: tuple[int, int],
        max_shift: int = 4,
        settle: int | None = None,
        tolerance: float = 0.1,
        margin: float = 2e-4,
        overlay_rate: float = 0.1,
    ):
        """max_shift: the largest camera move per tick looked for, in pixels; settle: how far (pixels) the camera must
        have moved between two sightings of a world point that agree before it is stored (default: a quarter of
        the frame); tolerance: how far (max over the channels, in [0, 1]) two sightings may differ and agree;
        margin: how much better (mean squared error) a move must match than the move measured most often under the
        same keys to be believed; overlay_rate: the EMA rate of a screen pixel's disagreements with the stored terrain."""
        if max_shift < 1:
            raise ValueError(f"canvas max shift must be >= 1 pixel, got {max_shift}")
        self.h, self.w = frame_size
        self.max_shift = int(max_shift)
        self.settle = max(self.h, self.w) // 4 if settle is None else int(settle)
        self.tolerance = float(tolerance)
        self.margin = float(margin)
        self.overlay_rate = float(overlay_rate)
        r = np.arange(-self.max_shift, self.max_shift + 1)
        self.shifts = [(int(dy), int(dx)) for dy in r for dx in r]
        self.clear()

    def clear(self) -> None:
        # chunk (row, col) -> arrays [CHUNK, CHUNK, ...]: stored pixels, known, the pending sighting's pixels, the
        # camera origin at it, and whether one is pending
        self.chunks: dict[tuple[int, int], dict[str, np.ndarray]] = {}
        self.origin = (0, 0)  # canvas pixel of the shown frame's top-left corner
        self.last: np.ndarray | None = None  # the frame shown last
        self.fails = np.zeros((self.h, self.w), np.float32)  # EMA of each screen pixel's disagreements with stored terrain
        self.moves: dict[bytes, dict[tuple[int, int], int]] = {}  # keys -> how often each move was measured under them
        self.written = 0  # canvas pixels stored so far

    # ---- storage ---------------------------------------------------------------
    def _chunks(self, y0: int, x0: int):
        """(chunk, canvas slice, frame slice) for each chunk the frame at canvas (y0, x0) overlaps."""
        for cy in range(y0 // CHUNK, (y0 + self.h - 1) // CHUNK + 1):
            for cx in range(x0 // CHUNK, (x0 + self.w - 1) // CHUNK + 1):
                top, left = max(y0, cy * CHUNK), max(x0, cx * CHUNK)
                bottom, right = min(y0 + self.h, (cy + 1) * CHUNK), min(x0 + self.w, (cx + 1) * CHUNK)
                yield (
                    (cy, cx),
                    (slice(top - cy * CHUNK, bottom - cy * CHUNK), slice(left - cx * CHUNK, right - cx * CHUNK)),
                    (slice(top - y0, bottom - y0), slice(left - x0, right - x0)),
                )

    def _chunk(self, key: tuple[int, int]) -> dict[str, np.ndarray]:
        if key not in self.chunks:
            self.chunks[key] = {
                "pixels": np.zeros((CHUNK, CHUNK, 3), np.float32),
                "known": np.zeros((CHUNK, CHUNK), bool),
                "pending": np.zeros((CHUNK, CHUNK, 3), np.float32),
                "seen_at": np.zeros((CHUNK, CHUNK, 2), np.int64),
                "waiting": np.zeros((CHUNK, CHUNK), bool),
            }
        return self.chunks[key]

    def view(self, origin: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """The stored pixels [H, W, 3] and where they are known [H, W] for a frame at `origin`."""
        pixels = np.zeros((self.h, self.w, 3), np.float32)
        known = np.zeros((self.h, self.w), bool)
        for key, src, dst in self._chunks(*origin):
            if key in self.chunks:
                pixels[dst] = self.chunks[key]["pixels"][src]
                known[dst] = self.chunks[key]["known"][src]
        return pixels, known

    def _sight(self, frame: np.ndarray, mask: np.ndarray) -> None:
        """A sighting of the world points under `mask` at the current origin: each unknown point is stored once
        it agrees with a pending sighting from `settle` pixels away, else this sighting becomes its pending one."""
        here = np.asarray(self.origin, np.int64)
        for key, src, dst in self._chunks(*self.origin):
            m = mask[dst]
            if not m.any():
                continue
            c = self._chunk(key)
            seen, known, pending, seen_at, waiting = frame[dst], c["known"][src], c["pending"][src], c["seen_at"][src], c["waiting"][src]
            agree = np.abs(seen - pending).max(axis=-1) <= self.tolerance
            far = np.abs(seen_at - here).max(axis=-1) >= self.settle
            store = m & ~known & waiting & agree & far
            restart = m & ~known & ~(waiting & agree)
            c["pixels"][src][store] = 0.5 * (seen[store] + pending[store])
            c["known"][src] |= store
            c["waiting"][src] &= ~store
            pending[restart] = seen[restart]
            seen_at[restart] = here
            c["waiting"][src] |= restart
            self.written += int(store.sum())

    # ---- the camera's move -------------------------------------------------------
    def _overlap(self, dy: int, dx: int) -> tuple[tuple[slice, slice], tuple[slice, slice]]:
        """For a camera move (dy, dx): the pixels of the new frame that were in view before, and where they were
        in the old frame (after[a] shows what before[b] showed)."""
        a = (slice(max(0, -dy), self.h - max(0, dy)), slice(max(0, -dx), self.w - max(0, dx)))
        b = (slice(max(0, dy), self.h - max(0, -dy)), slice(max(0, dx), self.w - max(0, -dx)))
        return a, b

    def _errors(self, before: np.ndarray, after: np.ndarray) -> dict[tuple[int, int], float]:
        """Mean squared error of after[y, x] against before[y + dy, x + dx] over their overlap, per move (dy, dx)."""
        out = {}
        for dy, dx in self.shifts:
            a, b = self._overlap(dy, dx)
            d = (after[a] - before[b]).ravel()
            out[(dy, dx)] = float(d @ d) / d.size  # np.mean's overhead is most of the cost at this size
        return out

    def measure_move(self, before: np.ndarray, after: np.ndarray, keys: np.ndarray) -> tuple[int, int]:
        """The camera's move from `before` to `after` (pixels, (dy, dx)): the best match if it is clear (under half
        the median error over all moves, and clearer than the alternative below); else the move measured most often
        under the same keys. Not the last one: a blocked move is the exception, and a view with nothing to match
        (plain grass, or a world melted into flat colour) must not freeze the camera."""
        errors = self._errors(before, after)
        best = min(errors, key=lambda s: (errors[s], abs(s[0]) + abs(s[1])))
        tag = np.asarray(keys, np.float32).tobytes()
        counts = self.moves.setdefault(tag, {})
        prior = max(counts, key=lambda m: (counts[m], -abs(m[0]) - abs(m[1]))) if counts else (0, 0)
        typical = float(np.median(list(errors.values())))
        if (best == prior or errors[best] < errors[prior] - self.margin) and errors[best] < 0.5 * typical:  # a clear match
            counts[best] = counts.get(best, 0) + 1
            return best
        return prior

    # ---- a tick --------------------------------------------------------------------
    def overlay(self) -> np.ndarray:
        """Screen pixels [H, W] where the world keeps drawing something else than the stored terrain (never stored,
        always the world's own)."""
        return self.fails > 0.5

    def _advance(self, frame: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Moves the origin with the camera from the last frame shown to `frame`, learns the overlay and sights the
        world points in view. Returns the stored pixels and where they are known, at the new origin."""
        dy, dx = (0, 0) if self.last is None else self.measure_move(self.last, frame, keys)
        self.origin = (self.origin[0] + dy, self.origin[1] + dx)
        stored, known = self.view(self.origin)
        # Votes come only from pixels that were in view before the move: the strip the camera reveals is the world's
        # guess at what it cannot see, wrong or not, and says nothing about what belongs to the screen.
        voting = np.zeros_like(known)
        voting[self._overlap(dy, dx)[0]] = True
        voting &= known
        differs = (np.abs(frame - stored).max(axis=-1) > self.tolerance).astype(np.float32)
        self.fails[voting] += self.overlay_rate * (differs[voting] - self.fails[voting])
        self._sight(frame, ~self.overlay())
        return stored, known

    def observe(self, frame: np.ndarray, keys: np.ndarray) -> None:
        """A frame that is shown as it is (a real context frame): it moves the camera and is sighted."""
        frame = np.asarray(frame, np.float32)
        self._advance(frame, keys)
        self.last = frame

    def compose(self, frame: np.ndarray, keys: np.ndarray) -> np.ndarray:
        """The frame to show for the world's new `frame`: stored terrain wherever it is known, the world's own
        pixels elsewhere and on the overlay. The composed frame becomes the last one shown."""
        frame = np.asarray(frame, np.float32)
        stored, known = self._advance(frame, keys)
        use = known & ~self.overlay()
        shown = np.where(use[..., None], stored, frame)
        self.last = shown
        return shown

    def snapshot(self):
        return copy.deepcopy((self.chunks, self.origin, self.last, self.fails, self.moves, self.written))

    def restore(self, state) -> None:
        self.chunks, self.origin, self.last, self.fails, self.moves, self.written = copy.deepcopy(state)
