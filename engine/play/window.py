"""The real-time loop: a pygame window with an OpenGL context.

The model ticks at a fixed rate on a worker thread; the keys held during a
tick are that tick's action. The main thread handles input, uploads the latest
frame into one reused texture, draws it and the HUD, and never waits for the
model: on a slow machine the tick rate drops and the window stays responsive.
Recording happens on the worker (it owns the session); every way out of the
loop closes the recording, so the clip and its log are always playable.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections import deque
from pathlib import Path

import numpy as np

from engine.errors import SkyloopError
from engine.input.bindings import Bindings, HeldKeys
from engine.play.session import PlaySession


class NoDisplay(SkyloopError):
    pass


def has_display() -> bool:
    driver = os.environ.get("SDL_VIDEODRIVER", "")
    if driver in ("offscreen", "kmsdrm", "wayland", "x11", "windows", "cocoa"):
        return driver != "x11" or bool(os.environ.get("DISPLAY"))
    if driver == "dummy":
        return False  # software surfaces only: no OpenGL window
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


class Ticker(threading.Thread):
    """Steps the session at a fixed rate and publishes the newest frame."""

    def __init__(self, session: PlaySession, held: HeldKeys, lock: threading.Lock, tick_hz: float):
        super().__init__(daemon=True, name="skyloop-ticker")
        self.session, self.held, self.lock = session, held, lock
        self.period = 1.0 / tick_hz
        self.commands: queue.Queue[str] = queue.Queue()
        self.stop_event = threading.Event()
        self.paused = False
        self.error: BaseException | None = None
        self.frame: np.ndarray | None = None
        self.companion: np.ndarray | None = None
        self.seq = 0
        self.fps = 0.0  # ticks per second actually achieved
        self.step_ms = 0.0
        self.messages: queue.Queue[str] = queue.Queue()
        self.started = threading.Event()

    def _publish(self) -> None:
        with self.lock:
            self.frame = self.session.frame
            self.companion = self.session.companion_frame
            self.seq += 1

    def _handle(self, command: str) -> None:
        s = self.session
        if command == "reset":
            s.reset()
            self._publish()
            self.messages.put("reset")
        elif command == "record":
            if s.recording:
                paths = s.stop_recording()
                self.messages.put(f"saved {paths[0]}" if paths else "recording stopped")
            else:
                self.messages.put(f"recording to {s.start_recording()}")
        elif command == "pause":
            self.paused = not self.paused

    def run(self) -> None:
        try:
            self.session.reset()
            self._publish()
            self.started.set()
            next_tick = time.perf_counter()
            recent: deque[float] = deque(maxlen=16)  # times of the last ticks: the achieved rate
            while not self.stop_event.is_set():
                while not self.commands.empty():
                    self._handle(self.commands.get())
                now = time.perf_counter()
                if self.paused:
                    time.sleep(0.01)
                    next_tick = now
                    recent.clear()
                    continue
                if now < next_tick:
                    time.sleep(min(next_tick - now, 0.005))
                    continue
                with self.lock:
                    keys = self.held.take()
                self.session.step(keys)
                self.step_ms = self.session.step_ms
                self._publish()
                done = time.perf_counter()
                recent.append(done)
                if len(recent) > 1:
                    self.fps = (len(recent) - 1) / max(recent[-1] - recent[0], 1e-6)
                # Keep the fixed rate; when the model is slower, tick as fast as it goes (the rate drops).
                next_tick = max(next_tick + self.period, done - self.period)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread, which re-raises
            self.error = exc
            self.started.set()


class PlayWindow:
    def __init__(
        self,
        session: PlaySession,
        bindings: Bindings,
        window_size: tuple[int, int] | None = None,
        screenshot_dir: str | Path = "screenshots",
        title: str = "Skyloop",
    ):
        if not has_display():
            raise NoDisplay("no display to open a window on (DISPLAY is not set); run with --headless to roll out a clip instead")
        import moderngl
        import pygame

        from engine.render.gl import FrameRenderer
        from engine.render.hud import Hud

        self.session, self.bindings = session, bindings
        self.screenshot_dir = Path(screenshot_dir)
        fh, fw = session.source.frame_size
        scale = max(1, 512 // max(fh, fw))
        self.size = window_size or (fw * scale, fh * scale)
        pygame.display.init()
        pygame.display.gl_set_attribute(pygame.GL_CONTEXT_MAJOR_VERSION, 3)
        pygame.display.gl_set_attribute(pygame.GL_CONTEXT_MINOR_VERSION, 3)
        pygame.display.gl_set_attribute(pygame.GL_CONTEXT_PROFILE_MASK, pygame.GL_CONTEXT_PROFILE_CORE)
        try:
            pygame.display.set_mode(self.size, pygame.OPENGL | pygame.DOUBLEBUF | pygame.RESIZABLE)
        except pygame.error as exc:
            pygame.display.quit()
            raise NoDisplay(f"cannot open an OpenGL window ({exc}); run with --headless to roll out a clip instead") from exc
        pygame.display.set_caption(title)
        self.ctx = moderngl.create_context()
        self.renderer = FrameRenderer(self.ctx, session.source.frame_size, panes=2)
        self.hud = Hud()
        self.held = HeldKeys(session.source.keyset)
        self.lock = threading.Lock()
        self.ticker = Ticker(session, self.held, self.lock, session.tick_hz)
        self.side_by_side = False
        self.show_help = False
        self.show_hud = True
        self.running = False
        self.notices: list[tuple[float, str]] = [(time.monotonic(), n) for n in session.notices]
        self.screenshots: list[Path] = []
        self.display_fps = 0.0
        self.frames_drawn = 0
        self._seq = -1
        self._want_screenshot = False

    # ---- input ---------------------------------------------------------------
    def notice(self, text: str) -> None:
        print(text, flush=True)
        self.notices.append((time.monotonic(), text))

    def _control(self, action: str) -> None:
        import pygame

        if action == "quit":
            self.running = False
        elif action in ("record", "reset", "pause"):
            self.ticker.commands.put(action)
        elif action == "screenshot":
            self._want_screenshot = True
        elif action == "side_by_side":
            if self.session.companion is None:
                self.notice("side by side needs the world's scene, started from a seed")
            else:
                self.side_by_side = not self.side_by_side
        elif action == "help":
            self.show_help = not self.show_help
        elif action == "fullscreen":
            try:
                pygame.display.toggle_fullscreen()
            except pygame.error as exc:
                self.notice(f"fullscreen is not available here ({exc})")
        elif action == "filter":
            self.renderer.set_smooth(not self.renderer.smooth)

    def handle_events(self) -> None:
        import pygame

        for event in pygame.event.get():
            if event.type == pygame.QUIT:
                self.running = False
            elif event.type == pygame.KEYDOWN:
                name = pygame.key.name(event.key)
                action = self.bindings.control(name)
                if action:
                    self._control(action)
                elif (key := self.bindings.world_key(name)) is not None:
                    with self.lock:
                        self.held.press(key)
            elif event.type == pygame.KEYUP:
                key = self.bindings.world_key(pygame.key.name(event.key))
                if key is not None:
                    with self.lock:
                        self.held.release(key)
            elif event.type == getattr(pygame, "WINDOWFOCUSLOST", -1):
                with self.lock:
                    self.held.clear()  # no stuck keys after alt-tab

    # ---- drawing -------------------------------------------------------------
    def hud_lines(self) -> list[str]:
        s, t = self.session, self.ticker
        info = s.source.describe()
        with self.lock:
            held = "+".join(self.held.held) or "-"
        lines = [
            f"model {t.fps:5.1f} FPS  {t.step_ms:5.1f} ms/frame" + ("  PAUSED" if t.paused else ""),
            f"display {self.display_fps:4.0f} FPS   frame {s.tick}",
            f"keys {held}",
            f"{'learned' if s.source.learned else 'real'}: {info.get('backend')} on {info.get('device')}",
        ]
        if self.side_by_side:
            lines.append("left: learned   right: real")
        now = time.monotonic()
        self.notices = [(when, text) for when, text in self.notices if now - when < 6]
        lines += [text for _, text in self.notices[-2:]]
        if self.show_help:
            lines += [""] + self.bindings.help_lines()
        else:
            lines.append("H: keys and help")
        return lines

    def draw(self) -> None:
        import pygame

        with self.lock:
            frame, companion, seq = self.ticker.frame, self.ticker.companion, self.ticker.seq
        if frame is not None and seq != self._seq:
            self.renderer.upload(0, frame)
            if companion is not None:
                self.renderer.upload(1, companion)
            self._seq = seq
        self.renderer.set_hud(self.hud.render(self.hud_lines(), rec=self.session.recording) if self.show_hud else None)
        panes = 2 if self.side_by_side and companion is not None else 1
        size = pygame.display.get_window_size()
        self.renderer.draw(size, panes)
        if self._want_screenshot:
            self._want_screenshot = False
            self.save_screenshot(self.renderer.read_screen(size))
        pygame.display.flip()
        self.frames_drawn += 1

    def save_screenshot(self, image: np.ndarray) -> Path:
        from PIL import Image

        self.screenshot_dir.mkdir(parents=True, exist_ok=True)
        path = self.screenshot_dir / f"{time.strftime('%Y%m%d-%H%M%S')}-{len(self.screenshots):03d}.png"
        Image.fromarray(image).save(path)
        self.screenshots.append(path)
        self.notice(f"screenshot {path}")
        return path

    # ---- the loop ------------------------------------------------------------
    def run(self, record: bool = False, max_seconds: float | None = None, on_frame=None, close_display: bool = True) -> dict:
        """Runs until Esc, closing the window, or max_seconds; `on_frame(window)` is called every frame (tests).

        close_display=False leaves pygame's display up for another window in this process (glcontext cannot
        find the GL context of a display that was quit and initialised again)."""
        import pygame

        from engine.play.stop import STOP

        clock = pygame.time.Clock()
        self.running = True
        self.ticker.start()
        self.ticker.started.wait(timeout=120)
        if record:
            self.ticker.commands.put("record")
        started = time.monotonic()
        try:
            while self.running and not STOP.is_set():
                self.handle_events()
                if self.ticker.error is not None:
                    raise self.ticker.error
                while not self.ticker.messages.empty():
                    self.notice(self.ticker.messages.get())
                self.draw()
                if on_frame is not None:
                    on_frame(self)
                clock.tick(60)
                self.display_fps = clock.get_fps()
                if max_seconds is not None and time.monotonic() - started > max_seconds:
                    break
        finally:
            self.ticker.stop_event.set()
            self.ticker.join(timeout=30)
            files = self.session.close()
            for path in files:
                print(f"saved {path}", flush=True)
            self.ctx.release()
            if close_display:
                pygame.display.quit()
        return {
            "ticks": self.session.tick,
            "model_fps": self.ticker.fps,
            "display_fps": self.display_fps,
            "frames_drawn": self.frames_drawn,
            "files": [str(p) for p in self.session.closed_files],
            "screenshots": [str(p) for p in self.screenshots],
        }
