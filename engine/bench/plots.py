"""Benchmark figures as PNG (matplotlib, no display needed)."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def bar_chart(path: Path, values: dict[str, float], ylabel: str, title: str) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=120)
    names = list(values)
    bars = ax.bar(names, [values[n] for n in names], color="#4a78c2")
    ax.bar_label(bars, fmt="%.0f", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def latency_plot(path: Path, series: dict[str, np.ndarray], title: str) -> Path:
    """Per-frame latency over the timed frames, one line per backend, with its median dashed."""
    plt = _plt()
    fig, (ax, hist) = plt.subplots(1, 2, figsize=(9, 3.2), dpi=120, gridspec_kw={"width_ratios": [3, 1]})
    for i, (name, ms) in enumerate(series.items()):
        colour = f"C{i}"
        ax.plot(ms, lw=0.8, color=colour, label=f"{name} (p50 {np.median(ms):.1f} ms)")
        ax.axhline(np.median(ms), color=colour, ls="--", lw=0.8)
        hist.hist(ms, bins=40, color=colour, alpha=0.5, orientation="horizontal")
    ax.set_xlabel("frame")
    ax.set_ylabel("ms per frame (step + decode)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    hist.set_xlabel("count")
    hist.grid(alpha=0.3)
    top = max(float(np.percentile(ms, 99.5)) for ms in series.values()) * 1.2
    ax.set_ylim(0, top)
    hist.set_ylim(0, top)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
