"""A recording: the clip (MP4 at the tick rate), its action log, and optional extras
(an upscaled MP4, a GIF), all closed together. Use it as a context manager or
call close() in a finally: every way out of play leaves playable files."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from engine.record.actionlog import ActionLogWriter
from engine.record.clip import ClipWriter, write_gif


def recording_stem(label: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in label)[:40]
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{safe}"


class Recorder:
    def __init__(self, directory: str | os.PathLike, stem: str, fps: float, size: tuple[int, int], header: dict, upscale: int = 0, gif: bool = False):
        self.directory = Path(directory)
        self.stem = stem
        self.fps = fps
        self.clip_path = self.directory / f"{stem}.mp4"
        self.log_path = self.directory / f"{stem}.jsonl"
        self.clip = ClipWriter(self.clip_path, fps, size)
        self.big = ClipWriter(self.directory / f"{stem}_x{upscale}.mp4", fps, size, scale=upscale) if upscale > 1 else None
        self.gif_frames: list[np.ndarray] | None = [] if gif else None
        self.log = ActionLogWriter(self.log_path, header)
        self.frames = 0
        self.closed = False

    def add(self, tick: int, keys: list[str], frame: np.ndarray) -> None:
        self.clip.write(frame)
        if self.big is not None:
            self.big.write(frame)
        if self.gif_frames is not None:
            self.gif_frames.append(frame)
        self.log.add(tick, keys, frame)
        self.frames += 1

    def close(self) -> list[Path]:
        """Finishes every file; returns their paths. Safe to call twice."""
        if self.closed:
            return []
        self.closed = True
        paths = [self.clip_path, self.log_path]
        try:
            self.clip.close()
            if self.big is not None:
                self.big.close()
                paths.append(self.big.path)
            if self.gif_frames:
                paths.append(write_gif(self.directory / f"{self.stem}.gif", self.gif_frames, self.fps))
        finally:
            self.log.close()
        return paths

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
