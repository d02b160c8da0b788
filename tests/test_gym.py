import gymnasium as gym
import numpy as np
import pytest

from engine.errors import SkyloopError
from scenes import make_scene
from scenes.gym_adapter import GymScene


def test_cartpole_as_a_scene_is_deterministic_and_resized():
    def play(seed):
        scene = make_scene("gym:CartPole-v1", size=(48, 72))
        frames = [scene.reset(seed)]
        for t in range(6):
            frames.append(scene.step(["action_1"] if t % 2 else []))
        return np.stack(frames), scene

    a, scene = play(3)
    b, _ = play(3)
    assert a.shape == (7, 48, 72, 3) and np.array_equal(a, b)
    assert scene.keyset.names == ("action_1",), "action 0 is what happens with no key held"
    assert scene.action_of([]) == 0 and scene.action_of(["action_1"]) == 1
    assert not np.array_equal(a[0], a[-1]), "the cart moves"


def test_game_over_is_reported_and_stepping_on_raises():
    scene = make_scene("gym:CartPole-v1")
    scene.reset(0)
    for _ in range(500):
        scene.step([])
        if scene.done:
            break
    assert scene.done
    with pytest.raises(SkyloopError, match="game is over"):
        scene.step([])


def test_continuous_action_space_is_refused():
    env = gym.make("Pendulum-v1", render_mode="rgb_array")
    with pytest.raises(SkyloopError, match="Discrete"):
        GymScene(env)


def test_our_scenes_are_registered_gymnasium_envs():
    env = gym.make("scenes:skyloop/Bounce-v0")
    obs, info = env.reset(seed=4)
    assert obs.shape == (64, 64, 3) and env.action_space.n == 3
    obs2, reward, terminated, truncated, info = env.step(np.array([1, 0, 0]))
    assert obs2.shape == obs.shape and not terminated and "state" in info
    same = gym.make("scenes:skyloop/Bounce-v0")
    assert np.array_equal(same.reset(seed=4)[0], obs)
