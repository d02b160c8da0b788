"""Sets a world file's default sampler (the one play and the benchmarks use unless told otherwise).

The sampler is not trained: choose it with `skyloop bench consistency --sampler-steps N --context-noise X`,
then store the winner. Usage: .venv/bin/python tools/set_sampler.py WORLD [--steps N] [--context-noise X] [--stochastic true|false]
[--key-guidance W] [--guided-steps K] [--history-guidance W] [--history-frames F] [--history-steps K]
[--canvas on|off] [--canvas-shift PX] [--retrace on|off]
"""

import argparse
from dataclasses import replace

from engine.world.bundle import load_bundle


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("world")
    ap.add_argument("--steps", type=int)
    ap.add_argument("--context-noise", type=float)
    ap.add_argument("--stochastic", choices=["true", "false"])
    ap.add_argument("--key-guidance", type=float, help="w of the key guidance (0 = off)")
    ap.add_argument("--guided-steps", type=int, help="how many of the first steps key guidance applies to")
    ap.add_argument("--history-guidance", type=float, help="w of the history guidance (0 = off)")
    ap.add_argument("--history-frames", type=int, help="the short history its reference sees, in frames")
    ap.add_argument("--history-steps", type=int, help="how many of the first steps history guidance applies to")
    ap.add_argument("--canvas", choices=["on", "off"], help="canvas memory (scrolling top-down worlds only)")
    ap.add_argument("--canvas-shift", type=int, help="the largest camera move per tick the canvas looks for, in pixels")
    ap.add_argument("--retrace", choices=["on", "off"], help="retrace memory (worlds whose moves have exact inverses)")
    args = ap.parse_args()
    bundle = load_bundle(args.world)
    names = ("steps", "context_noise", "key_guidance", "guided_steps", "history_guidance", "history_frames", "history_steps", "canvas_shift")
    given = [(name, getattr(args, name)) for name in names]
    changes = {k: v for k, v in given if v is not None}
    if args.stochastic:
        changes["stochastic"] = args.stochastic == "true"
    if args.canvas:
        changes["canvas"] = args.canvas == "on"
    if args.retrace:
        changes["retrace"] = args.retrace == "on"
    spec = replace(bundle.spec, sampler=replace(bundle.spec.sampler, **changes))
    sha = bundle.save(args.world, spec)
    print(f"{args.world}: sampler {spec.sampler} (sha256 {sha[:12]})")


if __name__ == "__main__":
    main()
