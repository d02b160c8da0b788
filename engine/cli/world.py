"""`skyloop info`, `export` and `pack`: what a world file holds, the world as ONNX graphs, and its weights stored anew."""

from __future__ import annotations

import json
from pathlib import Path

from engine.cli.parents import Parents


def cmd_info(args) -> int:
    from engine.world.bundle import read_spec, weight_storage

    spec = read_spec(args.world)
    if args.json:
        print(json.dumps(json.loads(spec.to_metadata()["skyloop"]), indent=1))
        return 0
    print(spec.describe(args.world, Path(args.world).stat().st_size, weight_storage(args.world)))
    return 0


def cmd_pack(args) -> int:
    from engine.errors import SkyloopError
    from engine.world.bundle import load_bundle

    src, out = Path(args.world), Path(args.out)
    if out.exists() and out.resolve() == src.resolve():
        raise SkyloopError(f"{out}: --out is the world itself; write the repacked world to another file (int8 cannot be undone)")
    bundle = load_bundle(src)
    sha = bundle.save(out, weights=args.weights)
    before, after = src.stat().st_size / 2**20, out.stat().st_size / 2**20
    print(f"wrote {out} ({bundle.weights} -> {args.weights} weights, {before:.1f} -> {after:.1f} MiB, sha256 {sha[:12]})")
    return 0


def cmd_export(args) -> int:
    from engine.export.onnx_export import export_world

    out = export_world(args.world, args.out, fp16=args.fp16, opset=args.opset)
    print(f"wrote {out}: encoder.onnx, decoder.onnx, step.onnx, cache_write.onnx, world.json")
    return 0


def add_parser(sub, parents: Parents) -> None:
    """info, export, pack."""
    from engine.world.bundle import WEIGHTS

    p = sub.add_parser("info", help="what a world file holds: scene, keys, sizes, sampler, how it was trained")
    p.add_argument("world", help="world file (.safetensors)")
    p.add_argument("--json", action="store_true", help="the full metadata as JSON")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("export", help="export a world to ONNX (encoder, decoder, one-frame step with explicit KV cache)")
    p.add_argument("world", help="world file (.safetensors)")
    p.add_argument("--out", required=True, help="export folder to write")
    p.add_argument("--fp16", action="store_true", help="half-precision weights and compute (for GPUs); inputs and outputs stay float32")
    p.add_argument("--opset", type=int, default=18, help="ONNX opset (default 18)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("pack", help="write a world again with its weights stored another way (int8: about 0.55x the size)")
    p.add_argument("world", help="world file (.safetensors)")
    p.add_argument("--weights", required=True, choices=WEIGHTS, help="how to store the weights")
    p.add_argument("--out", required=True, help="world file to write (not the input: int8 loses precision)")
    p.set_defaults(func=cmd_pack)
