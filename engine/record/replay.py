"""Replaying an action log: the same source, context, seed and keys give the same frames.

The caller builds the source from the log's header (this module knows only
reset/step); every regenerated frame is checked against the hash in the log.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from engine.record.actionlog import frame_hash, read_action_log


@dataclass
class ReplayReport:
    frames: int = 0  # frames regenerated (the clip's length)
    identical: int = 0  # frames whose hash matches the log
    first_mismatch: int | None = None  # tick of the first frame that differs
    files: list[Path] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.frames > 0 and self.identical == self.frames


def replay(
    log: str | Path,
    make_source: Callable[[dict], object],
    reset_context: Callable[[dict], object],
    out: str | Path | None = None,
    scale: int = 1,
    on_frame: Callable[[int, np.ndarray], None] | None = None,
) -> ReplayReport:
    """Regenerates the clip of `log`. `make_source(header)` builds the source, `reset_context(header)` its context."""
    header, ticks = read_action_log(log)
    source = make_source(header)
    report = ReplayReport()
    writer = None
    try:
        frame = source.reset(reset_context(header), int(header.get("seed", 0)))
        for keys in header.get("prelude", []):
            frame = source.step(keys)
        if out is not None:
            from engine.record.clip import ClipWriter

            writer = ClipWriter(out, float(header.get("tick_hz", 15)), tuple(frame.shape[:2]), scale=scale)
        for i, line in enumerate(ticks):
            if i > 0:
                frame = source.step(line["keys"])
            report.frames += 1
            if frame_hash(frame) == line.get("frame"):
                report.identical += 1
            elif report.first_mismatch is None:
                report.first_mismatch = int(line["tick"])
            if writer is not None:
                writer.write(frame)
            if on_frame is not None:
                on_frame(int(line["tick"]), frame)
    finally:
        if writer is not None:
            writer.close()
            report.files.append(Path(out))
        close = getattr(source, "close", None)
        if close:
            close()
    return report
