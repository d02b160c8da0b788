"""Training checkpoints in safetensors: weights, optimizer state and RNG state, no pickle.

Written to a temporary name and renamed, so a run killed at any moment leaves
the previous checkpoint intact.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from engine.errors import SkyloopError
from engine.files import fsync_file, temporary_sibling
from engine.train.config import Preset

if TYPE_CHECKING:
    from engine.train.context import RunContext

PHASES = ("tokenizer", "dynamics", "done")  # what a checkpoint's `phase` may say, in run order


@dataclass
class Checkpoint:
    """One training checkpoint: where the run was, what it was training, and its tensors
    (module weights under `tokenizer.`, `dynamics.`, `ema.`; optimizer state under `opt.`; `rng.torch`)."""

    phase: str  # the phase that wrote it (tokenizer, dynamics), or "done" once the run is over
    step: int  # optimizer steps of that phase done
    preset: Preset  # the run's preset: its configs rebuild the models, whatever the code's defaults are now
    keys: list[str] | None  # the dataset's key names
    dataset_hash: str | None  # content hash of the dataset's manifest
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)
    extra: dict = field(default_factory=dict)  # phase state: opt_groups, rng, cpu_seconds

    @classmethod
    def of(cls, ctx: RunContext, phase: str, step: int, tensors: dict[str, torch.Tensor], **extra) -> "Checkpoint":
        """A checkpoint of the run in `ctx`, now."""
        return cls(phase, step, ctx.preset, list(ctx.dataset.keyset.names), ctx.dataset.manifest.content_hash(), tensors, extra)

    def meta(self) -> dict:
        return {"phase": self.phase, "step": self.step, "preset": self.preset.to_json(), "keys": self.keys, "dataset_hash": self.dataset_hash, **self.extra}

    def module(self, name: str) -> dict[str, torch.Tensor]:
        """The state dict of one module stored under `name.` (tokenizer, dynamics, ema)."""
        return module_state(self.tensors, name)

    def past(self, phase: str) -> bool:
        """Whether the run had finished `phase` when this was written."""
        return PHASES.index(self.phase) > PHASES.index(phase)

    def save(self, path: str | os.PathLike) -> None:
        save_checkpoint(path, self.tensors, self.meta())

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Checkpoint":
        tensors, meta = load_checkpoint(path)
        meta = dict(meta)
        fixed = {name: meta.pop(name, None) for name in ("phase", "step", "keys", "dataset_hash")}
        try:
            preset = Preset.from_json(meta.pop("preset"))
        except (KeyError, TypeError) as exc:
            raise SkyloopError(f"{path}: checkpoint's preset cannot be read ({exc}); it is from another version: delete it to start over") from exc
        return cls(preset=preset, tensors=tensors, extra=meta, **fixed)


def flatten_optimizer(opt: torch.optim.Optimizer, prefix: str) -> tuple[dict[str, torch.Tensor], list]:
    state = opt.state_dict()
    tensors = {}
    for idx, entries in state["state"].items():
        for name, value in entries.items():
            t = value if torch.is_tensor(value) else torch.tensor(value)
            tensors[f"{prefix}.{idx}.{name}"] = t.detach().cpu().contiguous()
    return tensors, state["param_groups"]


def restore_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], prefix: str, groups: list) -> None:
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith(prefix + "."):
            idx, name = key[len(prefix) + 1 :].split(".", 1)
            state.setdefault(int(idx), {})[name] = value
    opt.load_state_dict({"state": state, "param_groups": groups})


def module_state(tensors: dict[str, torch.Tensor], module: str) -> dict[str, torch.Tensor]:
    """The state dict of one module stored in a checkpoint under `module.` (tokenizer, dynamics, ema)."""
    prefix = module + "."
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}


def save_checkpoint(path: str | os.PathLike, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(path)
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    save_file(tensors, str(tmp), metadata={"checkpoint": json.dumps(meta)})
    fsync_file(tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = json.loads(fh.metadata()["checkpoint"])
        return load_file(str(path)), meta
    except (SafetensorError, KeyError, json.JSONDecodeError, OSError) as exc:
        raise SkyloopError(f"{path}: checkpoint cannot be read ({exc}); delete it to start over") from exc


def rng_state(rngs: dict[str, np.random.Generator]) -> tuple[dict[str, torch.Tensor], dict]:
    """torch's global generator (a tensor) and named numpy generators (JSON)."""
    return {"rng.torch": torch.get_rng_state()}, {name: rng.bit_generator.state for name, rng in rngs.items()}


def restore_rng(tensors: dict[str, torch.Tensor], meta: dict, rngs: dict[str, np.random.Generator]) -> None:
    """The reverse of rng_state. A generator the checkpoint lacks (one written before it existed) keeps its seed."""
    torch.set_rng_state(tensors["rng.torch"])
    for name, rng in rngs.items():
        if name in meta:
            rng.bit_generator.state = meta[name]
