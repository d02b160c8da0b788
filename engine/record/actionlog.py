"""Action logs: JSON lines written as play goes, one line per frame, flushed at once.

Line 1 is a header: what ran (world file and hash, or scene), backend, device,
seed, context, keys, tick rate, sampler. Then one line per frame of the clip:
`{"tick": t, "keys": [...], "frame": "<hash>"}`, where tick 0 is the starting
frame (no keys) and `frame` is a short hash of the frame's pixels, so a replay
can say whether it regenerated the same frames bit for bit.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from engine.errors import SkyloopError

FORMAT = "skyloop-actionlog"
VERSION = 1


def frame_hash(frame: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(frame).tobytes()).hexdigest()[:16]


class ActionLogWriter:
    def __init__(self, path: str | os.PathLike, header: dict):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fh = open(self.path, "w", buffering=1)  # line-buffered: each line reaches the OS when written
        self._write({"header": {"format": FORMAT, "version": VERSION, **header}})
        self.ticks = 0

    def _write(self, obj: dict) -> None:
        self.fh.write(json.dumps(obj, separators=(",", ":")) + "\n")

    def add(self, tick: int, keys: list[str], frame: np.ndarray) -> None:
        self._write({"tick": tick, "keys": keys, "frame": frame_hash(frame)})
        self.ticks += 1

    def close(self) -> None:
        if not self.fh.closed:
            self.fh.flush()
            os.fsync(self.fh.fileno())
            self.fh.close()


def read_action_log(path: str | os.PathLike) -> tuple[dict, list[dict]]:
    """(header, tick lines). A last line cut off by a crash is ignored."""
    path = Path(path)
    if not path.exists():
        raise SkyloopError(f"{path}: no such action log")
    lines = path.read_text().splitlines()
    if not lines:
        raise SkyloopError(f"{path}: action log is empty")
    try:
        first = json.loads(lines[0])
    except json.JSONDecodeError as exc:
        raise SkyloopError(f"{path}: not an action log (first line is not JSON)") from exc
    header = first.get("header") if isinstance(first, dict) else None
    if not header or header.get("format") != FORMAT:
        raise SkyloopError(f"{path}: not a Skyloop action log (no header line)")
    if header.get("version") != VERSION:
        raise SkyloopError(f"{path}: action log version {header.get('version')} is not supported (this Skyloop reads {VERSION})")
    ticks = []
    for n, line in enumerate(lines[1:], 2):
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            if n == len(lines):  # torn last line of a killed run
                break
            raise SkyloopError(f"{path}: line {n} is not JSON") from None
        if "tick" in obj:
            ticks.append(obj)
    return header, ticks
