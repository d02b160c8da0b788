"""Retrace memory (engine/world/trail.py): keys that undo the last move show the frame from before it again, from
frames and keys alone; still ticks are not steps of the way; a world with it comes back to its departure exactly."""

import numpy as np
import pytest

from engine.dynamics.sampler import SamplerConfig
from engine.errors import SkyloopError
from engine.keys import KeySet, default_bindings
from engine.record.actionlog import read_action_log
from engine.world.session import World
from engine.world.trail import Trail, inverse_indices

FWD, BACK, JUMP = (np.eye(3, dtype=np.float32)[i] for i in range(3))
NONE = np.zeros(3, np.float32)


def _frames(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (8, 8, 3), dtype=np.uint8) for _ in range(n)]


def _trail(**kw) -> Trail:
    return Trail(np.array([1, 0, -1]), **kw)  # forward <-> back; jump has no opposite


def test_a_trail_walks_back_the_way_it_came():
    frames = _frames(6)
    trail = _trail()
    trail.start(frames[0], np.full((2, 2), 0.0))
    for i in range(1, 6):
        assert trail.undo(FWD) is None, "forward does not undo forward"
        trail.record(frames[i], np.full((2, 2), float(i)), FWD)
    trail.record(frames[5], np.full((2, 2), 9.0), FWD)  # a move into a wall: the picture did not change
    trail.record(frames[0], np.full((2, 2), 9.0), NONE)  # no key held: whatever the world drew, the player stood still
    assert len(trail) == 5
    for i in range(4, -1, -1):
        frame, tokens = trail.undo(BACK)
        np.testing.assert_array_equal(frame, frames[i])
        assert (tokens == i).all(), "the tokens committed for that frame come back with it"
    assert trail.undo(BACK) is None, "back from the start is new ground"
    assert len(trail) == 0


def test_only_the_exact_inverse_of_the_last_step_undoes_it():
    frames = _frames(4, seed=1)
    trail = _trail()
    trail.start(frames[0], np.zeros(1))
    trail.record(frames[1], np.zeros(1), JUMP)
    assert trail.undo(JUMP) is None and trail.undo(BACK) is None, "a key without an opposite (jump) cannot be undone"
    trail.record(frames[2], np.zeros(1), FWD + JUMP)
    assert trail.undo(BACK) is None and trail.undo(BACK + JUMP) is None, "nor can two keys at once"
    trail.record(frames[3], np.zeros(1), BACK)
    assert trail.undo(BACK) is None and trail.undo(FWD + JUMP) is None and trail.undo(NONE) is None
    np.testing.assert_array_equal(trail.undo(FWD)[0], frames[2])


def test_a_trail_keeps_its_depth_and_restores():
    frames = _frames(8, seed=2)
    trail = _trail(depth=3)
    trail.start(frames[0], np.zeros(1))
    for f in frames[1:]:
        trail.record(f, np.zeros(1), FWD)
    assert len(trail) == 3, "the oldest steps go first"
    state = trail.snapshot()
    assert trail.undo(BACK) is not None and len(trail) == 2
    trail.restore(state)
    assert len(trail) == 3
    for i in (6, 5, 4):
        np.testing.assert_array_equal(trail.undo(BACK)[0], frames[i])
    assert trail.undo(BACK) is None


def test_inverse_keys_and_settings():
    keys = KeySet(("forward", "back", "turn_left", "turn_right", "jump"), default_bindings(("forward", "back", "turn_left", "turn_right", "jump")))
    assert inverse_indices(keys).tolist() == [1, 0, 3, 2, -1]
    assert "retrace memory" in SamplerConfig(retrace=True).describe()
    assert "retrace" not in SamplerConfig().describe()


def test_retrace_is_refused_for_keys_that_undo_nothing(tiny_world):
    from dataclasses import replace

    from engine.world.bundle import load_bundle

    spec = load_bundle(tiny_world).spec
    spec = replace(spec, keyset=KeySet(("fire", "jump"), default_bindings(("fire", "jump"))))
    with pytest.raises(SkyloopError, match="retrace memory needs keys that undo each other"):
        World(spec, None, None, None, None, SamplerConfig(retrace=True))


UP, DOWN, LEFT, RIGHT = (np.eye(4, dtype=np.uint8)[i] for i in range(4))


def test_a_world_with_retrace_memory_comes_back_to_its_departure(tiny_world):
    """Out and back by the exact inverse keys: the world shows its departure frame again, bit for bit, without
    running the model on the way back; a save state brings the trail back; each world of a batch keeps its own."""
    world = World.load(tiny_world, backend="torch", sampler={"retrace": True})
    depart = world.reset(seed=2)
    out = [RIGHT, RIGHT, UP, UP, LEFT]
    seen = [world.step(k) for k in out]
    assert len(world.trails[0]) == len(out), "every tick moved the picture"
    state = world.snapshot()
    calls = []
    predict = world.rollout.predict
    world.rollout.predict = lambda keys: calls.append(keys) or predict(keys)
    inverse = {0: DOWN, 1: UP, 2: RIGHT, 3: LEFT}
    back = [inverse[int(np.flatnonzero(k)[0])] for k in out[::-1]]
    returned = [world.step(k) for k in back]
    assert calls == [], "the way back is remembered, not generated"
    for got, want in zip(returned, seen[-2::-1] + [depart]):
        np.testing.assert_array_equal(got, want)
    time = world.time
    world.step(DOWN)
    assert len(calls) == 1, "past the departure the world draws again"
    world.step(UP + RIGHT)
    world.step(DOWN + LEFT)
    assert len(calls) == 3, "two keys at once are not undone"
    world.restore(state)
    assert world.time == time - len(back) and len(world.trails[0]) == len(out)
    np.testing.assert_array_equal(world.step(back[0]), seen[-2])

    frames = world.reset([2, 3], seed=2)
    both = world.step(np.stack([RIGHT, RIGHT]))
    mixed = world.step(np.stack([LEFT, UP]))  # the first world steps back, the second goes on
    np.testing.assert_array_equal(mixed[0], frames[0])
    assert len(world.trails[0]) == 0 and len(world.trails[1]) == 2
    assert not np.array_equal(mixed[1], both[1])


def test_a_retrace_clip_replays_bit_identically(tiny_world, tmp_path, cli):
    """Played out and back with retrace on: the log keeps the setting, the replay uses it, frame for frame."""
    keys = tmp_path / "keys.txt"
    keys.write_text("right\nright\nup\n\ndown\nleft\nleft\nleft\n")
    out = tmp_path / "rec"
    cli("play", tiny_world, "--headless", "--frames", "8", "--keys", keys, "--retrace", "on", "--out", out, "--seed", "1", check=True)
    log = sorted(out.glob("*.jsonl"))[0]
    header, _ = read_action_log(log)
    assert header["sampler"]["retrace"] is True
    proc = cli("replay", log, "--out", tmp_path / "again.mp4", check=True)
    assert "9/9 identical" in proc.stdout


def test_a_world_with_retrace_starts_its_way_from_the_context(tiny_world):
    """Context frames with their keys are steps of the way: stepping back from the context's end shows its frames."""
    world = World.load(tiny_world, backend="torch", sampler={"retrace": True})
    world.reset(seed=5)
    clip = np.stack([world.step(k) for k in (RIGHT, RIGHT, RIGHT)])
    world.reset(clip, seed=5, context_keys=np.stack([np.zeros(4), RIGHT, RIGHT]).astype(np.float32))
    assert len(world.trails[0]) == 2
    np.testing.assert_array_equal(world.step(LEFT), clip[1])
    np.testing.assert_array_equal(world.step(LEFT), clip[0])
