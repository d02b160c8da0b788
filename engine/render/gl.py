"""Drawing frames with ModernGL: one reused texture per pane, written each frame, drawn on a
quad by a shader that scales it up; the window keeps the frame's aspect ratio (letterbox).
A HUD texture (RGBA) is blended on top. No torch here, and no knowledge of where frames come from.
"""

from __future__ import annotations

import numpy as np

_VERTEX = """
#version 330
in vec2 in_pos;   // corner of the quad in [0, 1]^2
in vec2 in_uv;
uniform vec4 rect; // x, y, w, h in normalised device coordinates
out vec2 v_uv;
void main() {
    gl_Position = vec4(rect.xy + in_pos * rect.zw, 0.0, 1.0);
    v_uv = in_uv;
}
"""

_FRAGMENT = """
#version 330
uniform sampler2D image;
uniform float opacity;
in vec2 v_uv;
out vec4 f_color;
void main() {
    vec4 c = texture(image, v_uv);
    f_color = vec4(c.rgb, c.a * opacity);
}
"""


class FrameRenderer:
    """Draws 1 or 2 frames side by side, letterboxed, plus an optional HUD overlay."""

    def __init__(self, ctx, frame_size: tuple[int, int], panes: int = 2):
        self.ctx = ctx
        self.frame_size = frame_size
        h, w = frame_size
        self.textures = []
        for _ in range(panes):
            tex = ctx.texture((w, h), 3, alignment=1)
            tex.filter = (ctx.NEAREST, ctx.NEAREST)
            self.textures.append(tex)
        self.smooth = False
        self.prog = ctx.program(vertex_shader=_VERTEX, fragment_shader=_FRAGMENT)
        # Two triangles; v flipped because frames are stored top row first.
        quad = np.array([0, 0, 0, 1, 1, 0, 1, 1, 0, 1, 0, 0, 1, 1, 1, 0], np.float32)
        self.vbo = ctx.buffer(quad.tobytes())
        self.vao = ctx.vertex_array(self.prog, [(self.vbo, "2f 2f", "in_pos", "in_uv")])
        self.hud_texture = None
        self.hud_size = (0, 0)

    def set_smooth(self, smooth: bool) -> None:
        self.smooth = smooth
        f = self.ctx.LINEAR if smooth else self.ctx.NEAREST
        for tex in self.textures:
            tex.filter = (f, f)

    def upload(self, pane: int, frame: np.ndarray) -> None:
        self.textures[pane].write(np.ascontiguousarray(frame).tobytes())  # same texture every frame: no allocation

    def set_hud(self, rgba: np.ndarray | None) -> None:
        if rgba is None:
            self.hud_size = (0, 0)
            return
        h, w = rgba.shape[:2]
        if self.hud_texture is None or self.hud_texture.size != (w, h):
            if self.hud_texture is not None:
                self.hud_texture.release()
            self.hud_texture = self.ctx.texture((w, h), 4, alignment=1)
            self.hud_texture.filter = (self.ctx.NEAREST, self.ctx.NEAREST)
        self.hud_texture.write(np.ascontiguousarray(rgba).tobytes())
        self.hud_size = (w, h)

    def layout(self, window: tuple[int, int], panes: int) -> list[tuple[int, int, int, int]]:
        """Pixel rectangles (x, y from the bottom, w, h) of the panes, letterboxed to keep the aspect ratio."""
        ww, wh = window
        fh, fw = self.frame_size
        scale = min(ww / (fw * panes), wh / fh)
        pw, ph = int(fw * scale), int(fh * scale)
        x0 = (ww - pw * panes) // 2
        y0 = (wh - ph) // 2
        return [(x0 + i * pw, y0, pw, ph) for i in range(panes)]

    def _draw_rect(self, tex, rect, window, opacity=1.0) -> None:
        ww, wh = window
        x, y, w, h = rect
        self.prog["rect"].value = (2 * x / ww - 1, 2 * y / wh - 1, 2 * w / ww, 2 * h / wh)
        self.prog["opacity"].value = opacity
        tex.use(0)
        self.vao.render(mode=self.ctx.TRIANGLE_STRIP)

    def draw(self, window: tuple[int, int], panes: int) -> None:
        self.ctx.viewport = (0, 0, *window)
        self.ctx.clear(0.05, 0.05, 0.07)
        for i, rect in enumerate(self.layout(window, panes)):
            self._draw_rect(self.textures[i], rect, window)
        if self.hud_size[0]:
            self.ctx.enable(self.ctx.BLEND)
            self.ctx.blend_func = self.ctx.SRC_ALPHA, self.ctx.ONE_MINUS_SRC_ALPHA
            w, h = self.hud_size
            self._draw_rect(self.hud_texture, (8, window[1] - h - 8, w, h), window)
            self.ctx.disable(self.ctx.BLEND)

    def read_screen(self, window: tuple[int, int]) -> np.ndarray:
        """What the window shows now, as uint8 [H, W, 3] (top row first)."""
        data = self.ctx.screen.read(viewport=(0, 0, *window), components=3, alignment=1)
        return np.frombuffer(data, np.uint8).reshape(window[1], window[0], 3)[::-1].copy()
