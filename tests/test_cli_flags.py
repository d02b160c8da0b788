"""The flags that several commands share are declared once (argparse parents) and mean the same everywhere:
parsed on the real `skyloop` parser, every command that runs a world takes them with the same defaults."""

from __future__ import annotations

import argparse

import pytest

from engine.cli import build_parser
from engine.cli.parents import sampler_overrides

# command words, positionals: the commands that load a world and step it
WORLD_COMMANDS = {
    "play": ["play"],
    "replay": ["replay", "log.jsonl"],
    "bench speed": ["bench", "speed", "w.safetensors"],
    "bench consistency": ["bench", "consistency", "w.safetensors"],
}
SAMPLER_COMMANDS = ["play", "bench speed", "bench consistency"]  # replay takes the log's sampler settings
TRAINING_COMMANDS = {
    "train": ["train", "--data", "d", "--out", "w.safetensors"],
    "bench train": ["bench", "train"],
}


def _subparser(parser: argparse.ArgumentParser, words: list[str]) -> argparse.ArgumentParser:
    for word in words:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[word]
    return parser


def _action(command: str, dest: str) -> argparse.Action:
    parser = _subparser(build_parser(), command.split())
    return next(a for a in parser._actions if a.dest == dest)


@pytest.mark.parametrize("command", sorted(WORLD_COMMANDS))
def test_world_commands_take_device_and_threads_with_the_same_defaults(command):
    parser = build_parser()
    args = parser.parse_args(WORLD_COMMANDS[command])
    assert (args.device, args.threads) == (None, None)
    args = parser.parse_args(WORLD_COMMANDS[command] + ["--device", "cpu", "--threads", "3"])
    assert (args.device, args.threads) == ("cpu", 3)


@pytest.mark.parametrize("command", SAMPLER_COMMANDS)
def test_sampler_overrides_parse_alike(command):
    parser = build_parser()
    args = parser.parse_args(WORLD_COMMANDS[command])
    assert (args.sampler_steps, args.context_noise) == (None, None)
    assert sampler_overrides(args) is None
    args = parser.parse_args(WORLD_COMMANDS[command] + ["--sampler-steps", "2", "--context-noise", "0.25"])
    assert (args.sampler_steps, args.context_noise) == (2, 0.25)
    args = parser.parse_args(WORLD_COMMANDS[command] + ["--sampler-steps", "4", "--sampler-noise", "fresh", "--schedule-power", "2"])
    assert sampler_overrides(args) == {"steps": 4, "stochastic": True, "schedule_power": 2.0}
    assert sampler_overrides(parser.parse_args(WORLD_COMMANDS[command] + ["--sampler-noise", "implied"])) == {"stochastic": False}
    assert sampler_overrides(parser.parse_args(WORLD_COMMANDS[command] + ["--canvas", "on", "--canvas-shift", "6"])) == {"canvas": True, "canvas_shift": 6}
    assert sampler_overrides(parser.parse_args(WORLD_COMMANDS[command] + ["--canvas", "off"])) == {"canvas": False}
    assert sampler_overrides(parser.parse_args(WORLD_COMMANDS[command] + ["--retrace", "on"])) == {"retrace": True}


def test_replay_has_no_sampler_flags_but_reads_as_no_override():
    args = build_parser().parse_args(WORLD_COMMANDS["replay"])
    assert (args.sampler_steps, args.context_noise) == (None, None)
    with pytest.raises(SystemExit):
        build_parser().parse_args(WORLD_COMMANDS["replay"] + ["--sampler-steps", "2"])


def test_backend_is_shared_where_it_means_the_same_and_differs_where_the_command_says_so():
    parser = build_parser()
    for command in ("play", "bench consistency"):
        assert parser.parse_args(WORLD_COMMANDS[command]).backend == "auto"
        assert parser.parse_args(WORLD_COMMANDS[command] + ["--backend", "onnx"]).backend == "onnx"
        with pytest.raises(SystemExit):
            parser.parse_args(WORLD_COMMANDS[command] + ["--backend", "torch,onnx"])
    assert _action("play", "backend").choices == _action("bench consistency", "backend").choices == ["auto", "torch", "compile", "onnx"]
    assert parser.parse_args(WORLD_COMMANDS["bench speed"]).backend == "torch,onnx"  # a comparison by default
    assert parser.parse_args(WORLD_COMMANDS["replay"]).backend is None  # the log's backend
    assert _action("replay", "backend").choices == ["torch", "onnx"]


@pytest.mark.parametrize("dest", ["device", "threads", "sampler_steps", "context_noise"])
def test_a_shared_flag_has_one_help(dest):
    commands = SAMPLER_COMMANDS if dest in ("sampler_steps", "context_noise") else sorted(WORLD_COMMANDS)
    assert len({_action(c, dest).help for c in commands}) == 1


@pytest.mark.parametrize("command", sorted(TRAINING_COMMANDS))
def test_training_commands_share_device_threads_precision_compile(command):
    parser = build_parser()
    args = parser.parse_args(TRAINING_COMMANDS[command])
    assert (args.device, args.threads, args.precision, args.compile) == (None, None, "auto", False)
    args = parser.parse_args(TRAINING_COMMANDS[command] + ["--device", "cpu", "--threads", "2", "--precision", "fp32", "--compile"])
    assert (args.device, args.threads, args.precision, args.compile) == ("cpu", 2, "fp32", True)
    for dest in ("device", "threads", "precision", "compile"):
        assert _action("train", dest).help == _action("bench train", dest).help
