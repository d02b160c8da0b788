import json
from types import SimpleNamespace

import numpy as np
import pytest

from engine.bench import metrics as M
from engine.bench.compare import compare_reports
from engine.bench.consistency import (
    QUICK,
    Scenes,
    action_following,
    autoregressive,
    eval_seeds,
    flat_frames,
    loop_closure,
    no_keys,
    stability,
    teacher_forced,
)
from engine.bench.plausibility import FrameBank, gap_over, real_bank
from engine.bench.stats import paired_mean_difference, paired_ratio_difference, ratio_interval, two_sample_interval
from engine.errors import SkyloopError
from scenes import make_scene


# ---- metrics against known cases ------------------------------------------------------
def checkerboard(h=16, w=16):
    yy, xx = np.mgrid[0:h, 0:w]
    return np.repeat((((yy + xx) % 2) * 255).astype(np.uint8)[..., None], 3, axis=2)


def test_identical_frames_give_capped_psnr_and_ssim_one():
    f = np.random.default_rng(0).integers(0, 255, (2, 24, 24, 3), dtype=np.uint8)
    assert np.all(M.psnr(f, f) == M.PSNR_CAP)
    assert np.allclose(M.ssim(f, f), 1.0)


def test_one_pixel_shift_of_a_checkerboard_flips_every_pixel():
    board = checkerboard()
    shifted = np.roll(board, 1, axis=1)
    assert M.psnr(board, shifted) == pytest.approx(0.0)  # MSE = 255^2
    assert M.ssim(board, shifted) < 0, "anti-correlated structure"


def test_a_single_changed_value_gives_the_textbook_psnr():
    a = np.zeros((10, 20, 3), np.uint8)
    b = a.copy()
    b[3, 4, 1] = 255
    assert M.psnr(a, b) == pytest.approx(10 * np.log10(10 * 20 * 3))


def test_sharpness_histogram_and_flicker_known_values():
    flat = np.full((8, 8, 3), 90, np.uint8)
    assert M.sharpness(flat) == 0
    assert M.sharpness(checkerboard(8, 8)) == pytest.approx(2 * 255.0**2)
    black, white = np.zeros((4, 4, 3), np.uint8), np.full((4, 4, 3), 255, np.uint8)
    assert M.histogram_distance(M.colour_histogram(black), M.colour_histogram(black)) == 0
    assert M.histogram_distance(M.colour_histogram(black), M.colour_histogram(white)) == pytest.approx(1.0)
    assert M.histogram_distance(M.colour_histogram(flat), M.colour_histogram(flat + 1)) < 0.05, "soft bins: one level is a small change"
    assert M.flicker(np.stack([black, white, white])).tolist() == [255.0, 0.0]


def test_horizontal_shift_recovers_a_roll():
    rng = np.random.default_rng(3)
    img = rng.integers(0, 255, (32, 48, 3), dtype=np.uint8)
    assert M.horizontal_shift(img, np.roll(img, 3, axis=1)) == pytest.approx(3.0, abs=0.2)
    assert M.horizontal_shift(img, np.roll(img, -5, axis=1)) == pytest.approx(-5.0, abs=0.2)


def test_log_steps_and_first_below():
    assert M.log_steps(1000) == [1, 4, 16, 64, 256, 1000]
    assert M.log_steps(100) == [1, 4, 16, 64, 100]
    assert M.first_below(np.array([30.0, 25, 19, 22]), 20) == 3 and M.first_below(np.array([30.0]), 20) is None


# ---- the benchmark's parts against worlds whose answers are known ---------------------
class SceneWorld:
    """A 'world' that is the real scene (perfect) or that never moves (frozen): the bench must score them as such."""

    def __init__(self, name, seeds, frozen=False, **scene_kwargs):
        self.name, self.candidates, self.frozen, self.scene_kwargs = name, seeds, frozen, scene_kwargs
        self.spec = SimpleNamespace(dynamics=SimpleNamespace(context=4))
        self.scenes, self.last = [], None

    def reset(self, frames):
        self.scenes = []
        for frame in frames:
            for seed in self.candidates:
                s = make_scene(self.name, **self.scene_kwargs)
                if np.array_equal(s.reset(seed), frame):
                    self.scenes.append(s)
                    break
        assert len(self.scenes) == len(frames)
        self.last = np.stack(frames)
        return self.last

    def step(self, keys):
        frames = np.stack([s.step(k) for s, k in zip(self.scenes, keys)])
        if not self.frozen:
            self.last = frames
        return self.last

    def predict(self, keys):
        import copy

        return self.last if self.frozen else np.stack([copy.deepcopy(s).step(k) for s, k in zip(self.scenes, keys)])

    def observe(self, frames, keys):
        for s, k in zip(self.scenes, keys):
            s.step(k)
        self.last = np.asarray(frames)

    def snapshot(self):
        import copy

        return [copy.deepcopy(s) for s in self.scenes], self.last

    def restore(self, state):
        import copy

        self.scenes, self.last = [copy.deepcopy(s) for s in state[0]], state[1]

    def encode(self, frames):
        return frames

    def decode(self, frames):
        return frames


SEEDS = [11, 12]


def test_a_perfect_world_scores_perfectly_and_a_frozen_one_scores_the_floor():
    cfg = QUICK
    make = lambda: make_scene("overworld")  # noqa: E731 - numpy-only scene: deep-copyable
    bank = FrameBank(real_bank(make, [21, 22], 64))
    perfect = SceneWorld("overworld", SEEDS)
    tf = teacher_forced(perfect, Scenes(make, SEEDS), cfg, bank)
    assert tf["psnr"] == M.PSNR_CAP and tf["ssim"] == pytest.approx(1.0) and tf["ceiling_tokenizer_psnr"] == M.PSNR_CAP
    assert tf["foreground_psnr"] == M.PSNR_CAP
    ar, curves = autoregressive(perfect, Scenes(make, SEEDS), cfg, lambda n: None, bank)
    assert all(v == M.PSNR_CAP for v in ar["psnr_mean"].values()) and ar["first_below_threshold_mean_curve"] is None
    plaus = ar["plausibility"].values()  # the ceiling pools the real frames of every step: a perfect world's gaps average 0
    assert np.mean([v["patch_gap"] for v in plaus]) == pytest.approx(0, abs=1e-9) and np.mean([v["frame_gap"] for v in plaus]) == pytest.approx(0, abs=1e-9)
    flat = ar["flat_frames"]  # its frames are the real ones: exactly as often flat
    assert flat["world"] == flat["real"] and flat["per_seed"] == flat["real_per_seed"]
    reach = ar["reach"]  # so are its precision and coverage against the bank
    assert reach["per_seed"]["precision"] == reach["per_seed"]["precision_real"] and reach["coverage"] == reach["coverage_real"]
    window = ar["plausibility_window"][str(cfg.frames)]  # the frames up to the last step, every seed, with an interval
    assert len(window["per_rollout"]) == len(SEEDS) and window["per_rollout"] == window["ceiling_per_rollout"]
    lo, hi = window["gap_interval"]
    assert window["gap"] == pytest.approx(0, abs=1e-9) and lo <= 0 <= hi
    still = no_keys(perfect, Scenes(make, SEEDS), cfg, lambda n: None)  # the overworld stands still without keys
    assert still["real_stood_still"] and all(v == M.PSNR_CAP for v in still["psnr_mean"].values())
    assert len(still["psnr_per_seed"]["32"]) == len(SEEDS)
    loop = loop_closure(perfect, make, SEEDS, cfg, lambda n: None)
    assert loop["available"] and loop["self_psnr"] == M.PSNR_CAP and loop["gt_psnr"] == M.PSNR_CAP
    act = action_following(perfect, make, SEEDS, cfg, lambda n: None)
    assert act["agreement"] == 1.0 and act["branch_difference_ratio"] == pytest.approx(1.0)
    forks = act["per_fork"]  # the units of the intervals: one entry per fork, summing to the pooled figures
    assert len(forks["agree_frames"]) == cfg.forks and sum(forks["agree_frames"]) == act["compared_frames"]
    assert sum(forks["agree_right"]) == act["compared_frames"] and act["agreement_interval"] == [1.0, 1.0]
    late = action_following(perfect, make, SEEDS, cfg, lambda n: None, warmup=cfg.late_warmup)
    assert late["warmup"] == cfg.late_warmup != act["warmup"] and late["branch_difference_ratio"] == pytest.approx(1.0)
    assert late["motion_samples"] > 0 and late["motion_direction_agreement"] == 1.0
    stab, _ = stability(perfect, make, SEEDS, cfg, lambda n: None, bank)
    assert stab["sharpness_ratio_end"] == pytest.approx(1.0) and stab["explore"]["histogram_distance_end"] == 0
    assert stab["explore"]["plausibility"][str(cfg.stability_frames)]["gap"] == 0

    frozen = SceneWorld("overworld", SEEDS, frozen=True)
    tf = teacher_forced(frozen, Scenes(make, SEEDS), cfg, bank)
    assert tf["psnr"] == pytest.approx(tf["floor_repeat_last_psnr"])
    ar, _ = autoregressive(frozen, Scenes(make, SEEDS), cfg, lambda n: None, bank)
    assert ar["psnr_mean"] == pytest.approx(ar["floor_repeat_first_psnr"])
    for step, per_seed in ar["psnr_per_seed"].items():  # kept per seed, for paired comparisons between worlds
        assert len(per_seed) == len(SEEDS) and np.mean(per_seed) == pytest.approx(ar["psnr_mean"][step])
        lo, hi = ar["psnr_interval"][step]
        assert lo <= ar["psnr_mean"][step] <= hi
    late = action_following(frozen, make, SEEDS, cfg, lambda n: None, warmup=cfg.late_warmup)
    assert late["branch_difference_ratio"] == 0 and late["motion_direction_agreement"] < 1, "keys that steer nothing late"


def test_loop_closure_guard_charges_a_world_that_never_leaves():
    make = lambda: make_scene("overworld")  # noqa: E731
    perfect = loop_closure(SceneWorld("overworld", SEEDS), make, SEEDS, QUICK, lambda n: None)
    assert perfect["guarded_psnr"] == M.PSNR_CAP, "a world that goes where the real one goes keeps its full closure"
    frozen = loop_closure(SceneWorld("overworld", SEEDS, frozen=True), make, SEEDS, QUICK, lambda n: None)
    assert frozen["self_psnr"] == M.PSNR_CAP, "unguarded, a frozen picture closes every loop perfectly"
    longest = frozen["by_length"][str(frozen["guarded_length"])]
    assert frozen["guarded_psnr"] == pytest.approx(longest["real_excursion_psnr"]) and frozen["guarded_psnr"] < 26
    assert frozen["guarded_length"] == max(QUICK.loops)  # the quick run has no L = 32: the longest measured stands in


def test_long_loops_in_a_maze_are_built_to_come_back_exactly():
    """Random 32-tick scripts almost never return in a maze (a bumped wall is not undone); the bench builds one whose
    every partial loop comes back, checked in the real scene, so the L = 32 headline does not rest on one script."""
    from dataclasses import replace

    from engine.bench.consistency import _built_loop, out_and_back

    make = lambda: make_scene("maze", size=(32, 32))  # noqa: E731
    probe = make()
    keyset, inverse = probe.keyset, probe.inverse_keys
    probe.close()
    perm = np.array([keyset.names.index(inverse.get(n, n)) for n in keyset.names])
    combos = [(n,) for n in inverse] + [("forward", "strafe_left"), ("back", "strafe_right")]
    prefix, out, went = _built_loop(make, 1000003, keyset, combos, perm, np.random.default_rng(0), 16, 32)
    scene = make()
    depart, far, ret = out_and_back(scene, 1000003, prefix, out, perm)
    scene.close()
    assert len(out) == 32 and np.array_equal(ret, depart) and not np.array_equal(far, depart)
    # In the benchmark: every script of a long length is found, and a perfect world closes them all.
    cfg = replace(QUICK, loops=(32,), loops_per_length=2, warmup=8)
    loop = loop_closure(SceneWorld("maze", SEEDS, size=(32, 32)), make, SEEDS, cfg, lambda n: None)
    assert loop["by_length"]["32"]["scripts"] == 2 and loop["guarded_psnr"] == M.PSNR_CAP


def test_loop_closure_is_not_claimed_for_physics():
    make = lambda: make_scene("bounce")  # noqa: E731
    assert loop_closure(SceneWorld("bounce", SEEDS), make, SEEDS, QUICK, lambda n: None)["available"] is False


def test_evaluation_seeds_avoid_training_seeds(tiny_world):
    from engine.bench.consistency import training_seeds
    from engine.world.bundle import read_spec

    spec = read_spec(tiny_world)
    used = training_seeds(spec)
    assert len(used) == spec.dataset["episodes"]
    assert not set(eval_seeds(spec, 50)) & used


def test_quick_consistency_run_writes_its_report(tiny_world, tmp_path, cli):
    proc = cli("bench", "consistency", tiny_world, "--quick", "--out", tmp_path / "c", "--threads", "1", check=True)
    line = json.loads(proc.stdout.strip().splitlines()[-1])
    for key in (
        "psnr_tf",
        "ssim_tf",
        "psnr_ar",
        "loop_self_psnr",
        "loop_guarded_psnr",
        "loop_gt_psnr",
        "action_agreement",
        "sharpness_ratio_end",
        "frames",
        "seeds",
        "branch_spread",
        "branch_spread_late",
        "psnr_tf_foreground",
        "plausibility_gap_ar",
        "plausibility_gap_explore",
        "plausibility_foreground_gap_explore",
        "flicker_ratio_explore_end",
        "psnr_no_keys",
    ):
        assert key in line
    assert set(line["psnr_ar"]) == {"1", "4", "16", "32"}
    spans = {k[len("psnr_ar@") :]: v for k, v in line["intervals"].items() if k.startswith("psnr_ar@")}  # over seeds
    assert set(spans) == set(line["psnr_ar"])
    for step, (lo, hi) in spans.items():
        assert lo - 0.01 <= line["psnr_ar"][step] <= hi + 0.01  # rounded to 2 and 3 digits
    for name in ("report.md", "report.json", "autoregressive.png", "strip.png", "loop_closure.png", "stability.png"):
        assert (tmp_path / "c" / name).stat().st_size > 200, name


# ---- how sure a figure is: bootstrap intervals and paired comparisons --------------------
def test_ratio_interval_brackets_the_pooled_ratio_and_narrows_with_more_units():
    rng = np.random.default_rng(0)
    frames = np.full(16, 10)
    right = rng.binomial(10, 0.6, 16)
    lo, hi = ratio_interval(right, frames)
    assert lo < right.sum() / frames.sum() < hi and hi - lo < 0.3
    lo64, hi64 = ratio_interval(np.tile(right, 4), np.tile(frames, 4))
    assert hi64 - lo64 < 0.6 * (hi - lo)  # four times the units: about half the width
    assert ratio_interval([3], [5]) is None and ratio_interval([1, 2], [0, 0]) is None  # nothing to resample


def test_a_paired_difference_sees_what_two_separate_intervals_cannot():
    rng = np.random.default_rng(1)
    frames = np.full(16, 10)
    a = rng.integers(1, 10, 16)  # forks differ a lot from each other...
    b = np.minimum(a + 1, 10)  # ...and B is right one frame more on (nearly) every fork
    lo_a, hi_a = ratio_interval(a, frames)
    lo_b, hi_b = ratio_interval(b, frames)
    assert lo_b < hi_a, "separately, the two intervals overlap"
    paired = paired_ratio_difference(a, frames, b, frames)
    assert paired["difference"] == pytest.approx((b.sum() - a.sum()) / frames.sum()) and paired["interval"][0] > 0
    same = paired_ratio_difference(a, frames, a, frames)
    assert same["difference"] == 0 and same["interval"] == [0.0, 0.0]
    seeds = paired_mean_difference([15.0, 17.0, None, 16.0], [16.0, 18.5, 20.0, 16.5])  # a seed whose game ended: skipped
    assert seeds["units"] == 3 and seeds["difference"] == pytest.approx(1.0) and seeds["interval"][0] > 0


def test_a_world_melted_into_a_flat_wall_is_counted_and_blur_is_not():
    rng = np.random.default_rng(3)
    real = rng.integers(0, 256, (40, 3, 64, 64, 3)).astype(np.uint8)  # [T, B] frames
    real = np.repeat(np.repeat(real[:, :, ::8, ::8], 8, 2), 8, 3)  # 8x8 blocks of colour: coarse contrast
    real[:4] = 128  # a few flat real frames (a player facing a wall)
    melted = real.copy()
    melted[10:] = real[10:].mean((2, 3), keepdims=True).astype(np.uint8)  # from step 10 on: one flat colour
    pad = np.pad(real.astype(float), ((0, 0), (0, 0), (1, 1), (1, 1), (0, 0)), mode="edge")
    blurred = sum(pad[:, :, 1 + dy : 65 + dy, 1 + dx : 65 + dx] for dy in (-1, 0, 1) for dx in (-1, 0, 1)) / 9  # 3x3 box blur
    scored = np.ones((40, 3), bool)
    c = M.block_contrast
    out = flat_frames(c(melted), c(real), scored)
    assert out["real"] == pytest.approx(0.1) and out["world"] == pytest.approx(0.85) and out["per_seed"] == [0.85] * 3  # steps 0-3 and 10-39
    assert flat_frames(c(real), c(real), scored)["world"] == out["real"]
    assert M.sharpness(blurred[5:]).mean() < 0.7 * M.sharpness(real[5:]).mean()
    kept = flat_frames(c(blurred), c(real), scored)  # blurred, the same layout: not a flat wall
    assert abs(kept["world"] - out["real"]) < 0.05 < out["world"] - out["real"]
    scored[20:, 0] = False  # a rollout whose game ended is scored up to its end
    assert flat_frames(c(melted), c(real), scored)["per_seed"][0] == pytest.approx(14 / 20)


def test_a_plausibility_gap_over_rollouts_gets_an_interval_and_a_paired_comparison():
    rng = np.random.default_rng(2)
    ceiling = np.stack([rng.normal(30, 2, 8), rng.normal(25, 2, 8)], 1)  # [rollouts][patches, whole frames]
    world = ceiling - [1.0, 3.0] + rng.normal(0, 0.5, (8, 2))  # 3 dB short of real on whole frames
    gap = float(gap_over(world, ceiling))
    assert gap == pytest.approx(np.max(ceiling.mean(0) - world.mean(0)))
    lo, hi = two_sample_interval(world, ceiling, gap_over)
    assert lo < gap < hi and lo > 0, "eight rollouts 3 dB short: short beyond doubt"
    assert two_sample_interval(world[:1], ceiling, gap_over) is None  # one rollout: nothing to resample

    def report(per_rollout, world_name):
        ar = {
            "psnr_mean": {},
            "plausibility_window": {
                "1000": {
                    "gap": float(gap_over(per_rollout, ceiling)),
                    "window": 16,
                    "per_rollout": per_rollout.tolist(),
                    "ceiling_per_rollout": ceiling.tolist(),
                }
            },
            "psnr_per_seed": {},
        }
        return {"benchmark": "consistency", "world": world_name, "scene": "maze", "seeds": [1, 2], "config": {"seeds": 8, "frames": 1000}, "autoregressive": ar}

    better = world + [0.0, 1.0] + rng.normal(0, 0.05, (8, 2))  # B: 1 dB closer to real frames on every rollout
    rows = compare_reports(report(world, "a"), report(better, "b"))["rows"]
    (row,) = [r for r in rows if r["figure"].startswith("plausibility gap, 16 frames up to AR step 1000")]
    assert row["difference"] == pytest.approx(-1.0, abs=0.1) and row["verdict"] == "**A higher**"  # B's gap is lower


def _report(agree_right, world="w.safetensors", forks=4, scene="maze"):
    per_fork = {
        "agree_right": agree_right,
        "agree_frames": [8] * len(agree_right),
        "spread_world": [1.0] * len(agree_right),
        "spread_real": [2.0] * len(agree_right),
    }
    return {
        "benchmark": "consistency",
        "world": world,
        "scene": scene,
        "seeds": [1, 2],
        "config": {"forks": forks, "fork_length": 4, "warmup": 4},
        "action_following": {"agreement": sum(agree_right) / (8 * len(agree_right)), "branch_difference_ratio": 0.5, "per_fork": per_fork},
    }


def test_bench_compare_calls_a_difference_only_when_its_interval_excludes_zero(tmp_path, cli):
    a, b = _report([4, 5, 6, 4, 5, 6]), _report([6, 7, 8, 6, 7, 8], world="b.safetensors")
    rows = {r["figure"]: r for r in compare_reports(a, b)["rows"]}
    assert rows["agreement"]["verdict"] == "**B higher**" and rows["agreement"]["difference"] == pytest.approx(0.25)
    assert rows["branch spread"]["verdict"] == "within noise" and rows["branch spread"]["interval"] == [0.0, 0.0]
    tf = {"teacher_forced": {"psnr": 30.0}}
    other = compare_reports({**a, **tf}, {**_report([6, 7, 8, 6, 7, 8], forks=8), **tf})  # other fork settings: other forks
    assert [r["figure"] for r in other["rows"]] == ["teacher-forced PSNR (dB)"] and "differ in forks" in other["notes"][0]
    with pytest.raises(SkyloopError, match="different scenes"):
        compare_reports(a, _report([4, 5, 6, 4, 5, 6], scene="bounce"))
    for name, report in (("a", a), ("b", b)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "report.json").write_text(json.dumps(report))
    proc = cli("bench", "compare", tmp_path / "a", tmp_path / "b", "--out", tmp_path / "cmp", check=True)
    assert "B higher" in proc.stdout and (tmp_path / "cmp" / "compare.md").exists()
    proc = cli("bench", "compare", tmp_path / "a", tmp_path / "missing")
    assert proc.returncode != 0 and "no consistency report there" in proc.stderr


def test_training_throughput_bench(tmp_path, cli):
    proc = cli("bench", "train", "--preset", "tiny", "--size", "32x32", "--keys", "4", "--steps", "2", "--warmup", "1", "--out", tmp_path / "t", check=True)
    line = json.loads(proc.stdout.strip().splitlines()[-1])
    assert line["tokenizer_frames_per_s"] > 0 and line["dynamics_frames_per_s"] > 0
    assert "cpu" in line["device"] and (tmp_path / "t" / "report.md").exists()


def test_bench_train_times_the_step_that_training_runs(tmp_path, monkeypatch):
    """Not a re-implementation: the timed step is fit.py's train_step on the phases `skyloop train` fits."""
    import engine.train.fit as fit
    from engine.bench.train_speed import bench_train

    seen = []
    real_step = fit.train_step
    monkeypatch.setattr(fit, "train_step", lambda phase, *a: seen.append(type(phase).__name__) or real_step(phase, *a))
    report = bench_train(
        "tiny", size=(32, 32), keys=3, steps=2, warmup=1, threads=1, settings=["dynamics.rollout_p=0.5", "train.ema=0.9"], out=tmp_path / "bench"
    )
    assert seen == ["TokenizerPhase"] * 3 + ["DynamicsPhase"] * 3
    assert report["results"]["dynamics"]["self_forcing"] == 0.5 and report["results"]["dynamics"]["frames_per_s"] > 0
    assert "train_step" in (tmp_path / "bench" / "report.md").read_text()


def test_sideways_direction_counts_only_moves_a_sideways_key_decides():
    """A step forward shifts a first-person picture sideways too, but which way follows the view, not the key: such
    ticks are left out of the direction figure (and kept in the figure before 2026-11-29, over every move)."""
    from engine.bench.consistency import sideways_direction, sideways_keys

    names = ("forward", "back", "turn_left", "turn_right", "strafe_left", "strafe_right")
    assert sideways_keys(names) == [2, 3, 4, 5] and sideways_keys(("up", "down", "left", "right")) == [2, 3]
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (32, 64, 3), dtype=np.uint8).repeat(2, axis=0)  # a textured picture, 64x64
    real = np.stack([np.roll(base, 4 * t, axis=1) for t in range(4)])[:, None]  # moves 4 px right every tick: [T, 1, ...]
    wrong = np.stack([np.roll(base, -4 * t, axis=1) for t in range(4)])[:, None]  # moves left
    keys = np.zeros((4, 1, 6), np.float32)
    keys[1, 0, 2] = 1  # turn_left: counted
    keys[2, 0, 0] = 1  # forward alone: not counted
    keys[3, 0, 0] = keys[3, 0, 4] = 1  # forward + strafe_left: counted
    right, moves, right_any, moves_any = sideways_direction(real, real, keys, sideways_keys(names))
    assert (moves.tolist(), right.tolist(), moves_any.tolist(), right_any.tolist()) == ([2], [2], [3], [3])
    right, moves, _, _ = sideways_direction(wrong, real, keys, sideways_keys(names))
    assert moves.tolist() == [2] and right.tolist() == [0]
