"""Retrace memory: a tick that undoes the one before it shows the frame from before it.

In the maze and the overworld every move has an exact inverse (forward and back, turn left and turn right, up and
down): L ticks out and the inverse keys in reverse order come back to exactly the same picture, wherever nothing
blocked the way. A learned world with an 8-frame context cannot: what it showed nine ticks ago has left its
context, so walking back paints a new place. The trail remembers the way, from the world's own frames and the
keys alone (no simulator state, no training):

- **The way so far** is a stack of the frames the world showed after each tick that moved (its frame differs from
  the one before it by more than `still`: a move into a wall, or a tick with no key held, leaves the picture and
  the place as they were and is not a step of the way).
- **A step back.** When the last step held one key and this tick holds that key's opposite (`KeySet.opposite`)
  alone, the step is undone: the frame and latent tokens from before it are shown and committed again, and the
  model is not run. Only one-key steps: two keys need not undo each other in the order the game applies them
  (the maze turns before it moves, so back + turn right does not undo forward + turn left: on the maze's
  held-out episodes such undos gave the real frame back 15-33% of the time, one-key undos 99%).
- Any other tick is the world's own; it becomes the next step of the way if it moved.

What it does not do: recognise a place reached by another path (turning around and walking back, a full turn on
the spot). That needs a map, which the canvas (top-down worlds) keeps and this does not. Keys without an opposite
(jump, fire) are never undone; a game whose picture changes while the player stands (an animated sprite: the
overworld's recalled frames matched the real ones in 1% of its undos) gets a stale picture back; a world that moves
with no key held (bounce) must not use it: it is a per-world setting (`SamplerConfig.retrace`), chosen by the
benchmark like any other.

numpy only; frames are uint8 [H, W, 3].
"""

from __future__ import annotations

from collections import deque

import numpy as np


class Trail:
    """The way one world came (a batch of worlds keeps one each)."""

    def __init__(self, inverse: np.ndarray, still: float = 0.5, depth: int = 1024):
        """inverse [K]: the index of each key's opposite, -1 where it has none; still: the largest mean absolute
        change (grey levels, 0-255) of a tick that did not move; depth: the most steps kept (the oldest go first)."""
        self.inverse = np.asarray(inverse, np.int64)
        self.still = float(still)
        self.steps: deque = deque(maxlen=int(depth) + 1)  # (frame uint8 [H, W, 3], tokens [N, D], keys [K] or None)

    def start(self, frame: np.ndarray, tokens: np.ndarray) -> None:
        """Forgets the way: `frame` (with its latent tokens) is where the world now stands."""
        self.steps.clear()
        self.steps.append((np.asarray(frame, np.uint8), np.asarray(tokens), None))

    def _undoes(self, keys: np.ndarray) -> bool:
        """Whether `keys` [K] (multi-hot) are the opposite of the last step's one key."""
        last = self.steps[-1][2]  # never the start's None: undo() asks only with a step above it
        held = np.flatnonzero(last)
        if len(held) != 1 or self.inverse[held[0]] < 0:  # see the module's notes: one key, with an opposite
            return False
        undo = np.zeros_like(last)
        undo[self.inverse[held]] = 1
        return bool(np.array_equal(np.asarray(keys) > 0, undo > 0))

    def undo(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """If `keys` undo the last step: forgets that step and returns (frame, tokens) from before it; else None."""
        if len(self.steps) < 2 or not self._undoes(keys):  # the oldest kept frame cannot be undone past
            return None
        self.steps.pop()
        frame, tokens, _ = self.steps[-1]
        return frame, tokens

    def moved(self, frame: np.ndarray) -> bool:
        """Whether `frame` differs from where the world stands by more than a still tick does."""
        here = self.steps[-1][0]
        return float(np.abs(np.asarray(frame, np.int16) - here).mean()) > self.still

    def record(self, frame: np.ndarray, tokens: np.ndarray, keys: np.ndarray) -> None:
        """The world showed `frame` (tokens committed for it) after a tick with `keys`: a step of the way if it moved."""
        if np.asarray(keys).any() and self.moved(frame):
            self.steps.append((np.asarray(frame, np.uint8), np.array(tokens), np.array(keys, np.float32)))

    def observe(self, frame: np.ndarray, tokens: np.ndarray, keys: np.ndarray) -> None:
        """A real frame after a tick with `keys`: it undoes the last step, or it is a step of its own if it moved."""
        if self.undo(keys) is None:
            self.record(frame, tokens, keys)

    def __len__(self) -> int:
        """Steps back that can be retraced."""
        return max(0, len(self.steps) - 1)

    def snapshot(self):
        return list(self.steps)  # entries are never changed in place

    def restore(self, state) -> None:
        self.steps = deque(state, maxlen=self.steps.maxlen)


def inverse_indices(keyset) -> np.ndarray:
    """[K]: the index of each key's opposite in `keyset`, -1 where it has none."""
    names = list(keyset.names)
    return np.array([names.index(o) if (o := keyset.opposite(n)) else -1 for n in names], np.int64)
