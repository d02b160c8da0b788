"""Canvas memory (engine/world/canvas.py): it follows the camera, keeps the player sprite out, and shows a place
as it was when the camera comes back, from frames and keys alone."""

import numpy as np
import pytest

from engine.dynamics.sampler import FlowSampler, SamplerConfig
from engine.errors import SkyloopError
from engine.world.canvas import Canvas
from engine.world.session import World
from scenes import make_scene

RIGHT, LEFT = np.array([0, 0, 0, 1], np.float32), np.array([0, 0, 1, 0], np.float32)


def _walk(seed: int, keys: list[np.ndarray], size=(64, 64)):
    """Real overworld frames (float [0, 1]) and camera offsets (pixels, (dy, dx)) along a key sequence."""
    scene = make_scene("overworld", size=size)
    frames = [scene.reset(seed) / 255.0]
    start = scene.state()
    offsets = [(0, 0)]
    px = size[0] // 8  # pixels per tile: the scene shows 8 tiles across
    for k in keys:
        frames.append(scene.step([n for n, held in zip(scene.keyset.names, k) if held]) / 255.0)
        s = scene.state()
        offsets.append((round((s["y"] - start["y"]) * px), round((s["x"] - start["x"]) * px)))
    scene.close()
    return np.stack(frames).astype(np.float32), offsets


def _out_and_back(ticks: int = 40):
    """A seed whose walk right then back left really moves (not blocked by water), its frames and offsets."""
    keys = [RIGHT] * ticks + [LEFT] * ticks
    for seed in range(40):
        frames, offsets = _walk(seed, keys)
        if offsets[ticks][1] >= 2 * ticks - 4 and offsets[-1] == (0, 0):
            return keys, frames, offsets
    pytest.fail("no seed among 40 walks right and back unblocked")


def test_the_canvas_follows_the_camera_and_keeps_the_sprite_out():
    rng = np.random.default_rng(0)
    keys, held = [], np.zeros(4, np.float32)
    for _ in range(300):  # sticky random keys, combinations included
        if rng.random() < 0.1:
            held = (rng.random(4) < 0.35).astype(np.float32)
        keys.append(held)
    frames, offsets = _walk(5, keys)
    canvas = Canvas((64, 64))
    for f, k, off in zip(frames, [np.zeros(4, np.float32)] + keys, offsets):
        canvas.observe(f, k)
        assert canvas.origin == off, "the canvas's camera is where the scene's is, to the pixel"
    assert canvas.written > 64 * 64, "it stored more than one screen of terrain"
    overlay = canvas.overlay()
    rows, cols = np.nonzero(overlay)
    assert len(rows) and rows.min() >= 16 and rows.max() < 48 and cols.min() >= 16 and cols.max() < 48, "the overlay is the centred sprite"
    stored, known = canvas.view(canvas.origin)
    assert known.mean() > 0.5
    terrain = known & ~overlay
    assert np.abs(stored - frames[-1])[terrain].max() < 1e-6, "what it stored is the terrain the frame shows, not a sprite"


def test_a_world_that_forgets_is_shown_what_it_showed_before():
    """Out 40 ticks and back: on the way back the world paints the strip the camera reveals wrong (flat grey, as a
    world paints what left its context); the canvas shows the real view again, sprite included."""
    keys, frames, offsets = _out_and_back()
    n = len(keys) // 2
    canvas = Canvas((64, 64))
    canvas.observe(frames[0], np.zeros(4, np.float32))
    back, forgetful = [], []
    for t, k in enumerate(keys, start=1):
        world = frames[t].copy()
        if t > n:
            world[:, :2] = 0.5  # the strip the camera reveals (2 pixels a tick), forgotten
        shown = canvas.compose(world, k)
        # On the way back every point of the view was seen on the way out from two places `settle` apart, except
        # the start's leftmost columns (seen only before the camera had moved that far).
        if t > n + 4 and offsets[t][1] >= canvas.settle:
            back.append(shown - frames[t])
            forgetful.append(world - frames[t])
    assert len(back) >= n // 2
    assert np.abs(np.stack(back)).max() < 1e-6, "every returning frame is the real one"
    assert np.abs(np.stack(forgetful)).max() > 0.3, "(while the world's own frames were not)"


def test_where_nothing_can_be_matched_the_camera_keeps_the_keys_usual_move():
    """A view with nothing to match (a world melted into plain colour) must not freeze the camera, nor may the last
    move measured (a blocked tick) set the rule, nor may noise pass for a move."""
    rng = np.random.default_rng(2)
    world = rng.random((64, 400, 3)).astype(np.float32)
    canvas = Canvas((64, 64))
    x = 0
    canvas.observe(world[:, x : x + 64], RIGHT)
    for _ in range(20):  # walking right, 2 pixels a tick
        x += 2
        canvas.observe(world[:, x : x + 64], RIGHT)
    canvas.observe(world[:, x : x + 64], RIGHT)  # blocked once
    assert canvas.origin == (0, x)
    for tick in range(5):  # the view melts into plain colour: nothing left to match
        canvas.observe(np.full((64, 64, 3), 0.4, np.float32), RIGHT)
        assert canvas.origin == (0, x + 2 * (tick + 1)), "it keeps moving as the keys usually move it"
    x = canvas.origin[1]
    canvas.observe(np.full((64, 64, 3), 0.4, np.float32), LEFT)
    assert canvas.origin == (0, x), "keys never seen moving anything: no move"


def test_a_canvas_that_knows_nothing_changes_nothing():
    canvas = Canvas((64, 64))
    rng = np.random.default_rng(1)
    frame = rng.random((64, 64, 3)).astype(np.float32)
    canvas.observe(frame, np.zeros(4, np.float32))
    for _ in range(5):  # no camera move: nothing is ever seen from two places, so nothing is stored
        assert np.array_equal(canvas.compose(frame, np.zeros(4, np.float32)), frame)
    assert canvas.written == 0


def test_canvas_settings_are_checked_and_described():
    with pytest.raises(ValueError, match="canvas shift must be >= 1"):
        FlowSampler(SamplerConfig(canvas=True, canvas_shift=0))
    assert "canvas memory (camera moves up to 4 px a tick)" in SamplerConfig(canvas=True).describe()
    assert "canvas" not in SamplerConfig().describe()


def test_a_world_with_canvas_memory_steps_restores_and_batches(tiny_world):
    """From a moving real context the canvas knows terrain and edits the world's frames; a save state brings the
    canvas back with the cache; each world of a batch keeps its own canvas."""
    with pytest.raises(SkyloopError, match="canvas shift"):
        World.load(tiny_world, backend="torch", sampler={"canvas": True, "canvas_shift": 0})
    keys = [RIGHT] * 12
    clip, _ = _walk(7, keys, size=(32, 32))
    clip = np.rint(clip * 255).astype(np.uint8)
    context_keys = np.stack([np.zeros(4, np.float32)] + keys)
    world = World.load(tiny_world, backend="torch", sampler={"canvas": True})
    plain = World.load(tiny_world, backend="torch")
    world.reset(clip, seed=1, context_keys=context_keys)
    plain.reset(clip, seed=1, context_keys=context_keys)
    assert world.canvases[0].written > 0
    ahead = [k.astype(np.uint8) for k in (RIGHT, RIGHT, LEFT, LEFT, LEFT)]
    with_canvas = np.stack([world.step_unit(k) for k in ahead])
    without = np.stack([plain.step_unit(k) for k in ahead])
    assert np.abs(with_canvas - without).max() > 0.05, "the canvas edits what the world draws"
    state = world.snapshot()
    more = np.stack([world.step_unit(k) for k in ahead])
    world.restore(state)
    np.testing.assert_array_equal(more, np.stack([world.step_unit(k) for k in ahead]))
    world.reset([clip, clip[::-1]], seed=1, context_keys=np.stack([context_keys, context_keys]))
    assert [c.written > 0 for c in world.canvases] == [True, True], "one canvas per world of a batch"
    assert world.canvases[0].origin != world.canvases[1].origin, "each following its own camera"
    batch = np.stack([world.step_unit(np.stack([k, k])) for k in ahead])
    assert batch.shape == (5, 2, 32, 32, 3)
