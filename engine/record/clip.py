"""MP4 clips that survive crashes.

H.264 in fragmented MP4: the header is written first (empty moov) and every
keyframe (one per second at the tick rate) closes a self-contained fragment
that is flushed to disk at once. Whatever kills the process, the file plays up
to the last complete second. x264 runs with zero latency, so frames are not
held back in its look-ahead.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from engine.errors import SkyloopError


class ClipWriter:
    def __init__(self, path: str | os.PathLike, fps: float, size: tuple[int, int], scale: int = 1, crf: int = 18):
        import av

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        h, w = size
        self.scale = max(1, int(scale))
        # yuv420p needs even sides: pad by one pixel where needed (never seen at scale >= 2).
        self.out_h, self.out_w = h * self.scale + (h * self.scale) % 2, w * self.scale + (w * self.scale) % 2
        rate = max(1, round(fps))
        try:
            self.container = av.open(
                str(self.path), "w", format="mp4", options={"movflags": "frag_keyframe+empty_moov+default_base_moof", "flush_packets": "1"}
            )
        except av.error.FFmpegError as exc:
            raise SkyloopError(f"{self.path}: cannot write a video here ({exc})") from exc
        self.stream = self.container.add_stream(
            "libx264", rate=rate, options={"preset": "veryfast", "tune": "zerolatency", "crf": str(crf), "g": str(rate), "keyint_min": str(rate)}
        )
        self.stream.width, self.stream.height, self.stream.pix_fmt = self.out_w, self.out_h, "yuv420p"
        self.frames = 0
        self.closed = False

    def _prepare(self, frame: np.ndarray) -> np.ndarray:
        if self.scale > 1:
            frame = frame.repeat(self.scale, axis=0).repeat(self.scale, axis=1)
        if frame.shape[0] != self.out_h or frame.shape[1] != self.out_w:
            frame = np.pad(frame, ((0, self.out_h - frame.shape[0]), (0, self.out_w - frame.shape[1]), (0, 0)), mode="edge")
        return np.ascontiguousarray(frame)

    def write(self, frame: np.ndarray) -> None:
        import av

        video_frame = av.VideoFrame.from_ndarray(self._prepare(frame), format="rgb24")
        for packet in self.stream.encode(video_frame):
            self.container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            for packet in self.stream.encode():  # flush the encoder
                self.container.mux(packet)
        finally:
            self.container.close()


def write_gif(path: str | os.PathLike, frames: list[np.ndarray], fps: float, scale: int = 4) -> Path:
    """An animated GIF (for READMEs): each frame quantised on its own, nearest-neighbour upscaled."""
    from PIL import Image

    path = Path(path)
    images = []
    for f in frames:
        img = Image.fromarray(np.asarray(f).repeat(scale, 0).repeat(scale, 1))
        images.append(img.quantize(colors=255, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE))
    if not images:
        raise SkyloopError("no frames to write to a GIF")
    images[0].save(path, save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0, optimize=False)
    return path
