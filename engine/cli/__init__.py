"""`skyloop`: one entry point, one subcommand per job. Each command group's module holds its commands and,
beside them, its add_parser; flags shared by several commands come from engine.cli.parents. Heavy imports
happen inside each command."""

from __future__ import annotations

import argparse
import os
import sys

from engine.cli import bench, data, play, train, world
from engine.cli.parents import Parents, parse_env_kwargs
from engine.errors import SkyloopError

__all__ = ["build_parser", "main", "parse_env_kwargs"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="skyloop", description="Skyloop: a neural game engine.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    parents = Parents.build()
    for group in (data, train, play, world, bench):  # the order of the commands in --help
        group.add_parser(sub, parents)
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
