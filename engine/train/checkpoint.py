"""Training checkpoints in safetensors: weights, optimizer state and RNG state, no pickle.

Written to a temporary name and renamed, so a run killed at any moment leaves
the previous checkpoint intact.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

from engine.files import fsync_file, temporary_sibling
from engine.types import SkyloopError


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
            idx, name = key[len(prefix) + 1:].split(".", 1)
            state.setdefault(int(idx), {})[name] = value
    opt.load_state_dict({"state": state, "param_groups": groups})


def module_state(tensors: dict[str, torch.Tensor], module: str) -> dict[str, torch.Tensor]:
    """The state dict of one module stored in a checkpoint under `module.` (tokenizer, dynamics, ema)."""
    prefix = module + "."
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


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


def rng_state(np_rng: np.random.Generator) -> tuple[dict[str, torch.Tensor], dict]:
    return {"rng.torch": torch.get_rng_state()}, {"numpy": np_rng.bit_generator.state}


def restore_rng(tensors: dict[str, torch.Tensor], meta: dict, np_rng: np.random.Generator) -> None:
    torch.set_rng_state(tensors["rng.torch"])
    np_rng.bit_generator.state = meta["numpy"]
