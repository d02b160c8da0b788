"""Turning a user's own recordings into a dataset.

Accepted inputs (one episode per file; see the README for worked examples):
- `NAME.npz` with `frames` [T, H, W, 3] uint8 and either `keys` [T, K] (0/1)
  or `actions` [T] (integers: 0 = no key, i = the i-th key held); optionally
  `key_names` (strings).
- `NAME.npy` frames with a sidecar: `NAME.keys.npy`, `NAME.actions.npy`,
  `NAME.csv` or `NAME.jsonl`.
- `NAME.mp4` (any video PyAV reads) with a sidecar `NAME.csv` or `NAME.jsonl`.

Action files: CSV with a header and one row per frame, either a `keys` column
(names joined by '+', empty for none), an `action` column (integer as above),
or one 0/1 column per key (a `tick` column is allowed and checked). JSON lines:
one object per frame with `keys` (list of names or of 0/1) or `action`; a line
with a `header` object is skipped (Skyloop's own action logs import as they are).

Key names come from `--keys`, or `keys.json` in the folder, or the files.
Everything is written to a temporary folder that is renamed at the end, so a
failed import leaves nothing behind.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Callable

import numpy as np

from engine.actions import read_action_rows, rows_to_keys
from engine.data.dataset import Dataset, EpisodeEntry, Manifest
from engine.data.episodes import write_episode
from engine.errors import SkyloopError
from engine.frames import area_resize
from engine.keys import KeySet, default_bindings

VIDEO_SUFFIXES = (".mp4", ".mkv", ".avi", ".webm", ".mov")
SIDECARS = (".keys.npy", ".actions.npy", ".csv", ".jsonl")


class DataImportError(SkyloopError):
    """A recording that cannot be imported; the message names the file and the problem."""


# ---- sources -----------------------------------------------------------------
def _sidecar(stem: Path) -> Path | None:
    found = [stem.with_name(stem.name + s) for s in SIDECARS if stem.with_name(stem.name + s).exists()]
    return found[0] if found else None


def discover(src: Path) -> list[tuple[Path, Path | None]]:
    """[(frames file, action file or None)] for every episode in `src` (a folder or one file)."""
    files = [src] if src.is_file() else sorted(p for p in src.iterdir() if p.is_file())
    out = []
    for path in files:
        name = path.name
        if name.endswith(SIDECARS) or name == "keys.json":
            continue
        stem = path.with_name(name[: -len(path.suffix)])
        if path.suffix == ".npz":
            out.append((path, _sidecar(stem)))
        elif path.suffix == ".npy" or path.suffix.lower() in VIDEO_SUFFIXES:
            side = _sidecar(stem)
            if side is None:
                raise DataImportError(f"{path}: no action file beside it (expected one of {', '.join(stem.name + s for s in SIDECARS)})")
            out.append((path, side))
    if not out:
        raise DataImportError(f"{src}: found no episodes (.npz, .npy or video files with action files)")
    return out


def _load_source(path: Path, side: Path | None, read_video: Callable | None):
    """(frames, rows or keys array, declared names) for one episode."""
    declared = None
    keys_or_rows = None
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as npz:
                if "frames" not in npz.files:
                    raise DataImportError(f"{path}: no 'frames' array (found {npz.files})")
                frames = npz["frames"]
                if "keys" in npz.files:
                    keys_or_rows = npz["keys"]
                elif "actions" in npz.files:
                    keys_or_rows = [int(a) for a in npz["actions"]]
                if "key_names" in npz.files:
                    declared = [str(n) for n in npz["key_names"]]
        except (ValueError, OSError, EOFError) as exc:
            raise DataImportError(f"{path}: unreadable ({exc})") from exc
    elif path.suffix == ".npy":
        try:
            frames = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise DataImportError(f"{path}: unreadable ({exc})") from exc
    else:
        if read_video is None:
            raise DataImportError(f"{path}: video import needs PyAV (pip install av)")
        frames = read_video(path)
    if keys_or_rows is None:
        if side is None:
            raise DataImportError(f"{path}: no keys or actions inside and no action file beside it")
        if side.name.endswith(".keys.npy"):
            keys_or_rows = np.load(side, allow_pickle=False)
        elif side.name.endswith(".actions.npy"):
            keys_or_rows = [int(a) for a in np.load(side, allow_pickle=False)]
        else:
            keys_or_rows, declared = read_action_rows(side)
    if isinstance(keys_or_rows, np.ndarray) and keys_or_rows.ndim == 1:
        keys_or_rows = [int(a) for a in keys_or_rows]
    return frames, keys_or_rows, declared


def import_dataset(
    src: str | os.PathLike,
    out: str | os.PathLike,
    key_names: list[str] | None = None,
    size: tuple[int, int] | None = None,
    scene: str = "imported",
    read_video: Callable | None = None,
) -> Dataset:
    src, out = Path(src), Path(out)
    if not src.exists():
        raise DataImportError(f"{src}: does not exist")
    if out.exists() and any(out.iterdir()):
        raise DataImportError(f"{out}: already exists and is not empty; choose another --out")
    if key_names is None and src.is_dir() and (src / "keys.json").exists():
        spec = json.loads((src / "keys.json").read_text())
        key_names = list(spec["names"] if isinstance(spec, dict) else spec)
    sources = discover(src)
    loaded = []
    for path, side in sources:
        frames, keys_or_rows, declared = _load_source(path, side, read_video)
        if frames.ndim != 4 or frames.shape[-1] not in (3, 4):
            raise DataImportError(f"{path}: frames must be [T, H, W, 3], got shape {list(frames.shape)}")
        frames = np.ascontiguousarray(frames[..., :3])
        if frames.dtype != np.uint8:
            if frames.dtype.kind == "f" and frames.max() <= 1.0:
                frames = np.round(frames * 255)
            frames = np.clip(frames, 0, 255).astype(np.uint8)
        if len(keys_or_rows) != len(frames):
            raise DataImportError(f"{path}: {len(frames)} frames but {len(keys_or_rows)} action rows; they must match one to one")
        if key_names is None and declared:
            key_names = declared
        loaded.append((path, frames, keys_or_rows))
    if key_names is None:  # names only appear in the rows: take them all, sorted
        seen = {v for _, _, rows in loaded if not isinstance(rows, np.ndarray) for r in rows if isinstance(r, list) for v in r if isinstance(v, str)}
        if not seen:
            width = {rows.shape[1] for _, _, rows in loaded if isinstance(rows, np.ndarray)} | {
                max((r for _, _, rows in loaded if not isinstance(rows, np.ndarray) for r in rows if isinstance(r, int)), default=0)}
            key_names = [f"key_{i}" for i in range(max(width))]
        else:
            key_names = sorted(seen)
    sizes = {f.shape[1:3] for _, f, _ in loaded}
    if size is None and len(sizes) > 1:
        detail = ", ".join(f"{p.name}: {f.shape[1]}x{f.shape[2]}" for p, f, _ in loaded[:8])
        raise DataImportError(f"episodes have different frame sizes ({detail}); pass --size HxW to resize them all")
    target = tuple(size) if size else next(iter(sizes))
    tmp = out.with_name(f".{out.name}.importing-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        manifest = Manifest(scene=scene, keyset=KeySet(tuple(key_names), default_bindings(key_names)), frame_size=target,
                            collection={"source": "import", "from": str(src)})
        for i, (path, frames, rows) in enumerate(loaded):
            keys = rows if isinstance(rows, np.ndarray) else rows_to_keys(rows, key_names, str(path))
            if isinstance(rows, np.ndarray) and keys.shape[1] != len(key_names):
                raise DataImportError(f"{path}: keys have {keys.shape[1]} columns but there are {len(key_names)} key names {key_names}")
            keys = (np.asarray(keys) != 0).astype(np.uint8)
            if frames.shape[1:3] != target:
                frames = np.stack([area_resize(f, target) for f in frames])
            name = f"ep_{i:06d}.npz"
            digest = write_episode(tmp / name, frames, keys)
            manifest.episodes.append(EpisodeEntry(name, digest, len(frames)))
        dataset = Dataset(tmp, manifest)
        dataset.save_manifest()
        if out.exists():
            out.rmdir()
        out.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Dataset.open(out)
