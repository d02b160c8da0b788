"""Learning curve: AR@16, key response and sharpness against the training spent on chains of worlds.

Each chain is LABEL:ROW,ROW,... of ablation rows in order: the starting world, then each continuation of the one
before it (tools/ablate.py NAME --init <the previous row's world>, or a world trained elsewhere, --world). Each row
is read from runs/ablate/NAME/row.json when that folder is still here, else from its line in docs/ablations.md (the
committed record; run folders are not kept). x is the training added along the chain in windows seen (dynamics
steps x batch; the starting world's own training is x = 0): a measure of work that CPU rows (batch 32) and GPU rows
(batch 128) share, where CPU-minutes and GPU-minutes are different currencies.

    .venv/bin/python tools/learning_curve.py maze:shipped-maze,B-self-forcing,C-self-forcing-100 \
        bounce:bounce-teacher-60,gpu-bounce --out docs/learning_curve.png
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TABLE = ROOT / "docs" / "ablations.md"
COLUMNS = {
    "AR@16": "AR PSNR @16 (dB)",
    "agree": "action agreement",
    "spread": "branch spread world/real",
    "sharp": "sharpness world/real, explore end",
    "fg": "foreground share world/real, explore end",
}


def table_rows() -> dict[str, dict]:
    """docs/ablations.md rows by recipe name: {column: value} (a recipe cell is 'NAME (note)')."""
    lines = [ln for ln in TABLE.read_text().splitlines() if ln.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = {}
    for ln in lines[2:]:
        cells = [c.strip() for c in ln.strip("|").split("|")]
        row = dict(zip(header, cells))
        rows[row["recipe"].split(" (")[0]] = row
    return rows


def number(cell: str) -> float | None:
    return None if cell in ("–", "-", "") else float(cell)


def batch_of(settings) -> int:
    """The dynamics batch a row trained with: its `batch=N` setting, else the small preset's 32."""
    text = " ".join(settings) if isinstance(settings, list) else str(settings)
    found = re.search(r"batch=(\d+)", text)
    return int(found.group(1)) if found else 32


def load(name: str, table: dict[str, dict]) -> dict:
    path = ROOT / "runs" / "ablate" / name / "row.json"
    if path.exists():
        r = json.loads(path.read_text())
        s = r["summary"]
        return {
            "recipe": name,
            "windows": r["steps"] * batch_of(r["settings"]),
            "AR@16": s["psnr_ar"].get("16"),
            "agree": s["action_agreement"],
            "spread": s["branch_spread"],
            "sharp": s["sharpness_ratio_explore_end"],
            "fg": s["foreground_share_ratio_explore"].get(str(s["stability_frames"])),
        }
    if name not in table:
        raise SystemExit(f"no row {name!r}: neither runs/ablate/{name}/row.json nor a line in {TABLE}")
    row = table[name]
    return {"recipe": name, "windows": int(row["steps"]) * batch_of(row["settings"]), **{k: number(row[k]) for k in COLUMNS}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("chains", nargs="+", help="LABEL:ROW,ROW,... ablation rows in chain order, one chain per world")
    ap.add_argument("--out", default="docs/learning_curve.png")
    ap.add_argument("--title", default="quality against training added (fast benchmark, 8 held-out seeds)")
    args = ap.parse_args()
    table = table_rows() if TABLE.exists() else {}
    chains = []
    for chain in args.chains:
        label, _, names = chain.rpartition(":")
        rows = [load(n, table) for n in names.split(",")]
        xs, total = [], 0
        for r in rows:
            total += r["windows"]
            xs.append(total / 1000)
        chains.append((label or names.split(",")[0], xs, rows))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    goals = {"AR@16": (22, "goal"), "agree": (0.8, "goal"), "spread": (0.8, "goal"), "sharp": (0.8, "goal floor"), "fg": (0.8, "goal floor")}
    fig, axes = plt.subplots(1, len(COLUMNS), figsize=(4.6 * len(COLUMNS), 4.2), dpi=110)
    for ax, (key, title) in zip(axes, COLUMNS.items()):
        for label, xs, rows in chains:
            ys = [r[key] for r in rows]
            ax.plot(xs, ys, "o-", label=label)
            for x, y, r in zip(xs, ys, rows):
                if y is not None:
                    ax.annotate(r["recipe"], (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
        ax.axhline(goals[key][0], ls="--", color="grey", lw=0.8, label=goals[key][1])
        ax.legend(fontsize=7)
        ax.set_xlabel("training added, thousands of windows")
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
    fig.suptitle(args.title, fontsize=10)
    fig.tight_layout()
    out = ROOT / args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    print(f"learning curve written to {out}")


if __name__ == "__main__":
    main()
