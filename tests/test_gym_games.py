"""Gymnasium games from packages: found by their plain id, with options, and with episodes that end.

The packages are tiny fakes written to tmp_path (one small catch game), so the
tests need nothing beyond gymnasium; the well-known table is tested by name.
"""

import json
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from engine.cli import parse_env_kwargs
from engine.errors import SkyloopError
from scenes import make_scene
from scenes.gym_registry import KNOWN_PACKAGES, ensure_registered, known_package
from scenes.restarting import RESTART_STRIDE, Restarting

GAME = '''
"""A tiny catch game: a ball falls, a paddle moves; the game ends when the ball reaches the bottom row."""
import gymnasium as gym
import numpy as np
from gymnasium.envs.registration import register


class Catch(gym.Env):
    metadata = {"render_modes": ["rgb_array"], "render_fps": 15}

    def __init__(self, render_mode=None, drop_speed=1, colour="red", continuous=False, rows=10):
        self.render_mode, self.drop_speed, self.rows = render_mode, int(drop_speed), int(rows)
        self.colour = {"red": (220, 40, 40), "blue": (40, 40, 220)}[colour]
        self.action_space = gym.spaces.Box(-1, 1, (1,)) if continuous else gym.spaces.Discrete(3)
        self.observation_space = gym.spaces.Box(0, 255, (32, 32, 3), np.uint8)

    def get_action_meanings(self):
        return ["NOOP", "LEFT", "RIGHT"]

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.ball = [int(self.np_random.integers(0, 4)), int(self.np_random.integers(0, 8))]  # row, column
        self.paddle = 4
        return self.render(), {}

    def step(self, action):
        self.paddle = int(np.clip(self.paddle + (0, -1, 1)[int(action)], 0, 7))
        self.ball[0] += self.drop_speed
        done = self.ball[0] >= self.rows - 1
        reward = float(done and self.ball[1] == self.paddle)
        return self.render(), reward, done, False, {}

    def render(self):
        img = np.zeros((self.rows, 8, 3), np.uint8)
        img[min(self.ball[0], self.rows - 1), self.ball[1]] = self.colour
        img[self.rows - 1, self.paddle] = (240, 240, 240)
        return np.kron(img, np.ones((32 // self.rows + 1, 4, 1), np.uint8))[:32, :32]


register(id="{env_id}", entry_point=__name__ + ":Catch")
'''


def write_game(root, module: str, env_id: str):
    """A package `module` that registers the catch game as `env_id` when it is imported."""
    (root / module).mkdir(parents=True, exist_ok=True)
    (root / module / "__init__.py").write_text(textwrap.dedent(GAME).replace("{env_id}", env_id))
    return root


@pytest.fixture
def games(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_a_namespaced_id_finds_the_package_named_after_its_namespace(games):
    write_game(games, "catchgames", "catchgames/Catch-v0")
    assert "catchgames" not in sys.modules
    scene = make_scene("gym:catchgames/Catch-v0", size=(32, 32), env_kwargs={"drop_speed": 2, "colour": "blue"})
    assert scene.name == "gym:catchgames/Catch-v0" and scene.keyset.names == ("left", "right")
    assert scene.options() == {"env_id": "catchgames/Catch-v0", "module": "catchgames", "env_kwargs": {"drop_speed": 2, "colour": "blue"}}
    frame = scene.reset(3)
    assert frame[..., 2].max() == 220 and frame[..., 0].max() < 255, "the blue ball: the options reached the game"
    again = make_scene(scene.name, size=(32, 32), **scene.options())  # what every rebuild from a manifest or world does
    assert np.array_equal(again.reset(3), frame)


def test_the_well_known_packages_and_a_table_entry_that_is_used(games, monkeypatch):
    assert known_package("ALE/Breakout-v5") == ("ale_py", "ale-py")
    assert known_package("MiniGrid-Empty-5x5-v0")[0] == "minigrid" and known_package("highway-fast-v0")[0] == "highway_env"
    assert known_package("CartPole-v1") is None
    write_game(games, "zed_arcade_provider", "Zed/Catch-v0")  # a module no guess from the namespace would find
    monkeypatch.setitem(KNOWN_PACKAGES, "Zed/", ("zed_arcade_provider", "zed-arcade"))
    monkeypatch.setitem(KNOWN_PACKAGES, "Missing/", ("not_installed_anywhere", "missing-arcade"))
    assert ensure_registered("Zed/Catch-v0") == ("Zed/Catch-v0", "zed_arcade_provider")
    with pytest.raises(SkyloopError, match="pip install missing-arcade"):
        ensure_registered("Missing/Catch-v0")


def test_other_packages_by_gym_module_or_the_package_prefix_and_the_error_names_the_fix(games):
    write_game(games, "oddly_named_pkg", "Odd/Catch-v0")
    with pytest.raises(SkyloopError) as err:
        make_scene("gym:Odd/Catch-v0")
    assert "--gym-module PKG" in str(err.value) and "PKG:Odd/Catch-v0" in str(err.value)
    scene = make_scene("gym:oddly_named_pkg:Odd/Catch-v0")
    assert scene.name == "gym:Odd/Catch-v0" and scene.options()["module"] == "oddly_named_pkg"
    write_game(games, "other_odd_pkg", "Odder/Catch-v0")
    assert make_scene("gym:Odder/Catch-v0", module="other_odd_pkg").options()["module"] == "other_odd_pkg"


def test_an_option_that_makes_the_action_space_discrete_is_named(games):
    write_game(games, "contgames", "contgames/Catch-v0")
    with pytest.raises(SkyloopError, match="--gym-kwargs"):
        make_scene("gym:contgames/Catch-v0", env_kwargs={"continuous": True})
    with pytest.raises(SkyloopError, match="does not take"):
        make_scene("gym:contgames/Catch-v0", env_kwargs={"no_such_option": 1})


def test_env_kwargs_are_parsed_sensibly():
    got = parse_env_kwargs(
        ["frameskip=4", "repeat_action_probability=0", "p=0.25", "continuous=False", "mode=none", "difficulty=null", "name=hard", "sizes=[1,2]", 'label="3"']
    )
    assert got == {
        "frameskip": 4,
        "repeat_action_probability": 0,
        "p": 0.25,
        "continuous": False,
        "mode": None,
        "difficulty": None,
        "name": "hard",
        "sizes": [1, 2],
        "label": "3",
    }
    with pytest.raises(SkyloopError, match="key=value"):
        parse_env_kwargs(["frameskip"])


def test_a_game_that_ends_restarts_with_a_derived_seed(games):
    write_game(games, "restartgames", "restartgames/Catch-v0")
    scene = Restarting(make_scene("gym:restartgames/Catch-v0", size=(32, 32)))
    frames = [scene.reset(5)] + [scene.step([]) for _ in range(40)]  # games of at most 9 ticks
    assert scene.restarts >= 4 and not scene.done
    plain = make_scene("gym:restartgames/Catch-v0", size=(32, 32))
    first = plain.reset(5)
    n = 1
    while not plain.done:
        plain.step([])
        n += 1
    assert np.array_equal(frames[0], first) and np.array_equal(frames[n], plain.reset(5 + RESTART_STRIDE))


# ---- the whole loop on a game whose episodes end: collect -> train -> bench -> play ---------------------------------
def test_collect_train_bench_and_play_a_game_whose_episodes_end(tmp_path, cli):
    write_game(tmp_path / "pkgs", "endgames", "endgames/Catch-v0")
    env = {"PYTHONPATH": f"{tmp_path / 'pkgs'}:{Path(__file__).resolve().parents[1]}"}
    data, world, bench = tmp_path / "data", tmp_path / "catch.safetensors", tmp_path / "bench"
    proc = cli(
        "collect",
        "--gym",
        "endgames/Catch-v0",
        "--gym-kwargs",
        "colour=blue",
        "drop_speed=1",
        "--size",
        "32x32",
        "--episodes",
        "6",
        "--steps",
        "40",
        "--out",
        data,
        env=env,
        check=True,
    )
    manifest = json.loads((data / "manifest.json").read_text())
    assert manifest["scene"] == "gym:endgames/Catch-v0"
    assert manifest["scene_options"] == {"env_id": "endgames/Catch-v0", "module": "endgames", "env_kwargs": {"colour": "blue", "drop_speed": 1}}
    assert all(e["frames"] < 12 for e in manifest["episodes"]), "each game ends within 10 ticks"
    cli(
        "train",
        "--data",
        data,
        "--preset",
        "tiny",
        "--out",
        world,
        "--steps",
        "20",
        "--tokenizer-steps",
        "20",
        "--threads",
        "1",
        "--eval-every",
        "20",
        "--checkpoint-every",
        "1000",
        "--no-progress",
        "--run-dir",
        tmp_path / "run",
        env=env,
        check=True,
    )
    info = json.loads(cli("info", world, "--json", env=env, check=True).stdout)
    assert info["scene_options"]["env_kwargs"] == {"colour": "blue", "drop_speed": 1}
    proc = cli("bench", "consistency", world, "--quick", "--out", bench, "--threads", "1", env=env, check=True)
    line = json.loads(proc.stdout.strip().splitlines()[-1])
    assert line["games_ended_ar"] == 2 and all(1 <= n <= 10 for n in line["game_lengths_ar"])
    assert line["psnr_ar"]["1"] is not None and line["psnr_ar"]["32"] is None, "no rollout is still on at step 32"
    assert line["games_restarted_explore"] > 0
    report = (bench / "report.md").read_text()
    assert "The real game ended in 2 of 2 rollouts" in report and (bench / "autoregressive.png").stat().st_size > 200
    proc = cli("play", world, "--headless", "--frames", "30", "--out", tmp_path / "rec", env=env, check=True)
    assert json.loads(proc.stdout.strip().splitlines()[-1])["frames"] == 30
    proc = cli(
        "play",
        "--scene",
        "gym:endgames/Catch-v0",
        "--gym-kwargs",
        "colour=blue",
        "--size",
        "32x32",
        "--headless",
        "--frames",
        "30",
        "--out",
        tmp_path / "rec2",
        env=env,
        check=True,
    )
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["frames"] == 30 and result["games_restarted"] >= 2
    log = next((tmp_path / "rec2").glob("*.jsonl"))
    proc = cli("replay", log, env=env, check=True)
    assert "bit-identical" in proc.stdout
