"""Fixed-budget ablation harness: one training recipe, a fixed CPU budget, the fast benchmark, one row.

Every recipe starts from the same world file (its tokenizer and dynamics weights, `--init-from`), trains on the
same data with the same seed for the same process-CPU budget (`train.cpu_minutes`: the LR schedule follows the
budget, so recipes of different cost per step get the same compute), then runs the fast subset of
`skyloop bench consistency` (8 held-out seeds, TF, AR to 64, loop closure at 8 and 32, action following,
stability runs of 2,000 frames with plausibility) on ONNX Runtime, and appends a row to docs/ablations.md.

    tools/ablate.py NAME --init worlds/maze.safetensors --data data/maze --cpu-minutes 30 [--set dynamics.rollout_p=0.5 ...]
    tools/ablate.py shipped-maze --init worlds/maze.safetensors --cpu-minutes 0      # the starting world itself: the baseline row
    tools/ablate.py gpu-maze --world runs/gpu/maze.safetensors     # a world trained elsewhere (tools/train_worlds_gpu.sh):
                                                                   # its row takes recipe, steps and GPU time from its metadata

Outputs: runs/ablate/NAME/{world.safetensors, run/, bench/}. Resumable: a finished stage is not redone.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TABLE = ROOT / "docs" / "ablations.md"
BENCH = ["--seeds", "8", "--frames", "64", "--stability-frames", "2000", "--loops", "8,32", "--forks", "32", "--backend", "onnx"]
# 32 forks: key-response figures to about +-0.04 at half the full bench's cost; rows are compared with each other
# (`skyloop bench compare runs/ablate/A/bench runs/ablate/B/bench`), not with full reports (64 forks)
HEADER = """# Fixed-budget ablations

Rows are appended by `tools/ablate.py` (the command of each row is in `runs/ablate/NAME/row.json`). Every recipe
starts from the same world (`init`), trains on the same data with the same seed for the stated process-CPU budget
(CPU-minutes of all threads; wall minutes as measured, on a machine shared with other work), then gets the fast
subset of `skyloop bench consistency`: 8 held-out seeds on ONNX Runtime with the world's own sampler; TF = teacher-forced
PSNR, AR@N = autoregressive PSNR at step N, loop = return vs own departure, mean over L = 8 and 32 (later rows add "g": guarded, at L = 32, less the excursion shortfall), agree = action agreement,
spread = branch spread world/real, sharp and motion = sharpness ratio and flicker world/real at the end of the
2,000-frame exploration run, plaus gap = plausibility ceiling minus world at frame 2,000 of that run (the larger of the whole-frame and 8x8-patch gaps; dB, lower is
better), fg = foreground share world/real there.

| recipe | init | settings | CPU-min | steps | wall min | TF | AR@16 | AR@64 | loop | agree | spread | sharp | motion | plaus gap | fg | machine |
|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|
"""


def run(cmd: list[str], log: Path) -> None:
    print("$ " + " ".join(cmd), flush=True)
    with open(log, "a") as fh:
        proc = subprocess.run(cmd, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}; see {log}")


def fmt(v, digits=2) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("name", help="the recipe's name (folder runs/ablate/NAME, row label)")
    ap.add_argument("--init", help="world file every recipe starts from")
    ap.add_argument("--world", help="bench this world, trained elsewhere (e.g. on a GPU): its metadata gives init, settings, steps and time")
    ap.add_argument("--data", default="data/maze", help="dataset (default data/maze)")
    ap.add_argument("--cpu-minutes", type=float, default=0.0, help="process-CPU budget of the dynamics training; 0 = bench the init world")
    ap.add_argument("--lr", type=float, help="peak learning rate (default: the rate skyloop train gives a continued world, CONTINUE_LR)")
    ap.add_argument("--set", action="append", default=[], metavar="PART.FIELD=VALUE", help="recipe settings (skyloop train --set)")
    ap.add_argument("--note", default="", help="a few words for the row")
    args = ap.parse_args()
    if (args.init is None) == (args.world is None):
        ap.error("give --init (train a recipe from it, or bench it with --cpu-minutes 0) or --world (bench a world trained elsewhere)")
    elsewhere = None
    if args.world:
        from engine.world.bundle import read_spec

        elsewhere = read_spec(args.world).training
        words = elsewhere.get("command", "").split()
        args.init = elsewhere.get("init_from") or "–"
        args.set = [words[i + 1] for i, w in enumerate(words[:-1]) if w == "--set" and not words[i + 1].startswith("train.")]
        args.set += [f"{w[2:]}={words[i + 1]}" for i, w in enumerate(words[:-1]) if w in ("--batch", "--lr")]
        for tune in elsewhere.get("decoder_tunes", []):  # tools that change a world after training (skyloop tune-decoder)
            c = tune["config"]
            args.set.append(f"tune-decoder({tune['cpu_seconds'] / 60:.0f} CPU-min, {tune['steps']} steps, adversarial={c['adversarial']:g})")
    sk = str(ROOT / ".venv" / "bin" / "skyloop")
    folder = ROOT / "runs" / "ablate" / args.name
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "log.txt"
    world = Path(args.world) if args.world else Path(args.init) if args.cpu_minutes == 0 else folder / "world.safetensors"
    started = time.time()
    if args.cpu_minutes > 0 and not world.exists():
        run_dir = folder / "run"
        run_dir.mkdir(exist_ok=True)
        if not (run_dir / "latents.safetensors").exists():  # another row's latents of the same tokenizer save the encoding
            from safetensors import safe_open

            from engine.train.latents import tokenizer_fingerprint
            from engine.world.bundle import load_bundle

            fingerprint = tokenizer_fingerprint(load_bundle(args.init).tokenizer)
            for other in sorted((ROOT / "runs" / "ablate").glob("*/run/latents.safetensors")):
                with safe_open(str(other), framework="np") as fh:
                    same = (fh.metadata() or {}).get("tokenizer") == fingerprint
                if same:  # training checks the fingerprint and the episode split again before it uses the cache
                    shutil.copy(other, run_dir / "latents.safetensors")
                    break
        cmd = [
            sk,
            "train",
            "--data",
            args.data,
            "--preset",
            "small",
            "--init-from",
            args.init,
            "--out",
            str(world),
            "--run-dir",
            str(run_dir),
            "--steps",
            "1000000",
            *(["--lr", str(args.lr)] if args.lr is not None else []),
            "--compile",
            "--no-progress",
            "--set",
            f"train.cpu_minutes={args.cpu_minutes}",
            "--set",
            "train.warmup=50",
            "--set",
            "train.eval_every=1000000",
        ]
        for s in args.set:
            cmd += ["--set", s]
        if (run_dir / "checkpoint.safetensors").exists():
            cmd.append("--resume")
        run(cmd, log)
    bench = folder / "bench"
    if not (bench / "report.json").exists():
        run([sk, "bench", "consistency", str(world), *BENCH, "--out", str(bench)], log)
    report = json.loads((bench / "report.json").read_text())
    s = report["summary"]
    sampler = report.get("sampler") or {}
    if sampler:  # the world's own sampler decides much of a row (sharpness above all), so the row says which
        args.set.append(
            f"sampler={sampler['steps']}x{'stochastic' if sampler.get('stochastic') else 'deterministic'}"
            f",ctx{sampler.get('context_noise', 0):g}"
            + (f",power{sampler['schedule_power']:g}" if sampler.get("schedule_power", 1) != 1 else "")
            + (f",keys{sampler['key_guidance']:g}x{sampler.get('guided_steps', 1)}" if sampler.get("key_guidance") else "")
            + (
                f",history{sampler['history_guidance']:g}:{sampler.get('history_frames', 1)}x{sampler.get('history_steps', 1)}"
                if sampler.get("history_guidance")
                else ""
            )
        )
    training = report.get("training", {}) if args.cpu_minutes > 0 or elsewhere else {}
    gpu = elsewhere is not None and str(elsewhere.get("device", "")).startswith("cuda")
    row = {
        "recipe": args.name,
        "init": str(args.init),
        "settings": args.set,
        "cpu_minutes": args.cpu_minutes,
        "steps": training.get("dynamics_steps", 0),
        "cpu_seconds": training.get("dynamics_cpu_seconds", 0),
        "wall_minutes": round(training.get("seconds", 0) / 60, 1),
        "summary": s,
        "note": args.note,
        "machine": report["machine"].get("cpu", "") if isinstance(report.get("machine"), dict) else "",
        "cumulative": training.get("cumulative") or report.get("training", {}).get("cumulative"),
    }
    (folder / "row.json").write_text(json.dumps(row, indent=1))
    if not TABLE.exists():
        TABLE.write_text(HEADER)
    end = str(s["stability_frames"])
    cells = [
        args.name + (f" ({args.note})" if args.note else ""),
        f"`{Path(args.init).name}`",
        " ".join(f"`{x}`" for x in args.set) or "–",
        f"GPU {row['wall_minutes']:g}" if gpu else fmt(args.cpu_minutes, 0),
        str(row["steps"]),
        fmt(row["wall_minutes"], 0),
        fmt(s["psnr_tf"]),
        fmt(s["psnr_ar"].get("16")),
        fmt(s["psnr_ar"].get("64")),
        fmt(s["loop_self_psnr"]) + (f" (g {fmt(s['loop_guarded_psnr'])})" if s.get("loop_guarded_psnr") is not None else ""),
        fmt(s["action_agreement"], 3),
        fmt(s["branch_spread"], 2),
        fmt(s["sharpness_ratio_explore_end"]),
        fmt(s["flicker_ratio_explore_end"]),
        fmt(s["plausibility_gap_explore"].get(end)),
        fmt(s["foreground_share_ratio_explore"].get(end)),
        f"{elsewhere.get('gpu_name', 'GPU')} (train); " + row["machine"][:24] if gpu else row["machine"][:24],
    ]
    lines = TABLE.read_text().splitlines(keepends=True)
    first = next(i for i, ln in enumerate(lines) if ln.startswith("| recipe |"))
    last = first  # rows go at the end of the ablation table, above any notes and later tables
    while last + 1 < len(lines) and lines[last + 1].startswith("|"):
        last += 1
    lines.insert(last + 1, "| " + " | ".join(cells) + " |\n")
    TABLE.write_text("".join(lines))
    print(f"row appended to {TABLE} ({time.time() - started:.0f} s); outputs in {folder}")


if __name__ == "__main__":
    main()
