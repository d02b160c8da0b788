"""Key bindings: pygame keys -> the world's keys, plus the engine's own controls.

No torch here. Held keys are tracked from KEYDOWN/KEYUP events (not
`key.get_pressed()`), so posted events and real presses count alike, and a key
tapped between two ticks still counts for the next one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.errors import SkyloopError
from engine.keys import KeySet

# Engine controls: key name (pygame.key.name) -> action.
CONTROLS = {
    "escape": "quit",
    "r": "record",
    "f12": "screenshot",
    "backspace": "reset",
    "p": "pause",
    "tab": "side_by_side",
    "h": "help",
    "f11": "fullscreen",
    "f": "fullscreen",
    "n": "filter",
}

HELP = {
    "quit": "Esc  quit",
    "record": "R    record on/off",
    "screenshot": "F12  screenshot (PNG)",
    "reset": "Bksp reset",
    "pause": "P    pause",
    "side_by_side": "Tab  side by side with the real scene",
    "help": "H    this help",
    "fullscreen": "F/F11 fullscreen",
    "filter": "N    nearest / smooth filter",
}


@dataclass
class Bindings:
    keyset: KeySet
    world_keys: dict[str, str] = field(default_factory=dict)  # pygame key name -> world key
    conflicts: list[str] = field(default_factory=list)  # bindings dropped because an engine control owns the key

    @classmethod
    def for_keyset(cls, keyset: KeySet) -> "Bindings":
        mapping: dict[str, str] = {}
        conflicts = []
        for name in keyset.names:
            for key in keyset.bindings.get(name, ()):
                key = key.lower()
                if key in CONTROLS:
                    conflicts.append(f"{key} is {CONTROLS[key]}, not {name}")
                elif key in mapping:
                    conflicts.append(f"{key} is already {mapping[key]}, not {name}")
                else:
                    mapping[key] = name
        unbound = [n for n in keyset.names if n not in mapping.values()]
        if unbound:
            raise SkyloopError(f"keys with no usable binding: {unbound} ({'; '.join(conflicts) or 'none given'})")
        return cls(keyset, mapping, conflicts)

    def world_key(self, pygame_key_name: str) -> str | None:
        return self.world_keys.get(pygame_key_name.lower())

    def control(self, pygame_key_name: str) -> str | None:
        return CONTROLS.get(pygame_key_name.lower())

    def help_lines(self) -> list[str]:
        lines = []
        for name in self.keyset.names:
            keys = [k for k, v in self.world_keys.items() if v == name]
            lines.append(f"{'/'.join(k.upper() if len(k) == 1 else k for k in keys):9s} {name}")
        seen = set()
        for action in CONTROLS.values():
            if action not in seen:
                seen.add(action)
                lines.append(HELP[action])
        return lines


class HeldKeys:
    """Keys held now, plus keys tapped since the last tick: a tick's action is their union."""

    def __init__(self, keyset: KeySet):
        self.keyset = keyset
        self.held: set[str] = set()
        self.tapped: set[str] = set()

    def press(self, name: str) -> None:
        self.held.add(name)
        self.tapped.add(name)

    def release(self, name: str) -> None:
        self.held.discard(name)

    def clear(self) -> None:
        self.held.clear()
        self.tapped.clear()

    def take(self) -> list[str]:
        """The keys for the tick that starts now, in the world's key order."""
        active = self.held | self.tapped
        self.tapped = set()
        return [n for n in self.keyset.names if n in active]
