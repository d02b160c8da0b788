"""A dataset folder: `manifest.json` plus episode files with per-file SHA-256.

One bad file is named and skipped; the rest stay usable.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.data.episodes import EpisodeError, read_episode
from engine.errors import SkyloopError
from engine.files import atomic_write_bytes, sha256_file
from engine.keys import KeySet

FORMAT = "skyloop-dataset"
VERSION = 1


@dataclass
class EpisodeEntry:
    file: str  # file name inside the dataset folder
    sha256: str  # of the file's bytes
    frames: int  # number of frames T
    seed: int | None = None  # scene seed it was collected with (None for imported episodes)

    def to_json(self) -> dict:
        out = {"file": self.file, "sha256": self.sha256, "frames": self.frames}
        if self.seed is not None:
            out["seed"] = self.seed
        return out


@dataclass
class Manifest:
    scene: str  # scene name ("maze", "gym:CartPole-v1", "imported")
    keyset: KeySet  # key names and bindings, in vector order
    frame_size: tuple[int, int]  # (height, width)
    scene_options: dict = field(default_factory=dict)  # constructor options (level, ...)
    collection: dict = field(default_factory=dict)  # how it was made: source, policy, seed, steps, command
    episodes: list[EpisodeEntry] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "format": FORMAT,
            "version": VERSION,
            "scene": self.scene,
            "scene_options": self.scene_options,
            "keys": self.keyset.to_json(),
            "frame_size": list(self.frame_size),
            "episode_count": len(self.episodes),
            "total_frames": sum(e.frames for e in self.episodes),
            "collection": self.collection,
            "episodes": [e.to_json() for e in self.episodes],
        }

    @classmethod
    def from_json(cls, obj: dict, where: str = "manifest") -> "Manifest":
        if obj.get("format") != FORMAT:
            raise SkyloopError(f"{where}: not a Skyloop dataset manifest (format {obj.get('format')!r})")
        if obj.get("version") != VERSION:
            raise SkyloopError(f"{where}: dataset version {obj.get('version')} is not supported (this Skyloop reads version {VERSION})")
        try:
            return cls(
                scene=obj["scene"],
                keyset=KeySet.from_json(obj["keys"]),
                frame_size=(int(obj["frame_size"][0]), int(obj["frame_size"][1])),
                scene_options=dict(obj.get("scene_options", {})),
                collection=dict(obj.get("collection", {})),
                episodes=[EpisodeEntry(e["file"], e["sha256"], int(e["frames"]), e.get("seed")) for e in obj["episodes"]],
            )
        except (KeyError, TypeError, IndexError, ValueError) as exc:
            raise SkyloopError(f"{where}: manifest is malformed ({type(exc).__name__}: {exc})") from exc

    def content_hash(self) -> str:
        """Identity of the data: the hash of the episode checksums in order."""
        digest = hashlib.sha256()
        for e in self.episodes:
            digest.update(e.sha256.encode())
        return digest.hexdigest()


class Dataset:
    def __init__(self, root: str | Path, manifest: Manifest):
        self.root = Path(root)
        self.manifest = manifest

    @classmethod
    def open(cls, root: str | Path) -> "Dataset":
        root = Path(root)
        path = root / "manifest.json"
        if not root.is_dir():
            raise SkyloopError(f"{root}: dataset folder does not exist")
        if not path.exists():
            raise SkyloopError(f"{root}: no manifest.json; is this a dataset made by `skyloop collect` or `skyloop import`?")
        try:
            obj = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise SkyloopError(f"{path}: manifest is not valid JSON ({exc})") from exc
        return cls(root, Manifest.from_json(obj, str(path)))

    def save_manifest(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(self.root / "manifest.json", (json.dumps(self.manifest.to_json(), indent=1) + "\n").encode())

    @property
    def keyset(self) -> KeySet:
        return self.manifest.keyset

    @property
    def frame_size(self) -> tuple[int, int]:
        return self.manifest.frame_size

    def load(self, entry: EpisodeEntry) -> tuple[np.ndarray, np.ndarray]:
        frames, keys = read_episode(self.root / entry.file, entry.sha256)
        where = self.root / entry.file
        if frames.shape[1:3] != tuple(self.frame_size):
            raise EpisodeError(f"{where}: frames are {frames.shape[1]}x{frames.shape[2]}, the manifest says {self.frame_size[0]}x{self.frame_size[1]}")
        if keys.shape[1] != len(self.keyset):
            raise EpisodeError(f"{where}: {keys.shape[1]} key columns, the manifest lists {len(self.keyset)} keys")
        if len(frames) != entry.frames:
            raise EpisodeError(f"{where}: {len(frames)} frames, the manifest says {entry.frames}")
        return frames, keys

    def verify(self, deep: bool = True) -> list[tuple[str, str]]:
        """[(file, problem)] for every bad episode; empty when all are good."""
        problems = []
        for entry in self.manifest.episodes:
            try:
                if deep:
                    self.load(entry)
                elif sha256_file(self.root / entry.file) != entry.sha256:
                    raise EpisodeError(f"{self.root / entry.file}: checksum mismatch")
            except (EpisodeError, OSError) as exc:
                problems.append((entry.file, str(exc)))
        return problems

    def load_all(self, on_bad=None, limit: int | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
        """Every good episode; bad ones are reported through `on_bad(file, message)` and skipped."""
        out = []
        for entry in self.manifest.episodes[:limit]:
            try:
                out.append(self.load(entry))
            except EpisodeError as exc:
                if on_bad is None:
                    raise
                on_bad(entry.file, str(exc))
        if not out:
            raise SkyloopError(f"{self.root}: no usable episodes")
        return out
