"""`skyloop`: one entry point, one subcommand per job. Heavy imports happen inside each command."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from engine.types import SkyloopError, parse_size


# ---- scenes & data -----------------------------------------------------------
def _scene_factory(args):
    """A picklable zero-argument scene maker from --scene/--gym/--size/--level."""
    import functools

    from scenes import make_scene

    size = parse_size(args.size)
    if getattr(args, "gym", None):
        return functools.partial(make_scene, f"gym:{args.gym}", size=size)
    options = {}
    if getattr(args, "level", None) is not None:
        if args.scene == "bounce":
            raise SkyloopError("bounce has no --level (its layout is the physics box)")
        options["level"] = args.level
    make_scene(args.scene, size=size, **options).close()  # fail now, with the list of scenes, if the name is wrong
    return functools.partial(make_scene, args.scene, size=size, **options)


def cmd_collect(args) -> int:
    from engine.data.collect import collect
    from scenes.explore import make_policy

    if not args.scene and not args.gym:
        raise SkyloopError("collect needs --scene NAME or --gym ENV_ID")
    factory = _scene_factory(args)
    command = "skyloop " + " ".join(sys.argv[1:]) if sys.argv and sys.argv[0].endswith(("skyloop", "__main__.py")) else None
    collect(args.out, factory, make_policy, episodes=args.episodes, steps=args.steps, seed=args.seed,
            workers=args.workers, describe={"policy": "explore", "command": command})
    return 0


def cmd_import(args) -> int:
    from engine.data.importer import import_dataset
    from engine.record.video import read_video

    names = [k.strip() for k in args.keys.split(",") if k.strip()] if args.keys else None
    size = parse_size(args.size) if args.size else None
    ds = import_dataset(args.src, args.out, key_names=names, size=size, scene=args.scene, read_video=read_video)
    m = ds.manifest
    print(f"imported {len(m.episodes)} episodes ({sum(e.frames for e in m.episodes)} frames, "
          f"{m.frame_size[0]}x{m.frame_size[1]}, keys {list(m.keyset.names)}) into {args.out}")
    return 0


def cmd_data_check(args) -> int:
    from engine.data.dataset import Dataset

    ds = Dataset.open(args.dir)
    problems = ds.verify(deep=True)
    m = ds.manifest
    good = len(m.episodes) - len(problems)
    for file, message in problems:
        print(f"BAD  {file}: {message}")
    print(f"{args.dir}: scene {m.scene}, {m.frame_size[0]}x{m.frame_size[1]}, keys {list(m.keyset.names)}; "
          f"{good}/{len(m.episodes)} episodes good")
    return 1 if problems else 0


def cmd_scenes(args) -> int:
    from scenes import SCENES, scene_class

    for name, (_, _, about) in SCENES.items():
        keyset = scene_class(name).keyset
        keys = ", ".join(f"{k} [{'/'.join(keyset.bindings.get(k, ()))}]" for k in keyset.names)
        print(f"{name:10s} {about}\n{'':10s} keys: {keys}")
    print("gym:ENV_ID  any Gymnasium env with render_mode='rgb_array' and a Discrete action space")
    return 0


def cmd_bench_scenes(args) -> int:
    from engine.bench.scenes_bench import bench_scenes

    bench_scenes(names=args.scenes, size=parse_size(args.size), frames=args.frames, out=args.out)
    return 0


# ---- parser ------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="skyloop", description="Skyloop: a neural game engine.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("collect", help="record episodes from a scene or a Gymnasium game")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--scene", help="built-in scene: maze, overworld, bounce")
    src.add_argument("--gym", metavar="ENV_ID", help="a Gymnasium env id with a Discrete action space, e.g. CartPole-v1")
    p.add_argument("--episodes", type=int, default=16, help="number of episodes (default 16)")
    p.add_argument("--steps", type=int, default=500, help="ticks per episode (default 500)")
    p.add_argument("--out", required=True, help="dataset folder to write (resumable: run again to finish)")
    p.add_argument("--seed", type=int, default=0, help="dataset seed; each episode's seed derives from it (default 0)")
    p.add_argument("--size", default="64x64", help="frame size HxW (default 64x64)")
    p.add_argument("--level", type=int, default=None, help="level (map) of maze/overworld (default 0)")
    p.add_argument("--workers", type=int, default=1, help="parallel worker processes (default 1)")
    p.set_defaults(func=cmd_collect)

    p = sub.add_parser("import", help="turn your own recordings (npz/npy/mp4 + actions) into a dataset")
    p.add_argument("src", help="a folder of recordings (or one file)")
    p.add_argument("--out", required=True, help="dataset folder to create")
    p.add_argument("--keys", help="comma-separated key names in vector order (else keys.json or the files)")
    p.add_argument("--size", help="resize every frame to HxW (required when the files differ in size)")
    p.add_argument("--scene", default="imported", help="scene name to record in the manifest (default 'imported')")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("data", help="dataset tools")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    q = dsub.add_parser("check", help="verify every episode of a dataset and name the bad ones")
    q.add_argument("dir", help="dataset folder")
    q.set_defaults(func=cmd_data_check)

    p = sub.add_parser("scenes", help="list the built-in scenes and their keys")
    p.set_defaults(func=cmd_scenes)

    p = sub.add_parser("bench", help="benchmarks")
    bsub = p.add_subparsers(dest="bench_command", metavar="WHAT", required=True)
    q = bsub.add_parser("scenes", help="ground-truth scene frame rate per core")
    q.add_argument("--scenes", nargs="*", default=["maze", "overworld", "bounce"], help="scenes to time")
    q.add_argument("--size", default="64x64", help="frame size HxW (default 64x64)")
    q.add_argument("--frames", type=int, default=2000, help="frames per timed run (default 2000)")
    q.add_argument("--out", default="runs/bench-scenes", help="report folder (default runs/bench-scenes)")
    q.set_defaults(func=cmd_bench_scenes)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except SkyloopError as exc:
        print(f"skyloop {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"skyloop {args.command}: interrupted", file=sys.stderr)
        return 130
