"""The dataset as latent tokens: encoded once by the trained tokenizer and cached in the run folder,
and the random training windows drawn from them."""

from __future__ import annotations

import hashlib
import time

import numpy as np
import torch

from engine.tokenizer.model import Tokenizer
from engine.train.context import RunContext


def tokenizer_fingerprint(tokenizer: Tokenizer) -> str:
    digest = hashlib.sha256()
    for name, value in sorted(tokenizer.state_dict().items()):
        digest.update(name.encode())
        digest.update(value.detach().cpu().float().numpy().tobytes())
    return digest.hexdigest()


@torch.no_grad()
def encode_episodes(tokenizer: Tokenizer, episodes, device, batch: int = 256) -> list[np.ndarray]:
    tokenizer.eval()
    out = []
    for frames, _ in episodes:
        parts = [tokenizer.encode(torch.from_numpy(frames[i : i + batch]).to(device)).cpu() for i in range(0, len(frames), batch)]
        out.append(torch.cat(parts).to(torch.float16).numpy())
    return out


def load_or_encode_latents(ctx: RunContext, tokenizer: Tokenizer) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Token arrays [T, N, D] (float16) for the train and held-out episodes, cached in the run folder."""
    from safetensors import safe_open
    from safetensors.numpy import save_file

    path = ctx.run_dir / "latents.safetensors"
    fingerprint = tokenizer_fingerprint(tokenizer)
    cfg = tokenizer.cfg
    n_train, n_hold = len(ctx.train_episodes), len(ctx.holdout_episodes)

    def read():
        with safe_open(str(path), framework="np") as fh:
            meta = fh.metadata() or {}
            if meta.get("tokenizer") != fingerprint or meta.get("episodes") != f"{n_train}+{n_hold}":
                return None
            if n_train and fh.get_slice("train.0").get_shape()[1:] != [cfg.tokens_per_frame, cfg.token_dim]:
                return None  # the same tokenizer, its latent cells grouped into other tokens (tokenizer.patch)
            return [fh.get_tensor(f"train.{i}") for i in range(n_train)], [fh.get_tensor(f"holdout.{i}") for i in range(n_hold)]

    # Rank 0 alone decides whether to encode, and every rank passes the barrier exactly once either way. (Each rank
    # looking for the cache itself hung DDP: a slow rank found the file rank 0 had just written and skipped the
    # barrier that rank 0 then waited at for ever.)
    cached = None
    if ctx.dist.main:
        cached = read() if path.exists() else None
        if cached is None:
            start = time.perf_counter()
            train = encode_episodes(tokenizer, ctx.train_episodes, ctx.dist.device)
            hold = encode_episodes(tokenizer, ctx.holdout_episodes, ctx.dist.device)
            tensors = {f"train.{i}": t for i, t in enumerate(train)} | {f"holdout.{i}": t for i, t in enumerate(hold)}
            tmp = path.with_name(path.name + ".tmp")
            save_file(tensors, str(tmp), metadata={"tokenizer": fingerprint, "episodes": f"{n_train}+{n_hold}"})
            tmp.replace(path)
            cached = train, hold
            frames = sum(len(t) for t in train) + sum(len(t) for t in hold)
            ctx.say(f"encoded {frames} frames to latent tokens in {time.perf_counter() - start:.0f} s ({path})")
    ctx.dist.barrier()
    if cached is None:
        cached = read()
    return cached


class WindowSampler:
    """Uniform random windows of `length` consecutive frames over all episodes."""

    def __init__(self, tokens: list[np.ndarray], keys: list[np.ndarray], length: int):
        self.tokens, self.keys, self.length = tokens, keys, length
        counts = np.array([max(0, len(t) - length + 1) for t in tokens])
        if counts.sum() == 0:
            raise ValueError(f"no episode is long enough for windows of {length} frames")
        self.cum = np.cumsum(counts)

    def sample(self, rng: np.random.Generator, batch: int) -> tuple[np.ndarray, np.ndarray]:
        flat = rng.integers(0, self.cum[-1], batch)
        ep = np.searchsorted(self.cum, flat, side="right")
        start = flat - np.concatenate([[0], self.cum[:-1]])[ep]
        toks = np.stack([self.tokens[e][s : s + self.length] for e, s in zip(ep, start)]).astype(np.float32)
        keys = np.stack([self.keys[e][s : s + self.length] for e, s in zip(ep, start)]).astype(np.float32)
        return toks, keys


def noop_changes(tokens: list[np.ndarray], keys: list[np.ndarray]) -> tuple[int, int]:
    """(ticks with no key held, how many of them changed the frame), over all episodes.

    keys[t] are the keys held in the tick that produced frame t; identical frames have identical tokens (the encoder
    is deterministic), so a game that stands still when no key is held changes none."""
    ticks = changed = 0
    for tok, k in zip(tokens, keys):
        still = ~np.asarray(k[1:]).any(-1)
        ticks += int(still.sum())
        changed += int((tok[1:][still] != tok[:-1][still]).any(axis=(-2, -1)).sum())
    return ticks, changed


def hold_still(tokens: np.ndarray, keys: np.ndarray, rng: np.random.Generator, p: float) -> None:
    """In place, on a share p of the windows [B, L, N, D] / [B, L, K]: from a random frame j in 1..L-1 on, every frame
    is frame j-1 again and no key is held (the player let go). Only valid where `noop_changes` found no change."""
    length = tokens.shape[1]
    for b in np.flatnonzero(rng.random(len(tokens)) < p):
        j = int(rng.integers(1, length))
        tokens[b, j:] = tokens[b, j - 1]
        keys[b, j:] = 0
