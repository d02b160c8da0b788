"""`skyloop play` and `replay`: a world (or a scene) in the game loop, and a recording regenerated from its log."""

from __future__ import annotations

import json
from pathlib import Path

from engine.cli.parents import Parents, gym_options, sampler_overrides
from engine.errors import SkyloopError
from engine.frames import parse_size

DEFAULT_WORLD = Path(__file__).resolve().parents[2] / "worlds" / "maze.safetensors"


def _world_source(path, args, sampler: dict | None = None):
    from engine.play.sources import WorldSource
    from engine.world.session import World

    sampler = sampler if sampler is not None else sampler_overrides(args)
    world = World.load(path, backend=args.backend, device=args.device, threads=args.threads, sampler=sampler)
    return WorldSource(world)


def _play_source(args):
    from engine.play.sources import SceneSource

    if args.scene and not args.world:
        from scenes import make_scene

        size = parse_size(args.size) if args.size else (64, 64)
        options = gym_options(args) if args.scene.startswith("gym:") else {}
        return SceneSource(make_scene(args.scene, size=size, **options))
    path = Path(args.world) if args.world else DEFAULT_WORLD
    if not path.exists():
        if args.world:
            raise SkyloopError(f"{path}: no such world file")
        raise SkyloopError(f"no world given and the default world {path} is missing; pass a WORLD file, or --scene maze to play a ground-truth scene")
    return _world_source(path, args)


def cmd_play(args) -> int:
    from engine.play.session import PlaySession
    from engine.world.context_files import CLIP_SUFFIXES

    if args.from_ and not Path(args.from_).exists():
        raise SkyloopError(f"{args.from_}: no such image or clip")
    out = Path(args.out)
    if out.suffix.lower() in (*CLIP_SUFFIXES, ".gif") and not out.is_dir():  # `--out clip.mp4` made a folder named clip.mp4
        raise SkyloopError(
            f"--out {args.out}: --out names the folder that clips, logs and screenshots go to (each clip is named by its time "
            f"and world), not a video file; pass a folder, e.g. --out {out.with_suffix('')}"
        )
    if not args.headless:
        from engine.play.window import NoDisplay, has_display

        if not has_display():  # say so before loading anything, and record nothing
            raise NoDisplay(
                "no display to open a window on (DISPLAY is not set); add --headless to roll out a clip instead, e.g. skyloop play --headless --frames 300"
            )
    from engine.play import stop

    stop.install()  # Ctrl-C and SIGTERM end play like Esc does, at a tick boundary: the recording is closed, not cut
    source = _play_source(args)
    session = PlaySession(source, context=args.from_, seed=args.seed, record_dir=args.out, tick_hz=args.tick, upscale=args.scale, gif=args.gif)
    if args.headless:
        from engine.play.headless import run_headless

        result = run_headless(session, frames=args.frames, keys=args.keys, record=True)
        print(
            f"played {result['frames']} frames headless on {result.get('backend')} ({result.get('device')}): "
            f"model {result['model_fps']:.1f} FPS (p50 {result['model_ms_p50']:.1f} ms, p99 {result['model_ms_p99']:.1f} ms)"
        )
        for path in result["files"]:
            print(f"wrote {path}")
        print(json.dumps({k: v for k, v in result.items() if k != "files"} | {"clip": result["files"][0] if result["files"] else None}))
        return 0
    from engine.input.bindings import Bindings
    from engine.play.window import PlayWindow

    window = PlayWindow(session, Bindings.for_keyset(source.keyset), screenshot_dir=args.out, title=f"Skyloop - {source.name}")
    result = window.run(record=args.record, max_seconds=args.seconds)
    info = source.describe()
    print(
        f"played {result['ticks']} ticks on {info.get('backend')} ({info.get('device')}): "
        f"model {result['model_fps']:.1f} FPS, display {result['display_fps']:.0f} FPS"
    )
    return 0


def cmd_replay(args) -> int:
    from engine.play.sources import SceneSource
    from engine.record.replay import replay

    def make_source(header):
        if header.get("source") == "scene":
            from scenes import make_scene

            return SceneSource(make_scene(header["scene"], size=tuple(header.get("frame_size", (64, 64))), **header.get("scene_options", {})))
        path = Path(args.world or header["world"])
        args.backend = args.backend or header.get("backend", "torch")
        if args.backend == "compile":
            args.backend = "torch"
        source = _world_source(path, args, sampler=header.get("sampler"))  # the sampler it was played with, overrides and all
        if source.world.sha256 != header.get("world_sha256"):
            print(f"warning: {path} is not the world file the log was recorded with (hash differs); frames will not match")
        return source

    def reset_context(header):
        ctx = header.get("context", {"kind": "seed"})
        if ctx.get("kind") != "file":
            return None
        from engine.files import sha256_file

        path = Path(ctx["path"])
        if not path.exists():
            raise SkyloopError(f"the log starts from {path}, which is missing")
        if sha256_file(path) != ctx.get("sha256"):
            print(f"warning: {path} changed since the recording; frames will not match")
        return path

    report = replay(args.log, make_source, reset_context, out=args.out, scale=args.scale)
    status = "bit-identical" if report.ok else f"DIFFERENT from tick {report.first_mismatch}"
    print(f"replayed {report.frames} frames: {report.identical}/{report.frames} identical to the log ({status})")
    for path in report.files:
        print(f"wrote {path}")
    return 0 if report.ok or args.no_check else 1


def add_parser(sub, parents: Parents) -> None:
    """play, replay."""
    p = sub.add_parser(
        "play", help="play a world in a window (or --headless: roll out a clip)", parents=[parents.gym, parents.backend, parents.runtime, parents.sampler]
    )
    p.add_argument("world", nargs="?", help=f"world file (default {DEFAULT_WORLD.relative_to(DEFAULT_WORLD.parent.parent)})")
    p.add_argument("--scene", help="play a ground-truth scene through the same loop (no world needed)")
    p.add_argument("--from", dest="from_", metavar="IMAGE|CLIP", help="start from a picture or continue a clip (mp4, npy, npz)")
    p.add_argument("--tick", type=float, help="model ticks per second (default: the world's, 15)")
    p.add_argument("--seed", type=int, default=0, help="scene start and sampler seed (default 0)")
    p.add_argument("--size", help="frame size HxW for --scene (default 64x64)")
    p.add_argument("--headless", action="store_true", help="no window: play --frames ticks and write the clip")
    p.add_argument("--frames", type=int, default=300, help="ticks to play with --headless (default 300)")
    p.add_argument(
        "--keys",
        default="random",
        help="--headless keys: random (sticky random keys), tour (walks the level like a "
        "person: corridors, junctions, looking around, coming back), or a file (.txt/.csv/.jsonl, one row per tick)",
    )
    p.add_argument("--record", action="store_true", help="start recording at once (R toggles it in the window)")
    p.add_argument("--out", default="recordings", help="folder for clips, logs and screenshots (default recordings)")
    p.add_argument("--scale", type=int, default=0, help="also write an upscaled MP4 copy, e.g. --scale 8")
    p.add_argument("--gif", action="store_true", help="also write a GIF of each recording")
    p.add_argument("--seconds", type=float, help="close the window after this many seconds")
    p.set_defaults(func=cmd_play)

    p = sub.add_parser("replay", help="regenerate a recording from its action log and check it is bit-identical", parents=[parents.runtime])
    p.add_argument("log", help="action log (.jsonl) written next to a recording")
    p.add_argument("--world", help="world file to use instead of the one named in the log")
    p.add_argument("--backend", choices=["torch", "onnx"], help="backend (default: the one in the log)")
    p.add_argument("--out", help="re-encode the regenerated frames to this MP4")
    p.add_argument("--scale", type=int, default=1, help="upscale factor for --out (default 1)")
    p.add_argument("--no-check", action="store_true", help="exit 0 even when frames differ")
    p.set_defaults(func=cmd_replay, sampler_steps=None, context_noise=None)
