"""Plausibility: could the real game show this frame, wherever the world has wandered?

PSNR against the ground truth far out punishes a world that drifted to another valid
view as much as one that melted. Plausibility tells them apart without weights and for
any game, by nearest neighbours in a bank of real frames from held-out episodes, against
the same figure for real frames (the ceiling: real frames are not in the bank either).
Two scales, because each one alone is fooled, as measured with 4,000 bank frames:

- whole frame: a frame's PSNR to its nearest bank frame. It needs a bank that holds nearly
  every state of the game: where objects move independently (bounce: balls anywhere) no
  bank is that big, and a real bounce frame scored 15.6 dB, below a flat frame of its mean
  colour (16.3 dB). On the maze it works: real 24.4, each frame painted its median colour
  19.9, the melted frames 100-300 of the shipped world's main-command clip 22.2.
- patches: every 8x8 patch against the patches at the same place in the bank, PSNR of the
  mean nearest-neighbour error. Bounce: real 29.5, flat 24.7, blurred 24.5. But a melted
  maze that is one smooth wall finds a real flat-wall patch for every patch: the shipped
  maze world, collapsed to flat red by frame 2,000 of its exploration run, scored 38.3 dB
  against a ceiling of 29.1 (its main-command clip: 33.8 against 32.1).

The plausibility gap is the larger of the two gaps (ceiling minus world): a world must look
real both as a whole and in its details. A frame-by-frame measure cannot tell a world frozen
in front of a wall from a player standing there: the motion (flicker) ratio and the key
response of `bench consistency` catch that.

Foreground: where the moving things are small (balls, sprites, a paddle) the static
background dominates every whole-frame figure, and a world that paints the background and
drops every object scores well (its patches are all real background patches). The
foreground of a frame is where it differs from the per-pixel median of the bank (the
background). Three figures look only there: foreground PSNR against the aligned truth
(the pixels where the real frame is foreground), foreground plausibility (the world's
foreground patches against the bank's foreground patches at the same place), and the
foreground share of the world's frames against the real frames' (0 for a world that drops
every object). The share is fooled by a smear (one ball smeared over a wall of pixels counts
for many), so the foreground's objects are also counted: 4-connected foreground regions of
at least OBJECT_PIXELS pixels, world against real. A world that keeps two of four balls
counts 3 where the real frame counts 5 (balls and the block), whatever their share.
Meaningful where the background stands still (bounce); in a first-person or scrolling view
the "foreground" is most of the frame and the count says little.
"""

from __future__ import annotations

import numpy as np

from engine.bench.metrics import PSNR_CAP

PATCH = 8  # side of the square patches compared (pixels)
FOREGROUND_PIXELS = 4  # a patch with at least this many foreground pixels is a foreground patch
OBJECT_PIXELS = 8  # a foreground region this large is an object (a bounce ball at 64x64 has about 50 pixels)


def count_objects(masks: np.ndarray, min_pixels: int = OBJECT_PIXELS) -> np.ndarray:
    """bool [..., H, W] -> [...]: the number of 4-connected True regions of at least `min_pixels` pixels.

    Every True pixel takes the smallest index in its region: each round takes the smallest label among the pixel and
    its four neighbours, then jumps to the label its label's pixel holds (so long regions take few rounds)."""
    masks = np.asarray(masks, bool)
    lead, (h, w) = masks.shape[:-2], masks.shape[-2:]
    m = masks.reshape(-1, h * w)
    none = h * w  # the label of background pixels: larger than every pixel index
    labels = np.where(m, np.arange(h * w)[None], none)
    while True:
        grid = np.pad(labels.reshape(-1, h, w), ((0, 0), (1, 1), (1, 1)), constant_values=none)
        near = np.minimum.reduce([grid[:, 1:-1, 1:-1], grid[:, :-2, 1:-1], grid[:, 2:, 1:-1], grid[:, 1:-1, :-2], grid[:, 1:-1, 2:]])
        near = np.where(m, near.reshape(-1, h * w), none)
        jumped = np.take_along_axis(np.concatenate([near, np.full((len(m), 1), none)], 1), near, 1)  # a label's own label
        new = np.where(m, np.minimum(near, jumped), none)
        if np.array_equal(new, labels):
            break
        labels = new
    counts = np.zeros(len(m), np.int64)
    for i, row in enumerate(labels):
        sizes = np.bincount(row[row < none], minlength=1)
        counts[i] = int((sizes >= min_pixels).sum())
    return counts.reshape(lead)


def masked_psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """PSNR (dB, 0-255 scale) over the pixels where mask [..., H, W] is True, per frame; NaN where the mask is empty."""
    diff = (a.astype(np.float64) - b.astype(np.float64)) ** 2  # [..., H, W, 3]
    m = mask[..., None].astype(np.float64)
    count = m.reshape(*m.shape[:-3], -1).sum(-1) * 3
    mse = (diff * m).reshape(*diff.shape[:-3], -1).sum(-1) / np.maximum(count, 1)
    with np.errstate(divide="ignore"):
        out = np.minimum(10 * np.log10(255.0**2 / mse), PSNR_CAP)
    return np.where(count > 0, out, np.nan)


def gap_over(world: np.ndarray, ceiling: np.ndarray) -> np.ndarray:
    """The plausibility gap from per-rollout mean nearest-real PSNRs (8x8 patches, whole frames): world [..., U, 2],
    ceiling [..., V, 2] (the real runs', or [2] known) -> [...] the larger of the two gaps, as `bench consistency`
    reports it. Over resampled rollouts, it gives the gap's interval (engine/bench/stats.py)."""
    c = np.asarray(ceiling, float)
    c = c.mean(-2) if c.ndim > 1 else c
    w = np.asarray(world, float).mean(-2)
    return np.max(c - w, axis=-1)


PLAUSIBLE_CAP = 48.0  # dB: an RMS error of one grey level. A nearest neighbour closer than that is as good as exact;
#   without the cap, games whose real frames recur exactly (Breakout waiting for its serve) put the ceiling at the
#   100 dB of identical frames, and any world, however good, was 70+ dB below it.


def _to_psnr(mse: float) -> float:
    return min(PLAUSIBLE_CAP, float(10 * np.log10(255.0**2 / max(mse, 1e-12))))


REACH_K = 5  # precision and coverage: a bank frame's ball reaches its 5th nearest bank frame


def coarse(frames: np.ndarray, size: int = 16) -> np.ndarray:
    """Area-average [N, H, W, 3] down to about size x size: [N, features] float32 (whole-frame search, `FrameBank.reach`)."""
    n, h, w, _ = frames.shape
    fh, fw = max(1, h // size), max(1, w // size)
    x = frames[:, : fh * (h // fh), : fw * (w // fw)].astype(np.float32)
    return x.reshape(n, h // fh, fh, w // fw, fw, 3).mean(axis=(2, 4)).reshape(n, -1)


def _patches(frames: np.ndarray, p: int) -> np.ndarray:
    """[N, H, W, C] -> [H/p, W/p, N, p*p*C] float32 (edges that do not fill a patch are dropped)."""
    n, h, w, c = frames.shape
    x = frames[:, : h - h % p, : w - w % p]
    x = x.reshape(n, h // p, p, w // p, p, c).transpose(1, 3, 0, 2, 4, 5)  # "n (y p) (x q) c -> y x n (p q c)"
    return x.reshape(h // p, w // p, n, p * p * c).astype(np.float32)


class FrameBank:
    """Real frames [N, H, W, 3] uint8 from held-out episodes, searchable patch by patch."""

    def __init__(self, frames: np.ndarray, patch: int = PATCH, foreground_threshold: float = 24.0):
        if frames.ndim != 4 or len(frames) == 0:
            raise ValueError(f"a frame bank needs frames [N, H, W, 3], got shape {frames.shape}")
        if frames.shape[1] < patch or frames.shape[2] < patch:
            raise ValueError(f"frames of {frames.shape[1]}x{frames.shape[2]} are smaller than one {patch}x{patch} patch")
        self.frames = frames
        self.patch = patch
        self.threshold = foreground_threshold  # max channel difference (0-255) from the background that counts as foreground
        self.background = np.median(frames, axis=0).astype(np.uint8)  # [H, W, 3]: what stays put
        self.masks = self.foreground(frames)
        self.bank = _patches(frames, patch)  # [Y, X, N, P]
        self.bank_sq = (self.bank**2).sum(-1)  # [Y, X, N]
        self.bank_fg = self._fg_patches(self.masks)  # [Y, X, N]
        self.coarse = coarse(frames)  # [N, 768]: whole-frame candidate search
        self.coarse_sq = (self.coarse**2).sum(1)
        self._radii = None  # k-NN radii of the bank frames at 16x16 (precision and coverage), computed on first use

    def radii(self) -> np.ndarray:
        """[N] squared distance at 16x16 from each bank frame to its REACH_K-th nearest other bank frame."""
        if self._radii is None:
            d = np.maximum(self.coarse_sq[:, None] - 2 * self.coarse @ self.coarse.T + self.coarse_sq[None], 0)
            np.fill_diagonal(d, np.inf)
            k = min(REACH_K, len(d) - 1)
            self._radii = np.partition(d, k - 1, axis=1)[:, k - 1] if k >= 1 else np.zeros(len(d))
        return self._radii

    def reach(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Precision and coverage in the sense of Naeem et al. 2020 ("density and coverage"), weight-free at 16x16.

        features [Q, F] (`coarse(frames)`). Returns (inside [Q]: the frame lies within some bank frame's REACH_K-NN
        ball, i.e. looks like a view the game shows; covered [N]: a bank frame has some query frame within its ball).
        A world stuck before walls is inside (a wall is a real view) but covers few of the views the real game shows."""
        q_sq = (features**2).sum(1)
        d = np.maximum(q_sq[:, None] - 2 * features @ self.coarse.T + self.coarse_sq[None], 0)  # [Q, N]
        near = d <= self.radii()[None]
        return near.any(1), near.any(0)

    def foreground(self, frames: np.ndarray) -> np.ndarray:
        """bool [..., H, W]: pixels that differ from the background by more than the threshold in some channel."""
        return np.abs(frames.astype(np.int16) - self.background.astype(np.int16)).max(-1) > self.threshold

    def _fg_patches(self, masks: np.ndarray) -> np.ndarray:
        counts = _patches(masks[..., None].astype(np.uint8), self.patch).sum(-1)  # [Y, X, N] foreground pixels per patch
        return counts >= FOREGROUND_PIXELS

    def nearest(self, frames: np.ndarray) -> dict[str, np.ndarray]:
        """Per frame [Q]: "psnr" of the nearest-bank-patch errors over all patches; "foreground_psnr" the same over the
        frame's foreground patches against the bank's foreground patches at that place (NaN where the frame has none);
        "foreground_share" the share of its pixels that are foreground; "objects" its foreground objects (`count_objects`)."""
        frames = np.asarray(frames).reshape(-1, *self.frames.shape[1:])
        q = _patches(frames, self.patch)  # [Y, X, Q, P]
        masks = self.foreground(frames)
        q_fg = self._fg_patches(masks)  # [Y, X, Q]
        ny, nx, nq, dim = q.shape
        err = np.empty((ny, nx, nq))  # nearest squared error per patch
        err_fg = np.full((ny, nx, nq), np.nan)
        for y in range(ny):
            for x in range(nx):
                # ||a - b||^2 = |a|^2 - 2 a.b + |b|^2 for every (query, bank) pair: one matrix product per place
                d = (q[y, x] ** 2).sum(-1)[:, None] - 2 * q[y, x] @ self.bank[y, x].T + self.bank_sq[y, x][None]
                d = np.maximum(d, 0.0) / dim
                err[y, x] = d.min(1)
                if self.bank_fg[y, x].any() and q_fg[y, x].any():
                    err_fg[y, x, q_fg[y, x]] = d[q_fg[y, x]][:, self.bank_fg[y, x]].min(1)
        patches = np.array([_to_psnr(err[:, :, i].mean()) for i in range(nq)])
        fg = np.array([_to_psnr(np.nanmean(err_fg[:, :, i])) if np.isfinite(err_fg[:, :, i]).any() else np.nan for i in range(nq)])
        return {
            "psnr": patches,
            "frame_psnr": self._nearest_frames(frames),
            "foreground_psnr": fg,
            "foreground_share": masks.reshape(nq, -1).mean(-1),
            "objects": count_objects(masks),
        }

    def _nearest_frames(self, frames: np.ndarray, candidates: int = 32) -> np.ndarray:
        """PSNR to the nearest whole bank frame, searched among the `candidates` closest at 16x16."""
        q = coarse(frames)
        d = self.coarse_sq[None] - 2 * q @ self.coarse.T  # squared distance up to the query's own norm: [Q, N]
        k = min(candidates, d.shape[1])
        picks = np.argpartition(d, k - 1, axis=1)[:, :k]
        out = np.empty(len(frames))
        for i, (frame, cand) in enumerate(zip(frames, picks)):
            mse = ((self.frames[cand].astype(np.float64) - frame.astype(np.float64)) ** 2).reshape(k, -1).mean(-1)
            out[i] = _to_psnr(mse.min())
        return out


def real_bank(make_scene, seeds: list[int], steps: int, tag: int = 9) -> np.ndarray:
    """Frames of held-out episodes driven by each scene's exploration policy: [len(seeds) * (steps + 1), H, W, 3].

    A game that ends starts again (scenes/restarting.py), so every bank holds the frames it asks for.
    """
    from scenes.explore import make_policy
    from scenes.restarting import Restarting

    out = []
    for seed in seeds:
        scene = Restarting(make_scene())
        try:
            frames = [scene.reset(seed)]
            policy = make_policy(scene, np.random.default_rng([seed, tag]))
            for _ in range(steps):
                frames.append(scene.step(scene.keyset.vector(policy.act(scene))))
        finally:
            scene.close()
        out.append(np.stack(frames))
    return np.concatenate(out)
