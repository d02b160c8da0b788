"""A running world: `World.load(path)` (ONNX Runtime when installed, else torch), `reset(context)`, `step(keys) -> frame`.

The session converts pixels at its two ends (encode the context, decode each
new frame); in between, the rollout works on latent tokens only. The KV cache
and context buffers are allocated once per reset and written in place, so
memory stays flat however long you play. Same context, keys and seed give the
same frames.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from engine.dynamics.rollout import Rollout
from engine.dynamics.sampler import FlowSampler, SamplerConfig
from engine.errors import SkyloopError
from engine.frames import as_frame, fit_frame, quantize
from engine.keys import KeySet
from engine.world.backend import Backend
from engine.world.bundle import WorldSpec
from engine.world.canvas import Canvas
from engine.world.trail import Trail, inverse_indices


class World:
    """A learned world. Frames are uint8 [H, W, 3] (or [B, H, W, 3] for a batch of worlds)."""

    def __init__(
        self, spec: WorldSpec, backend: Backend, start_frames: np.ndarray | None, path: Path | None, sha256: str | None, sampler: SamplerConfig | None = None
    ):
        self.spec = spec
        self.backend = backend
        self.start_frames = start_frames
        self.path = path
        self.sha256 = sha256
        self.sampler_cfg = sampler or spec.sampler
        try:
            self.sampler = FlowSampler(self.sampler_cfg)
        except ValueError as exc:
            raise SkyloopError(f"sampler settings: {exc}") from None
        c = self.sampler_cfg
        if c.history_guidance and c.history_frames >= spec.dynamics.context:  # FlowSampler has checked >= 1
            raise SkyloopError(
                f"history guidance's reference must see fewer frames than the world's context ({spec.dynamics.context}), got history frames {c.history_frames}"
            )
        self.rollout: Rollout | None = None
        self.canvases: list[Canvas] | None = None  # canvas memory, one per world of the batch (when the sampler says so)
        self.trails: list[Trail] | None = None  # retrace memory, likewise
        if c.retrace and (inverse_indices(spec.keyset) < 0).all():
            raise SkyloopError(
                f"retrace memory needs keys that undo each other (forward/back, left/right); this world's keys are {', '.join(spec.keyset.names)}"
            )
        self.batch = 0
        self.batched = False
        self.notices: list[str] = []  # things the user should be told (image resized, scene missing, ...)
        self.last_step_ms = 0.0

    # ---- loading -------------------------------------------------------------
    @classmethod
    def load(cls, path, backend: str = "auto", device: str | None = None, sampler: SamplerConfig | dict | None = None, threads: int | None = None) -> "World":
        """backend: "auto" (the default: onnx when onnxruntime is installed, else torch; see default_backend),
        "torch" (eager), "compile" (torch.compile of the step) or "onnx" (an export folder or a bundle)."""
        from engine.world.default_backend import resolve_backend

        path = Path(path)
        backend = resolve_backend(backend, device)
        if backend in ("torch", "compile"):
            from engine.world.bundle import load_bundle
            from engine.world.torch_backend import TorchBackend

            device = device or "cpu"
            if threads:
                import torch

                torch.set_num_threads(threads)
            bundle = load_bundle(path, device=device)
            spec = bundle.spec
            be = TorchBackend(bundle, device=device, compile=backend == "compile")
            start, sha = bundle.start_frames, bundle.sha256
        elif backend == "onnx":
            from engine.world.onnx_backend import OnnxBackend

            be = OnnxBackend.open(path, device=device, threads=threads)
            spec, start, sha = be.spec, be.start_frames, be.world_sha256
        else:  # resolve_backend has already refused anything else
            raise SkyloopError(f"unknown backend {backend!r}; use auto, torch, compile or onnx")
        if isinstance(sampler, dict):  # overrides of the bundle's sampler settings
            sampler = replace(spec.sampler, **sampler)
        return cls(spec, be, start, path, sha, sampler)

    # ---- properties ------------------------------------------------------------
    @property
    def keyset(self) -> KeySet:
        return self.spec.keyset

    @property
    def frame_size(self) -> tuple[int, int]:
        return self.spec.frame_size

    @property
    def time(self) -> int:
        return self.rollout.time if self.rollout else 0

    def describe(self) -> dict:
        return {"backend": self.backend.name, "device": self.backend.device_name, **self.backend.details()}

    # ---- context -------------------------------------------------------------
    def context_frames(self, context, seed: int = 0) -> np.ndarray:
        """Frames [T, H, W, 3] for a context: None or an int seed (the bundle's scene), an image, clip frames, or a file path."""
        if isinstance(context, (str, Path)):
            from engine.world.context_files import read_context_file

            context = read_context_file(context)
        if context is None or isinstance(context, (int, np.integer)):
            seed = seed if context is None else int(context)
            return self._scene_start(seed)[None]
        arr = np.asarray(context)
        if arr.ndim == 3:
            frame, notice = fit_frame(arr, self.frame_size)
            if notice:
                self.notices.append(notice)
            return frame[None]
        if arr.ndim == 4:
            if arr.shape[1:3] != tuple(self.frame_size):
                self.notices.append(f"clip {arr.shape[2]}x{arr.shape[1]} resized to the world's {self.frame_size[1]}x{self.frame_size[0]}")
                arr = np.stack([fit_frame(f, self.frame_size)[0] for f in arr])
            return np.stack([as_frame(f, "clip frame") for f in arr])
        raise SkyloopError(f"context must be a seed, an image [H, W, 3] or clip frames [T, H, W, 3]; got shape {arr.shape}")

    def _scene_start(self, seed: int) -> np.ndarray:
        scene_name = self.spec.scene
        try:
            from scenes import SCENES, make_scene

            if scene_name in SCENES or scene_name.startswith("gym:"):
                scene = make_scene(scene_name, size=self.frame_size, **self.spec.scene_options)
                try:
                    return scene.reset(seed)
                finally:
                    scene.close()
        except SkyloopError as exc:
            self.notices.append(f"scene {scene_name} is not available here ({exc}); starting from a stored frame")
        except ImportError:
            self.notices.append("scenes are not installed; starting from a stored frame")
        if self.start_frames is None or not len(self.start_frames):
            raise SkyloopError(f"this world's scene ({scene_name}) is not available and the bundle stores no start frames: start it from an image or a clip")
        return self.start_frames[seed % len(self.start_frames)]

    # ---- the loop ------------------------------------------------------------
    def reset(self, context=None, seed: int = 0, context_keys: np.ndarray | None = None) -> np.ndarray:
        """Starts the world from a context; returns the last context frame (what the player sees first).

        A list of contexts starts a batch of independent worlds (frames then come as [B, H, W, 3]).
        """
        self.notices = []
        contexts = context if isinstance(context, list) else [context]
        clips = [self.context_frames(c, seed) for c in contexts]
        length = min(len(c) for c in clips)
        clips = np.stack([c[-length:] for c in clips])  # [B, T, H, W, 3]
        b = clips.shape[0]
        tokens = self.backend.encode(clips.reshape(-1, *clips.shape[2:]))
        tokens = tokens.reshape(b, length, *tokens.shape[1:])
        if context_keys is not None:
            context_keys = np.asarray(context_keys, np.float32).reshape(b, -1, len(self.keyset))[:, -length:]
        if self.rollout is None or self.batch != b:
            stepper = self.backend.stepper(b)  # allocates the KV cache once per batch size
            short = None
            if self.sampler.cfg.history_guidance:  # history guidance's reference: a second cache, short history
                short = self.backend.stepper(b, window=self.sampler.cfg.history_frames)
            self.rollout = Rollout(stepper, self.sampler, (b, *tokens.shape[2:]), len(self.keyset), short)
            self.batch = b
        self.rollout.reset(tokens, context_keys, seed=seed)
        self.canvases = None
        if self.sampler_cfg.canvas:
            self.canvases = [Canvas(self.frame_size, self.sampler_cfg.canvas_shift) for _ in range(b)]
            held = np.zeros((b, length, len(self.keyset)), np.float32) if context_keys is None else context_keys
            for canvas, clip, keys in zip(self.canvases, clips, held):
                for frame, k in zip(clip, keys):
                    canvas.observe(frame.astype(np.float32) / 255.0, k)
        self.trails = None
        if self.sampler_cfg.retrace:
            self.trails = [Trail(inverse_indices(self.keyset)) for _ in range(b)]
            # the context's own ticks are steps of the way too; without their keys, the way starts at its last frame
            first = 0 if context_keys is not None else length - 1
            for i, trail in enumerate(self.trails):
                trail.start(clips[i, first], tokens[i, first])
                for t in range(first + 1, length):
                    trail.observe(clips[i, t], tokens[i, t], context_keys[i, t])
        self.batched = isinstance(context, list)  # a list of contexts: frames come back with a batch axis, even for one
        last = clips[:, -1]
        return last if self.batched else last[0]

    def keys_batch(self, keys) -> np.ndarray:
        """[B, K] multi-hot: one row per world of the batch, or the same keys for all of them."""
        if isinstance(keys, np.ndarray) and keys.ndim == 2:
            if len(keys) != self.batch:
                raise SkyloopError(f"{len(keys)} rows of keys for a batch of {self.batch} worlds")
            return np.stack([self.keyset.vector(k) for k in keys])
        return np.repeat(self.keyset.vector(keys)[None], self.batch, axis=0)

    def step(self, keys=()) -> np.ndarray:
        """Advances one tick with the keys held (names or a multi-hot vector; [B, K] for a batch); uint8 frame(s)."""
        return quantize(self.step_unit(keys))

    def step_unit(self, keys=()) -> np.ndarray:
        """Like step, but the frame(s) as float in [0, 1] before quantisation (for parity checks)."""
        if self.rollout is None:
            raise SkyloopError("call reset(context) before step()")
        start = time.perf_counter()
        held = self.keys_batch(keys)
        if self.canvases is None and self.trails is None:
            frames = self.backend.decode_unit(self.rollout.step(held))
        else:
            frames = self._step_with_memory(held)
        self.last_step_ms = (time.perf_counter() - start) * 1000
        return frames if self.batched else frames[0]

    def _step_with_memory(self, held: np.ndarray) -> np.ndarray:
        """A tick with canvas and/or retrace memory. A world whose keys undo its last step (retrace) shows and commits
        the frame from before that step, and the model is not run for it. Otherwise the world's frame, composed with
        what the canvas remembers, is what is shown and (re-encoded) what enters the context; a frame the canvas left
        alone enters as the world made it. The shown frame becomes the next step of the way if it moved."""
        b = len(held)
        recalled = [None] * b if self.trails is None else [trail.undo(k) for trail, k in zip(self.trails, held)]
        fresh = [i for i in range(b) if recalled[i] is None]
        if fresh:
            x0 = self.rollout.predict(held)  # the whole batch: one call costs the same
            shown = self.backend.decode_unit(x0)
        else:
            x0 = np.stack([r[1] for r in recalled])
            shown = np.zeros((b, *self.frame_size, 3), np.float32)
        x0 = x0.copy()
        edited = np.zeros(b, bool)
        for i in range(b):
            if recalled[i] is not None:
                shown[i] = recalled[i][0].astype(np.float32) / 255.0
                x0[i] = recalled[i][1]
                if self.canvases is not None:
                    self.canvases[i].observe(shown[i], held[i])
            elif self.canvases is not None:
                composed = self.canvases[i].compose(shown[i], held[i])
                edited[i] = np.any(composed != shown[i])
                shown[i] = composed
        if edited.any():
            x0[edited] = self.backend.encode(quantize(shown[edited]))
        self.rollout.commit_own(x0, held)
        if self.trails is not None:
            for i in fresh:
                self.trails[i].record(quantize(shown[i]), x0[i], held[i])
        return shown

    def predict(self, keys=()) -> np.ndarray:
        """The next frame for these keys without keeping it (teacher forcing: observe() the real one instead)."""
        if self.rollout is None:
            raise SkyloopError("call reset(context) before predict()")
        frames = self.backend.decode(self.rollout.predict(self.keys_batch(keys)))
        return frames if self.batched else frames[0]

    def observe(self, frames: np.ndarray, keys=()) -> None:
        """Puts real frames (uint8 [H, W, 3], or [B, H, W, 3] for a batch) into the context as the next tick."""
        if self.rollout is None:
            raise SkyloopError("call reset(context) before observe()")
        frames = np.asarray(frames)
        frames = frames.reshape(-1, *frames.shape[-3:])
        held = self.keys_batch(keys)
        tokens = self.backend.encode(frames)
        self.rollout.commit_real(tokens, held)
        for canvas, frame, k in zip(self.canvases or [], frames, held):
            canvas.observe(frame.astype(np.float32) / 255.0, k)
        for trail, frame, tok, k in zip(self.trails or [], frames, tokens, held):
            trail.observe(frame, tok, k)

    def snapshot(self):
        """A save state: reset()-free restore() continues from exactly here."""
        if self.rollout is None:
            raise SkyloopError("call reset(context) before snapshot()")
        canvases = None if self.canvases is None else [c.snapshot() for c in self.canvases]
        trails = None if self.trails is None else [t.snapshot() for t in self.trails]
        return self.batch, self.rollout.snapshot(), canvases, trails

    def restore(self, state) -> None:
        batch, rollout_state, canvases, trails = state
        if batch != self.batch:
            raise SkyloopError(f"snapshot is of a batch of {batch}, the world now runs {self.batch}")
        self.rollout.restore(rollout_state)
        for canvas, saved in zip(self.canvases or [], canvases or []):
            canvas.restore(saved)
        for trail, saved in zip(self.trails or [], trails or []):
            trail.restore(saved)

    def encode(self, frames: np.ndarray) -> np.ndarray:
        return self.backend.encode(frames)

    def decode(self, tokens: np.ndarray) -> np.ndarray:
        return self.backend.decode(tokens)
