"""One real window: Xvfb, real X key events from xdotool, a screenshot from the X server."""

import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

from engine.record.actionlog import read_action_log
from engine.record.video import read_video
from tests.conftest import ROOT

pytestmark = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("Xvfb", "xdotool", "xwininfo", "import")),
    reason="needs Xvfb, xdotool, x11-utils and imagemagick (tools/setup installs them)",
)


@pytest.fixture
def xserver():
    display = f":{90 + os.getpid() % 50}"
    proc = subprocess.Popen(["Xvfb", display, "-screen", "0", "1024x768x24", "-nolisten", "tcp"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    env = {**os.environ, "DISPLAY": display}
    env.pop("SDL_VIDEODRIVER", None)
    for _ in range(100):
        if subprocess.run(["xwininfo", "-root"], env=env, capture_output=True).returncode == 0:
            break
        time.sleep(0.1)
    yield env
    proc.terminate()
    proc.wait(timeout=10)


def _window_id(env, title="Skyloop", timeout=120.0) -> str:
    deadline = time.time() + timeout
    while time.time() < deadline:
        tree = subprocess.run(["xwininfo", "-root", "-tree"], env=env, capture_output=True, text=True).stdout
        for line in tree.splitlines():
            if title in line and "512x512" in line:
                return line.split()[0]
        time.sleep(0.2)
    raise AssertionError("the window never appeared")


def _key(env, wid, *args):
    subprocess.run(["xdotool", *args], env=env, check=True)


def test_real_window_takes_real_keys_and_shows_the_world(tiny_world, tmp_path, xserver):
    env = xserver
    out = tmp_path / "rec"
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine", "play", str(tiny_world), "--record", "--out", str(out), "--seconds", "90"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wid = _window_id(env)
        time.sleep(1.0)
        subprocess.run(["xdotool", "windowfocus", "--sync", wid], env=env)
        _key(env, wid, "keydown", "Up")
        time.sleep(1.5)
        _key(env, wid, "keyup", "Up")
        _key(env, wid, "key", "p")  # pause: both screenshots then show the same frame
        time.sleep(0.5)
        _key(env, wid, "key", "F12")
        time.sleep(1.0)
        shot = tmp_path / "x.png"
        subprocess.run(["import", "-window", wid, str(shot)], env=env, check=True)
        _key(env, wid, "key", "Escape")
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr[-2000:]
    from PIL import Image

    x_image = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    app_shots = sorted(out.glob("*.png"))
    assert app_shots, stdout
    app_image = np.asarray(Image.open(app_shots[0]).convert("RGB")).astype(int)
    assert x_image.shape == app_image.shape == (512, 512, 3)
    world_area = (slice(300, 512), slice(200, 512))  # below and right of the HUD
    assert x_image[world_area].std() > 3, "the X server shows a picture"
    assert np.abs(x_image[world_area] - app_image[world_area]).mean() < 8, "what X shows is what the world drew"
    _, ticks = read_action_log(next(out.glob("*.jsonl")))
    assert any(t["keys"] == ["up"] for t in ticks), "real X key presses reached the world"
    assert len(read_video(next(out.glob("*.mp4")))) == len(ticks), "Esc closes the recording: the whole clip plays"
