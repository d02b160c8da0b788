"""`skyloop bench consistency`: a learned world against its deterministic ground truth, for as long as
you ask, with weight-free metrics only.

The world and the real scene start from the same frame and get identical keys:
1. teacher-forced: 1-step PSNR/SSIM, the context always real;
2. autoregressive: PSNR/SSIM curves over the rollout, mean and spread over seeds,
   and the first step at which PSNR falls below a threshold;
3. loop closure: L ticks out and back by the exact inverse keys, L from inside to
   well beyond the context window; the return frame against the real one and
   against the world's own departure frame;
4. action following: fork the world (a save state) and the scene with two key
   sequences; does each branch of the world look like its own real branch;
5. stability: long no-op and exploration runs (up to 10,000 frames): sharpness,
   colour-histogram drift and flicker, relative to the real frames;
6. floors: repeat-the-first/last-frame, and the tokenizer's own reconstruction
   of the truth as a ceiling, so every number has a reference.

Evaluation seeds are never seeds the world was trained on.

Games end (Gymnasium games: a point lost, a life gone). A measured rollout whose
real game ends stops there: its frames after the end are not scored, figures
at a step average over the rollouts still alive, and the report says how many
ended and after how many steps. The long stability runs and the real-frame
bank start a new game instead (scenes/restarting.py).
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from engine.actions import StickyRandom
from engine.bench import metrics as M
from engine.bench.machine import machine, write_report
from engine.bench.plausibility import REACH_K, FrameBank, coarse, gap_over, masked_psnr, real_bank
from engine.bench.stats import mean_interval, ratio_interval, two_sample_interval
from engine.errors import SkyloopError


@dataclass
class ConsistencyConfig:
    seeds: int = 8  # rollouts (scene start seeds), run as one batch
    frames: int = 1000  # autoregressive rollout length
    tf_frames: int = 64  # teacher-forced predictions per seed
    loops: tuple[int, ...] = (2, 4, 8, 16, 32, 64)  # out lengths L of the loop-closure scripts
    loops_per_length: int = 4  # loop scripts per length
    loop_builds: int = 3  # where 30 random scripts do not come back exactly: built scripts tried (the furthest-going kept)
    forks: int = 64  # action-following forks: 16 left agreement uncertain by about +-0.06, as large as the effects judged
    fork_length: int = 8  # ticks per branch
    stability_frames: int = 10000  # length of the no-op and exploration stability runs
    stability_batch: int = 2  # rollouts per stability run
    warmup: int = 16  # policy ticks before a loop or a fork starts
    late_warmup: int = 500  # ticks before the late forks (key response far into a rollout; 0 = skip them)
    threshold: float = 20.0  # PSNR (dB) under which an autoregressive rollout counts as drifted
    strip_steps: tuple[int, ...] = (1, 4, 16, 64, 256, 1000, 4000, 10000)  # steps shown in the strip
    bank_episodes: int = 8  # plausibility: held-out episodes (seeds apart from the rollouts') whose frames form the bank
    bank_steps: int = 500  # plausibility: exploration ticks per bank episode
    plausibility_window: int = 16  # plausibility in the stability runs: frames up to each report point that are scored


QUICK = ConsistencyConfig(
    seeds=2,
    frames=32,
    tf_frames=12,
    loops=(2, 8),
    loops_per_length=1,
    forks=2,
    fork_length=4,
    stability_frames=48,
    stability_batch=1,
    warmup=4,
    late_warmup=12,
    bank_episodes=2,
    bank_steps=64,
    plausibility_window=4,
)


# ---- seeds and scripts -----------------------------------------------------------
def training_seeds(spec) -> set[int]:
    """Scene seeds of the world's training episodes (from its manifest, or re-derived from the recipe)."""
    seeds: set[int] = set()
    path = Path(spec.dataset.get("path", "")) / "manifest.json"
    if path.exists():
        manifest = json.loads(path.read_text())
        seeds |= {int(e["seed"]) for e in manifest.get("episodes", []) if e.get("seed") is not None}
    recipe = spec.dataset.get("collection", {})
    if "seed" in recipe and "episodes" in recipe:
        from engine.data.collect import episode_seeds

        seeds |= {episode_seeds(int(recipe["seed"]), i)[0] for i in range(int(recipe["episodes"]))}
    return seeds


def eval_seeds(spec, n: int, start: int = 1_000_000) -> list[int]:
    used = training_seeds(spec)
    out, s = [], start
    while len(out) < n:
        if s not in used:
            out.append(s)
        s += 1
    return out


class Scenes:
    """A batch of real scenes stepped together. A scene whose game has ended holds its last frame and is no longer `alive`."""

    def __init__(self, make, seeds: list[int]):
        self.scenes = [make() for _ in seeds]
        self.seeds = seeds
        self.alive = np.ones(len(seeds), bool)  # [B] the game is still on: the next step gives a real frame
        self.game_lengths: list[int | None] = [None] * len(seeds)  # steps each game lasted; None while it is on
        self.ticks = 0
        self.last: np.ndarray | None = None

    def reset(self) -> np.ndarray:
        self.last = np.stack([s.reset(seed) for s, seed in zip(self.scenes, self.seeds)])
        self.alive[:] = True
        self.game_lengths = [None] * len(self.seeds)
        self.ticks = 0
        return self.last.copy()

    def step(self, keys: np.ndarray) -> np.ndarray:
        self.ticks += 1
        for b, (s, k) in enumerate(zip(self.scenes, keys)):
            if self.alive[b]:
                self.last[b] = s.step(k)
                if getattr(s, "done", False):
                    self.alive[b] = False
                    self.game_lengths[b] = self.ticks
        return self.last.copy()

    def close(self) -> None:
        for s in self.scenes:
            s.close()


def policy_keys(scenes: Scenes, n: int, tag: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Drives each scene with its exploration policy for n ticks.

    Returns (keys [n, B, K], real frames [n + 1, B, H, W, 3], real [n + 1, B]): real[t] is False where the game had
    ended before frame t (that frame repeats the last one and must not be scored).
    """
    from scenes.explore import make_policy

    first = scenes.reset()
    policies = [make_policy(s, np.random.default_rng([seed, tag])) for s, seed in zip(scenes.scenes, scenes.seeds)]
    keys, frames, real = [], [first], [np.ones(len(scenes.seeds), bool)]
    for _ in range(n):
        k = np.stack([s.keyset.vector(p.act(s)) for s, p in zip(scenes.scenes, policies)])
        keys.append(k)
        real.append(scenes.alive.copy())  # a scene alive before this step gives a real frame
        frames.append(scenes.step(k))
    return np.stack(keys), np.stack(frames), np.stack(real)


def _masked(values: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """values with NaN where keep is False (float)."""
    return np.where(keep, np.asarray(values, np.float64), np.nan)


# ---- the parts -----------------------------------------------------------------------
def teacher_forced(world, scenes: Scenes, cfg: ConsistencyConfig, bank: FrameBank) -> dict:
    keys, real, on = policy_keys(scenes, cfg.tf_frames, tag=1)
    world.reset(list(real[0]))
    preds = []
    for t in range(cfg.tf_frames):
        preds.append(world.predict(keys[t]))
        world.observe(real[t + 1], keys[t])  # after a game's end the context holds its last frame: not scored
    preds = np.stack(preds)  # [T, B, ...]
    truth, scored = real[1:], on[1:]  # [T, B, ...], [T, B]

    def mean(values):
        return _nanmean(_masked(values, scored))

    recon = world.decode(world.encode(truth[scored])).reshape(truth[scored].shape)
    return {
        "psnr": mean(M.psnr(preds, truth)),
        "ssim": mean(M.ssim(preds, truth)),
        "floor_repeat_last_psnr": mean(M.psnr(real[:-1], truth)),
        "floor_repeat_last_ssim": mean(M.ssim(real[:-1], truth)),
        "ceiling_tokenizer_psnr": float(M.psnr(recon, truth[scored]).mean()),
        "ceiling_tokenizer_ssim": float(M.ssim(recon, truth[scored]).mean()),
        "foreground_psnr": mean(masked_psnr(preds, truth, bank.foreground(truth))),
        "foreground_floor_repeat_last_psnr": mean(masked_psnr(real[:-1], truth, bank.foreground(truth))),
        "frames_scored": int(scored.sum()),
        "games_ended": sum(n is not None for n in scenes.game_lengths),
    }


def _nanmean(x) -> float | None:
    x = np.asarray(x, np.float64)
    return float(np.nanmean(x)) if np.isfinite(x).any() else None


def _per_seed(values: np.ndarray) -> list[float | None]:
    return [None if np.isnan(v) else float(v) for v in values]


def plausibility(bank: FrameBank, generated: np.ndarray, ceiling: dict, units: np.ndarray | None = None) -> dict:
    """Nearest-real-frame PSNR of generated frames against that of real ones (the ceiling), whole frame and foreground.

    `ceiling` is `bank.nearest` of the real frames of the whole run, not of the real frames at the same time: once
    a world has walked elsewhere, the real frames at time t say nothing about how typical its view is, and one odd
    real view (measured: the shipped maze's explore run at frame 2,000, whole-frame ceiling 21.1 dB against 28.1 at
    frame 1,000) would make any world look more real than the real scene.

    units [len(generated)]: the rollout each frame came from, where the ceiling's real frames are those of the same
    rollouts and steps, in the same order; then each rollout's means are kept and the gap gets an interval.
    """
    g, r = bank.nearest(generated), ceiling
    out = {
        "psnr": _nanmean(g["psnr"]),
        "ceiling_psnr": _nanmean(r["psnr"]),
        "frame_psnr": _nanmean(g["frame_psnr"]),
        "frame_ceiling_psnr": _nanmean(r["frame_psnr"]),
        "foreground_psnr": _nanmean(g["foreground_psnr"]),
        "foreground_ceiling_psnr": _nanmean(r["foreground_psnr"]),
    }
    out["foreground_share_ratio"] = float(g["foreground_share"].mean() / r["foreground_share"].mean()) if r["foreground_share"].mean() > 0 else None
    out["objects"], out["objects_real"] = float(g["objects"].mean()), float(r["objects"].mean())  # per frame (count_objects)
    out["objects_ratio"] = out["objects"] / out["objects_real"] if out["objects_real"] > 0 else None
    out["patch_gap"] = out["ceiling_psnr"] - out["psnr"]
    out["frame_gap"] = out["frame_ceiling_psnr"] - out["frame_psnr"]
    out["gap"] = max(out["patch_gap"], out["frame_gap"])  # each scale catches what the other misses (see plausibility.py)
    out["foreground_gap"] = (
        None if out["foreground_psnr"] is None or out["foreground_ceiling_psnr"] is None else out["foreground_ceiling_psnr"] - out["foreground_psnr"]
    )
    if units is not None:  # the rollout each generated frame, and the real frame of the same step, came from
        out["per_rollout"], out["ceiling_per_rollout"] = (
            [[float(n["psnr"][units == i].mean()), float(n["frame_psnr"][units == i].mean())] for i in np.unique(units)] for n in (g, r)
        )  # [rollouts][patches, whole frames]: mean nearest-real PSNR of each rollout's frames
        # the world's rollouts and the real runs of the ceiling are resampled each on its own: by step 1,000 a world
        # has wandered from its real run, so they are two samples, not pairs
        out["gap_interval"] = two_sample_interval(out["per_rollout"], out["ceiling_per_rollout"], gap_over)
    return out


def autoregressive(world, scenes: Scenes, cfg: ConsistencyConfig, progress, bank: FrameBank) -> tuple[dict, dict]:
    keys, real, on = policy_keys(scenes, cfg.frames, tag=2)
    world.reset(list(real[0]))
    psnr_c, ssim_c, first_c, fg_c, flat_w, flat_r, feat_w, feat_r = [], [], [], [], [], [], [], []
    shown: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    steps = M.log_steps(cfg.frames)
    at_steps = {}  # step -> (world, real) frames, scored for plausibility after the rollout
    # the frames up to each of the stability run's report points, with the rollout each came from: plausibility over
    # all the seeds, with an interval over them (the stability run's end points are 2 rollouts)
    window_at = sorted({p for p in (1000, cfg.frames) if cfg.plausibility_window <= p <= cfg.frames})
    windows = {p: ([], [], []) for p in window_at}  # p -> (world frames, real frames, rollout indices)
    for t in range(cfg.frames):
        frame = world.step(keys[t])
        truth = real[t + 1]
        psnr_c.append(M.psnr(frame, truth))
        ssim_c.append(M.ssim(frame, truth))
        first_c.append(M.psnr(real[0], truth))
        fg_c.append(masked_psnr(frame, truth, bank.foreground(truth)))
        flat_w.append(M.block_contrast(frame))
        flat_r.append(M.block_contrast(truth))
        feat_w.append(coarse(frame))
        feat_r.append(coarse(truth))
        alive = on[t + 1]  # [B] rollouts whose game was still on for this frame
        if t + 1 in steps and alive.any():
            at_steps[t + 1] = (frame[alive], truth[alive])
        for p, (ws, rs, us) in windows.items():
            if p - cfg.plausibility_window < t + 1 <= p and alive.any():
                ws.append(frame[alive])
                rs.append(truth[alive])
                us.append(np.flatnonzero(alive))
        if (t + 1 in cfg.strip_steps or t + 1 == cfg.frames) and alive.any():
            b = int(np.argmax(alive))
            shown[t + 1] = (truth[b], frame[b])
        progress(1)
    scored = on[1:]  # [T, B]
    psnr_c, ssim_c = _masked(np.stack(psnr_c), scored), _masked(np.stack(ssim_c), scored)  # [T, B], NaN after a game's end
    first_c, fg_c = _masked(np.stack(first_c), scored), _masked(np.stack(fg_c), scored)
    ceiling = bank.nearest(np.concatenate([r for _, r in at_steps.values()]))  # the real frames of every reported step
    plaus = {str(s): plausibility(bank, w, ceiling) for s, (w, _) in at_steps.items()}
    windows = {p: v for p, v in windows.items() if v[0]}
    if windows:
        plaus_w = {  # the ceiling: the real frames of the same window
            str(p): plausibility(bank, np.concatenate(ws), bank.nearest(np.concatenate(rs)), units=np.concatenate(us)) | {"window": cfg.plausibility_window}
            for p, (ws, rs, us) in windows.items()
        }
    flat = flat_frames(np.stack(flat_w), np.stack(flat_r), scored)
    reach = frame_reach(bank, np.stack(feat_w), np.stack(feat_r), scored)
    real_frames = real[1:][scored]  # [N, H, W, 3] every scored real frame
    truth_s = real_frames[np.linspace(0, len(real_frames) - 1, min(64, len(real_frames))).astype(int)]
    recon = world.decode(world.encode(truth_s)).reshape(truth_s.shape)
    lengths = list(scenes.game_lengths)
    with warnings.catch_warnings():  # steps at which every rollout's game has ended are all-NaN: None in the report
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(psnr_c, 1)  # [T] over the rollouts still alive; NaN once none is
        crossings = [M.first_below(psnr_c[: lengths[b] or cfg.frames, b], cfg.threshold) for b in range(psnr_c.shape[1])]

        def per_step(fn, curve):
            return {str(s): (None if np.isnan(curve[s - 1]).all() else float(fn(curve[s - 1]))) for s in steps}

        out = {
            "steps": steps,
            "psnr_mean": per_step(np.nanmean, psnr_c),
            "psnr_std": per_step(np.nanstd, psnr_c),
            "psnr_min": per_step(np.nanmin, psnr_c),
            "psnr_interval": {str(s): mean_interval(_per_seed(psnr_c[s - 1])) for s in steps},  # over seeds (stats.py)
            "psnr_per_seed": {str(s): _per_seed(psnr_c[s - 1]) for s in steps},  # None: that seed's game had ended
            "ssim_mean": per_step(np.nanmean, ssim_c),
            "ssim_std": per_step(np.nanstd, ssim_c),
            "floor_repeat_first_psnr": per_step(np.nanmean, first_c),
            "ceiling_tokenizer_psnr": float(M.psnr(recon, truth_s).mean()),
            "foreground_psnr_mean": {str(s): _nanmean(fg_c[s - 1]) for s in steps},
            "plausibility": plaus,
            "plausibility_window": plaus_w if windows else {},  # point -> over the window of frames up to it, every seed
            "flat_frames": flat,
            "reach": reach,
            "threshold": cfg.threshold,
            "first_below_threshold_mean_curve": M.first_below(mean[~np.isnan(mean)], cfg.threshold),
            "first_below_threshold_per_seed": crossings,
            "rollouts": int(scored.shape[1]),
            "rollouts_alive": {str(s): int(scored[s - 1].sum()) for s in steps},
            "games_ended": sum(n is not None for n in lengths),
            "game_lengths": lengths,  # steps each rollout's real game lasted; None: still on after the last step
        }
    curves = {"psnr": psnr_c, "ssim": ssim_c, "repeat_first": first_c, "shown": shown}
    return out, curves


FLAT_QUANTILE = 0.1  # a frame is flat if its coarse contrast is below that of the flattest tenth of the real frames


def flat_frames(world: np.ndarray, real: np.ndarray, scored: np.ndarray) -> dict:
    """The maze's failure in numbers: a world that melts into a flat wall. world, real [T, B] block contrast
    (metrics.block_contrast) of every rollout's frames and the real ones at the same steps; scored [T, B].

    A world frame is flat if its contrast is at most the real run's FLAT_QUANTILE quantile, so the real frames' share is
    about that by construction, and a world that faces walls no more often than a player would scores about the same.
    Coarse contrast, not sharpness: every decoder blurs, and the shipped maze's frames were nearly all below the real
    frames' 10% sharpness quantile, melted or not. Kept per seed, for an interval and paired comparisons."""
    threshold = float(np.quantile(real[scored], FLAT_QUANTILE))

    def per_seed(contrast):
        return [float((contrast[scored[:, b], b] <= threshold).mean()) if scored[:, b].any() else None for b in range(contrast.shape[1])]

    world_seeds = per_seed(world)
    return {
        "quantile": FLAT_QUANTILE,
        "threshold": threshold,
        "world": float((world[scored] <= threshold).mean()),
        "real": float((real[scored] <= threshold).mean()),
        "per_seed": world_seeds,
        "real_per_seed": per_seed(real),
        "interval": mean_interval(world_seeds),
    }


def frame_reach(bank: FrameBank, world: np.ndarray, real: np.ndarray, scored: np.ndarray) -> dict:
    """Precision and coverage of each rollout's frames against the bank (`FrameBank.reach`), world and real.

    world, real [T, B, F] 16x16 features of every step's frames; scored [T, B]. precision: the share of a rollout's
    frames that look like some view of the game; coverage: the share of the bank's views that a rollout came near.
    A world that melts into walls keeps a fair precision (walls are real views) and loses coverage; the real run's
    figures are the reference, since one rollout of 1,000 ticks sees only part of a level. Whole frames: where the
    moving things are small (bounce) a frame that drops them lies near every bank frame (the shipped bounce world:
    coverage 0.99, real 0.41), so there, as for flat frames, the foreground figures are the ones to read."""
    per = {"precision": [], "coverage": [], "precision_real": [], "coverage_real": []}
    for b in range(world.shape[1]):
        if not scored[:, b].any():
            continue
        for name, feats in (("", world), ("_real", real)):
            inside, covered = bank.reach(feats[scored[:, b], b])
            per["precision" + name].append(float(inside.mean()))
            per["coverage" + name].append(float(covered.mean()))
    out = {"k": REACH_K, **{k: float(np.mean(v)) for k, v in per.items()}, "per_seed": per}
    out["precision_interval"], out["coverage_interval"] = mean_interval(per["precision"]), mean_interval(per["coverage"])
    return out


STILL_TICKS = 32  # no-key ticks of the hold-still run


def no_keys(world, scenes: Scenes, cfg: ConsistencyConfig, progress) -> dict:
    """The player lets go: every seed's world and real game from the same start frame, no key held for STILL_TICKS
    ticks, PSNR against the real frames. In a game that stands still without keys (maze, overworld) the real frame
    never changes, so any fall is the world redrawing its own picture; in one that does not (bounce) it is plain
    autoregressive PSNR under no keys."""
    first = scenes.reset()
    world.reset(list(first))
    none = np.zeros((len(scenes.seeds), len(scenes.scenes[0].keyset)), np.uint8)
    ticks = min(STILL_TICKS, cfg.frames)
    psnr, still = [], True
    for _ in range(ticks):
        frame, truth = world.step(none), scenes.step(none)
        psnr.append(np.where(scenes.alive, M.psnr(frame, truth), np.nan))
        still &= bool((truth == first).all())
        progress(1)
    psnr = np.stack(psnr)  # [T, B]
    steps = M.log_steps(ticks)
    return {
        "ticks": ticks,
        "real_stood_still": still,
        "psnr_mean": {str(s): _nanmean(psnr[s - 1]) for s in steps},
        "psnr_per_seed": {str(s): _per_seed(psnr[s - 1]) for s in steps},
        "psnr_interval": {str(s): mean_interval(_per_seed(psnr[s - 1])) for s in steps},
    }


LOOP_TARGET_LENGTH = 32  # issue 12's loop-closure target is stated at L = 32


def loop_closure(world, make_scene, seeds: list[int], cfg: ConsistencyConfig, progress) -> dict:
    """Out L ticks and back by the exact inverse; only scripts whose real return frame equals the departure frame count.

    self_psnr: the world's return frame vs its own departure frame. guarded_psnr: the same, less any shortfall of the
    world's excursion (far point vs departure, in dB) against the real one's: a smear that never leaves scores low.
    """
    probe = make_scene()
    inverse = getattr(probe, "inverse_keys", None)
    keyset = probe.keyset
    probe.close()
    if not inverse:
        return {"available": False, "why": "this scene has no exact inverse keys (physics does not run backwards)"}
    perm = np.array([keyset.names.index(inverse.get(n, n)) for n in keyset.names])
    movers = [n for n in keyset.names if n in inverse]
    combos = [(n,) for n in movers] + [(a, b) for i, a in enumerate(movers) for b in movers[i + 1 :] if inverse.get(a) != b]
    results = {}
    for length in cfg.loops:
        trials = []  # (seed, prefix keys, out keys)
        for j in range(cfg.loops_per_length):
            seed = seeds[j % len(seeds)]
            for attempt in range(30):
                rng = np.random.default_rng([seed, length, j, attempt])
                scene = make_scene()
                prefix = np.stack([scene.keyset.vector(c) for c in _sticky(keyset, combos, rng, cfg.warmup)])
                out = _sticky(keyset, combos, rng, length)
                depart, far, ret = out_and_back(scene, seed, prefix, out, perm)
                scene.close()
                if np.array_equal(ret, depart) and not np.array_equal(far, depart):  # went somewhere and came back exactly
                    trials.append((seed, prefix, out))
                    break
            else:  # long random scripts rarely come back in a maze (a bumped wall is not undone): build them step by step,
                # and keep the one that goes furthest (its real far point least like its departure), for a demanding loop
                built = [
                    _built_loop(make_scene, seed, keyset, combos, perm, np.random.default_rng([seed, length, j, 999, c]), cfg.warmup, length)
                    for c in range(cfg.loop_builds)
                ]
                built = [b for b in built if b is not None]
                if built:
                    trials.append((seed, *min(built, key=lambda b: b[2])[:2]))
        if not trials:
            continue
        b = len(trials)
        scenes = [make_scene() for _ in trials]
        starts = [s.reset(t[0]) for s, t in zip(scenes, trials)]
        world.reset(starts)
        script = np.concatenate(
            [np.stack([t[1] for t in trials], 1), np.stack([t[2] for t in trials], 1), np.stack([t[2][::-1][:, perm] for t in trials], 1)]
        )  # [ticks, B, K]
        frames, real = [], []
        for k in script:
            frames.append(world.step(k))
            real.append(np.stack([s.step(kk) for s, kk in zip(scenes, k)]))
            progress(1)
        for s in scenes:
            s.close()
        depart_w, far_w, return_w = frames[cfg.warmup - 1], frames[cfg.warmup - 1 + length], frames[-1]
        depart_r, far_r, return_r = real[cfg.warmup - 1], real[cfg.warmup - 1 + length], real[-1]
        closed = M.psnr(return_w, depart_w)
        went_w, went_r = M.psnr(far_w, depart_w), M.psnr(far_r, depart_r)  # far point vs departure: how far each went
        results[str(length)] = {
            "scripts": b,
            "self_psnr": float(closed.mean()),
            # a world that never leaves (a smear, a frozen picture) returns to its departure for free: every dB by which
            # its far point is closer to its departure than the real far point is to the real departure is taken off
            "guarded_psnr": float((closed - np.maximum(0.0, went_w - went_r)).mean()),
            "excursion_psnr": float(went_w.mean()),
            "real_excursion_psnr": float(went_r.mean()),
            "gt_psnr": float(M.psnr(return_w, return_r).mean()),
            "departure_gt_psnr": float(M.psnr(depart_w, depart_r).mean()),
            "self_ssim": float(M.ssim(return_w, depart_w).mean()),
        }
    if not results:
        return {"available": False, "why": "no out-and-back script returned exactly in the real scene"}
    self_all = [v["self_psnr"] for v in results.values()]
    gt_all = [v["gt_psnr"] for v in results.values()]
    headline = str(LOOP_TARGET_LENGTH) if str(LOOP_TARGET_LENGTH) in results else max(results, key=int)
    return {
        "available": True,
        "context": world.spec.dynamics.context,
        "by_length": results,
        "self_psnr": float(np.mean(self_all)),  # unguarded, mean over the lengths (the figure reported before 2026-11-28)
        "gt_psnr": float(np.mean(gt_all)),
        "guarded_length": int(headline),
        "guarded_psnr": results[headline]["guarded_psnr"],  # the headline: guarded, at the target's L (or the longest measured)
    }


def out_and_back(scene, seed: int, prefix, out, perm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The real frames (departure, far point, return) of a loop script from a reset scene: the prefix ticks, the out
    ticks, then the out ticks' inverse keys (`perm` maps each key to its inverse) in reverse order."""
    scene.reset(seed)
    for k in prefix:
        depart = scene.step(k)
    for k in out:
        far = scene.step(k)
    for k in out[::-1]:
        ret = scene.step(k[perm])
    return depart, far, ret


def _built_loop(make_scene, seed, keyset, combos, perm, rng, warmup: int, length: int):
    """(prefix keys, out keys, PSNR of the real far point against the departure) of an out-and-back script whose every
    partial loop comes back exactly, or None.

    Random scripts of 32 ticks and more almost never return in a maze: 2 of 240 tries over 8 seeds at L = 32, since a
    move into a wall is not undone by its inverse. This one follows the same sticky random policy and keeps a tick
    only if the loop so far still returns to its departure frame in the real scene (checked by replay); where the
    policy's keys would not, it tries the other key combinations in random order. None if no combination returns at
    some tick, or the far point is the departure.
    """
    scene = make_scene()
    try:
        prefix = _sticky(keyset, combos, rng, warmup)
        policy = _sticky(keyset, combos, rng, length)
        vectors = [keyset.vector(c) for c in combos]

        out: list[np.ndarray] = []
        for i in range(length):
            for k in [policy[i]] + [vectors[m] for m in rng.permutation(len(vectors))]:
                depart, far, ret = out_and_back(scene, seed, prefix, out + [k], perm)
                if np.array_equal(ret, depart):
                    out.append(k)
                    break
            else:
                return None
        return None if np.array_equal(far, depart) else (prefix, np.stack(out), float(M.psnr(far[None], depart[None])[0]))
    finally:
        scene.close()


def _sticky(keyset, combos, rng, n) -> np.ndarray:
    policy = StickyRandom(keyset, combos, rng, hold=4.0)
    return np.stack([policy.act().copy() for _ in range(n)])


def action_following(world, make_scene, seeds: list[int], cfg: ConsistencyConfig, progress, warmup: int | None = None) -> dict:
    """Fork after a warm-up with two different key sequences; each world branch should resemble its own real branch.

    warmup (default cfg.warmup) ticks of the world's own rollout come first. Late forks (cfg.late_warmup) test whether
    the keys still steer a world that has run a long time: by then it has wandered from the real trajectory, so
    agreement (closer to its own real branch) means little; branch spread and the direction of sideways motion
    under a sideways key (which the key decides wherever the player stands: `sideways_direction`) still do."""
    warmup = cfg.warmup if warmup is None else warmup
    probe = make_scene()
    keyset = probe.keyset
    probe.close()
    names = keyset.names
    combos = [(n,) for n in names] + [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]
    fork_seeds = [seeds[j % len(seeds)] for j in range(cfg.forks)]
    rng = np.random.default_rng(7)
    prefix = np.stack([_sticky(keyset, combos, np.random.default_rng([s, j, 1]), warmup) for j, s in enumerate(fork_seeds)], 1)
    branch_a = np.stack([_sticky(keyset, combos, np.random.default_rng([s, j, 2]), cfg.fork_length) for j, s in enumerate(fork_seeds)], 1)
    branch_b = np.stack([_sticky(keyset, combos, np.random.default_rng([s, j, 3]), cfg.fork_length) for j, s in enumerate(fork_seeds)], 1)
    same = (branch_a == branch_b).all(axis=(0, 2))
    branch_b[:, same] = branch_a[:, same][..., ::-1]  # make every pair of branches differ
    del rng

    def real_run(branch):
        """Real frames [T, B, ...] of prefix + branch, and real [T, B]: False where the game had ended before that frame."""
        scenes = Scenes(make_scene, fork_seeds)
        scenes.reset()
        for k in prefix:
            scenes.step(k)
        frames, real = [], []
        for k in branch:
            real.append(scenes.alive.copy())
            frames.append(scenes.step(k))
        scenes.close()
        return np.stack(frames), np.stack(real)

    starts = []
    for seed in fork_seeds:
        s = make_scene()
        starts.append(s.reset(seed))
        s.close()
    world.reset(starts)
    for k in prefix:
        world.step(k)
        progress(1)
    save = world.snapshot()
    wa = np.stack([world.step(k) for k in branch_a])
    world.restore(save)
    wb = np.stack([world.step(k) for k in branch_b])
    progress(2 * cfg.fork_length)
    (ra, on_a), (rb, on_b) = real_run(branch_a), real_run(branch_b)
    both_on = on_a & on_b  # [T, B] frames where neither real branch's game had ended
    real_differs = (np.abs(ra.astype(int) - rb.astype(int)).reshape(*ra.shape[:2], -1).max(-1) > 0) & both_on  # [T, B]
    correct_a = M.psnr(wa, ra) > M.psnr(wa, rb)
    correct_b = M.psnr(wb, rb) > M.psnr(wb, ra)
    votes = np.concatenate([correct_a[real_differs], correct_b[real_differs]])
    d_world = np.abs(wa.astype(float) - wb.astype(float)).mean(axis=(2, 3, 4)) * both_on
    d_real = np.abs(ra.astype(float) - rb.astype(float)).mean(axis=(2, 3, 4)) * both_on
    per_fork = {  # the units of the intervals below and of `bench compare`: forks, not frames (see stats.py)
        "agree_right": ((correct_a & real_differs).sum(0) + (correct_b & real_differs).sum(0)).tolist(),
        "agree_frames": (2 * real_differs.sum(0)).tolist(),
        "spread_world": d_world.sum(0).tolist(),
        "spread_real": d_real.sum(0).tolist(),
    }
    out = {
        "forks": cfg.forks,
        "warmup": warmup,
        "branch_length": cfg.fork_length,
        "forks_whose_game_ended": int((~both_on).any(0).sum()),
        "agreement": float(votes.mean()) if len(votes) else None,
        "agreement_interval": ratio_interval(per_fork["agree_right"], per_fork["agree_frames"]),
        "compared_frames": int(len(votes)),
        "branch_difference_ratio": float(d_world.sum() / max(d_real.sum(), 1e-9)),
        "branch_difference_ratio_interval": ratio_interval(per_fork["spread_world"], per_fork["spread_real"]),
        "per_fork": per_fork,
    }
    sideways = sideways_keys(names)
    if sideways:  # camera or player moves sideways: does the picture move the same way?
        right, moves, right_any, moves_any = (
            sum(parts)
            for parts in zip(*(sideways_direction(w_frames, r_frames, keys, sideways) for w_frames, r_frames, keys in ((wa, ra, branch_a), (wb, rb, branch_b))))
        )
        out["motion_direction_agreement"] = float(right.sum() / moves.sum()) if moves.sum() else None
        out["motion_direction_interval"] = ratio_interval(right, moves)
        out["motion_samples"] = int(moves.sum())
        # the figure before 2026-11-29: every real sideways move, whatever keys were held (see sideways_direction)
        out["motion_direction_agreement_any_move"] = float(right_any.sum() / moves_any.sum()) if moves_any.sum() else None
        out["motion_samples_any_move"] = int(moves_any.sum())
        per_fork["direction_right"], per_fork["direction_moves"] = right.tolist(), moves.tolist()
    return out


def sideways_keys(names) -> list[int]:
    """Indices of the keys that decide which way the picture moves sideways: turns, strafes, left and right."""
    return [i for i, n in enumerate(names) if "turn" in n or "strafe" in n or n in ("left", "right")]


def sideways_direction(world_frames: np.ndarray, real_frames: np.ndarray, keys: np.ndarray, sideways: list[int]):
    """Per fork [B]: (right, moves) over the ticks where the real picture moved more than a pixel sideways while a
    sideways key (`sideways_keys`) was held, right = the world's picture moved the same way; then (right, moves) over
    every real sideways move, whatever the keys (the figure before 2026-11-29).

    frames [T, B, H, W, 3], keys [T, B, K]: keys[t] made frame t. Only a sideways key decides the sign wherever the
    player stands: a step forward or back also shifts a first-person picture sideways (parallax: the nearer side
    grows faster), but which way follows the view's layout, so a world that has walked to another view (late forks)
    is rightly free to differ there, and counting those ticks pulled a world that steers perfectly towards chance
    (measured on the maze's exploration policy: 38 of 80 real sideways moves were bare steps forward or back)."""
    shape = world_frames.shape[1]
    right, moves, right_any, moves_any = (np.zeros(shape, int) for _ in range(4))
    for b in range(shape):
        for t in range(1, world_frames.shape[0]):
            real_shift = M.horizontal_shift(real_frames[t - 1, b], real_frames[t, b])
            if abs(real_shift) <= 1.0:
                continue
            same = np.sign(M.horizontal_shift(world_frames[t - 1, b], world_frames[t, b])) == np.sign(real_shift)
            moves_any[b] += 1
            right_any[b] += same
            if keys[t, b, sideways].any():
                moves[b] += 1
                right[b] += same
    return right, moves, right_any, moves_any


def stability(world, make_scene, seeds: list[int], cfg: ConsistencyConfig, progress, bank: FrameBank) -> dict:
    """Long runs: no keys at all, and the exploration policy. Sharpness, colour drift and flicker over time."""
    from scenes.explore import make_policy
    from scenes.restarting import Restarting

    out = {}
    curves = {}
    batch_seeds = seeds[: cfg.stability_batch]
    for name in ("noop", "explore"):
        scenes = [Restarting(make_scene()) for _ in batch_seeds]  # a game that ends starts again; the world runs on
        first = np.stack([s.reset(seed) for s, seed in zip(scenes, batch_seeds)])
        policies = [make_policy(s, np.random.default_rng([seed, 5])) for s, seed in zip(scenes, batch_seeds)]
        world.reset(list(first))
        prev_w, prev_r = first, first
        hist0 = M.colour_histogram(first)
        sharp_w, sharp_r, drift, drift_real, flick_w, flick_r = [], [], [], [], [], []
        report_at = sorted({p for p in (1000, 10000, cfg.stability_frames) if p <= cfg.stability_frames})
        scored = {p: ([], []) for p in report_at}  # frames in the window up to each report point: (world, real)
        for t in range(cfg.stability_frames):
            if name == "noop":
                keys = np.zeros((len(scenes), len(scenes[0].keyset)), np.uint8)
            else:
                keys = np.stack([s.keyset.vector(p.act(s)) for s, p in zip(scenes, policies)])
            w = world.step(keys)
            r = np.stack([s.step(k) for s, k in zip(scenes, keys)])
            sharp_w.append(M.sharpness(w).mean())
            sharp_r.append(M.sharpness(r).mean())
            drift.append(M.histogram_distance(M.colour_histogram(w), M.colour_histogram(r)).mean())
            drift_real.append(M.histogram_distance(M.colour_histogram(r), hist0).mean())
            flick_w.append(M.flicker(np.stack([prev_w, w], 1)).mean())
            flick_r.append(M.flicker(np.stack([prev_r, r], 1)).mean())
            for p, (ws, rs) in scored.items():
                if p - cfg.plausibility_window <= t < p:
                    ws.append(w)
                    rs.append(r)
            prev_w, prev_r = w, r
            progress(1)
        restarts = sum(s.restarts for s in scenes)
        for s in scenes:
            s.close()
        sharp_w, sharp_r = np.array(sharp_w), np.array(sharp_r)
        ceiling = bank.nearest(np.concatenate([f for _, rs in scored.values() for f in rs]))  # the real frames of every window
        tail = slice(int(len(sharp_w) * 0.9), None)
        ratio = sharp_w / np.maximum(sharp_r, 1e-9)
        out[name] = {
            "frames": cfg.stability_frames,
            "games_restarted": restarts,
            "sharpness_ratio_end": float(sharp_w[tail].mean() / max(sharp_r[tail].mean(), 1e-9)),
            "sharpness_ratio_start": float(ratio[: max(1, len(ratio) // 10)].mean()),
            "histogram_distance_end": float(np.mean(drift[tail])),
            "histogram_distance_start": float(np.mean(drift[: max(1, len(drift) // 10)])),
            "flicker_world_end": float(np.mean(flick_w[tail])),
            "flicker_real_end": float(np.mean(flick_r[tail])),
            "plausibility": {str(p): plausibility(bank, np.concatenate(ws), ceiling) for p, (ws, _) in scored.items()},
        }
        curves[name] = {"sharpness_ratio": ratio, "histogram_distance": np.array(drift), "flicker_world": np.array(flick_w), "flicker_real": np.array(flick_r)}
    out["sharpness_ratio_end"] = float(min(v["sharpness_ratio_end"] for v in out.values() if isinstance(v, dict)))
    return out, curves


# ---- running it ---------------------------------------------------------------------
def bench_consistency(
    world_path,
    scene: str | None = None,
    cfg: ConsistencyConfig = ConsistencyConfig(),
    out="runs/bench-consistency",
    backend: str = "auto",
    device: str | None = None,
    threads: int | None = None,
    sampler: dict | None = None,
    speed: bool = False,
    parts: tuple[str, ...] = ("tf", "ar", "still", "loop", "action", "stability"),
) -> dict:
    import functools

    from tqdm import tqdm

    from engine.bench.consistency_report import markdown, summarise
    from engine.bench.plots import ar_curves_plot, loop_plot, stability_plot, strip_image
    from engine.world.default_backend import resolve_backend
    from engine.world.session import World
    from scenes import SCENES, make_scene

    backend = resolve_backend(backend, device)  # named once: the speed part below runs the same backend
    world = World.load(world_path, backend=backend, device=device, threads=threads, sampler=sampler)
    spec = world.spec
    scene = scene or spec.scene
    if scene not in SCENES and not scene.startswith("gym:"):
        raise SkyloopError(f"the world's scene {scene!r} is not a ground-truth scene here; pass --scene NAME (one of {', '.join(SCENES)})")
    options = spec.scene_options if scene == spec.scene else {}
    make = functools.partial(make_scene, scene, size=spec.frame_size, **options)
    probe = make()
    if probe.keyset.names != world.keyset.names:
        raise SkyloopError(f"scene {scene} has keys {list(probe.keyset.names)}, the world {list(world.keyset.names)}")
    probe.close()
    all_seeds = eval_seeds(spec, cfg.seeds + cfg.bank_episodes)
    seeds, bank_seeds = all_seeds[: cfg.seeds], all_seeds[cfg.seeds :]
    total = (
        (cfg.frames if "ar" in parts else 0)
        + (min(STILL_TICKS, cfg.frames) if "still" in parts else 0)
        + (2 * cfg.stability_frames if "stability" in parts else 0)
        + (sum(cfg.warmup + 2 * L for L in cfg.loops) if "loop" in parts else 0)
        + (cfg.warmup + cfg.late_warmup + (4 if cfg.late_warmup else 2) * cfg.fork_length if "action" in parts else 0)
    )
    bar = tqdm(total=total, unit="frame", desc="consistency", mininterval=1.0, dynamic_ncols=True)
    started = time.perf_counter()
    report: dict = {
        "benchmark": "consistency",
        "world": str(world_path),
        "world_sha256": world.sha256,
        "scene": scene,
        "frame_size": list(spec.frame_size),
        "backend": world.describe(),
        "sampler": asdict(world.sampler_cfg),
        "config": asdict(cfg),
        "seeds": seeds,
        "machine": machine(),
        "training": spec.training,
    }
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    curves = {}
    bank = FrameBank(real_bank(make, bank_seeds, cfg.bank_steps))
    report["bank"] = {"seeds": bank_seeds, "frames": len(bank.frames), "foreground_share": float(bank.masks.mean())}
    try:
        if "tf" in parts:
            report["teacher_forced"] = teacher_forced(world, Scenes(make, seeds), cfg, bank)
        if "ar" in parts:
            report["autoregressive"], curves["ar"] = autoregressive(world, Scenes(make, seeds), cfg, bar.update, bank)
        if "still" in parts:
            report["no_keys"] = no_keys(world, Scenes(make, seeds), cfg, bar.update)
        if "loop" in parts:
            report["loop_closure"] = loop_closure(world, make, seeds, cfg, bar.update)
        if "action" in parts:
            report["action_following"] = action_following(world, make, seeds, cfg, bar.update)
            if cfg.late_warmup:
                report["action_following_late"] = action_following(world, make, seeds, cfg, bar.update, warmup=cfg.late_warmup)
        if "stability" in parts:
            report["stability"], curves["stability"] = stability(world, make, seeds, cfg, bar.update, bank)
    finally:
        bar.close()
    report["seconds"] = round(time.perf_counter() - started, 1)
    if speed:
        from engine.bench.speed import bench_speed

        report["speed"] = bench_speed(world_path, [backend], frames=200, out=out / "speed", sampler=sampler)["summary"]
    figures = []
    if "ar" in curves:
        figures.append(ar_curves_plot(out / "autoregressive.png", curves["ar"], report["autoregressive"], cfg))
        figures.append(strip_image(out / "strip.png", curves["ar"]["shown"]))
    if report.get("loop_closure", {}).get("available"):
        figures.append(loop_plot(out / "loop_closure.png", report["loop_closure"]))
    if "stability" in curves:
        figures.append(stability_plot(out / "stability.png", curves["stability"]))
    summary = summarise(report, cfg)
    report["summary"] = summary
    write_report(out, report, markdown(report, [f.name for f in figures]))
    print(f"report: {out / 'report.md'}")
    print(json.dumps(summary))
    return report
