"""Reading a world's starting context from a file: an image (PNG, JPEG, ...) or a clip (MP4, .npy, .npz)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.errors import SkyloopError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
CLIP_SUFFIXES = (".mp4", ".mkv", ".webm", ".avi", ".mov")


def read_context_file(path) -> np.ndarray:
    """[H, W, 3] for an image, [T, H, W, 3] for a clip."""
    path = Path(path)
    if not path.exists():
        raise SkyloopError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as img:
                return np.asarray(img.convert("RGB"))
        except (UnidentifiedImageError, OSError) as exc:
            raise SkyloopError(f"{path}: cannot be read as an image ({exc})") from exc
    if suffix in CLIP_SUFFIXES:
        from engine.record.video import read_video

        return read_video(path)
    if suffix in (".npy", ".npz"):
        try:
            data = np.load(path, allow_pickle=False)
            arr = data["frames"] if suffix == ".npz" else data
        except (ValueError, OSError, KeyError) as exc:
            raise SkyloopError(f"{path}: cannot be read as frames ({exc})") from exc
        return np.asarray(arr)
    raise SkyloopError(f"{path}: unknown context file type {suffix!r}; use an image ({', '.join(IMAGE_SUFFIXES[:3])}, ...) or a clip (.mp4, .npy, .npz)")
