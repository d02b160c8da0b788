"""Parameters and per-frame FLOPs of each preset, counted by torch's FLOP counter on the real modules.

Per-frame cost of play = sampler steps x step (denoise) + 1 step (commit) + decode.
Usage: .venv/bin/python tools/preset_stats.py [--size 64x64] [--keys 6]
"""

import argparse

import torch
from torch.utils.flop_counter import FlopCounterMode

from engine.dynamics.model import Dynamics
from engine.frames import parse_size
from engine.tokenizer.model import Tokenizer
from engine.train.config import PRESETS


def flops(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", default="64x64")
    ap.add_argument("--keys", type=int, default=6)
    args = ap.parse_args()
    size = parse_size(args.size)
    print(
        "| preset | frame | tokens/frame | context | tokenizer params | dynamics params | step GFLOPs | decode GFLOPs | "
        "sampler steps | GFLOPs per played frame |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, preset in PRESETS.items():
        frame = (128, 128) if name == "base" else size
        p = preset.for_data(frame, args.keys)
        tok, dyn = Tokenizer(p.tokenizer).eval(), Dynamics(p.dynamics).eval()
        c = p.dynamics
        n, d = c.tokens_per_frame, c.token_dim
        cache = (c.depth, 1, c.heads, c.cache_tokens, c.head_dim)
        with torch.no_grad():
            step = flops(
                lambda: dyn.step(
                    torch.zeros(1, n, d),
                    torch.zeros(1),
                    torch.zeros(1, c.num_keys),
                    torch.zeros(1, dtype=torch.long),
                    torch.zeros(1),
                    torch.zeros(cache),
                    torch.zeros(cache),
                    torch.zeros(1, c.cache_tokens),
                )
            )
            decode = flops(lambda: tok.decode(torch.zeros(1, n, d)))
        per_frame = (p.sampler.steps + 1) * step + decode
        print(
            f"| {name} | {frame[0]}x{frame[1]} | {n} | {c.context} | {sum(x.numel() for x in tok.parameters()) / 1e6:.2f} M | "
            f"{sum(x.numel() for x in dyn.parameters()) / 1e6:.2f} M | {step / 1e9:.3f} | {decode / 1e9:.3f} | {p.sampler.steps} | "
            f"{per_frame / 1e9:.3f} |"
        )


if __name__ == "__main__":
    main()
