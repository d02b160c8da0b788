"""Reading video files into frames (PyAV)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.errors import SkyloopError


def read_video(path: str | Path) -> np.ndarray:
    """All frames of a video as uint8 [T, H, W, 3] RGB. A damaged file gives the frames before the damage."""
    import av

    frames = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise SkyloopError(f"{path}: has no video stream")
            try:
                for frame in container.decode(video=0):
                    frames.append(frame.to_ndarray(format="rgb24"))
            except av.error.InvalidDataError:
                pass  # a clip cut off mid-write: keep what decoded
    except av.error.FFmpegError as exc:
        raise SkyloopError(f"{path}: cannot be read as video ({exc})") from exc
    if not frames:
        raise SkyloopError(f"{path}: no frames could be decoded")
    return np.stack(frames)
