"""One play session: a source (learned or real) and, when available, the real scene in lockstep;
the tick counter; the keys since the last reset (so a recording started mid-play can be
replayed); and the recording itself."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from engine.play.sources import describe_context
from engine.record.recorder import Recorder, recording_stem


class PlaySession:
    def __init__(
        self,
        source,
        context=None,
        seed: int = 0,
        record_dir: str | Path = "recordings",
        tick_hz: float | None = None,
        upscale: int = 0,
        gif: bool = False,
        with_companion: bool = True,
    ):
        self.source = source
        self.context = context
        self.seed = int(seed)
        self.record_dir = Path(record_dir)
        self.tick_hz = float(tick_hz or source.tick_hz)
        self.upscale = upscale
        self.gif = gif
        self.companion = None
        self.notices: list[str] = []
        if with_companion and context is None:
            try:
                self.companion = source.companion_scene()
            except Exception as exc:  # noqa: BLE001 - a missing GL stack must not stop play
                self.notices.append(f"side-by-side unavailable: {exc}")
        self.recorder: Recorder | None = None
        self.history: list[list[str]] = []  # keys of ticks 1..tick since reset
        self.tick = 0
        self.frame: np.ndarray | None = None
        self.companion_frame: np.ndarray | None = None
        self.step_ms = 0.0
        self.closed_files: list[Path] = []

    def reset(self) -> np.ndarray:
        was_recording = self.recorder is not None
        if was_recording:
            self.stop_recording()
        self.frame = self.source.reset(self.context, self.seed)
        self.notices += list(self.source.notices)
        if self.companion is not None:
            self.companion_frame = self.companion.reset(None, self.seed)
        self.tick = 0
        self.history = []
        if was_recording:
            self.start_recording()
        return self.frame

    def step(self, keys: list[str]) -> np.ndarray:
        start = time.perf_counter()
        self.frame = self.source.step(keys)
        self.step_ms = (time.perf_counter() - start) * 1000
        if self.companion is not None:
            self.companion_frame = self.companion.step(keys)
        self.tick += 1
        self.history.append(list(keys))
        if self.recorder is not None:
            self.recorder.add(self.tick, list(keys), self.frame)
        return self.frame

    # ---- recording -----------------------------------------------------------
    def header(self) -> dict:
        return {
            **self.source.header(),
            "seed": self.seed,
            "context": describe_context(self.context, self.seed),
            "keys": list(self.source.keyset.names),
            "frame_size": list(self.source.frame_size),
            "tick_hz": self.tick_hz,
            "start_tick": self.tick,
            "prelude": [list(k) for k in self.history],  # keys from reset up to the clip's first frame
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }

    def start_recording(self) -> Path:
        label = self.source.name.split(".")[0]
        self.recorder = Recorder(
            self.record_dir, recording_stem(label), self.tick_hz, self.source.frame_size, self.header(), upscale=self.upscale, gif=self.gif
        )
        # The clip starts with the frame on screen now.
        self.recorder.add(self.tick, self.history[-1] if self.history else [], self.frame)
        return self.recorder.clip_path

    def stop_recording(self) -> list[Path]:
        if self.recorder is None:
            return []
        recorder, self.recorder = self.recorder, None
        paths = recorder.close()
        self.closed_files += paths
        return paths

    @property
    def recording(self) -> bool:
        return self.recorder is not None

    def close(self) -> list[Path]:
        paths = self.stop_recording()
        for thing in (self.companion, self.source):
            close = getattr(thing, "close", None)
            if close:
                close()
        return paths
