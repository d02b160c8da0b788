"""The keys a world understands (KeySet) and their default bindings: part of the small shared types that
scenes/ may import.

An action is the multi-hot vector of the keys held during one tick, in the
order of the scene's key list. Combinations (forward + turn) are actions too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import numpy as np

from engine.errors import SkyloopError

# Words whose swap names the opposite key: turn_left <-> turn_right, forward <-> back, up <-> down.
_OPPOSITE_WORDS = {"left": "right", "right": "left", "up": "down", "down": "up", "forward": "back", "back": "forward"}


@dataclass(frozen=True)
class KeySet:
    """The keys a world understands, in vector order, with their default bindings."""

    names: tuple[str, ...]  # key names, e.g. ("forward", "back", "turn_left", ...)
    bindings: Mapping[str, tuple[str, ...]]  # key name -> pygame key names, e.g. {"forward": ("w", "up")}

    def __post_init__(self):
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"duplicate key names in {self.names}")
        unknown = set(self.bindings) - set(self.names)
        if unknown:
            raise ValueError(f"bindings for keys that do not exist: {sorted(unknown)}")

    def __len__(self) -> int:
        return len(self.names)

    def vector(self, held: Iterable[str] | np.ndarray | None = ()) -> np.ndarray:
        """Multi-hot uint8 vector of the held keys; accepts names or a vector."""
        if held is None:
            return np.zeros(len(self.names), np.uint8)
        if isinstance(held, np.ndarray) and held.dtype != object and held.ndim == 1 and held.dtype.kind in "biu":
            if held.shape[0] != len(self.names):
                raise SkyloopError(f"key vector has {held.shape[0]} entries, this world has {len(self.names)} keys {list(self.names)}")
            return (held != 0).astype(np.uint8)
        out = np.zeros(len(self.names), np.uint8)
        unknown = []
        for name in held:
            if name in self.names:
                out[self.names.index(name)] = 1
            else:
                unknown.append(name)
        if unknown:
            raise SkyloopError(f"unknown key(s) {unknown}; this world's keys are {list(self.names)}")
        return out

    def held_names(self, vector: np.ndarray) -> list[str]:
        return [n for n, v in zip(self.names, vector) if v]

    def opposite(self, name: str) -> str | None:
        """The key that undoes this one's direction (turn_left <-> turn_right, forward <-> back, up <-> down,
        left <-> right, strafe_left <-> strafe_right, ...), found by swapping those words; None if none."""
        parts = [_OPPOSITE_WORDS.get(p, p) for p in name.split("_")]
        other = "_".join(parts)
        return other if other != name and other in self.names else None

    def without_opposites(self, held: Iterable[str] | np.ndarray) -> list[str]:
        """Held key names with every opposite pair dropped (both keys: they cancel in the scenes anyway).

        No player holds turn_left and turn_right together; generated key streams (random, tour) pass
        through here so that neither the clip nor the model's conditioning ever shows it.
        """
        names = self.held_names(self.vector(held)) if isinstance(held, np.ndarray) else list(held)
        held_set = set(names)
        return [n for n in names if self.opposite(n) not in held_set]

    def to_json(self) -> dict:
        return {"names": list(self.names), "bindings": {k: list(v) for k, v in self.bindings.items()}}

    @classmethod
    def from_json(cls, obj: Mapping) -> "KeySet":
        return cls(tuple(obj["names"]), {k: tuple(v) for k, v in obj.get("bindings", {}).items()})


# Conventional bindings for common key names; anything else gets a digit key.
_CONVENTIONAL = {
    "forward": ("w", "up"),
    "back": ("s", "down"),
    "turn_left": ("left", "q"),
    "turn_right": ("right", "e"),
    "strafe_left": ("a",),
    "strafe_right": ("d",),
    "up": ("up", "w"),
    "down": ("down", "s"),
    "left": ("left", "a"),
    "right": ("right", "d"),
    "jump": ("space",),
    "fire": ("space",),
    "use": ("f",),
}


def default_bindings(names: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """Bindings for a key list: conventional ones where the name is known, digits 1-9 otherwise, no key bound twice."""
    bindings: dict[str, tuple[str, ...]] = {}
    used: set[str] = set()
    digits = iter("123456789")
    for name in names:
        keys = [k for k in _CONVENTIONAL.get(name, ()) if k not in used]
        if not keys:
            keys = [d for d in digits if d not in used][:1]
        used.update(keys)
        bindings[name] = tuple(keys)
    return bindings
