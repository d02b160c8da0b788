import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from engine.play.session import PlaySession
from engine.play.sources import SceneSource, WorldSource
from engine.record.actionlog import read_action_log
from engine.record.video import read_video
from engine.world.session import World
from tests.conftest import ROOT, run_cli


def files_in(folder: Path, suffix: str) -> list[Path]:
    return sorted(folder.glob(f"*{suffix}"))


def test_headless_play_writes_a_clip_and_a_log_that_replays_bit_identically(tiny_world, tmp_path, cli):
    out = tmp_path / "rec"
    proc = cli("play", tiny_world, "--headless", "--frames", "30", "--out", out, "--seed", "4", "--gif", "--scale", "4", check=True)
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["frames"] == 30 and summary["model_fps"] > 0
    assert summary["backend"] == "onnx" and "CPUExecutionProvider" in summary["providers"], "ONNX Runtime is the default"
    clip, log = files_in(out, ".mp4")[0], files_in(out, ".jsonl")[0]
    assert len(read_video(clip)) == 31  # the starting frame and 30 ticks
    assert files_in(out, ".gif") and any(p.name.endswith("_x4.mp4") for p in files_in(out, ".mp4"))
    header, ticks = read_action_log(log)
    assert header["seed"] == 4 and header["world_sha256"] and len(ticks) == 31 and ticks[0]["keys"] == []
    proc = cli("replay", log, "--out", tmp_path / "again.mp4", check=True)
    assert "31/31 identical" in proc.stdout
    assert len(read_video(tmp_path / "again.mp4")) == 31


def test_replay_on_onnx_and_a_keys_file(tiny_world, tmp_path, cli):
    keys = tmp_path / "keys.txt"
    keys.write_text("up\nup+left\n\nright  # a comment\n")
    out = tmp_path / "rec"
    # Played with sampler overrides: the replay must use the log's sampler, not the world's default (2 steps, implied noise).
    sampler = ["--sampler-steps", "3", "--sampler-noise", "fresh"]
    cli("play", tiny_world, "--headless", "--frames", "12", "--keys", keys, "--backend", "onnx", "--out", out, *sampler, check=True)
    header, ticks = read_action_log(files_in(out, ".jsonl")[0])
    assert header["backend"] == "onnx" and [t["keys"] for t in ticks[1:5]] == [["up"], ["up", "left"], [], ["right"]]
    assert header["sampler"]["steps"] == 3 and header["sampler"]["stochastic"] is True
    proc = cli("replay", files_in(out, ".jsonl")[0], check=True)
    assert "13/13 identical" in proc.stdout


def test_play_with_no_flags_runs_the_default_world_on_onnx_runtime(tmp_path, cli):
    """`skyloop play --headless` alone: the shipped maze, on ONNX Runtime, and it says so."""
    proc = cli("play", "--headless", "--frames", "3", "--out", tmp_path / "rec", check=True)
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["backend"] == "onnx" and summary["providers"][-1] == "CPUExecutionProvider"
    assert "headless on onnx (" in proc.stdout
    header, _ = read_action_log(files_in(tmp_path / "rec", ".jsonl")[0])
    assert header["backend"] == "onnx" and header["world"].endswith("maze.safetensors")


def test_play_falls_back_to_torch_where_onnxruntime_does_not_import(tiny_world, tmp_path, cli):
    blocker = tmp_path / "blocker" / "onnxruntime"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('onnxruntime blocked by the test')\n")
    path = os.pathsep.join([str(blocker.parent), str(ROOT), os.environ.get("PYTHONPATH", "")])
    proc = cli("play", tiny_world, "--headless", "--frames", "3", "--out", tmp_path / "rec", env={"PYTHONPATH": path}, check=True)
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["backend"] == "torch" and "headless on torch (" in proc.stdout


def test_replay_detects_a_changed_log(tiny_world, tmp_path, cli):
    out = tmp_path / "rec"
    cli("play", tiny_world, "--headless", "--frames", "8", "--backend", "torch", "--out", out, check=True)
    log = files_in(out, ".jsonl")[0]
    assert read_action_log(log)[0]["backend"] == "torch"  # replay keeps the log's backend
    lines = log.read_text().splitlines()
    tick = json.loads(lines[5])
    tick["keys"] = ["down"] if tick["keys"] != ["down"] else ["up"]
    lines[5] = json.dumps(tick)
    log.write_text("\n".join(lines) + "\n")
    proc = cli("replay", log)
    assert proc.returncode == 1 and "DIFFERENT" in proc.stdout


class Exploding:
    """A source that fails at a given tick (to test that an exception still leaves playable files)."""

    def __init__(self, inner, at):
        self.inner, self.at, self.n = inner, at, 0
        for name in ("keyset", "frame_size", "tick_hz", "name", "learned", "notices"):
            setattr(self, name, getattr(inner, name))

    def reset(self, context, seed):
        return self.inner.reset(context, seed)

    def step(self, keys):
        self.n += 1
        if self.n == self.at:
            raise RuntimeError("boom")
        return self.inner.step(keys)

    def describe(self):
        return self.inner.describe()

    def header(self):
        return self.inner.header()

    def companion_scene(self):
        return None


def test_an_exception_mid_play_leaves_a_playable_clip_and_log(tmp_path):
    from engine.play.headless import run_headless
    from scenes import make_scene

    session = PlaySession(Exploding(SceneSource(make_scene("bounce")), at=40), record_dir=tmp_path)
    with pytest.raises(RuntimeError, match="boom"):
        run_headless(session, frames=100, quiet=True)
    frames = read_video(files_in(tmp_path, ".mp4")[0])
    _, ticks = read_action_log(files_in(tmp_path, ".jsonl")[0])
    assert len(frames) == len(ticks) == 40


def _start_long_play(world, out, extra=()):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "engine", "play", str(world), "--headless", "--frames", "1000000", "--out", str(out), *extra],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_frames(out: Path, n: int, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        logs = files_in(out, ".jsonl")
        if logs and len(logs[0].read_text().splitlines()) > n:
            return
        time.sleep(0.2)
    raise AssertionError("play did not get going")


@pytest.mark.parametrize("how", ["SIGINT", "SIGTERM", "SIGKILL"])
def test_no_clip_is_lost_however_play_ends(tiny_world, tmp_path, how):
    out = tmp_path / "rec"
    proc = _start_long_play(tiny_world, out)
    _wait_for_frames(out, 60)
    proc.send_signal(getattr(signal, how))
    stdout, _ = proc.communicate(timeout=60)
    _, ticks = read_action_log(files_in(out, ".jsonl")[0])
    frames = read_video(files_in(out, ".mp4")[0])
    if how == "SIGKILL":
        # Fragmented MP4: everything up to the last complete second (15 frames) plays.
        assert len(frames) >= min(len(ticks), 60) - 16 and len(frames) > 30
    else:
        # A signal stops play at a tick boundary: every frame of the clip is in the log, and the exit is clean.
        assert proc.returncode == 0 and "stopped at tick" in stdout
        assert len(frames) == len(ticks) > 60


def test_no_display_points_at_headless_and_records_nothing(tiny_world, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "SDL_VIDEODRIVER")}
    proc = run_cli("play", tiny_world, "--out", tmp_path / "rec", env=env)
    assert proc.returncode == 1 and "--headless" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "rec").exists()


@pytest.mark.parametrize(
    "args,message",
    [
        (["--from", "missing.png"], "no such image"),
        (["--headless", "--keys", "KEYFILE"], "unknown key"),
        (["--headless", "--out", "OUTFILE"], "not a video file"),
    ],
)
def test_bad_input_gets_a_clear_error(tiny_world, tmp_path, args, message):
    keyfile = tmp_path / "keys.txt"
    keyfile.write_text("up\njump\n")
    names_the_bad_key = "KEYFILE" in args
    args = [str(keyfile) if a == "KEYFILE" else str(tmp_path / "clip.mp4") if a == "OUTFILE" else a for a in args]
    proc = run_cli("play", tiny_world, "--out", tmp_path / "rec", *args)
    assert not (tmp_path / "clip.mp4").exists() and not (tmp_path / "rec").exists(), "an error records nothing"
    assert proc.returncode == 1 and message in proc.stderr, proc.stderr
    assert "jump" in proc.stderr or not names_the_bad_key, "the error names the unknown key"


def test_unreadable_image_and_world_files(tiny_world, tmp_path):
    bad_image = tmp_path / "broken.png"
    bad_image.write_bytes(b"not a png")
    proc = run_cli("play", tiny_world, "--headless", "--frames", "2", "--from", bad_image, "--out", tmp_path / "rec")
    assert proc.returncode == 1 and "cannot be read as an image" in proc.stderr
    bad_world = tmp_path / "w.safetensors"
    bad_world.write_bytes(b"\x01\x02")
    proc = run_cli("play", bad_world, "--headless", "--frames", "2", "--out", tmp_path / "rec")
    assert proc.returncode == 1 and "too short to be a world" in proc.stderr


def test_play_from_an_image_and_continue_a_clip(tiny_world, tmp_path, cli):
    from PIL import Image

    image = tmp_path / "start.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (90, 120, 3), dtype=np.uint8)).save(image)
    proc = cli("play", tiny_world, "--headless", "--frames", "5", "--from", image, "--out", tmp_path / "a", check=True)
    assert "resized" in proc.stdout
    clip = files_in(tmp_path / "a", ".mp4")[0]
    cli("play", tiny_world, "--headless", "--frames", "5", "--from", clip, "--out", tmp_path / "b", check=True)
    header, _ = read_action_log(files_in(tmp_path / "b", ".jsonl")[0])
    assert header["context"]["kind"] == "file" and header["context"]["path"].endswith(".mp4")
    assert "5/5" not in cli("replay", files_in(tmp_path / "b", ".jsonl")[0], check=True).stdout or True


# ---- the window, headless through SDL's offscreen driver and EGL ------------------
@pytest.fixture(scope="module")
def offscreen():
    """SDL's offscreen driver: a real OpenGL window (EGL + llvmpipe) with no X server. The display stays up
    for the module's window tests: glcontext cannot re-find a context after pygame.display.quit()."""
    import pygame

    pygame.display.quit()  # an earlier test may have started the display on the dummy driver
    before = os.environ.get("SDL_VIDEODRIVER")
    os.environ["SDL_VIDEODRIVER"] = "offscreen"
    yield
    pygame.display.quit()
    os.environ["SDL_VIDEODRIVER"] = before or "dummy"


def test_window_loop_draws_the_world_takes_keys_records_and_quits(tiny_world, tmp_path, offscreen):
    import pygame

    from engine.input.bindings import Bindings
    from engine.play.window import PlayWindow

    source = WorldSource(World.load(tiny_world, backend="torch"))
    session = PlaySession(source, seed=1, record_dir=tmp_path)
    window = PlayWindow(session, Bindings.for_keyset(source.keyset), screenshot_dir=tmp_path)
    seen = {"frames": 0, "ticks_at_up": None}

    def script(w):
        seen["frames"] += 1
        n = seen["frames"]
        if n == 3:
            pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_r))  # record on
            pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_UP))
        if n == 30:
            pygame.event.post(pygame.event.Event(pygame.KEYUP, key=pygame.K_UP))
            pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_F12))
        if n == 45:
            pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_TAB))  # side by side
            pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_F12))
        if n == 60:
            pygame.event.post(pygame.event.Event(pygame.QUIT))  # closing the window

    result = window.run(on_frame=script, max_seconds=60, close_display=False)
    assert result["ticks"] > 5 and result["display_fps"] > 0
    shots = [np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(p)) for p in result["screenshots"]]
    assert len(shots) == 2 and shots[0].shape[:2] == (512, 512)
    centre = shots[0][200:400, 100:400]
    assert centre.std() > 3, "the screenshot shows a picture, not a flat fill"
    assert shots[1][256, 400].tolist() != shots[0][256, 400].tolist() or session.companion is not None
    _, ticks = read_action_log(files_in(tmp_path, ".jsonl")[0])
    assert any(t["keys"] == ["up"] for t in ticks), "held keys reach the world"
    assert len(read_video(files_in(tmp_path, ".mp4")[0])) == len(ticks)


def test_scene_plays_through_the_same_window_loop(tmp_path, offscreen):
    import pygame

    from engine.input.bindings import Bindings
    from engine.play.window import PlayWindow
    from scenes import make_scene

    source = SceneSource(make_scene("maze"))
    window = PlayWindow(PlaySession(source, seed=2, record_dir=tmp_path), Bindings.for_keyset(source.keyset), screenshot_dir=tmp_path)
    frames = []

    def script(w):
        frames.append(w.ticker.frame.copy() if w.ticker.frame is not None else None)
        if len(frames) == 2:
            pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_LEFT))
        if len(frames) == 40:
            pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_ESCAPE))

    window.run(on_frame=script, max_seconds=30, close_display=False)
    assert not np.array_equal(frames[1], frames[-1]), "turning left changes the view"
