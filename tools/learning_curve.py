"""Learning curve: AR@16, key response and sharpness against the cumulative CPU-hours of a world's training.

Reads the rows tools/ablate.py wrote (runs/ablate/NAME/row.json), in the order given: typically the starting
world and then each continuation of it. x is the world's cumulative training (training.cumulative: wall hours on
CPU machines, all sessions); a row without one is placed at the init world's figure plus its own CPU budget.

    .venv/bin/python tools/learning_curve.py shipped-maze B-self-forcing maze-long --out docs/learning_curve.png
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="+")
    ap.add_argument("--out", default="docs/learning_curve.png")
    ap.add_argument("--title", default="maze world: quality against training compute")
    args = ap.parse_args()
    rows = [json.loads((ROOT / "runs" / "ablate" / n / "row.json").read_text()) for n in args.names]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = []
    for r in rows:
        cum = r.get("cumulative") or {}
        xs.append(cum.get("cpu_hours", 0.0) + cum.get("gpu_hours", 0.0))
    series = [("AR PSNR @16 (dB)", [r["summary"]["psnr_ar"].get("16") for r in rows], None),
              ("action agreement", [r["summary"]["action_agreement"] for r in rows], (0.8, "goal")),
              ("branch spread world/real", [r["summary"]["branch_spread"] for r in rows], (0.8, "goal")),
              ("sharpness world/real, explore end", [r["summary"]["sharpness_ratio_explore_end"] for r in rows], (0.8, "goal floor"))]
    fig, axes = plt.subplots(1, len(series), figsize=(4 * len(series), 3.4), dpi=110)
    for ax, (label, ys, goal) in zip(axes, series):
        ax.plot(xs, ys, "o-", color="#4a78c2")
        for x, y, r in zip(xs, ys, rows):
            ax.annotate(r["recipe"], (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
        if goal:
            ax.axhline(goal[0], ls="--", color="grey", lw=0.8, label=goal[1])
            ax.legend(fontsize=7)
        if label.startswith("AR"):
            ax.axhline(22, ls="--", color="grey", lw=0.8)
        ax.set_xlabel("cumulative training, machine-hours")
        ax.set_title(label, fontsize=9)
        ax.grid(alpha=0.3)
    fig.suptitle(args.title, fontsize=10)
    fig.tight_layout()
    out = ROOT / args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    print(f"learning curve written to {out}")


if __name__ == "__main__":
    main()
