"""Episode files: frames [T, H, W, 3] uint8 and keys [T, K] uint8 in one `.npz`.

keys[t] are the keys held during the tick that produced frames[t]; frames[0]
is the starting frame and keys[0] is all zeros.

Files are written to a temporary name and renamed, so a crash never leaves a
half-written episode under its real name. Loading never unpickles.
"""
from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from engine.errors import SkyloopError
from engine.files import sha256_file, temporary_sibling


class EpisodeError(SkyloopError):
    """An episode file that cannot be used. The message names the file."""


def validate_episode(frames: np.ndarray, keys: np.ndarray, where: str = "episode") -> None:
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise EpisodeError(f"{where}: frames must be uint8 [T, H, W, 3], got {frames.dtype} {list(frames.shape)}")
    if keys.ndim != 2 or keys.dtype != np.uint8:
        raise EpisodeError(f"{where}: keys must be uint8 [T, K], got {keys.dtype} {list(keys.shape)}")
    if len(frames) != len(keys):
        raise EpisodeError(f"{where}: {len(frames)} frames but {len(keys)} key rows; they must match")
    if len(frames) < 2:
        raise EpisodeError(f"{where}: an episode needs at least 2 frames, got {len(frames)}")
    if keys.size and keys.max() > 1:
        raise EpisodeError(f"{where}: keys must be 0/1 (multi-hot), found {int(keys.max())}")


def write_episode(path: str | os.PathLike, frames: np.ndarray, keys: np.ndarray) -> str:
    """Writes atomically; returns the file's SHA-256."""
    path = Path(path)
    validate_episode(frames, keys, str(path))
    tmp = temporary_sibling(path)
    with open(tmp, "wb") as fh:
        np.savez_compressed(fh, frames=frames, keys=keys)
        fh.flush()
        os.fsync(fh.fileno())
    digest = sha256_file(tmp)
    os.replace(tmp, path)
    return digest


def read_episode(path: str | os.PathLike, sha256: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(frames, keys). Raises EpisodeError naming the file when it is missing, corrupt or fails its checksum."""
    path = Path(path)
    if not path.exists():
        raise EpisodeError(f"{path}: episode file is missing")
    if sha256 is not None:
        actual = sha256_file(path)
        if actual != sha256:
            raise EpisodeError(f"{path}: checksum mismatch (manifest {sha256[:12]}…, file {actual[:12]}…): the file is corrupt or was changed")
    try:
        with np.load(path, allow_pickle=False) as npz:
            if "frames" not in npz.files or "keys" not in npz.files:
                raise EpisodeError(f"{path}: not an episode file (arrays {npz.files}, expected 'frames' and 'keys')")
            frames, keys = npz["frames"], npz["keys"]
    except EpisodeError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as exc:
        raise EpisodeError(f"{path}: unreadable episode file ({type(exc).__name__}: {exc}); it is truncated or corrupt") from exc
    validate_episode(frames, keys, str(path))
    return frames, keys
