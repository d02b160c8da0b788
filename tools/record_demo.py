"""Plays a world in a real window under Xvfb with scripted key presses, and keeps what it recorded.

The window gets real X key events from xdotool, exactly as a player's keyboard would send them, so
the GIF is real play (the world's frames at the tick rate) and the screenshot shows the window as a
player sees it, HUD included. Used for the GIFs in docs/.

  .venv/bin/python tools/record_demo.py worlds/maze.safetensors --out docs/results/maze [--backend onnx]

Writes OUT/play.gif, OUT/window.png and OUT/play.mp4 and prints where they went. Needs Xvfb, xdotool,
x11-utils and imagemagick (tools/setup installs them).
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# (held scene keys, seconds) per scene: a little tour that shows the keys doing their job.
SCRIPTS = {
    "maze": [
        (("forward",), 2.5),
        (("turn_left",), 1.2),
        (("forward",), 2.0),
        (("forward", "turn_right"), 1.5),
        ((), 0.5),
        (("turn_right",), 1.5),
        (("forward",), 2.0),
        (("back",), 1.0),
    ],
    "overworld": [(("right",), 2.0), (("up",), 2.0), (("left",), 1.5), ((), 0.5), (("down",), 2.0), (("right",), 1.5)],
    "bounce": [(("right",), 1.5), (("jump",), 0.3), ((), 1.0), (("left",), 2.0), (("left", "jump"), 0.4), ((), 1.0), (("right",), 1.5)],
}
XKEYS = {"up": "Up", "down": "Down", "left": "Left", "right": "Right", "space": "space"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("world")
    ap.add_argument("--out", required=True, help="folder for play.gif, window.png and play.mp4")
    ap.add_argument("--backend", default="onnx", choices=["torch", "onnx"])
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    missing = [t for t in ("Xvfb", "xdotool", "xwininfo", "import") if not shutil.which(t)]
    if missing:
        raise SystemExit(f"needs {', '.join(missing)}: run tools/setup")
    from engine.world.bundle import read_spec

    spec = read_spec(args.world)
    script = SCRIPTS.get(spec.scene)
    if script is None:
        raise SystemExit(f"no demo key script for scene {spec.scene!r}; known: {', '.join(SCRIPTS)}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    display = f":{150 + os.getpid() % 50}"
    xvfb = subprocess.Popen(["Xvfb", display, "-screen", "0", "1024x768x24", "-nolisten", "tcp"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    env = {**os.environ, "DISPLAY": display}
    env.pop("SDL_VIDEODRIVER", None)
    with tempfile.TemporaryDirectory() as tmp:
        rec = Path(tmp) / "rec"
        play = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "engine",
                "play",
                args.world,
                "--record",
                "--gif",
                "--out",
                str(rec),
                "--backend",
                args.backend,
                "--seed",
                str(args.seed),
                "--seconds",
                "120",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            wid = None
            deadline = time.time() + 180
            while wid is None and time.time() < deadline:
                if play.poll() is not None:
                    raise SystemExit(f"play ended early:\n{play.stdout.read()[-3000:]}")
                tree = subprocess.run(["xwininfo", "-root", "-tree"], env=env, capture_output=True, text=True).stdout
                wid = next((line.split()[0] for line in tree.splitlines() if '"Skyloop' in line), None)
                time.sleep(0.2)
            if wid is None:
                raise SystemExit("the Skyloop window never appeared")
            time.sleep(2.0)
            subprocess.run(["xdotool", "windowfocus", "--sync", wid], env=env)
            total = sum(s for _, s in script)
            shot_at, elapsed, shot = total * 0.45, 0.0, False
            for keys, seconds in script:
                xkeys = [XKEYS.get(spec.keyset.bindings[k][0], spec.keyset.bindings[k][0]) for k in keys]
                for k in xkeys:
                    subprocess.run(["xdotool", "keydown", k], env=env, check=True)
                if not shot and elapsed + seconds > shot_at:
                    time.sleep(shot_at - elapsed)
                    subprocess.run(["import", "-window", wid, str(out / "window.png")], env=env, check=True)
                    shot = True
                    time.sleep(max(0.0, elapsed + seconds - shot_at))
                else:
                    time.sleep(seconds)
                elapsed += seconds
                for k in xkeys:
                    subprocess.run(["xdotool", "keyup", k], env=env, check=True)
            subprocess.run(["xdotool", "key", "Escape"], env=env, check=True)
            log, _ = play.communicate(timeout=120)
        finally:
            if play.poll() is None:
                play.kill()
            xvfb.terminate()
            xvfb.wait(timeout=10)
        if play.returncode != 0:
            raise SystemExit(f"play failed ({play.returncode}):\n{log[-3000:]}")
        logs = sorted(rec.glob("*.jsonl"))  # each recording: STEM.jsonl, STEM.mp4, STEM.gif
        if not logs:
            raise SystemExit(f"play wrote no recording:\n{log[-3000:]}")
        shutil.copy(logs[-1].with_suffix(".gif"), out / "play.gif")
        shutil.copy(logs[-1].with_suffix(".mp4"), out / "play.mp4")
    print(log.strip().splitlines()[-1] if log.strip() else "")
    for name in ("play.gif", "window.png", "play.mp4"):
        print(f"wrote {out / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
