"""`skyloop`: one entry point, one subcommand per job. Heavy imports happen inside each command."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from engine.types import SkyloopError, parse_size


# ---- scenes & data -----------------------------------------------------------
def parse_env_kwargs(items: list[str] | None) -> dict:
    """`--gym-kwargs key=value ...` as a dict: ints, floats, true/false, none/null, JSON lists; anything else a string."""
    out = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        if not sep or not key.strip().isidentifier():
            raise SkyloopError(f"--gym-kwargs takes key=value pairs, e.g. frameskip=4 continuous=false; got {item!r}")
        lowered = text.strip().lower()
        if lowered in ("true", "false"):
            value = lowered == "true"
        elif lowered in ("none", "null"):
            value = None
        else:
            try:
                value = json.loads(text)
            except json.JSONDecodeError:
                value = text
        out[key.strip()] = value
    return out


def _gym_options(args) -> dict:
    """make_scene options from --gym-module and --gym-kwargs."""
    options = {}
    if getattr(args, "gym_module", None):
        options["module"] = args.gym_module
    kwargs = parse_env_kwargs(getattr(args, "gym_kwargs", None))
    if kwargs:
        options["env_kwargs"] = kwargs
    return options


def _scene_factory(args):
    """A picklable zero-argument scene maker from --scene/--gym/--size/--level (and --gym-module/--gym-kwargs)."""
    import functools

    from scenes import make_scene

    size = parse_size(args.size)
    gym_id = getattr(args, "gym", None) or (args.scene[4:] if args.scene and args.scene.startswith("gym:") else None)
    if gym_id:
        probe = make_scene(f"gym:{gym_id}", size=size, **_gym_options(args))  # fail now, naming the fix; finds the package
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
    print("gym:ENV_ID  any Gymnasium env with render_mode='rgb_array' and a Discrete action space\n"
          f"{'':10s} its package is imported by itself for well-known ids (ALE/..., MiniGrid-..., ...); "
          "else --gym-module PKG or gym:PKG:ENV_ID; env options with --gym-kwargs key=value ...")
    return 0


def cmd_bench_scenes(args) -> int:
    from engine.bench.scenes_bench import bench_scenes

    bench_scenes(names=args.scenes, size=parse_size(args.size), frames=args.frames, out=args.out)
    return 0


# ---- training ----------------------------------------------------------------
def cmd_train(args) -> int:
    from engine.train.config import resolve_preset
    from engine.train.run import default_command, train_world

    # --steps, --batch, --lr ... are shorthands for --set assignments, applied after them
    preset = resolve_preset(args.preset, args.set or [], steps=args.steps, tokenizer_steps=args.tokenizer_steps, batch=args.batch,
                            lr=args.lr, eval_every=args.eval_every, checkpoint_every=args.checkpoint_every)
    train_world(args.data, preset, args.out, resume=args.resume, run_dir=args.run_dir, device=args.device, threads=args.threads,
                progress=not args.no_progress, command=default_command(), precision=args.precision, compile=args.compile,
                tokenizer_from=args.tokenizer_from, init_from=args.init_from, max_episodes=args.episodes)
    return 0


# ---- play / replay -------------------------------------------------------------
DEFAULT_WORLD = Path(__file__).resolve().parent.parent / "worlds" / "maze.safetensors"
BACKEND_CHOICES = ["auto", "torch", "compile", "onnx"]  # engine.world.default_backend resolves "auto"
BACKEND_HELP = "how to run the world: auto (default: onnx when onnxruntime is installed, else torch), torch, compile or onnx"


def _sampler_overrides(args) -> dict | None:
    over = {}
    if getattr(args, "sampler_steps", None):
        over["steps"] = args.sampler_steps
    if getattr(args, "context_noise", None) is not None:
        over["context_noise"] = args.context_noise
    return over or None


def _world_source(path, args):
    from engine.play.sources import WorldSource
    from engine.world.session import World

    world = World.load(path, backend=args.backend, device=args.device, threads=args.threads, sampler=_sampler_overrides(args))
    return WorldSource(world)


def _play_source(args):
    from engine.play.sources import SceneSource

    if args.scene and not args.world:
        from scenes import make_scene

        size = parse_size(args.size) if args.size else (64, 64)
        options = _gym_options(args) if args.scene.startswith("gym:") else {}
        return SceneSource(make_scene(args.scene, size=size, **options))
    path = Path(args.world) if args.world else DEFAULT_WORLD
    if not path.exists():
        if args.world:
            raise SkyloopError(f"{path}: no such world file")
        raise SkyloopError(f"no world given and the default world {path} is missing; pass a WORLD file, or --scene maze to play a ground-truth scene")
    return _world_source(path, args)


def cmd_play(args) -> int:
    from engine.play.session import PlaySession

    if args.from_ and not Path(args.from_).exists():
        raise SkyloopError(f"{args.from_}: no such image or clip")
    if not args.headless:
        from engine.play.window import NoDisplay, has_display

        if not has_display():  # say so before loading anything, and record nothing
            raise NoDisplay("no display to open a window on (DISPLAY is not set); add --headless to roll out a clip instead, "
                            "e.g. skyloop play --headless --frames 300")
    from engine.play import stop

    stop.install()  # Ctrl-C and SIGTERM end play like Esc does, at a tick boundary: the recording is closed, not cut
    source = _play_source(args)
    session = PlaySession(source, context=args.from_, seed=args.seed, record_dir=args.out, tick_hz=args.tick,
                          upscale=args.scale, gif=args.gif)
    if args.headless:
        from engine.play.headless import run_headless

        result = run_headless(session, frames=args.frames, keys=args.keys, record=True)
        print(f"played {result['frames']} frames headless on {result.get('backend')} ({result.get('device')}): "
              f"model {result['model_fps']:.1f} FPS (p50 {result['model_ms_p50']:.1f} ms, p99 {result['model_ms_p99']:.1f} ms)")
        for path in result["files"]:
            print(f"wrote {path}")
        print(json.dumps({k: v for k, v in result.items() if k != "files"} | {"clip": result["files"][0] if result["files"] else None}))
        return 0
    from engine.input.bindings import Bindings
    from engine.play.window import PlayWindow

    window = PlayWindow(session, Bindings.for_keyset(source.keyset), screenshot_dir=args.out,
                        title=f"Skyloop - {source.name}")
    result = window.run(record=args.record, max_seconds=args.seconds)
    info = source.describe()
    print(f"played {result['ticks']} ticks on {info.get('backend')} ({info.get('device')}): "
          f"model {result['model_fps']:.1f} FPS, display {result['display_fps']:.0f} FPS")
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
        source = _world_source(path, args)
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


def cmd_info(args) -> int:
    from engine.world.bundle import read_spec

    spec = read_spec(args.world)
    if args.json:
        print(json.dumps(json.loads(spec.to_metadata()["skyloop"]), indent=1))
        return 0
    print(spec.describe(args.world, Path(args.world).stat().st_size))
    return 0


# ---- export / bench --------------------------------------------------------------
def cmd_export(args) -> int:
    from engine.export.onnx_export import export_world

    out = export_world(args.world, args.out, fp16=args.fp16, opset=args.opset)
    print(f"wrote {out}: encoder.onnx, decoder.onnx, step.onnx, cache_write.onnx, world.json")
    return 0


def cmd_bench_speed(args) -> int:
    from engine.bench.speed import bench_speed

    backends = [b.strip() for b in args.backend.split(",") if b.strip()]
    bench_speed(args.world, backends, frames=args.frames, warmup=args.warmup, repeats=args.repeats, threads=args.threads,
                device=args.device, batch=args.batch, out=args.out, sampler=_sampler_overrides(args))
    return 0


def cmd_bench_train(args) -> int:
    from engine.bench.train_speed import bench_train

    bench_train(args.preset, size=parse_size(args.size), keys=args.keys, steps=args.steps, warmup=args.warmup, batch=args.batch,
                device=args.device, threads=args.threads, precision=args.precision, compile=args.compile, settings=args.set, out=args.out)
    return 0


def cmd_bench_consistency(args) -> int:
    from dataclasses import replace

    from engine.bench.consistency import QUICK, ConsistencyConfig, bench_consistency

    cfg = QUICK if args.quick else ConsistencyConfig()
    over = {k: v for k, v in (("seeds", args.seeds), ("frames", args.frames), ("stability_frames", args.stability_frames)) if v}
    if args.loops:
        over["loops"] = tuple(int(x) for x in args.loops.split(","))
    cfg = replace(cfg, **over)
    parts = tuple(p.strip() for p in args.parts.split(",")) if args.parts else ("tf", "ar", "loop", "action", "stability")
    bench_consistency(args.world, scene=args.scene, cfg=cfg, out=args.out, backend=args.backend, device=args.device,
                      threads=args.threads, sampler=_sampler_overrides(args), speed=args.speed, parts=parts)
    return 0


# ---- parser ------------------------------------------------------------------
def _gym_parent() -> argparse.ArgumentParser:
    """--gym-module and --gym-kwargs, shared by the commands that make a Gymnasium game."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--gym-module", metavar="PKG", help="module to import so that it registers the Gymnasium env "
                        "(needed only for packages Skyloop does not find by itself; same as --gym PKG:ENV_ID)")
    parent.add_argument("--gym-kwargs", nargs="+", metavar="KEY=VALUE", help="keyword arguments for the env, e.g. frameskip=4 "
                        "repeat_action_probability=0 continuous=false (ints, floats, true/false, none, else strings); "
                        "stored with the data and used wherever the game is made again")
    return parent


# A parent's actions are shared, not copied, by the parsers that take it: never set_defaults() one of its
# dests on a command (that would change every command's default). A command whose flag differs declares
# its own flag instead of taking the parent (bench speed's --backend list, replay's --backend from the log).
def _backend_parent() -> argparse.ArgumentParser:
    """--backend: how to run a world, for the commands that load one and have no other default."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--backend", default="auto", choices=BACKEND_CHOICES, help=BACKEND_HELP)
    return parent


def _runtime_parent() -> argparse.ArgumentParser:
    """--device and --threads of a world run through World.load (play, replay, bench speed, bench consistency)."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--device", help="cpu or cuda (default: cpu for torch, CUDA when usable for onnx)")
    parent.add_argument("--threads", type=int, help="CPU threads for the model (default: torch's own / min(4, cores) for onnx)")
    return parent


def _sampler_parent() -> argparse.ArgumentParser:
    """--sampler-steps and --context-noise: overrides of the world's sampler settings (read by _sampler_overrides)."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--sampler-steps", type=int, help="sampler steps per frame (default: the world's)")
    parent.add_argument("--context-noise", type=float, help="noise level of generated frames in the context (default: the world's)")
    return parent


def _training_parent() -> argparse.ArgumentParser:
    """--device, --threads, --precision and --compile of a training step (train and bench train: both through Dist)."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    parent.add_argument("--threads", type=int, help="CPU threads per process (default: cores / processes)")
    parent.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp32"],
                        help="auto: bf16 autocast on CUDA and on CPUs with AMX, fp32 elsewhere (default auto)")
    parent.add_argument("--compile", action="store_true", help="torch.compile the dynamics training step (worth it for long runs)")
    return parent


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="skyloop", description="Skyloop: a neural game engine.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    gym_parent = _gym_parent()
    backend, runtime, sampler, training = _backend_parent(), _runtime_parent(), _sampler_parent(), _training_parent()

    p = sub.add_parser("collect", help="record episodes from a scene or a Gymnasium game", parents=[gym_parent])
    src = p.add_mutually_exclusive_group()
    src.add_argument("--scene", help="built-in scene: maze, overworld, bounce")
    src.add_argument("--gym", metavar="ENV_ID", help="a Gymnasium env id with a Discrete action space, e.g. CartPole-v1 or "
                     "ALE/Breakout-v5 (with ale-py installed); PKG:ENV_ID imports PKG first")
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

    p = sub.add_parser("train", help="train a world (tokenizer, then dynamics) into one .safetensors bundle", parents=[training])
    p.add_argument("--data", required=True, help="dataset folder (from collect or import)")
    p.add_argument("--preset", default="small", help="tiny | small | base (default small)")
    p.add_argument("--out", required=True, help="world file to write, e.g. worlds/maze.safetensors")
    p.add_argument("--steps", type=int, help="dynamics steps: --set train.dynamics_steps=N (default: the preset's)")
    p.add_argument("--tokenizer-steps", type=int, help="tokenizer steps: --set train.tokenizer_steps=N (default: the preset's)")
    p.add_argument("--episodes", type=int, help="use only the first N episodes of the dataset")
    p.add_argument("--set", action="append", metavar="PART.FIELD=VALUE",
                   help="override a preset field, e.g. --set dynamics.depth=4 --set sampler.steps=1 (repeatable)")
    p.add_argument("--tokenizer-from", metavar="WORLD", help="reuse the tokenizer of this world file (skips the tokenizer phase)")
    p.add_argument("--init-from", metavar="WORLD", help="continue training this world file: its tokenizer and dynamics weights, "
                   "its network shape, a fresh optimizer; compute adds up in the new world's metadata (training.cumulative)")
    p.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its last checkpoint")
    p.add_argument("--run-dir", help="folder for checkpoints, metrics and strips (default runs/<out name>)")
    p.add_argument("--batch", type=int, help="global batch size of both phases: --set train.tokenizer_batch=N "
                   "--set train.dynamics_batch=N (default: the preset's)")
    p.add_argument("--lr", type=float, help="peak learning rate of the dynamics phase: --set train.dynamics_lr=LR (default: the preset's)")
    p.add_argument("--eval-every", type=int, help="steps between evaluations: --set train.eval_every=N (default: the preset's)")
    p.add_argument("--checkpoint-every", type=int, help="steps between checkpoints: --set train.checkpoint_every=N (default: the preset's)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (logs still go to the run folder)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("play", help="play a world in a window (or --headless: roll out a clip)",
                       parents=[gym_parent, backend, runtime, sampler])
    p.add_argument("world", nargs="?", help=f"world file (default {DEFAULT_WORLD.relative_to(DEFAULT_WORLD.parent.parent)})")
    p.add_argument("--scene", help="play a ground-truth scene through the same loop (no world needed)")
    p.add_argument("--from", dest="from_", metavar="IMAGE|CLIP", help="start from a picture or continue a clip (mp4, npy, npz)")
    p.add_argument("--tick", type=float, help="model ticks per second (default: the world's, 15)")
    p.add_argument("--seed", type=int, default=0, help="scene start and sampler seed (default 0)")
    p.add_argument("--size", help="frame size HxW for --scene (default 64x64)")
    p.add_argument("--headless", action="store_true", help="no window: play --frames ticks and write the clip")
    p.add_argument("--frames", type=int, default=300, help="ticks to play with --headless (default 300)")
    p.add_argument("--keys", default="random", help="--headless keys: random (sticky random keys), tour (walks the level like a "
                   "person: corridors, junctions, looking around, coming back), or a file (.txt/.csv/.jsonl, one row per tick)")
    p.add_argument("--record", action="store_true", help="start recording at once (R toggles it in the window)")
    p.add_argument("--out", default="recordings", help="folder for clips, logs and screenshots (default recordings)")
    p.add_argument("--scale", type=int, default=0, help="also write an upscaled MP4 copy, e.g. --scale 8")
    p.add_argument("--gif", action="store_true", help="also write a GIF of each recording")
    p.add_argument("--seconds", type=float, help="close the window after this many seconds")
    p.set_defaults(func=cmd_play)

    p = sub.add_parser("replay", help="regenerate a recording from its action log and check it is bit-identical",
                       parents=[runtime])
    p.add_argument("log", help="action log (.jsonl) written next to a recording")
    p.add_argument("--world", help="world file to use instead of the one named in the log")
    p.add_argument("--backend", choices=["torch", "onnx"], help="backend (default: the one in the log)")
    p.add_argument("--out", help="re-encode the regenerated frames to this MP4")
    p.add_argument("--scale", type=int, default=1, help="upscale factor for --out (default 1)")
    p.add_argument("--no-check", action="store_true", help="exit 0 even when frames differ")
    p.set_defaults(func=cmd_replay, sampler_steps=None, context_noise=None)

    p = sub.add_parser("scenes", help="list the built-in scenes and their keys")
    p.set_defaults(func=cmd_scenes)

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

    p = sub.add_parser("bench", help="benchmarks")
    bsub = p.add_subparsers(dest="bench_command", metavar="WHAT", required=True)
    q = bsub.add_parser("speed", help="per-frame latency and FPS of a world (whole step: sampler + decode)",
                          parents=[runtime, sampler])
    q.add_argument("world", help="world file (.safetensors) or ONNX export folder")
    q.add_argument("--backend", default="torch,onnx", help="comma-separated: auto, torch, compile, onnx (default torch,onnx)")
    q.add_argument("--frames", type=int, default=200, help="timed frames per run (default 200)")
    q.add_argument("--warmup", type=int, default=20, help="warm-up frames (default 20)")
    q.add_argument("--repeats", type=int, default=3, help="timed runs; figures are medians over them (default 3)")
    q.add_argument("--batch", type=int, default=1, help="worlds stepped together (default 1)")
    q.add_argument("--out", default="runs/bench-speed", help="report folder (default runs/bench-speed)")
    q.set_defaults(func=cmd_bench_speed)
    q = bsub.add_parser("train", help="training throughput (frames/s) of a preset: the real training step of each phase",
                          parents=[training])
    q.add_argument("--preset", default="small", help="tiny | small | base (default small)")
    q.add_argument("--size", default="64x64", help="frame size HxW (default 64x64)")
    q.add_argument("--keys", type=int, default=6, help="number of keys (default 6)")
    q.add_argument("--steps", type=int, default=10, help="timed steps (default 10)")
    q.add_argument("--warmup", type=int, default=3, help="warm-up steps (default 3)")
    q.add_argument("--batch", type=int, help="batch size (default: the preset's)")
    q.add_argument("--set", action="append", metavar="PART.FIELD=VALUE",
                   help="time another recipe, as for train, e.g. --set dynamics.rollout_p=0.5 --set train.ema=0.999 (repeatable)")
    q.add_argument("--out", default="runs/bench-train", help="report folder (default runs/bench-train)")
    q.set_defaults(func=cmd_bench_train)
    q = bsub.add_parser("consistency", help="a world against its real scene: teacher-forced, rollouts, loops, actions, stability",
                          parents=[backend, runtime, sampler])
    q.add_argument("world", help="world file (.safetensors) or ONNX export folder")
    q.add_argument("--scene", help="ground-truth scene (default: the world's)")
    q.add_argument("--seeds", type=int, help="rollouts (evaluation seeds, never training ones; default 8)")
    q.add_argument("--frames", type=int, help="autoregressive rollout length (default 1000)")
    q.add_argument("--stability-frames", type=int, help="length of the stability runs (default 10000)")
    q.add_argument("--loops", help="comma-separated out lengths L for loop closure (default 2,4,8,16,32,64)")
    q.add_argument("--parts", help="comma-separated subset of tf,ar,loop,action,stability (default all)")
    q.add_argument("--quick", action="store_true", help="small settings that finish in under a minute on a CPU (for CI)")
    q.add_argument("--speed", action="store_true", help="also run bench speed and put it in the same report")
    q.add_argument("--out", default="runs/bench-consistency", help="report folder (default runs/bench-consistency)")
    q.set_defaults(func=cmd_bench_consistency)
    q = bsub.add_parser("scenes", help="ground-truth scene frame rate per core")
    q.add_argument("--scenes", nargs="*", default=["maze", "overworld", "bounce"], help="scenes to time")
    q.add_argument("--size", default="64x64", help="frame size HxW (default 64x64)")
    q.add_argument("--frames", type=int, default=2000, help="frames per timed run (default 2000)")
    q.add_argument("--out", default="runs/bench-scenes", help="report folder (default runs/bench-scenes)")
    q.set_defaults(func=cmd_bench_scenes)
    return parser


def main(argv=None) -> int:
    # OpenMP threads that spin while waiting wreck latency when anything else runs (measured 18 -> 337 ms
    # per step with the other core busy); must be set before torch loads, which every command does lazily.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
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
