"""A contact sheet of a clip: every Nth frame in a grid, each labelled with its frame number.

.venv/bin/python tools/contact_sheet.py recordings/….mp4 --every 10 --out docs/results/maze/main_clip.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def contact_sheet(frames: np.ndarray, every: int, columns: int, scale: int) -> "Image.Image":  # noqa: F821
    from PIL import Image, ImageDraw

    picks = list(range(0, len(frames), every))
    h, w = frames.shape[1:3]
    cell_h, cell_w = h * scale + 12, w * scale + 2
    rows = (len(picks) + columns - 1) // columns
    sheet = Image.new("RGB", (columns * cell_w, rows * cell_h), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for i, t in enumerate(picks):
        x, y = (i % columns) * cell_w, (i // columns) * cell_h
        sheet.paste(Image.fromarray(frames[t]).resize((w * scale, h * scale), Image.NEAREST), (x + 1, y + 11))
        draw.text((x + 2, y), f"{t + 1}", fill=(0, 0, 0))
    return sheet


def main() -> None:
    from engine.record.video import read_video

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("clip", help="an MP4 written by skyloop play")
    ap.add_argument("--every", type=int, default=10, help="take every Nth frame (default 10)")
    ap.add_argument("--columns", type=int, default=10, help="frames per row (default 10)")
    ap.add_argument("--scale", type=int, default=2, help="upscale each frame (default 2)")
    ap.add_argument("--out", required=True, help="PNG to write")
    args = ap.parse_args()
    frames = read_video(args.clip)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    contact_sheet(frames, args.every, args.columns, args.scale).save(out)
    print(f"{len(frames)} frames, every {args.every}th: contact sheet written to {out}")


if __name__ == "__main__":
    main()
