"""The flags that several commands share, declared once as argparse parent parsers, and the functions
that read them back from the parsed arguments."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass

from engine.errors import SkyloopError

BACKEND_CHOICES = ["auto", "torch", "compile", "onnx"]  # engine.world.default_backend resolves "auto"
BACKEND_HELP = "how to run the world: auto (default: onnx when onnxruntime is installed, else torch), torch, compile or onnx"


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


def gym_options(args) -> dict:
    """make_scene options from --gym-module and --gym-kwargs."""
    options = {}
    if getattr(args, "gym_module", None):
        options["module"] = args.gym_module
    kwargs = parse_env_kwargs(getattr(args, "gym_kwargs", None))
    if kwargs:
        options["env_kwargs"] = kwargs
    return options


def sampler_overrides(args) -> dict | None:
    over = {}
    if getattr(args, "sampler_steps", None):
        over["steps"] = args.sampler_steps
    if getattr(args, "context_noise", None) is not None:
        over["context_noise"] = args.context_noise
    if getattr(args, "sampler_noise", None):
        over["stochastic"] = args.sampler_noise == "fresh"
    if getattr(args, "schedule_power", None) is not None:
        over["schedule_power"] = args.schedule_power
    if getattr(args, "key_guidance", None) is not None:
        over["key_guidance"] = args.key_guidance
    if getattr(args, "guided_steps", None) is not None:
        over["guided_steps"] = args.guided_steps
    for name in ("history_guidance", "history_frames", "history_steps"):
        if getattr(args, name, None) is not None:
            over[name] = getattr(args, name)
    if getattr(args, "canvas", None):
        over["canvas"] = args.canvas == "on"
    if getattr(args, "canvas_shift", None) is not None:
        over["canvas_shift"] = args.canvas_shift
    if getattr(args, "retrace", None):
        over["retrace"] = args.retrace == "on"
    return over or None


# A parent's actions are shared, not copied, by the parsers that take it: never set_defaults() one of its
# dests on a command (that would change every command's default). A command whose flag differs declares
# its own flag instead of taking the parent (bench speed's --backend list, replay's --backend from the log).
def _gym_parent() -> argparse.ArgumentParser:
    """--gym-module and --gym-kwargs, shared by the commands that make a Gymnasium game."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--gym-module",
        metavar="PKG",
        help="module to import so that it registers the Gymnasium env (needed only for packages Skyloop does not find by itself; same as --gym PKG:ENV_ID)",
    )
    parent.add_argument(
        "--gym-kwargs",
        nargs="+",
        metavar="KEY=VALUE",
        help="keyword arguments for the env, e.g. frameskip=4 "
        "repeat_action_probability=0 continuous=false (ints, floats, true/false, none, else strings); "
        "stored with the data and used wherever the game is made again",
    )
    return parent


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
    """--sampler-steps, --context-noise, --sampler-noise, --schedule-power, --key-guidance, --guided-steps, --history-*, --canvas* and --retrace: overrides of the world's sampler
    settings (read by sampler_overrides)."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--sampler-steps", type=int, help="sampler steps per frame (default: the world's)")
    parent.add_argument("--context-noise", type=float, help="noise level of generated frames in the context (default: the world's)")
    parent.add_argument(
        "--sampler-noise",
        choices=["implied", "fresh"],
        help="between sampler steps, re-use the noise the estimate implies (deterministic) or draw fresh noise (stochastic) (default: the world's)",
    )
    parent.add_argument("--schedule-power", type=float, help="noise levels (1 - k/steps) ** power; > 1 spends more steps at low noise (default: the world's)")
    parent.add_argument(
        "--key-guidance",
        type=float,
        help="w: push each estimate away from the no-keys estimate, x0 + w * (x0 - x0_nokeys); 0 = off (default: the world's)",
    )
    parent.add_argument("--guided-steps", type=int, help="how many of the first sampler steps key guidance applies to (default: the world's)")
    parent.add_argument(
        "--history-guidance",
        type=float,
        help="w: push each estimate away from the one seeing only the last --history-frames frames, x0 + w * (x0 - x0_short); 0 = off (default: the world's)",
    )
    parent.add_argument("--history-frames", type=int, help="the short history of history guidance's reference, in frames (default: the world's)")
    parent.add_argument("--history-steps", type=int, help="how many of the first sampler steps history guidance applies to (default: the world's)")
    parent.add_argument(
        "--canvas",
        choices=["on", "off"],
        help="canvas memory: keep what a scrolling top-down world showed, in world coordinates, and show it again on return (default: the world's)",
    )
    parent.add_argument("--canvas-shift", type=int, help="the largest camera move per tick the canvas looks for, in pixels (default: the world's)")
    parent.add_argument(
        "--retrace",
        choices=["on", "off"],
        help="retrace memory: keys that undo the last move (back after forward) show the frame from before it again (default: the world's)",
    )
    return parent


def _training_parent() -> argparse.ArgumentParser:
    """--device, --threads, --precision and --compile of a training step (train and bench train: both through Dist)."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    parent.add_argument("--threads", type=int, help="CPU threads per process (default: cores / processes)")
    parent.add_argument(
        "--precision", default="auto", choices=["auto", "bf16", "fp32"], help="auto: bf16 autocast on CUDA and on CPUs with AMX, fp32 elsewhere (default auto)"
    )
    parent.add_argument("--compile", action="store_true", help="torch.compile the dynamics training step (worth it for long runs)")
    return parent


@dataclass(frozen=True)
class Parents:
    """The parent parsers, made once by build_parser and handed to every command group's add_parser."""

    gym: argparse.ArgumentParser  # --gym-module, --gym-kwargs (collect, play)
    backend: argparse.ArgumentParser  # --backend auto|torch|compile|onnx (play, bench consistency)
    runtime: argparse.ArgumentParser  # --device, --threads of a world (play, replay, bench speed, bench consistency)
    sampler: argparse.ArgumentParser  # --sampler-steps, --context-noise (play, bench speed, bench consistency)
    training: argparse.ArgumentParser  # --device, --threads, --precision, --compile of training (train, bench train)

    @classmethod
    def build(cls) -> "Parents":
        return cls(gym=_gym_parent(), backend=_backend_parent(), runtime=_runtime_parent(), sampler=_sampler_parent(), training=_training_parent())
