"""Chooses a world's sampler by benchmark: steps x context noise x noise kind, scored by `skyloop bench consistency`.

For each grid point it runs the consistency benchmark (teacher-forced, autoregressive and action
following; plus a short stability run for sharpness unless --stability-frames 0) into
OUT/steps{S}_noise{X}[_fresh]/ and its stability/, reusing reports already there, then writes OUT/sampler.md
with one row per point. Store the winner with tools/set_sampler.py.

  .venv/bin/python tools/sampler_grid.py worlds/maze.safetensors --out docs/results/maze/sampler
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(world: str, out: Path, args: list[str]) -> dict:
    report = out / "report.json"
    if not report.exists():
        cmd = [sys.executable, "-m", "engine", "bench", "consistency", world, "--out", str(out), *args]
        print(" ".join(cmd[2:]), flush=True)
        subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return json.loads(report.read_text())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("world")
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", default="1,2,3", help="sampler steps to try (default 1,2,3)")
    ap.add_argument("--noise", default="0,0.1,0.3", help="context noise levels to try (default 0,0.1,0.3)")
    ap.add_argument(
        "--kinds",
        default="implied",
        help="sampler noise between steps to try: implied (deterministic), fresh (stochastic) or both, comma-separated (default implied)",
    )
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--frames", type=int, default=64)
    ap.add_argument("--stability-frames", type=int, default=400, help="length of the sharpness runs (0: skip them)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    out = Path(args.out)
    kinds = args.kinds.split(",")
    for kind in kinds:  # before any benchmark runs, not after the first grid points
        if kind not in ("implied", "fresh"):
            ap.error(f"--kinds: {kind!r} is neither implied nor fresh")
    rows = []
    for steps in [int(s) for s in args.steps.split(",")]:
        for noise in [float(x) for x in args.noise.split(",")]:
            for kind in kinds:
                point = out / (f"steps{steps}_noise{noise:g}" + ("_fresh" if kind == "fresh" else ""))
                common = ["--sampler-steps", str(steps), "--context-noise", f"{noise:g}", "--sampler-noise", kind, "--threads", str(args.threads)]
                q = run(args.world, point, ["--parts", "tf,ar,action", "--seeds", str(args.seeds), "--frames", str(args.frames), *common])["summary"]
                st = None
                if args.stability_frames:
                    stab = run(
                        args.world,
                        point / "stability",
                        ["--parts", "stability", "--stability-frames", str(args.stability_frames), "--backend", "onnx", *common],
                    )
                    st = stab
                rows.append((steps, noise, kind, q, st))
    horizons = sorted({int(k) for *_, q, _ in rows for k in q["psnr_ar"]})
    lines = [
        f"# Sampler grid for {Path(args.world).name}\n",
        f"`tools/sampler_grid.py`: `skyloop bench consistency` at each point, {args.seeds} seeds, {args.frames}-frame rollouts"
        + (f", stability runs of {args.stability_frames} frames" if args.stability_frames else "")
        + ". PSNR in dB.\n",
        "| steps | noise kind | context noise | TF PSNR | "
        + " | ".join(f"AR@{h}" for h in horizons)
        + " | action agreement | branch spread | sharpness no-op (end) | sharpness explore (end) | plausibility gap explore (end) |",
        "|---" * (9 + len(horizons)) + "|",
    ]
    for steps, noise, kind, q, st in rows:
        sharp = [f"{st['stability'][n]['sharpness_ratio_end']:.2f}" if st else "-" for n in ("noop", "explore")]
        end = str(args.stability_frames)
        gap = (st or {}).get("summary", {}).get("plausibility_gap_explore", {}).get(end)
        spread = q.get("branch_spread")
        lines.append(
            f"| {steps} | {kind} | {noise:g} | {q['psnr_tf']:.2f} | "
            + " | ".join(f"{q['psnr_ar'].get(str(h), float('nan')):.2f}" for h in horizons)
            + f" | {q['action_agreement']:.3f} | {'-' if spread is None else f'{spread:.2f}'} | {sharp[0]} | {sharp[1]} | {'-' if gap is None else f'{gap:.2f}'} |"
        )
    (out / "sampler.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines[2:]))
    print(f"wrote {out / 'sampler.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
