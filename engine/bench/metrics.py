"""Weight-free frame metrics (numpy only): nothing here needs a pretrained network.

Frames are uint8 [..., H, W, 3]; metrics return one value per frame.
"""

from __future__ import annotations

import numpy as np

PSNR_CAP = 100.0  # identical frames: reported as this many dB instead of infinity


def psnr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """PSNR in dB on a 0-255 scale, per frame; identical frames give PSNR_CAP."""
    diff = a.astype(np.float64) - b.astype(np.float64)
    mse = (diff**2).reshape(*diff.shape[:-3], -1).mean(-1)
    with np.errstate(divide="ignore"):
        out = 10 * np.log10(255.0**2 / mse)
    return np.minimum(out, PSNR_CAP)


def _gaussian_kernel(sigma: float = 1.5, radius: int = 5) -> np.ndarray:
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-(x**2) / (2 * sigma**2))
    return k / k.sum()


def _blur(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Separable 'valid' Gaussian filter over the last two axes."""
    r = len(kernel)
    h, w = x.shape[-2:]
    rows = sum(kernel[i] * x[..., i : h - r + 1 + i, :] for i in range(r))
    return sum(kernel[i] * rows[..., :, i : w - r + 1 + i] for i in range(r))


def ssim(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Structural similarity (Wang et al. 2004: Gaussian window sigma 1.5, K1 0.01, K2 0.03) on the
    luma channel, per frame. Identical frames give exactly 1."""

    def luma(x):
        x = x.astype(np.float64)
        return 0.299 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2]

    x, y = luma(a), luma(b)
    k = _gaussian_kernel(1.5, min(5, (min(x.shape[-2:]) - 1) // 2))
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mx, my = _blur(x, k), _blur(y, k)
    sxx = _blur(x * x, k) - mx * mx
    syy = _blur(y * y, k) - my * my
    sxy = _blur(x * y, k) - mx * my
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return s.reshape(*s.shape[:-2], -1).mean(-1)


def sharpness(frames: np.ndarray) -> np.ndarray:
    """Gradient energy: mean squared difference between neighbouring pixels, per frame.
    A world that blurs or collapses to flat colour loses it."""
    x = frames.astype(np.float64)
    gx = np.diff(x, axis=-2)
    gy = np.diff(x, axis=-3)
    return (gx**2).reshape(*x.shape[:-3], -1).mean(-1) + (gy**2).reshape(*x.shape[:-3], -1).mean(-1)


def block_contrast(frames: np.ndarray, blocks: int = 8) -> np.ndarray:
    """Std over a blocks x blocks grid of block-mean colours, averaged over channels, per frame [...]: how much the
    picture varies at a coarse scale. Blur barely changes it (a blurred corridor keeps its walls and floor); a frame
    that is one flat wall has little. Frames whose size is not a multiple of `blocks` lose the remainder."""
    x = frames.astype(np.float64)
    h, w = x.shape[-3] // blocks, x.shape[-2] // blocks
    x = x[..., : h * blocks, : w * blocks, :].reshape(*x.shape[:-3], blocks, h, blocks, w, 3).mean((-4, -2))
    return x.reshape(*x.shape[:-3], blocks * blocks, 3).std(-2).mean(-1)


def colour_histogram(frames: np.ndarray, bins: int = 8) -> np.ndarray:
    """Per-channel histograms with soft (linear) binning, normalised: [..., 3, bins]. Soft bins keep a
    one-level brightness change from jumping a whole bin."""
    pos = frames.astype(np.float64) / 255.0 * (bins - 1)  # position between bin centres
    lo = np.floor(pos).astype(np.int64).clip(0, bins - 2)
    frac = pos - lo
    flat_lo = lo.reshape(*frames.shape[:-3], -1, 3)
    flat_frac = frac.reshape(*frames.shape[:-3], -1, 3)
    out = np.zeros((*flat_lo.shape[:-2], 3, bins))
    eye = np.eye(bins)
    for c in range(3):
        out[..., c, :] = ((1 - flat_frac[..., c, None]) * eye[flat_lo[..., c]] + flat_frac[..., c, None] * eye[flat_lo[..., c] + 1]).mean(-2)
    return out


def histogram_distance(h1: np.ndarray, h2: np.ndarray) -> np.ndarray:
    """Total-variation distance between colour histograms, averaged over channels: 0 (same) .. 1 (disjoint)."""
    return 0.5 * np.abs(h1 - h2).sum(-1).mean(-1)


FLICKER_FLOOR = 0.5  # grey levels (0-255) of mean absolute change per frame: below it, a picture looks still


def flicker_ratio(world: float, real: float) -> float:
    """World flicker over real flicker, the real figure taken as at least FLICKER_FLOOR, so that a still real scene (a
    game waiting for its first key: real flicker 0) gives a finite ratio: a world that shimmers by 1.28 grey levels
    there reads 2.6x, not 1e9x as the plain quotient did. Where the real scene moves, it is the plain quotient."""
    return world / max(real, FLICKER_FLOOR)


def flicker(frames: np.ndarray) -> np.ndarray:
    """Mean absolute change between consecutive frames (0-255 scale), one value per transition."""
    x = frames.astype(np.float64)
    d = np.abs(np.diff(x, axis=-4))
    return d.reshape(*d.shape[:-3], -1).mean(-1)


def horizontal_shift(a: np.ndarray, b: np.ndarray) -> float:
    """Global horizontal displacement (pixels, + = content moved right) from frame a to frame b, by phase
    correlation of the luma, with sub-pixel refinement; what a camera turn does to the picture."""

    def luma(x):
        x = x.astype(np.float64)
        x = 0.299 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2]
        return x - x.mean()

    fa, fb = np.fft.fft2(luma(a)), np.fft.fft2(luma(b))
    cross = fb * np.conj(fa)
    cross /= np.abs(cross) + 1e-9
    corr = np.fft.ifft2(cross).real.mean(axis=0)  # collapse rows: horizontal profile
    w = corr.shape[0]
    i = int(np.argmax(corr))
    left, right = corr[(i - 1) % w], corr[(i + 1) % w]
    denom = left - 2 * corr[i] + right
    offset = 0.5 * (left - right) / denom if abs(denom) > 1e-12 else 0.0
    shift = i + offset
    return float(shift - w if shift > w / 2 else shift)


REPORT_STEPS = (1, 4, 16, 64, 256, 1000, 4000, 10000, 40000, 100000)


def log_steps(n: int) -> list[int]:
    """Log-spaced report points 1, 4, 16, 64, 256, 1000, 4000, 10000 ... up to n, and n itself."""
    steps = [s for s in REPORT_STEPS if s <= n]
    return steps if steps and steps[-1] == n else steps + [n]


def first_below(curve: np.ndarray, threshold: float) -> int | None:
    """First step (1-based) at which the curve falls below the threshold, or None."""
    hits = np.flatnonzero(curve < threshold)
    return int(hits[0]) + 1 if len(hits) else None
