"""Puts parts of `skyloop bench consistency` that were run again into a full report, without re-running the rest.

When a bug fix changes only some parts of the benchmark (say the action-following forks), re-run just those parts
with the same world, seeds and settings (`skyloop bench consistency WORLD --parts action --out NEW`) and merge
them: the report keeps every other section as measured, records which sections were replaced, when, at which
commit and why, and its summary and report.md are rebuilt. Refuses a partial report of another world, other seeds
or other settings.

A `skyloop bench speed` report of the same world with its own sampler (`skyloop bench speed WORLD --backend onnx
--out NEW`) replaces the speed part the same way, its report folder copied over REPORT/speed: speed is measured
alone on a quiet machine, and a faster step graph changes it without changing a frame.

Usage: .venv/bin/python tools/remeasure.py docs/results/overworld runs/forkfix/overworld --why "..."
"""

import argparse
import json
import shutil
import subprocess
import time
from pathlib import Path

from engine.bench.consistency import ConsistencyConfig
from engine.bench.consistency_report import markdown, summarise
from engine.bench.machine import write_report
from engine.dynamics.sampler import SamplerConfig
from engine.files import sha256_file

SECTIONS = {
    "tf": ["teacher_forced"],
    "ar": ["autoregressive"],
    "still": ["no_keys"],
    "loop": ["loop_closure"],
    "action": ["action_following", "action_following_late"],
    "stability": ["stability"],
}
PART_SETTINGS = {"action": ["late_warmup", "forks", "fork_length", "warmup"], "loop": ["loop_builds", "loops", "warmup"]}
FIGURES = ["autoregressive.png", "strip.png", "loop_closure.png", "stability.png"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("report", type=Path, help="folder of the full report (report.json), rewritten in place")
    ap.add_argument("partial", type=Path, help="folder of the report with the parts run again")
    ap.add_argument("--why", required=True, help="the reason, in a sentence (it goes into the report)")
    args = ap.parse_args()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip() or "unknown"
    full = json.loads((args.report / "report.json").read_text())
    part = json.loads((args.partial / "report.json").read_text())
    if part.get("benchmark") == "speed":
        sections = merge_speed(full, part, args.partial, args.report, commit)
        finish(args, full, sections, part.get("seconds"), commit)
        return
    if SamplerConfig.from_json(full["sampler"]) != SamplerConfig.from_json(part["sampler"]):  # fields added since take their defaults
        raise SystemExit("the two reports differ in the sampler: not the same measurement, so they cannot be merged")
    for key in ("world_sha256", "seeds", "scene"):
        if full.get(key) != part.get(key):
            raise SystemExit(f"the two reports differ in {key}: not the same measurement, so they cannot be merged")
    parts = [p for p, names in SECTIONS.items() if any(n in part for n in names)]
    own = {key for p in parts for key in PART_SETTINGS.get(p, [])}  # the replaced parts' own settings may change (e.g. more forks)
    differ = [k for k in full["config"] if k in part["config"] and k not in own and full["config"][k] != part["config"][k]]
    if differ:
        raise SystemExit(f"the two reports differ in settings {', '.join(differ)}: not the same measurement, so they cannot be merged")
    sections = [name for p in parts for name in SECTIONS[p] if name in part]
    if not sections:
        raise SystemExit(f"{args.partial / 'report.json'} holds none of the sections {', '.join(n for v in SECTIONS.values() for n in v)}")
    for name in sections:
        full[name] = part[name]
    for p in parts:  # settings added to the benchmark since the full report: those of the replaced parts come along
        for key in PART_SETTINGS.get(p, []):
            if key in part["config"]:
                full["config"][key] = part["config"][key]
    finish(args, full, sections, part.get("seconds"), commit)


def merge_speed(full: dict, part: dict, partial: Path, report: Path, commit: str) -> list[str]:
    """A bench speed report in place of the consistency report's speed part (same world file, the world's own sampler)."""
    world = Path(part["world"])
    if not world.exists():
        raise SystemExit(f"the speed report names {world}, which is not here: its weights cannot be checked against the report's")
    if sha256_file(world) != full.get("world_sha256"):
        raise SystemExit(f"{world} is not the world of {report / 'report.json'} (its sha256 differs): not the same measurement")
    if "summary" not in part:
        raise SystemExit(f"{partial / 'report.json'} has no summary line (a speed report written before it kept one): run it again")
    steps = {r.get("sampler_steps") for r in part["results"].values()}
    if steps != {full["sampler"]["steps"]}:
        raise SystemExit(f"the speed run sampled {sorted(steps)} steps a frame, the world's sampler {full['sampler']['steps']}: run it with the world's own")
    earlier = dict(full["speed"]) if "speed" in full else None
    if earlier is not None:  # kept, with its machine: a figure measured on another CPU is not replaced, only joined
        earlier.setdefault("machine", full["machine"]["cpu"])
        earlier.setdefault("measured", "with the full benchmark")
        full.setdefault("speed_earlier", []).append(earlier)
    full["speed"] = dict(part["summary"], machine=part["machine"]["cpu"], measured=f"{time.strftime('%Y-%m-%d')}, commit {commit}")
    if (report / "speed").resolve() != partial.resolve():
        shutil.rmtree(report / "speed", ignore_errors=True)
        shutil.copytree(partial, report / "speed")
    return ["speed"]


def finish(args, full: dict, sections: list[str], seconds, commit: str) -> None:
    full.setdefault("remeasured", []).append({"sections": sections, "date": time.strftime("%Y-%m-%d"), "commit": commit, "why": args.why, "seconds": seconds})
    full["summary"] = summarise(full, ConsistencyConfig(**full["config"]))
    write_report(args.report, full, markdown(full, [f for f in FIGURES if (args.report / f).exists()]))
    print(f"{args.report / 'report.json'}: {', '.join(sections)} replaced from {args.partial} (commit {commit})")


if __name__ == "__main__":
    main()
