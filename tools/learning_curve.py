"""Learning curve: AR@16, key response and sharpness against the training compute spent on a chain of worlds.

The names are ablation rows in chain order: the starting world, then each continuation of the one before it
(tools/ablate.py NAME --init <the previous row's world>). Each row is read from runs/ablate/NAME/row.json when
that folder is still here, else from its line in docs/ablations.md (the committed record; run folders are not
kept). x is the process-CPU minutes of training added along the chain (the starting world's own training is
x = 0; its figure is in its metadata and docs/RESULTS.md).

    .venv/bin/python tools/learning_curve.py shipped-maze B-self-forcing C-self-forcing-100 --out docs/learning_curve.png
"""

from __future__ import annotations

import argparse
import json
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


def load(name: str, table: dict[str, dict]) -> dict:
    path = ROOT / "runs" / "ablate" / name / "row.json"
    if path.exists():
        r = json.loads(path.read_text())
        s = r["summary"]
        return {
            "recipe": name,
            "cpu_minutes": r["cpu_minutes"],
            "AR@16": s["psnr_ar"].get("16"),
            "agree": s["action_agreement"],
            "spread": s["branch_spread"],
            "sharp": s["sharpness_ratio_explore_end"],
            "fg": s["foreground_share_ratio_explore"].get(str(s["stability_frames"])),
        }
    if name not in table:
        raise SystemExit(f"no row {name!r}: neither runs/ablate/{name}/row.json nor a line in {TABLE}")
    row = table[name]
    return {"recipe": name, "cpu_minutes": number(row["CPU-min"]), **{k: number(row[k]) for k in COLUMNS}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="+", help="ablation rows in chain order")
    ap.add_argument("--out", default="docs/learning_curve.png")
    ap.add_argument("--title", default="maze world: quality against training compute")
    args = ap.parse_args()
    table = table_rows() if TABLE.exists() else {}
    rows = [load(n, table) for n in args.names]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs, total = [], 0.0
    for r in rows:
        total += r["cpu_minutes"] or 0.0
        xs.append(total)
    goals = {"AR@16": (22, "goal"), "agree": (0.8, "goal"), "spread": (0.8, "goal"), "sharp": (0.8, "goal floor"), "fg": (0.8, "goal floor")}
    fig, axes = plt.subplots(1, len(COLUMNS), figsize=(4 * len(COLUMNS), 3.4), dpi=110)
    for ax, (key, label) in zip(axes, COLUMNS.items()):
        ys = [r[key] for r in rows]
        ax.plot(xs, ys, "o-", color="#4a78c2")
        for x, y, r in zip(xs, ys, rows):
            ax.annotate(r["recipe"], (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.axhline(goals[key][0], ls="--", color="grey", lw=0.8, label=goals[key][1])
        ax.legend(fontsize=7)
        ax.set_xlabel("training added, process CPU-minutes")
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
