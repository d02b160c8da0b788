import functools
import json
import os

import numpy as np
import pytest

from engine.data.collect import collect
from engine.data.dataset import Dataset
from engine.data.episodes import EpisodeError, read_episode, write_episode
from engine.data.importer import DataImportError, import_dataset
from engine.errors import SkyloopError
from engine.record.video import read_video
from scenes import make_scene
from scenes.explore import make_policy


def _collect(out, name, episodes=2, steps=24, seed=5, workers=1, size=(64, 64)):
    return collect(out, functools.partial(make_scene, name, size=size), make_policy, episodes=episodes, steps=steps, seed=seed, workers=workers, progress=False)


def _checksums(ds):
    return [e.sha256 for e in ds.manifest.episodes]


@pytest.mark.parametrize("name", ["maze", "overworld", "bounce"])
def test_collecting_twice_with_the_same_seed_gives_identical_checksums(tmp_path, name):
    a = _collect(tmp_path / "a", name)
    b = _collect(tmp_path / "b", name)
    c = _collect(tmp_path / "c", name, seed=6)
    assert _checksums(a) == _checksums(b)
    assert _checksums(a) != _checksums(c)
    assert a.manifest.content_hash() == b.manifest.content_hash()
    frames, keys = a.load(a.manifest.episodes[0])
    assert frames.shape == (25, 64, 64, 3) and keys.shape == (25, len(a.keyset))
    assert keys[0].sum() == 0 and keys[1:].sum() > 0


def test_workers_do_not_change_the_data(tmp_path):
    one = _collect(tmp_path / "one", "overworld", episodes=3)
    two = _collect(tmp_path / "two", "overworld", episodes=3, workers=2)
    assert _checksums(one) == _checksums(two)


def test_collect_resumes_and_redoes_nothing(tmp_path, capsys):
    out = tmp_path / "ds"
    full = _checksums(_collect(out, "bounce", episodes=3))
    (out / "ep_000001.npz").unlink()
    mtime0 = os.path.getmtime(out / "ep_000000.npz")
    again = _collect(out, "bounce", episodes=3)
    assert "1 to go" in capsys.readouterr().out
    assert _checksums(again) == full
    assert os.path.getmtime(out / "ep_000000.npz") == mtime0, "a finished episode was rewritten"
    _collect(out, "bounce", episodes=3)
    assert "nothing to do" in capsys.readouterr().out


def test_collect_refuses_to_mix_datasets(tmp_path):
    _collect(tmp_path / "ds", "bounce", episodes=1)
    with pytest.raises(SkyloopError, match="different dataset"):
        _collect(tmp_path / "ds", "overworld", episodes=1)


def test_collect_from_a_gymnasium_game_ends_episodes_with_the_game(tmp_path):
    ds = collect(tmp_path / "cp", functools.partial(make_scene, "gym:CartPole-v1", size=(64, 96)), make_policy, episodes=2, steps=400, seed=1, progress=False)
    assert ds.manifest.scene == "gym:CartPole-v1"
    lengths = [e.frames for e in ds.manifest.episodes]
    assert all(2 <= n < 401 for n in lengths), "random CartPole falls long before 400 ticks"
    frames, _ = ds.load(ds.manifest.episodes[0])
    assert frames.shape[1:] == (64, 96, 3)


def test_corrupt_episode_is_named_and_the_others_stay_usable(tmp_path):
    _collect(tmp_path / "ds", "bounce", episodes=3)
    victim = tmp_path / "ds" / "ep_000001.npz"
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])  # truncate
    problems = Dataset.open(tmp_path / "ds").verify()
    assert [p[0] for p in problems] == ["ep_000001.npz"]
    assert "ep_000001.npz" in problems[0][1]
    bad = []
    good = Dataset.open(tmp_path / "ds").load_all(on_bad=lambda f, m: bad.append(f))
    assert len(good) == 2 and bad == ["ep_000001.npz"]


def test_truncated_file_without_checksum_says_it_is_corrupt(tmp_path):
    path = tmp_path / "e.npz"
    write_episode(path, np.zeros((3, 16, 16, 3), np.uint8), np.zeros((3, 2), np.uint8))
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(EpisodeError, match="e.npz.*(truncated|corrupt)"):
        read_episode(path)


def test_episode_validation_names_the_problem(tmp_path):
    with pytest.raises(EpisodeError, match="3 frames but 2 key rows"):
        write_episode(tmp_path / "x.npz", np.zeros((3, 16, 16, 3), np.uint8), np.zeros((2, 2), np.uint8))
    assert not list(tmp_path.iterdir()), "nothing half-written"


# ---- import ------------------------------------------------------------------
def _frames(n, h=32, w=32, seed=0):
    return np.random.default_rng(seed).integers(0, 255, (n, h, w, 3), dtype=np.uint8)


def test_import_npz_folder_with_keys_and_actions(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    np.savez(src / "a.npz", frames=_frames(5), keys=np.eye(5, 3, dtype=np.uint8), key_names=np.array(["up", "down", "fire"]))
    np.savez(src / "b.npz", frames=_frames(4, seed=1), actions=np.array([0, 1, 3, 2]))
    ds = import_dataset(src, tmp_path / "out")
    assert list(ds.keyset.names) == ["up", "down", "fire"]
    _, keys_b = ds.load(ds.manifest.episodes[1])
    assert keys_b.tolist() == [[0, 0, 0], [1, 0, 0], [0, 0, 1], [0, 1, 0]]
    assert ds.verify() == []


def test_import_npy_with_csv(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    np.save(src / "run1.npy", _frames(3))
    (src / "run1.csv").write_text("tick,keys\n0,\n1,forward+turn_left\n2,back\n")
    ds = import_dataset(src, tmp_path / "out", key_names=["forward", "back", "turn_left"])
    frames, keys = ds.load(ds.manifest.episodes[0])
    assert keys.tolist() == [[0, 0, 0], [1, 0, 1], [0, 1, 0]]
    assert np.array_equal(frames, _frames(3))


def test_import_mp4_with_jsonl(tmp_path):
    import av

    src = tmp_path / "src"
    src.mkdir()
    frames = np.zeros((6, 32, 48, 3), np.uint8)
    for t in range(6):
        frames[t, :, t * 8 : (t + 1) * 8] = 255
    with av.open(str(src / "clip.mp4"), "w") as out:
        stream = out.add_stream("libx264", rate=15, options={"crf": "0"})
        stream.width, stream.height, stream.pix_fmt = 48, 32, "yuv444p"
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    lines = [json.dumps({"header": {"keys": ["left", "right"]}})] + [json.dumps({"tick": t, "keys": ["right"] if t else []}) for t in range(6)]
    (src / "clip.jsonl").write_text("\n".join(lines) + "\n")
    ds = import_dataset(src, tmp_path / "out", size=(16, 24), read_video=read_video)
    got, keys = ds.load(ds.manifest.episodes[0])
    assert got.shape == (6, 16, 24, 3)
    assert keys[:, 1].tolist() == [0, 1, 1, 1, 1, 1]
    assert got[3, :, 13].mean() > 150 and got[3, :, 2].mean() < 100  # the bright bar moved right


@pytest.mark.parametrize("content,match", [("", "empty"), ("keys\nforward\n", "2 frames but 1 action rows")])
def test_import_bad_action_file_leaves_nothing(tmp_path, content, match):
    src = tmp_path / "src"
    src.mkdir()
    np.save(src / "a.npy", _frames(2))
    (src / "a.csv").write_text(content)
    with pytest.raises(SkyloopError, match=match):
        import_dataset(src, tmp_path / "out", key_names=["forward"])
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["src"]


def test_import_different_sizes_needs_size(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    np.savez(src / "a.npz", frames=_frames(2, 32, 32), actions=np.zeros(2, int))
    np.savez(src / "b.npz", frames=_frames(2, 48, 32), actions=np.zeros(2, int))
    with pytest.raises(DataImportError, match="different frame sizes.*--size"):
        import_dataset(src, tmp_path / "out", key_names=["x"])
    ds = import_dataset(src, tmp_path / "out", key_names=["x"], size=(16, 16))
    assert ds.frame_size == (16, 16)


def test_import_unknown_key_is_named(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    np.save(src / "a.npy", _frames(2))
    (src / "a.jsonl").write_text('{"keys": []}\n{"keys": ["warp"]}\n')
    with pytest.raises(SkyloopError, match="warp"):
        import_dataset(src, tmp_path / "out", key_names=["forward"])


# ---- the CLI as a subprocess ---------------------------------------------------
def test_cli_collect_check_and_errors(tmp_path, cli):
    out = tmp_path / "ds"
    proc = cli("collect", "--scene", "maze", "--episodes", "2", "--steps", "10", "--out", out, "--size", "32x48", check=True)
    assert "wrote 2 episodes" in proc.stdout
    proc = cli("data", "check", out, check=True)
    assert "2/2 episodes good" in proc.stdout
    (out / "ep_000000.npz").write_bytes(b"garbage")
    proc = cli("data", "check", out)
    assert proc.returncode == 1 and "ep_000000.npz" in proc.stdout and "1/2 episodes good" in proc.stdout
    proc = cli("collect", "--scene", "doom", "--out", tmp_path / "x")
    assert proc.returncode == 1 and "maze, overworld, bounce" in proc.stderr and "Traceback" not in proc.stderr
    proc = cli("collect", "--gym", "NoSuchGame-v9", "--out", tmp_path / "y")
    assert proc.returncode == 1 and "CartPole" in proc.stderr
    proc = cli("scenes", check=True)
    assert "overworld" in proc.stdout and "strafe_left" in proc.stdout
