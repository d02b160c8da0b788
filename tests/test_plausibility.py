"""Plausibility and foreground metrics: real frames of unseen episodes reach the ceiling, melted or blurred ones do not,
and a world that drops the small moving things scores low on the foreground."""

import numpy as np

from engine.bench import metrics as M
from engine.bench.plausibility import PLAUSIBLE_CAP, FrameBank, coarse, count_objects, masked_psnr, real_bank
from scenes import make_scene


def _box_blur(frames):
    x = frames.astype(np.float32)
    for axis in (1, 2):
        x = sum(np.roll(x, s, axis) for s in (-2, -1, 0, 1, 2)) / 5
    return x.astype(np.uint8)


def test_unseen_real_frames_beat_flat_and_blurred_ones():
    for scene in ("overworld", "bounce"):
        make = lambda: make_scene(scene)  # noqa: E731
        bank = FrameBank(real_bank(make, list(range(101, 109)), 500))  # the benchmark's bank size
        other = real_bank(make, [120], 40)  # a held-out episode the bank has never seen
        flat = np.broadcast_to(other.mean(axis=(1, 2), keepdims=True).astype(np.uint8), other.shape)  # each frame one colour
        real, melted, blurred = (bank.nearest(x) for x in (other, flat, _box_blur(other)))
        assert real["psnr"].mean() > max(melted["psnr"].mean(), blurred["psnr"].mean()) + 3, scene  # patches
        if scene == "overworld":  # whole frames: a bank of 4,000 covers the overworld, not bounce's arrangements of balls
            assert real["frame_psnr"].mean() > max(melted["frame_psnr"].mean(), blurred["frame_psnr"].mean()) + 3
    own = bank.nearest(bank.frames[:5])
    assert own["psnr"].min() == own["frame_psnr"].min() == PLAUSIBLE_CAP, "a frame in the bank is its own nearest neighbour"


def test_a_smooth_melted_maze_is_caught_by_the_whole_frame_scale():
    """Each 8x8 patch of one smooth wall colour has a real match (walls seen up close), the whole frame has none."""
    make = lambda: make_scene("maze")  # noqa: E731
    bank = FrameBank(real_bank(make, list(range(101, 109)), 500))  # the benchmark's bank: whole frames need its size
    other = real_bank(make, [120], 60)
    wall = np.broadcast_to(np.median(other, axis=(1, 2), keepdims=True).astype(np.uint8), other.shape)
    real, melted = bank.nearest(other), bank.nearest(wall)
    assert real["frame_psnr"].mean() > melted["frame_psnr"].mean() + 2, (real["frame_psnr"].mean(), melted["frame_psnr"].mean())


def test_the_patch_search_equals_a_brute_force_one():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (30, 16, 16, 3), dtype=np.uint8)
    queries = rng.integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    got = FrameBank(frames, patch=8).nearest(queries)["psnr"]
    want = []
    for q in queries:
        errs = [min(((q[y : y + 8, x : x + 8].astype(float) - f[y : y + 8, x : x + 8]) ** 2).mean() for f in frames) for y in (0, 8) for x in (0, 8)]
        want.append(10 * np.log10(255.0**2 / np.mean(errs)))
    np.testing.assert_allclose(got, want, rtol=1e-4)


def test_a_world_that_drops_the_balls_scores_low_on_the_foreground():
    make = lambda: make_scene("bounce")  # noqa: E731
    bank = FrameBank(real_bank(make, [201, 202, 203], 150))
    truth = real_bank(make, [204], 60)
    assert 0 < bank.masks.mean() < 0.3, "bounce: the moving things are a small share of the picture"
    background_only = np.ascontiguousarray(np.broadcast_to(bank.background, truth.shape))
    whole = M.psnr(background_only, truth).mean()
    fg = np.nanmean(masked_psnr(background_only, truth, bank.foreground(truth)))
    assert fg < whole - 5, (whole, fg)  # the whole frame hides what the foreground shows
    dropped, real = bank.nearest(background_only), bank.nearest(truth)
    assert dropped["psnr"].mean() >= real["psnr"].mean(), "background patches are all real: whole-frame plausibility is fooled"
    assert dropped["foreground_share"].max() == 0 < real["foreground_share"].min(), "the foreground share is not"
    assert np.isnan(dropped["foreground_psnr"]).all() and np.isfinite(real["foreground_psnr"]).all()


def test_a_game_whose_frames_recur_exactly_keeps_a_finite_plausibility_gap():
    """Breakout waiting for its serve shows the same frame in every episode: the real frames' nearest neighbour is exact.
    The ceiling stops at PLAUSIBLE_CAP (one grey level RMS), so a close world is a few dB off, not 70+."""
    rng = np.random.default_rng(0)
    still = rng.integers(0, 255, (1, 16, 16, 3), dtype=np.uint8).repeat(6, axis=0)
    bank = FrameBank(still)
    real = bank.nearest(still[:2])
    assert np.all(real["psnr"] == PLAUSIBLE_CAP) and np.all(real["frame_psnr"] == PLAUSIBLE_CAP)
    close = np.clip(still[:2].astype(int) + rng.integers(-3, 4, still[:2].shape), 0, 255).astype(np.uint8)  # ~2 grey levels RMS
    gap = PLAUSIBLE_CAP - bank.nearest(close)["frame_psnr"]
    assert np.all((gap > 0) & (gap < 8))


def test_flicker_ratio_of_a_still_real_scene_is_finite_and_still_orders_worlds():
    from engine.bench.metrics import flicker_ratio

    assert flicker_ratio(0.0, 0.0) == 0.0
    assert 1 < flicker_ratio(1.28, 0.0) < 5, "a shimmering world over a still scene: a few times, not 1e9"
    assert flicker_ratio(1.351, 10.832) == 1.351 / 10.832, "where the real scene moves: the plain quotient"


def test_a_world_stuck_before_one_wall_has_precision_but_no_coverage():
    """Precision and coverage (FrameBank.reach): a held-out real run has both; a world that shows one real view over and
    over has precision (the view is real) and next to no coverage; a melted one loses both."""
    make = lambda: make_scene("maze")  # noqa: E731
    bank = FrameBank(real_bank(make, list(range(101, 109)), 500))  # the benchmark's bank
    other = real_bank(make, [120, 121], 250)  # held-out real runs
    real_in, real_cov = bank.reach(coarse(other))
    wall = np.repeat(other[np.flatnonzero(real_in)[len(other) // 4]][None], len(other), 0)  # one real view, held
    melted = np.broadcast_to(np.median(other, axis=(1, 2), keepdims=True).astype(np.uint8), other.shape)
    (wall_in, wall_cov), (melt_in, melt_cov) = (bank.reach(coarse(x)) for x in (wall, melted))
    assert real_in.mean() > 0.7 and real_cov.mean() > 0.05, (real_in.mean(), real_cov.mean())
    assert wall_in.all() and wall_cov.mean() < 0.1 * real_cov.mean(), (wall_cov.mean(), real_cov.mean())
    assert melt_in.mean() < 0.5 * real_in.mean() and melt_cov.mean() < 0.5 * real_cov.mean(), (melt_in.mean(), melt_cov.mean())
    own_in, own_cov = bank.reach(coarse(bank.frames[:50]))
    assert own_in.all(), "a bank frame lies in its own ball"


def test_objects_are_counted_as_connected_regions_of_some_size():
    masks = np.zeros((3, 20, 20), bool)
    masks[0, 1:4, 1:4] = masks[0, 10:14, 10:12] = True  # two blobs of 9 and 8 pixels
    masks[0, 18, 18] = True  # a speck
    masks[1, 5, :] = masks[1, :, 5] = True  # a cross: one region
    masks[1, 12:20:2, 10:19] = True  # a comb, its teeth joined by a spine: one region
    masks[1, 12:20, 18] = True
    masks[2, 2:5, 2:5] = masks[2, 5:8, 5:8] = True  # two squares touching at a corner only: two regions
    assert count_objects(masks).tolist() == [2, 2, 2]
    assert count_objects(masks, min_pixels=1).tolist() == [3, 2, 2]
    assert count_objects(np.zeros((4, 8, 8), bool)).tolist() == [0] * 4


def test_bounce_counts_its_balls_and_block_and_a_world_that_drops_balls_counts_fewer():
    """Real bounce frames count the balls and the block (fewer only while two of them touch); the same game with two
    balls counts two fewer; the bare background counts none."""
    bank = FrameBank(real_bank(lambda: make_scene("bounce"), [201, 202, 203], 150))
    for balls in (4, 2):
        frames = real_bank(lambda: make_scene("bounce", balls=balls), [204], 60)
        counts = bank.nearest(frames)["objects"]
        assert np.median(counts) == balls + 1 and counts.max() <= balls + 1, (balls, np.bincount(counts))
    assert bank.nearest(np.ascontiguousarray(bank.background[None]))["objects"].tolist() == [0]
