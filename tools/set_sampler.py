"""Sets a world file's default sampler (the one play and the benchmarks use unless told otherwise).

The sampler is not trained: choose it with `skyloop bench consistency --sampler-steps N --context-noise X`,
then store the winner. Usage: .venv/bin/python tools/set_sampler.py WORLD [--steps N] [--context-noise X]
"""

import argparse
from dataclasses import replace

import torch

from engine.world.bundle import load_bundle, save_bundle


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("world")
    ap.add_argument("--steps", type=int)
    ap.add_argument("--context-noise", type=float)
    ap.add_argument("--stochastic", choices=["true", "false"])
    args = ap.parse_args()
    bundle = load_bundle(args.world)
    changes = {k: v for k, v in (("steps", args.steps), ("context_noise", args.context_noise)) if v is not None}
    if args.stochastic:
        changes["stochastic"] = args.stochastic == "true"
    spec = replace(bundle.spec, sampler=replace(bundle.spec.sampler, **changes))
    extra = {"start_frames": torch.from_numpy(bundle.start_frames)} if bundle.start_frames is not None else None
    sha = save_bundle(args.world, spec, bundle.tokenizer, bundle.dynamics, extra=extra)
    print(f"{args.world}: sampler {spec.sampler} (sha256 {sha[:12]})")


if __name__ == "__main__":
    main()
