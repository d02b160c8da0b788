"""ONNX export of a world: `encoder.onnx`, `decoder.onnx`, `step.onnx` (the one-frame step with
the KV cache as explicit inputs and the new entries as outputs; dynamic batch and cache
length), `cache_write.onnx` (puts a frame's entries into the ring on the device, so with
I/O binding the cache never leaves the GPU), `world.json` and `start_frames.npy`.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from engine.errors import SkyloopError
from engine.version import __version__

FORMAT = "skyloop-onnx-world"
FORMAT_VERSION = 1
# The graphs' own revision, within a format version: an export of an older revision still loads, but the copy a
# world file is exported to in the user cache is made again. 2: the step graph without per-frame reshapes, with the
# rotary tables and the attention mask built once instead of in every block (the same function, fewer nodes).
GRAPH_REVISION = 2
FILES = ("encoder.onnx", "decoder.onnx", "step.onnx", "cache_write.onnx")


class EncoderGraph(nn.Module):
    """uint8 frames [B, H, W, 3] -> standardised tokens [B, N, D] (float32)."""

    def __init__(self, tokenizer, half: bool):
        super().__init__()
        self.tokenizer, self.half = tokenizer, half

    def forward(self, frames):
        x = self.tokenizer.to_input(frames)
        if self.half:
            x = x.half()
        grid = self.tokenizer.encoder(x).float()
        return self.tokenizer.grid_to_tokens(grid)


class DecoderGraph(nn.Module):
    """tokens [B, N, D] -> frames [B, H, W, 3] in [0, 1] (float32; the host quantises, as for torch)."""

    def __init__(self, tokenizer, half: bool):
        super().__init__()
        self.tokenizer, self.half = tokenizer, half

    def forward(self, tokens):
        grid = self.tokenizer.tokens_to_grid(tokens)
        if self.half:
            grid = grid.half()
        x = (self.tokenizer.decoder(grid).float() * 0.5 + 0.5).clamp(0, 1)
        return x.permute(0, 2, 3, 1)


class StepGraph(nn.Module):
    def __init__(self, dynamics, half: bool):
        super().__init__()
        self.dynamics, self.half = dynamics, half

    def forward(self, tokens, sigma, keys, time, role, cache_k, cache_v, cache_bias):
        dt = torch.float16 if self.half else torch.float32
        out, k, v = self.dynamics.step(tokens.to(dt), sigma.to(dt), keys.to(dt), time, role.to(dt), cache_k.to(dt), cache_v.to(dt), cache_bias.to(dt))
        return out.float(), k.float(), v.float()


class CacheWrite(nn.Module):
    """cache [L, B, H, S, hd] with entries [L, B, H, N, hd] written at token offset `start`."""

    def forward(self, cache, entries, start):
        s, n = cache.shape[3], entries.shape[3]
        pos = torch.arange(s, device=cache.device) - start  # [S]
        inside = (pos >= 0) & (pos < n)
        index = pos.clamp(0, n - 1)
        gathered = entries.index_select(3, index)  # [L, B, H, S, hd]: entry for every cache position
        return torch.where(inside[None, None, None, :, None], gathered, cache)


def _export(module: nn.Module, args: tuple, path: Path, input_names, output_names, dynamic: dict, opset: int) -> None:
    """Legacy TorchScript exporter: ~2 s per graph against 10-15 s for dynamo, and one self-contained file."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            args,
            str(path),
            input_names=input_names,
            output_names=output_names,
            dynamic_axes=dynamic,
            opset_version=opset,
            dynamo=False,
            do_constant_folding=True,
        )


def export_world(bundle_path: str | os.PathLike, out_dir: str | os.PathLike, fp16: bool = False, opset: int = 18) -> Path:
    """Exports a world bundle into `out_dir` (written to a temporary folder, then renamed)."""
    from engine.files import sha256_file
    from engine.world.bundle import load_bundle

    bundle_path, out_dir = Path(bundle_path), Path(out_dir)
    bundle = load_bundle(bundle_path)
    spec = bundle.spec
    tok, dyn = bundle.tokenizer.float().eval(), bundle.dynamics.float().eval()
    if fp16:
        tok.encoder.half(), tok.decoder.half(), dyn.half()
    tmp = out_dir.with_name(f".{out_dir.name}.exporting-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    start = time.perf_counter()
    dc = spec.dynamics
    h, w = spec.frame_size
    n, d, k = dc.tokens_per_frame, dc.token_dim, dc.num_keys
    L, H, S, hd = dc.depth, dc.heads, dc.cache_tokens, dc.head_dim
    b = 2  # example batch; the axis is dynamic
    try:
        with torch.no_grad():
            _export(
                EncoderGraph(tok, fp16),
                (torch.zeros(b, h, w, 3, dtype=torch.uint8),),
                tmp / "encoder.onnx",
                ["frames"],
                ["tokens"],
                {"frames": {0: "batch"}, "tokens": {0: "batch"}},
                opset,
            )
            _export(
                DecoderGraph(tok, fp16),
                (torch.zeros(b, n, d),),
                tmp / "decoder.onnx",
                ["tokens"],
                ["frames"],
                {"tokens": {0: "batch"}, "frames": {0: "batch"}},
                opset,
            )
            step_args = (
                torch.zeros(b, n, d),
                torch.zeros(b),
                torch.zeros(b, k),
                torch.zeros(b, dtype=torch.long),
                torch.zeros(b),
                torch.zeros(L, b, H, S, hd),
                torch.zeros(L, b, H, S, hd),
                torch.zeros(b, S),
            )
            _export(
                StepGraph(dyn, fp16),
                step_args,
                tmp / "step.onnx",
                ["tokens", "sigma", "keys", "time", "role", "cache_k", "cache_v", "cache_bias"],
                ["clean", "new_k", "new_v"],
                {
                    "tokens": {0: "batch"},
                    "sigma": {0: "batch"},
                    "keys": {0: "batch"},
                    "time": {0: "batch"},
                    "role": {0: "batch"},
                    "cache_k": {1: "batch", 3: "cache"},
                    "cache_v": {1: "batch", 3: "cache"},
                    "cache_bias": {0: "batch", 1: "cache"},
                    "clean": {0: "batch"},
                    "new_k": {1: "batch"},
                    "new_v": {1: "batch"},
                },
                opset,
            )
            _export(
                CacheWrite(),
                (torch.zeros(L, b, H, S, hd), torch.zeros(L, b, H, n, hd), torch.tensor(0)),
                tmp / "cache_write.onnx",
                ["cache", "entries", "start"],
                ["updated"],
                {"cache": {1: "batch", 3: "cache"}, "entries": {1: "batch"}, "updated": {1: "batch", 3: "cache"}},
                opset,
            )
        if bundle.start_frames is not None:
            np.save(tmp / "start_frames.npy", bundle.start_frames)
        meta = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "skyloop_version": __version__,
            "world": json.loads(spec.to_metadata()["skyloop"]),
            "world_file": str(bundle_path.resolve()),
            "world_sha256": bundle.sha256,
            "fp16": fp16,
            "opset": opset,
            "graph_revision": GRAPH_REVISION,
            "files": {name: sha256_file(tmp / name) for name in FILES},
            "exported": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        (tmp / "world.json").write_text(json.dumps(meta, indent=1) + "\n")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    print(f"exported {bundle_path} to {out_dir} in {time.perf_counter() - start:.1f} s ({'fp16' if fp16 else 'fp32'}, opset {opset})")
    return out_dir


def check_export(folder: str | os.PathLike) -> dict:
    """world.json of an export folder, after checking that every file is there and matches its hash."""
    from engine.files import sha256_file

    folder = Path(folder)
    meta_path = folder / "world.json"
    if not meta_path.exists():
        raise SkyloopError(f"{folder}: not an ONNX export (no world.json); make one with `skyloop export WORLD --out {folder}`")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as exc:
        raise SkyloopError(f"{meta_path}: not valid JSON ({exc})") from exc
    if meta.get("format") != FORMAT:
        raise SkyloopError(f"{meta_path}: not a Skyloop ONNX export (format {meta.get('format')!r})")
    if meta.get("version") != FORMAT_VERSION:
        raise SkyloopError(f"{meta_path}: export version {meta.get('version')} is not supported (this Skyloop reads {FORMAT_VERSION}); export again")
    for name in FILES:
        path = folder / name
        if not path.exists():
            raise SkyloopError(f"{folder}: {name} is missing; export again")
        if sha256_file(path) != meta["files"].get(name):
            raise SkyloopError(f"{folder}: {name} does not match world.json (changed or from another export); export again")
    return meta
