"""`skyloop collect`, `import`, `data check` and `scenes`: datasets and the scenes they come from."""

from __future__ import annotations

import sys

from engine.cli.parents import Parents, gym_options
from engine.errors import SkyloopError
from engine.frames import parse_size


def _scene_factory(args):
    """A picklable zero-argument scene maker from --scene/--gym/--size/--level (and --gym-module/--gym-kwargs)."""
    import functools

    from scenes import make_scene

    size = parse_size(args.size)
    gym_id = getattr(args, "gym", None) or (args.scene[4:] if args.scene and args.scene.startswith("gym:") else None)
    if gym_id:
        probe = make_scene(f"gym:{gym_id}", size=size, **gym_options(args))  # fail now, naming the fix; finds the package
        options = probe.options()  # the resolved id and module: worker processes need not search again
        probe.close()
        return functools.partial(make_scene, probe.name, size=size, **options)
    if getattr(args, "gym_module", None) or getattr(args, "gym_kwargs", None):
        raise SkyloopError("--gym-module and --gym-kwargs go with --gym ENV_ID (or --scene gym:ENV_ID)")
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
    collect(
        args.out,
        factory,
        make_policy,
        episodes=args.episodes,
        steps=args.steps,
        seed=args.seed,
        workers=args.workers,
        describe={"policy": "explore", "command": command},
    )
    return 0


def cmd_import(args) -> int:
    from engine.data.importer import import_dataset
    from engine.record.video import read_video

    names = [k.strip() for k in args.keys.split(",") if k.strip()] if args.keys else None
    size = parse_size(args.size) if args.size else None
    ds = import_dataset(args.src, args.out, key_names=names, size=size, scene=args.scene, read_video=read_video)
    m = ds.manifest
    print(
        f"imported {len(m.episodes)} episodes ({sum(e.frames for e in m.episodes)} frames, "
        f"{m.frame_size[0]}x{m.frame_size[1]}, keys {list(m.keyset.names)}) into {args.out}"
    )
    return 0


def cmd_data_check(args) -> int:
    from engine.data.dataset import Dataset

    ds = Dataset.open(args.dir)
    problems = ds.verify(deep=True)
    m = ds.manifest
    good = len(m.episodes) - len(problems)
    for file, message in problems:
        print(f"BAD  {file}: {message}")
    print(f"{args.dir}: scene {m.scene}, {m.frame_size[0]}x{m.frame_size[1]}, keys {list(m.keyset.names)}; {good}/{len(m.episodes)} episodes good")
    return 1 if problems else 0


def cmd_scenes(args) -> int:
    from scenes import SCENES, scene_class

    for name, (_, _, about) in SCENES.items():
        keyset = scene_class(name).keyset
        keys = ", ".join(f"{k} [{'/'.join(keyset.bindings.get(k, ()))}]" for k in keyset.names)
        print(f"{name:10s} {about}\n{'':10s} keys: {keys}")
    print(
        "gym:ENV_ID  any Gymnasium env with render_mode='rgb_array' and a Discrete action space\n"
        f"{'':10s} its package is imported by itself for well-known ids (ALE/..., MiniGrid-..., ...); "
        "else --gym-module PKG or gym:PKG:ENV_ID; env options with --gym-kwargs key=value ..."
    )
    return 0


def add_parser(sub, parents: Parents) -> None:
    """collect, import, data check, scenes."""
    p = sub.add_parser("collect", help="record episodes from a scene or a Gymnasium game", parents=[parents.gym])
    src = p.add_mutually_exclusive_group()
    src.add_argument("--scene", help="built-in scene: maze, overworld, bounce")
    src.add_argument(
        "--gym",
        metavar="ENV_ID",
        help="a Gymnasium env id with a Discrete action space, e.g. CartPole-v1 or ALE/Breakout-v5 (with ale-py installed); PKG:ENV_ID imports PKG first",
    )
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
