"""`skyloop info` and `export`: what a world file holds, and the world as ONNX graphs."""

from __future__ import annotations

import json
from pathlib import Path

from engine.cli.parents import Parents


def cmd_info(args) -> int:
    from engine.world.bundle import read_spec

    spec = read_spec(args.world)
    if args.json:
        print(json.dumps(json.loads(spec.to_metadata()["skyloop"]), indent=1))
        return 0
    print(spec.describe(args.world, Path(args.world).stat().st_size))
    return 0


def cmd_export(args) -> int:
    from engine.export.onnx_export import export_world

    out = export_world(args.world, args.out, fp16=args.fp16, opset=args.opset)
    print(f"wrote {out}: encoder.onnx, decoder.onnx, step.onnx, cache_write.onnx, world.json")
    return 0


def add_parser(sub, parents: Parents) -> None:
    """info, export."""
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
