"""The world bundle: one `.safetensors` file with tokenizer and dynamics weights,
and in its metadata the full config, keys and bindings, frame size, scene,
dataset identity and training step. Loading needs no pickle.

A bundle that is truncated, foreign or from another format version fails with
a message that says which.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from engine.dynamics.model import Dynamics, DynamicsConfig
from engine.dynamics.sampler import SamplerConfig
from engine.errors import SkyloopError
from engine.files import fsync_file, sha256_file, temporary_sibling
from engine.keys import KeySet
from engine.tokenizer.model import Tokenizer, TokenizerConfig
from engine.version import __version__

FORMAT = "skyloop-world"
FORMAT_VERSION = 1  # float16 / float32 weights
FORMAT_VERSIONS = (1, 2)  # 2: some weights are int8 (see WEIGHTS); readers before it say so instead of misloading
WEIGHTS = ("float16", "int8", "float32")  # how a world file stores its weight matrices
INT8_BLOCK = 64  # int8 weights: one float32 scale per 64 consecutive inputs of each output row
SCALE = ".int8_scale"  # the name suffix of an int8 tensor's scales


class BundleError(SkyloopError):
    """A world file that cannot be loaded; the message says why."""


@dataclass
class WorldSpec:
    """Everything about a world except its weights."""

    tokenizer: TokenizerConfig  # architecture of the tokenizer
    dynamics: DynamicsConfig  # architecture of the dynamics model
    sampler: SamplerConfig  # default sampler settings
    keyset: KeySet  # key names (vector order) and default bindings
    scene: str  # scene the data came from ("maze", "gym:CartPole-v1", "imported")
    scene_options: dict = field(default_factory=dict)  # scene constructor options (level, ...)
    dataset: dict = field(default_factory=dict)  # dataset identity: content hash, episodes, frames, collection recipe
    training: dict = field(default_factory=dict)  # steps, preset, command, time, metrics at save
    tick_hz: float = 15.0  # the rate the data was recorded at: play's default tick

    @property
    def frame_size(self) -> tuple[int, int]:
        return self.tokenizer.frame_size

    def describe(self, source: str | None = None, size_bytes: int | None = None, weights: str | None = None) -> str:
        """What the world holds, in a few lines (`skyloop info`): scene, sizes, keys, sampler, how it was trained, its data."""
        t, d, tr = self.tokenizer, self.dynamics, self.training
        stored = f", {weights} weights" if weights else ""
        where = f"{source} ({size_bytes / 2**20:.1f} MiB{stored}): a" if source and size_bytes is not None else (f"{source}: a" if source else "A")
        lines = [
            f"{where} world of scene {self.scene} {dict(self.scene_options) or ''}",
            f"  frames {t.frame_size[0]}x{t.frame_size[1]}, {t.tokens_per_frame} tokens/frame of {t.token_dim}, context {d.context} frames, "
            f"dynamics width {d.width} x {d.depth} blocks",
            f"  keys: {', '.join(f'{k} [{chr(47).join(self.keyset.bindings.get(k, ()))}]' for k in self.keyset.names)}",
            f"  sampler: {self.sampler.describe()}; tick {self.tick_hz:g} Hz",
        ]
        if tr:
            lines.append(
                f"  trained: preset {tr.get('preset')}, {tr.get('tokenizer_steps')} tokenizer + {tr.get('dynamics_steps')} dynamics steps, "
                f"{(tr.get('seconds') or 0) / 3600:.1f} h on {tr.get('device')} x{tr.get('ranks', 1)}"
            )
            lines.append(f"  command: {tr.get('command')}")
            ev = tr.get("eval") or {}
            if ev:
                lines.append(
                    f"  at save: tokenizer {tr.get('tokenizer_psnr') or float('nan'):.2f} dB, 1-step {ev.get('psnr_1step', float('nan')):.2f} dB "
                    f"(repeat-last {ev.get('psnr_repeat_last', float('nan')):.2f} dB)"
                )
        if self.dataset:
            lines.append(
                f"  data: {self.dataset.get('episodes')} episodes, {self.dataset.get('frames')} frames, "
                f"hash {str(self.dataset.get('content_hash', ''))[:12]}, from {self.dataset.get('path')}"
            )
        return "\n".join(lines)

    def to_metadata(self, format_version: int = FORMAT_VERSION) -> dict[str, str]:
        obj = {
            "format": FORMAT,
            "format_version": format_version,
            "skyloop_version": __version__,
            "tokenizer": self.tokenizer.to_json(),
            "dynamics": self.dynamics.to_json(),
            "sampler": self.sampler.to_json(),
            "keys": self.keyset.to_json(),
            "frame_size": list(self.frame_size),
            "scene": self.scene,
            "scene_options": self.scene_options,
            "dataset": self.dataset,
            "training": self.training,
            "tick_hz": self.tick_hz,
        }
        return {"skyloop": json.dumps(obj)}

    @classmethod
    def from_metadata(cls, meta: dict, where: str) -> "WorldSpec":
        if not meta or "skyloop" not in meta:
            raise BundleError(f"{where}: a safetensors file, but not a Skyloop world (no 'skyloop' metadata)")
        obj = json.loads(meta["skyloop"])
        if obj.get("format") != FORMAT:
            raise BundleError(f"{where}: not a Skyloop world (format {obj.get('format')!r})")
        if obj.get("format_version") not in FORMAT_VERSIONS:
            raise BundleError(
                f"{where}: world format version {obj.get('format_version')} (written by Skyloop {obj.get('skyloop_version')}); "
                f"this Skyloop {__version__} reads versions {', '.join(map(str, FORMAT_VERSIONS))}"
            )
        try:
            return cls(
                tokenizer=TokenizerConfig.from_json(obj["tokenizer"]),
                dynamics=DynamicsConfig.from_json(obj["dynamics"]),
                sampler=SamplerConfig.from_json(obj["sampler"]),
                keyset=KeySet.from_json(obj["keys"]),
                scene=obj["scene"],
                scene_options=obj.get("scene_options", {}),
                dataset=obj.get("dataset", {}),
                training=obj.get("training", {}),
                tick_hz=float(obj.get("tick_hz", 15.0)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleError(f"{where}: world metadata is malformed ({type(exc).__name__}: {exc})") from exc


def _check_header(path: Path) -> None:
    """Reads the safetensors header by hand so truncation is reported as such, not as a parser error."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise BundleError(f"{path}: file is {size} bytes, too short to be a world (truncated or empty)")
        (n,) = struct.unpack("<Q", head)
        if n > min(size, 100_000_000):
            raise BundleError(f"{path}: not a safetensors file (header length {n} for a {size}-byte file)")
        try:
            header = json.loads(fh.read(n))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise BundleError(f"{path}: not a safetensors file (unreadable header)") from exc
    end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
    if 8 + n + end > size:
        raise BundleError(f"{path}: truncated: the header promises {8 + n + end} bytes, the file has {size}")


def quantize_int8(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 of a weight tensor [out, ...]: each output row's inputs in blocks of INT8_BLOCK (one block where the
    row does not divide), one float32 scale per block. Returns (int8 tensor of v's shape, scales [out, blocks])."""
    rows = v.reshape(v.shape[0], -1).float()
    block = INT8_BLOCK if rows.shape[1] % INT8_BLOCK == 0 else rows.shape[1]
    blocks = rows.reshape(rows.shape[0], -1, block)
    scale = blocks.abs().amax(2).clamp_min(1e-12) / 127
    q = torch.round(blocks / scale[..., None]).clamp(-127, 127).to(torch.int8)
    return q.reshape(v.shape), scale


def dequantize_int8(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """The float32 weights an int8 tensor and its block scales stand for (quantize_int8's inverse, up to rounding)."""
    blocks = q.reshape(q.shape[0], scale.shape[1], -1).float()
    return (blocks * scale[..., None]).reshape(q.shape)


def save_bundle(
    path: str | os.PathLike,
    spec: WorldSpec,
    tokenizer: Tokenizer,
    dynamics: Dynamics,
    extra: dict[str, torch.Tensor] | None = None,
    weights: str = "float16",
) -> str:
    """Writes atomically; returns the file's SHA-256.

    weights: how weight tensors of 1,024 values or more are stored (loaded back into float32 modules either way):
    "float16" (a `small` world is 14 MB instead of 29 MB), "int8" (matrices and convolution kernels as int8 in blocks of
    64 inputs with a float32 scale each: 8 MB; vectors stay float16) or "float32". Small tensors (latent statistics,
    norms' scales) stay float32. A file with int8 weights is format version 2.
    """
    from safetensors.torch import save_file

    if weights not in WEIGHTS:
        raise BundleError(f"unknown weight storage {weights!r}: one of {', '.join(WEIGHTS)}")
    packed: dict[str, torch.Tensor] = {}

    def store(name: str, v: torch.Tensor) -> None:
        v = v.detach().cpu().contiguous()
        if weights == "float32" or v.dtype != torch.float32 or v.numel() < 1024:
            packed[name] = v
        elif weights == "int8" and v.dim() >= 2:
            packed[name], packed[name + SCALE] = quantize_int8(v)
        else:
            packed[name] = v.half()

    for prefix, module in (("tokenizer.", tokenizer), ("dynamics.", dynamics)):
        for k, v in module.state_dict().items():
            store(prefix + k, v)
    packed |= {k: v.detach().cpu().contiguous() for k, v in (extra or {}).items()}
    version = 2 if any(k.endswith(SCALE) for k in packed) else FORMAT_VERSION
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(path)
    save_file(packed, str(tmp), metadata=spec.to_metadata(version))
    fsync_file(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # a world file is for sharing: the usual permissions, not the writer's private 0600
    os.replace(tmp, path)
    return sha256_file(path)


@dataclass
class Bundle:
    spec: WorldSpec
    tokenizer: Tokenizer
    dynamics: Dynamics
    start_frames: np.ndarray | None  # a few real frames to start from when the scene is not available [S, H, W, 3]
    path: Path
    sha256: str
    weights: str = "float16"  # how the file stores its weights (WEIGHTS): a re-save keeps it

    def save(self, path: str | os.PathLike, spec: WorldSpec | None = None, weights: str | None = None) -> str:
        """Writes this world again (its modules as they are now, its start frames) with `spec` instead of its own and
        `weights` instead of the file's storage where given; returns the new file's SHA-256."""
        extra = {"start_frames": torch.from_numpy(self.start_frames)} if self.start_frames is not None else None
        return save_bundle(path, spec or self.spec, self.tokenizer, self.dynamics, extra=extra, weights=weights or self.weights)


def read_spec(path: str | os.PathLike) -> WorldSpec:
    """The metadata of a bundle, without loading its weights."""
    from safetensors import safe_open

    path = Path(path)
    if not path.exists():
        raise BundleError(f"{path}: world file does not exist")
    _check_header(path)
    with safe_open(str(path), framework="pt") as fh:
        return WorldSpec.from_metadata(fh.metadata(), str(path))


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    """The file's tensors, int8 weights turned back into float32 (their scale tensors consumed)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(path), device="cpu")
    except (SafetensorError, OSError) as exc:
        raise BundleError(f"{path}: weights cannot be read ({exc})") from exc
    for key in [k for k in tensors if k.endswith(SCALE)]:
        name, scale = key[: -len(SCALE)], tensors.pop(key)
        q = tensors.get(name)
        ok = q is not None and q.dtype == torch.int8 and q.dim() >= 2 and scale.dim() == 2 and scale.shape[0] == q.shape[0]
        if not ok or (q[0].numel() % scale.shape[1]) != 0:
            raise BundleError(f"{path}: int8 weights {name!r} do not match their scales {tuple(scale.shape)}")
        tensors[name] = dequantize_int8(q, scale.float())
    stray = [k for k, v in tensors.items() if v.dtype == torch.int8]
    if stray:
        raise BundleError(f"{path}: int8 weights without scales: {stray[:4]}")
    return tensors


def weight_storage(path: str | os.PathLike) -> str:
    """How a world file stores its weights: "int8", "float16" or "float32" (the narrowest type among its weights)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        names = [k for k in fh.keys() if k.startswith(("tokenizer.", "dynamics."))]
        dtypes = {fh.get_slice(k).get_dtype() for k in names}
    return "int8" if "I8" in dtypes else "float16" if "F16" in dtypes else "float32"


def _fill(module: torch.nn.Module, tensors: dict[str, torch.Tensor], prefix: str, path: Path) -> None:
    """Loads `prefix.*` weights into a module built from the file's config, naming any mismatch."""
    state = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if expected[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        detail = "; ".join(
            filter(
                None,
                [
                    f"missing {missing[:4]}" if missing else "",
                    f"unexpected {unexpected[:4]}" if unexpected else "",
                    f"shape mismatch {[(k, tuple(state[k].shape), tuple(expected[k].shape)) for k in wrong[:3]]}" if wrong else "",
                ],
            )
        )
        raise BundleError(f"{path}: {prefix[:-1]} weights do not match the config in the file's metadata ({detail})")
    module.load_state_dict(state)


def load_tokenizer(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[WorldSpec, Tokenizer]:
    """Only the tokenizer of a world (to train new dynamics on a tokenizer that exists)."""
    path = Path(path)
    spec = read_spec(path)
    tokenizer = Tokenizer(spec.tokenizer)
    _fill(tokenizer, _read_tensors(path), "tokenizer.", path)
    return spec, tokenizer.to(device).eval()


def load_bundle(path: str | os.PathLike, device: str | torch.device = "cpu") -> Bundle:
    path = Path(path)
    spec = read_spec(path)
    tensors = _read_tensors(path)
    tokenizer = Tokenizer(spec.tokenizer)
    dynamics = Dynamics(spec.dynamics)
    for prefix, module in (("tokenizer.", tokenizer), ("dynamics.", dynamics)):
        _fill(module, tensors, prefix, path)
    start = tensors.get("start_frames")
    return Bundle(
        spec,
        tokenizer.to(device).eval(),
        dynamics.to(device).eval(),
        start.numpy() if start is not None else None,
        path,
        sha256_file(path),
        weight_storage(path),
    )
