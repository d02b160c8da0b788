"""The frame contract (uint8 H x W x 3 RGB), frame sizes ('64x96') and exact, deterministic resizing.

numpy only: scenes, data import and the world's `--from IMAGE` all use it.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from engine.errors import SkyloopError


def as_frame(image, what: str = "image") -> np.ndarray:
    """Checks and converts to a contiguous uint8 H x W x 3 array (drops alpha, expands grey)."""
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
        raise SkyloopError(f"{what}: expected an H x W x 3 RGB image, got shape {arr.shape}")
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    arr = arr[..., :3]
    if arr.dtype != np.uint8:
        if arr.dtype.kind == "f" and arr.size and arr.max() <= 1.0 and arr.min() >= 0.0:
            arr = np.round(arr * 255.0)
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(arr)


def quantize(unit: np.ndarray) -> np.ndarray:
    """Float frames in [0, 1] -> uint8, rounded half to even (the same on every backend)."""
    return np.clip(np.rint(unit * 255.0), 0, 255).astype(np.uint8)


def _area_weights(n_in: int, n_out: int) -> np.ndarray:
    """Matrix [n_out, n_in] whose rows average the input cells each output cell covers."""
    edges = np.arange(n_out + 1) * (n_in / n_out)
    starts, ends = edges[:-1, None], edges[1:, None]
    cells = np.arange(n_in)[None, :]
    overlap = np.clip(np.minimum(ends, cells + 1) - np.maximum(starts, cells), 0, None)
    return overlap / overlap.sum(axis=1, keepdims=True)


def area_resize(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Area (box) resize of one frame [H, W, 3] or a clip [T, H, W, 3] to (height, width)."""
    h, w = size
    if frames.shape[-3:-1] == (h, w):
        return frames
    wy = _area_weights(frames.shape[-3], h)
    wx = _area_weights(frames.shape[-2], w)
    channels_first = np.moveaxis(frames.astype(np.float64), -1, -3)  # ... c h w
    out = np.moveaxis(wy @ channels_first @ wx.T, -3, -1)  # ... h w c
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def fit_frame(image: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, str | None]:
    """Centre-crops to the target aspect ratio, then area-resizes. Returns the frame and a notice (or None)."""
    frame = as_frame(image)
    h, w = frame.shape[:2]
    th, tw = size
    if (h, w) == (th, tw):
        return frame, None
    notice = f"image {w}x{h} resized to the world's {tw}x{th}"
    if h * tw != w * th:  # different aspect: crop the longer side first
        if h * tw > w * th:
            ch = max(1, round(w * th / tw))
            y0 = (h - ch) // 2
            frame = frame[y0 : y0 + ch]
        else:
            cw = max(1, round(h * tw / th))
            x0 = (w - cw) // 2
            frame = frame[:, x0 : x0 + cw]
        notice = f"image {w}x{h} centre-cropped to {frame.shape[1]}x{frame.shape[0]} and resized to the world's {tw}x{th}"
    return area_resize(frame, size), notice


def parse_size(text: str | Sequence[int]) -> tuple[int, int]:
    """'64x96' or (64, 96) -> (64, 96) as (height, width)."""
    if not isinstance(text, str):
        h, w = (int(v) for v in text)
    else:
        parts = text.lower().replace("×", "x").split("x")
        if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
            raise SkyloopError(f"frame size must look like HxW, e.g. 64x64 or 64x96, got {text!r}")
        h, w = int(parts[0]), int(parts[1])
    if h < 16 or w < 16 or h > 1024 or w > 1024:
        raise SkyloopError(f"frame size {h}x{w} is out of range: each side must be 16..1024 pixels")
    return h, w
