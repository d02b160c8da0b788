"""`skyloop bench speed|train|consistency|compare|scenes`."""

from __future__ import annotations

from engine.cli.parents import Parents, sampler_overrides
from engine.frames import parse_size


def cmd_bench_speed(args) -> int:
    from engine.bench.speed import bench_speed

    backends = [b.strip() for b in args.backend.split(",") if b.strip()]
    bench_speed(
        args.world,
        backends,
        frames=args.frames,
        warmup=args.warmup,
        repeats=args.repeats,
        threads=args.threads,
        device=args.device,
        batch=args.batch,
        out=args.out,
        sampler=sampler_overrides(args),
    )
    return 0


def cmd_bench_train(args) -> int:
    from engine.bench.train_speed import bench_train

    bench_train(
        args.preset,
        size=parse_size(args.size),
        keys=args.keys,
        steps=args.steps,
        warmup=args.warmup,
        batch=args.batch,
        device=args.device,
        threads=args.threads,
        precision=args.precision,
        compile=args.compile,
        settings=args.set,
        out=args.out,
    )
    return 0


def cmd_bench_consistency(args) -> int:
    from dataclasses import replace

    from engine.bench.consistency import QUICK, ConsistencyConfig, bench_consistency

    cfg = QUICK if args.quick else ConsistencyConfig()
    over = {k: v for k, v in (("seeds", args.seeds), ("frames", args.frames), ("stability_frames", args.stability_frames), ("forks", args.forks)) if v}
    if args.late_warmup is not None:
        over["late_warmup"] = args.late_warmup
    if args.loops:
        over["loops"] = tuple(int(x) for x in args.loops.split(","))
    cfg = replace(cfg, **over)
    parts = tuple(p.strip() for p in args.parts.split(",")) if args.parts else ("tf", "ar", "still", "loop", "action", "stability")
    bench_consistency(
        args.world,
        scene=args.scene,
        cfg=cfg,
        out=args.out,
        backend=args.backend,
        device=args.device,
        threads=args.threads,
        sampler=sampler_overrides(args),
        speed=args.speed,
        parts=parts,
    )
    return 0


def cmd_bench_compare(args) -> int:
    from engine.bench.compare import bench_compare

    bench_compare(args.a, args.b, out=args.out)
    return 0


def cmd_bench_scenes(args) -> int:
    from engine.bench.scenes_bench import bench_scenes

    bench_scenes(names=args.scenes, size=parse_size(args.size), frames=args.frames, out=args.out)
    return 0


def add_parser(sub, parents: Parents) -> None:
    """bench and its benchmarks."""
    p = sub.add_parser("bench", help="benchmarks")
    bsub = p.add_subparsers(dest="bench_command", metavar="WHAT", required=True)
    q = bsub.add_parser("speed", help="per-frame latency and FPS of a world (whole step: sampler + decode)", parents=[parents.runtime, parents.sampler])
    q.add_argument("world", help="world file (.safetensors) or ONNX export folder")
    q.add_argument("--backend", default="torch,onnx", help="comma-separated: auto, torch, compile, onnx (default torch,onnx)")
    q.add_argument("--frames", type=int, default=200, help="timed frames per run (default 200)")
    q.add_argument("--warmup", type=int, default=20, help="warm-up frames (default 20)")
    q.add_argument("--repeats", type=int, default=3, help="timed runs; figures are medians over them (default 3)")
    q.add_argument("--batch", type=int, default=1, help="worlds stepped together (default 1)")
    q.add_argument("--out", default="runs/bench-speed", help="report folder (default runs/bench-speed)")
    q.set_defaults(func=cmd_bench_speed)
    q = bsub.add_parser("train", help="training throughput (frames/s) of a preset: the real training step of each phase", parents=[parents.training])
    q.add_argument("--preset", default="small", help="tiny | small | base (default small)")
    q.add_argument("--size", default="64x64", help="frame size HxW (default 64x64)")
    q.add_argument("--keys", type=int, default=6, help="number of keys (default 6)")
    q.add_argument("--steps", type=int, default=10, help="timed steps (default 10)")
    q.add_argument("--warmup", type=int, default=3, help="warm-up steps (default 3)")
    q.add_argument("--batch", type=int, help="batch size (default: the preset's)")
    q.add_argument(
        "--set",
        action="append",
        metavar="PART.FIELD=VALUE",
        help="time another recipe, as for train, e.g. --set dynamics.rollout_p=0.5 --set train.ema=0.999 (repeatable)",
    )
    q.add_argument("--out", default="runs/bench-train", help="report folder (default runs/bench-train)")
    q.set_defaults(func=cmd_bench_train)
    q = bsub.add_parser(
        "consistency",
        help="a world against its real scene: teacher-forced, rollouts, loops, actions, stability",
        parents=[parents.backend, parents.runtime, parents.sampler],
    )
    q.add_argument("world", help="world file (.safetensors) or ONNX export folder")
    q.add_argument("--scene", help="ground-truth scene (default: the world's)")
    q.add_argument("--seeds", type=int, help="rollouts (evaluation seeds, never training ones; default 8)")
    q.add_argument("--frames", type=int, help="autoregressive rollout length (default 1000)")
    q.add_argument("--stability-frames", type=int, help="length of the stability runs (default 10000)")
    q.add_argument("--loops", help="comma-separated out lengths L for loop closure (default 2,4,8,16,32,64)")
    q.add_argument("--late-warmup", type=int, help="ticks of rollout before the late key-response forks (default 500; 0 = skip them)")
    q.add_argument("--forks", type=int, help="action-following forks (default 64; fewer is faster and widens the intervals of the key-response figures)")
    q.add_argument("--parts", help="comma-separated subset of tf,ar,still,loop,action,stability (default all)")
    q.add_argument("--quick", action="store_true", help="small settings that finish in under a minute on a CPU (for CI)")
    q.add_argument("--speed", action="store_true", help="also run bench speed and put it in the same report")
    q.add_argument("--out", default="runs/bench-consistency", help="report folder (default runs/bench-consistency)")
    q.set_defaults(func=cmd_bench_consistency)
    q = bsub.add_parser("compare", help="two consistency reports side by side: B - A with paired 95%% intervals over the shared seeds and forks")
    q.add_argument("a", help="report folder (or its report.json) of world A, the reference")
    q.add_argument("b", help="report folder (or its report.json) of world B, run with the same settings")
    q.add_argument("--out", help="also write compare.md and compare.json to this folder")
    q.set_defaults(func=cmd_bench_compare)
    q = bsub.add_parser("scenes", help="ground-truth scene frame rate per core")
    q.add_argument("--scenes", nargs="*", default=["maze", "overworld", "bounce"], help="scenes to time")
    q.add_argument("--size", default="64x64", help="frame size HxW (default 64x64)")
    q.add_argument("--frames", type=int, default=2000, help="frames per timed run (default 2000)")
    q.add_argument("--out", default="runs/bench-scenes", help="report folder (default runs/bench-scenes)")
    q.set_defaults(func=cmd_bench_scenes)
