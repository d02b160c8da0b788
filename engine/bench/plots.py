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


def ar_curves_plot(path: Path, curves: dict, summary: dict, cfg) -> Path:
    """PSNR and SSIM along the rollout: mean and spread over seeds, the floor and the ceiling."""
    plt = _plt()
    import warnings

    psnr, ssim, first = curves["psnr"], curves["ssim"], curves["repeat_first"]  # [T, B], NaN after a game's end
    t = np.arange(1, len(psnr) + 1)
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6), dpi=120)
    with warnings.catch_warnings():  # steps after every game has ended are all NaN: left out of the curves
        warnings.simplefilter("ignore", RuntimeWarning)
        low, high, mean, floor = np.nanmin(psnr, 1), np.nanmax(psnr, 1), np.nanmean(psnr, 1), np.nanmean(first, 1)
        s_low, s_high, s_mean = np.nanmin(ssim, 1), np.nanmax(ssim, 1), np.nanmean(ssim, 1)
    a.fill_between(t, low, high, color="C0", alpha=0.15, label="min-max over seeds")
    a.plot(t, mean, color="C0", lw=1.2, label="world (mean)")
    a.plot(t, floor, color="C3", lw=1, ls=":", label="floor: repeat first frame")
    a.axhline(summary["ceiling_tokenizer_psnr"], color="C2", ls="--", lw=1, label="ceiling: tokenizer")
    a.axhline(cfg.threshold, color="grey", lw=0.8, ls="-.", label=f"threshold {cfg.threshold:g} dB")
    a.set_xscale("log")
    a.set_xlabel("step")
    a.set_ylabel("PSNR (dB)")
    a.legend(fontsize=7)
    a.grid(alpha=0.3, which="both")
    b.fill_between(t, s_low, s_high, color="C1", alpha=0.15)
    b.plot(t, s_mean, color="C1", lw=1.2, label="world SSIM (mean)")
    b.set_xscale("log")
    b.set_xlabel("step")
    b.set_ylabel("SSIM")
    b.set_ylim(0, 1)
    b.grid(alpha=0.3, which="both")
    b.legend(fontsize=7)
    fig.suptitle(f"autoregressive rollout vs the real scene ({psnr.shape[1]} seeds)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def loop_plot(path: Path, loop: dict) -> Path:
    plt = _plt()
    lengths = [int(k) for k in loop["by_length"]]
    fig, ax = plt.subplots(figsize=(5.5, 3.4), dpi=120)
    for key, label, colour in (
        ("guarded_psnr", "guarded: less the excursion shortfall", "C3"),
        ("self_psnr", "return vs own departure", "C0"),
        ("gt_psnr", "return vs real return", "C1"),
        ("departure_gt_psnr", "departure vs real (reference)", "C7"),
    ):
        ax.plot(lengths, [loop["by_length"][str(n)][key] for n in lengths], "o-", color=colour, label=label, lw=1.2)
    ax.axvline(loop["context"], color="grey", ls="--", lw=0.8, label=f"context window ({loop['context']})")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("L: ticks out (and as many back)")
    ax.set_ylabel("PSNR (dB)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title("loop closure", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def stability_plot(path: Path, curves: dict) -> Path:
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.3), dpi=120)
    for i, (name, c) in enumerate(curves.items()):
        t = np.arange(1, len(c["sharpness_ratio"]) + 1)
        smooth = max(1, len(t) // 200)

        def s(x):
            return np.convolve(x, np.ones(smooth) / smooth, mode="same") if smooth > 1 else x

        axes[0].plot(t, s(c["sharpness_ratio"]), color=f"C{i}", lw=1, label=name)
        axes[1].plot(t, s(c["histogram_distance"]), color=f"C{i}", lw=1, label=name)
        axes[2].plot(t, s(c["flicker_world"]), color=f"C{i}", lw=1, label=f"{name}: world")
        axes[2].plot(t, s(c["flicker_real"]), color=f"C{i}", lw=1, ls=":", label=f"{name}: real")
    axes[0].axhline(1, color="grey", lw=0.8)
    axes[0].set_ylabel("sharpness world / real")
    axes[1].set_ylabel("colour-histogram distance to real")
    axes[2].set_ylabel("mean |frame change| (0-255)")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("step")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    fig.suptitle("stability over long rollouts", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def strip_image(path: Path, shown: dict[int, tuple[np.ndarray, np.ndarray]], scale: int = 3) -> Path:
    """Real frames (top row) over world frames (bottom row) at the given steps, labelled."""
    from PIL import Image, ImageDraw

    steps = sorted(shown)
    h, w = shown[steps[0]][0].shape[:2]
    gap, label = 4, 14
    canvas = Image.new("RGB", (len(steps) * (w * scale + gap), 2 * h * scale + gap + label), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for i, step in enumerate(steps):
        real, world = shown[step]
        x = i * (w * scale + gap)
        draw.text((x + 2, 1), f"step {step}", fill=(0, 0, 0))
        canvas.paste(Image.fromarray(real).resize((w * scale, h * scale), Image.NEAREST), (x, label))
        canvas.paste(Image.fromarray(world).resize((w * scale, h * scale), Image.NEAREST), (x, label + h * scale + gap))
    canvas.save(path)
    return path
