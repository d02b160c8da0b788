"""The heads-up display: lines of text drawn with pygame's font into an RGBA image for the GL overlay."""

from __future__ import annotations

import numpy as np


class Hud:
    def __init__(self, size: int = 16):
        import pygame

        pygame.font.init()
        self.font = pygame.font.Font(None, size)
        self._last: tuple | None = None
        self._image: np.ndarray | None = None

    def render(self, lines: list[str], rec: bool = False) -> np.ndarray:
        """RGBA [H, W, 4] with the lines on a translucent panel; cached while the text is unchanged."""
        key = (tuple(lines), rec)
        if key == self._last and self._image is not None:
            return self._image
        import pygame

        surfaces = [self.font.render(line, True, (235, 235, 235)) for line in lines]
        if rec:  # a red dot and REC (the default font has no dot glyph)
            label = self.font.render("REC", True, (255, 70, 70))
            h = label.get_height()
            badge = pygame.Surface((label.get_width() + h + 2, h), pygame.SRCALPHA)
            pygame.draw.circle(badge, (255, 50, 50), (h // 2, h // 2), max(2, h // 3))
            badge.blit(label, (h + 2, 0))
            surfaces.insert(0, badge)
        width = max((s.get_width() for s in surfaces), default=1) + 12
        height = sum(s.get_height() for s in surfaces) + 8
        panel = pygame.Surface((width, height), pygame.SRCALPHA)
        panel.fill((0, 0, 0, 150))
        y = 4
        for s in surfaces:
            panel.blit(s, (6, y))
            y += s.get_height()
        self._image = np.frombuffer(pygame.image.tobytes(panel, "RGBA"), np.uint8).reshape(height, width, 4)
        self._last = key
        return self._image
