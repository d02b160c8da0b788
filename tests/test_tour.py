"""The tour (`--keys tour`): plays every scene like a person, never holds a key with its opposite."""

import numpy as np
import pytest

from engine.actions import StickyRandom
from engine.record.actionlog import read_action_log
from scenes import SCENES, make_scene
from scenes.tour import make_tour


def opposite_pairs(keyset, keys) -> list:
    return [(k, keyset.opposite(k)) for k in keys if keyset.opposite(k) in keys]


def play_tour(name: str, seed: int, ticks: int):
    scene = make_scene(name, size=(32, 32))
    frames = [scene.reset(seed)]
    tour = make_tour(scene, np.random.default_rng(seed))
    keys, poses, places = [], [], []
    for _ in range(ticks):
        held = tour.act(scene)
        keys.append(list(held))
        frames.append(scene.step(held))
        state = scene.state()
        poses.append(state["pose"])
        places.append(state.get("cell") or state.get("tile"))
    scene.close()
    return keys, np.stack(frames), poses, places


@pytest.mark.parametrize("name", list(SCENES))
def test_the_tour_moves_through_every_scene_and_never_holds_opposites(name):
    keys, frames, poses, places = play_tour(name, seed=4, ticks=300)
    scene = make_scene(name)
    assert not [p for k in keys for p in opposite_pairs(scene.keyset, k)]
    assert all(set(k) <= set(scene.keyset.names) for k in keys)
    changed = np.mean([not np.array_equal(a, b) for a, b in zip(frames, frames[1:])])
    assert changed > 0.8, f"{name}: the frame changed on only {changed:.0%} of the ticks"
    assert sum(1 for k in keys if not k) < 0.2 * len(keys), f"{name}: stood still too often"
    assert len(set(poses)) > 100, f"{name}: only {len(set(poses))} distinct poses in 300 ticks"
    if name in ("maze", "overworld"):  # grid levels: it walks somewhere, and comes back
        assert len(set(places)) >= 12, f"{name}: visited only {len(set(places))} cells"


def test_the_maze_tour_turns_at_junctions_and_comes_back():
    keys, _, _, places = play_tour("maze", seed=0, ticks=300)
    turning_in_place = sum(1 for k in keys if k in (["turn_left"], ["turn_right"]))
    assert turning_in_place > 15 and sum(1 for k in keys if k == ["forward"]) > 100
    assert places[-1] != places[0] and places[0] in places[100:], "it returns to where it started"


@pytest.mark.parametrize("name", list(SCENES))
def test_the_tour_is_deterministic_given_a_seed(name):
    a, fa, _, _ = play_tour(name, seed=7, ticks=120)
    b, fb, _, _ = play_tour(name, seed=7, ticks=120)
    c, _, _, _ = play_tour(name, seed=8, ticks=120)
    assert a == b and np.array_equal(fa, fb) and a != c


def test_opposite_keys_are_dropped_centrally():
    from scenes.maze import KEYS as MAZE
    from scenes.overworld import KEYS as OVERWORLD

    assert MAZE.opposite("turn_left") == "turn_right" and MAZE.opposite("forward") == "back"
    assert MAZE.opposite("strafe_right") == "strafe_left" and OVERWORLD.opposite("up") == "down"
    assert MAZE.without_opposites(["forward", "turn_left", "turn_right"]) == ["forward"]
    assert MAZE.without_opposites(np.array([1, 1, 0, 1, 0, 0], np.uint8)) == ["turn_right"]
    assert OVERWORLD.without_opposites(["up", "left"]) == ["up", "left"]
    policy = StickyRandom.for_keyset(MAZE, np.random.default_rng(0))
    assert not [v for v in policy.vectors if opposite_pairs(MAZE, MAZE.held_names(v))]


def test_a_gymnasium_game_gets_one_sticky_key_at_a_time():
    pytest.importorskip("gymnasium")
    scene = make_scene("gym:CartPole-v1", size=(32, 32))
    scene.reset(0)
    tour = make_tour(scene, np.random.default_rng(0))
    keys = []
    for _ in range(200):
        held = tour.act(scene)
        keys.append(tuple(held))
        scene.step(held)
        if scene.done:
            scene.reset(len(keys))
    assert all(len(k) <= 1 for k in keys) and len(set(keys)) == 2
    switches = sum(a != b for a, b in zip(keys, keys[1:]))
    assert 0 < switches < len(keys) / 2, "sticky: keys are held for a while"
    scene.close()


def test_headless_play_with_the_tour_drives_a_world_by_its_real_scene(tiny_world, tmp_path, cli):
    """The tiny world is an overworld: the tour reads the real overworld stepping beside it."""
    out = tmp_path / "rec"
    proc = cli("play", tiny_world, "--headless", "--frames", "60", "--keys", "tour", "--out", out, check=True)
    assert "sticky keys instead" not in proc.stdout
    header, ticks = read_action_log(sorted(out.glob("*.jsonl"))[0])
    scene = make_scene("overworld")
    keys = [t["keys"] for t in ticks[1:]]
    assert len(keys) == 60 and not [p for k in keys for p in opposite_pairs(scene.keyset, k)]
    reference, _, _, _ = play_tour("overworld", seed=0, ticks=60)  # the same tour on the scene alone
    assert keys == reference


def test_an_unknown_keys_source_is_named(tiny_world, tmp_path, cli):
    proc = cli("play", tiny_world, "--headless", "--frames", "3", "--keys", "wander", "--out", tmp_path)
    assert proc.returncode == 1 and "--keys 'wander': not one of random, tour" in proc.stderr
