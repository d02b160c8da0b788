"""The ONNX Runtime backend: the same world on onnxruntime, CUDA when usable, CPU otherwise.

One code path for both: the KV cache lives in OrtValues on the session's device
and is updated there with I/O binding (step.onnx writes the new entries into a
bound scratch buffer, cache_write.onnx puts them into the ring, double-buffered),
so on a GPU it never crosses to the host; only the frame's tokens do.
The providers a session really got are checked and reported, never assumed.

On the CPU the step graph runs as a copy with its batch and cache length fixed
(`step_session`): onnxruntime then folds the graph's shape arithmetic away. A step
graph of a few hundred small nodes spends much of its time in per-node overhead, so
that alone saves about an eighth of every call (maze, batch 1: 7.6 -> 6.6 ms).
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np

from engine.dynamics.stepper import hidden_token_table
from engine.errors import SkyloopError
from engine.frames import quantize
from engine.world.bundle import WorldSpec


def cache_dir_for(sha256: str) -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "skyloop" / "onnx"
    return base / sha256[:16]


class OnnxBackend:
    name = "onnx"

    def __init__(self, folder: Path, meta: dict, device: str | None = None, threads: int | None = None):
        import onnxruntime as ort

        self.ort = ort
        self.folder = folder
        self.meta = meta
        self.spec = WorldSpec.from_metadata({"skyloop": json.dumps(meta["world"])}, str(folder / "world.json"))
        self.world_sha256 = meta.get("world_sha256")
        start = folder / "start_frames.npy"
        self.start_frames = np.load(start, allow_pickle=False) if start.exists() else None
        self.warnings: list[str] = []
        available = ort.get_available_providers()
        want_cuda = device is None or str(device).startswith("cuda")
        providers = ["CPUExecutionProvider"]
        if want_cuda and "CUDAExecutionProvider" in available:
            providers = [("CUDAExecutionProvider", {"device_id": 0}), "CPUExecutionProvider"]
        elif device is not None and str(device).startswith("cuda"):
            self._warn(f"CUDA was asked for, but this onnxruntime has no CUDA provider (it has {available}); running on the CPU")
        self.threads = threads or min(4, os.cpu_count() or 1)
        self._providers_asked = providers
        self.sessions = {name: self._session(name) for name in ("encoder", "decoder", "step", "cache_write")}
        self._step_by_batch: dict[int, object] = {}
        self.providers = self.sessions["step"].get_providers()
        self.on_cuda = "CUDAExecutionProvider" in self.providers
        if want_cuda and providers[0] != "CPUExecutionProvider" and not self.on_cuda:
            self._warn(f"the CUDA provider is installed but not usable here (session got {self.providers}); running on the CPU")
        self.ort_device = "cuda" if self.on_cuda else "cpu"

    def _session(self, name: str, dims: dict[str, int] | None = None):
        """A session of one graph of the export; `dims` fixes named dimensions (batch, cache)."""
        ort = self.ort
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        # Idle worker threads sleep instead of spinning: play renders and reads input on the same cores, and a
        # spinning pool steals them (the same trap as OpenMP's busy-wait in torch).
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        for dim, value in (dims or {}).items():
            opts.add_free_dimension_override_by_name(dim, value)
        try:
            return ort.InferenceSession(str(self.folder / f"{name}.onnx"), opts, providers=self._providers_asked)
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
            raise SkyloopError(f"{self.folder / f'{name}.onnx'}: onnxruntime cannot load it ({exc})") from exc

    def step_session(self, batch: int):
        """The step graph for `batch` frames at once. On the CPU a copy with the batch and the cache length fixed
        (made on first use, then kept), which computes the same function with its shape arithmetic folded away;
        on CUDA the shared graph (measured on the CPU only)."""
        if self.on_cuda:
            return self.sessions["step"]
        if batch not in self._step_by_batch:
            self._step_by_batch[batch] = self._session("step", {"batch": batch, "cache": self.spec.dynamics.cache_tokens})
        return self._step_by_batch[batch]

    def _warn(self, text: str) -> None:
        self.warnings.append(text)
        warnings.warn(text, RuntimeWarning, stacklevel=3)

    @classmethod
    def open(cls, path, device: str | None = None, threads: int | None = None) -> "OnnxBackend":
        """An export folder, or a world bundle (exported once into the user cache, keyed by its hash)."""
        from engine.export.onnx_export import GRAPH_REVISION, check_export, export_world

        path = Path(path)
        if path.is_dir():
            return cls(path, check_export(path), device, threads)
        from engine.files import sha256_file
        from engine.world.bundle import read_spec

        read_spec(path)  # a clear error for a bad bundle before any export work
        folder = cache_dir_for(sha256_file(path))
        try:
            meta = check_export(folder)
            if meta.get("graph_revision", 1) < GRAPH_REVISION:
                raise SkyloopError(f"{folder}: exported graphs of an older revision")
        except SkyloopError:
            try:
                export_world(path, folder)
            except OSError:  # another process finished the same export first (the rename onto it failed)
                pass
            meta = check_export(folder)
        return cls(folder, meta, device, threads)

    # ---- properties ------------------------------------------------------------
    @property
    def device_name(self) -> str:
        return f"cuda ({self.providers[0]})" if self.on_cuda else f"cpu ({self.threads} threads)"

    def details(self) -> dict:
        return {
            "providers": self.providers,
            "threads": self.threads,
            "onnxruntime": self.ort.__version__,
            "fp16": bool(self.meta.get("fp16")),
            "export": str(self.folder),
            "warnings": self.warnings,
        }

    # ---- frames <-> tokens -------------------------------------------------------
    def encode(self, frames: np.ndarray) -> np.ndarray:
        return self.sessions["encoder"].run(None, {"frames": np.ascontiguousarray(frames, np.uint8)})[0]

    def decode_unit(self, tokens: np.ndarray) -> np.ndarray:
        """tokens [B, N, D] -> float frames [B, H, W, 3] in [0, 1]."""
        return self.sessions["decoder"].run(None, {"tokens": np.ascontiguousarray(tokens, np.float32)})[0]

    def decode(self, tokens: np.ndarray) -> np.ndarray:
        return quantize(self.decode_unit(tokens))

    def stepper(self, batch: int, window: int | None = None) -> "OnnxStepper":
        return OnnxStepper(self, batch, window)


class OnnxStepper:
    """KV cache in OrtValues on the session's device, updated in place of a double buffer."""

    def __init__(self, backend: OnnxBackend, batch: int, window: int | None = None):
        ort = backend.ort
        c = backend.spec.dynamics
        self.window = c.context if window is None else window  # < context: a short-history cache (history guidance)
        self.hidden = hidden_token_table(self.window, c.context, c.tokens_per_frame)  # [commit, t % W, tokens] not to see
        dev = backend.ort_device
        self.cfg = c
        self.backend = backend
        self.step = backend.step_session(batch)
        self.write = backend.sessions["cache_write"]
        shape = (c.depth, batch, c.heads, c.cache_tokens, c.head_dim)
        entries = (c.depth, batch, c.heads, c.tokens_per_frame, c.head_dim)
        # On the CPU an OrtValue made from numpy wraps that array's memory: one array each, kept alive.
        # Zeros, not empty memory: a NaN in a masked slot would still poison the attention sum.
        self._host = [np.zeros(shape, np.float32) for _ in range(4)]
        self.k = [ort.OrtValue.ortvalue_from_numpy(a, dev, 0) for a in self._host[:2]]
        self.v = [ort.OrtValue.ortvalue_from_numpy(a, dev, 0) for a in self._host[2:]]
        self.new_k = ort.OrtValue.ortvalue_from_shape_and_type(entries, np.float32, dev, 0)
        self.new_v = ort.OrtValue.ortvalue_from_shape_and_type(entries, np.float32, dev, 0)
        self.current = 0
        self.bias = np.full((batch, c.cache_tokens), -np.inf, np.float32)  # small: lives on the host
        self.step_binding = self.step.io_binding()
        self.write_binding = self.write.io_binding()
        self.device = dev

    def clear(self) -> None:
        self.bias[:] = -np.inf

    def snapshot(self):
        # Copies: on the CPU .numpy() is a view of the live ring, which the next commits overwrite.
        return self.k[self.current].numpy().copy(), self.v[self.current].numpy().copy(), self.bias.copy()

    def restore(self, state) -> None:
        k, v, bias = state
        self.k[self.current].update_inplace(np.ascontiguousarray(k))
        self.v[self.current].update_inplace(np.ascontiguousarray(v))
        self.bias[:] = bias

    def _slot(self, time: int) -> slice:
        n = self.cfg.tokens_per_frame
        s = time % self.cfg.context
        return slice(s * n, (s + 1) * n)

    @staticmethod
    def _feeds(tokens, sigma, keys, time, role, bias) -> dict[str, np.ndarray]:
        """The step graph's per-call host inputs (all but the cache), named as the graph names them."""
        b = tokens.shape[0]
        return {
            "tokens": np.ascontiguousarray(tokens, np.float32),
            "sigma": np.full((b,), sigma, np.float32),
            "keys": np.ascontiguousarray(keys, np.float32),
            "time": np.full((b,), time, np.int64),
            "role": np.full((b,), role, np.float32),
            "cache_bias": np.ascontiguousarray(bias, np.float32),
        }

    def _run_step(self, tokens, sigma, keys, time, role, bias) -> np.ndarray:
        binding = self.step_binding
        binding.clear_binding_inputs()  # rebinding a name does not replace an output binding: start clean
        binding.clear_binding_outputs()
        feeds = self._feeds(tokens, sigma, keys, time, role, bias)  # bind_cpu_input keeps a pointer: these outlive the run
        for name, array in feeds.items():
            binding.bind_cpu_input(name, array)
        binding.bind_ortvalue_input("cache_k", self.k[self.current])
        binding.bind_ortvalue_input("cache_v", self.v[self.current])
        binding.bind_output("clean", "cpu")  # the frame's tokens come to the host for the sampler
        binding.bind_ortvalue_output("new_k", self.new_k)  # the cache entries stay on the device
        binding.bind_ortvalue_output("new_v", self.new_v)
        self.step.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()[0]

    def _bias_for(self, time: int, commit: bool) -> np.ndarray:
        """The cache bias frame `time` attends with: the filled slots of its window and, committing, not the slot it
        replaces (the bias itself where nothing more is hidden)."""
        if self.window == self.cfg.context and not commit:
            return self.bias
        out = self.bias.copy()
        out[:, self.hidden[int(commit), time % self.cfg.context]] = -np.inf
        return out

    def denoise(self, tokens: np.ndarray, sigma: float, keys: np.ndarray, time: int) -> np.ndarray:
        return self._run_step(tokens, sigma, keys, time, 0.0, self._bias_for(time, False))

    def denoise_pair(self, tokens: np.ndarray, sigma: float, keys: np.ndarray, other_keys: np.ndarray, time: int) -> tuple[np.ndarray, np.ndarray]:
        """denoise() under two sets of keys (key guidance). On the CPU as one call of twice the batch, which costs
        about 1.35x one call instead of 2x; on CUDA the cache lives on the device, so as two calls."""
        if self.device != "cpu":
            return self.denoise(tokens, sigma, keys, time), self.denoise(tokens, sigma, other_keys, time)
        k, v = self._host[self.current], self._host[2 + self.current]  # what self.k/v[current] wrap
        feeds = self._feeds(
            np.concatenate([tokens, tokens]), sigma, np.concatenate([keys, other_keys]), time, 0.0, np.tile(self._bias_for(time, False), (2, 1))
        )
        feeds["cache_k"], feeds["cache_v"] = np.concatenate([k, k], axis=1), np.concatenate([v, v], axis=1)
        clean = self.backend.step_session(2 * tokens.shape[0]).run(["clean"], feeds)[0]
        return tuple(np.split(clean, 2))

    def _batched_with(self, other) -> bool:
        """Whether this stepper and `other` can run as one call of twice the batch: on the CPU, where both
        caches live in host arrays."""
        return self.device == "cpu" and isinstance(other, OnnxStepper) and other.device == "cpu"

    def _run_with(self, other: "OnnxStepper", tokens, sigma, keys, time, role, bias, other_bias, outputs):
        k = np.concatenate([self._host[self.current], other._host[other.current]], axis=1)
        v = np.concatenate([self._host[2 + self.current], other._host[2 + other.current]], axis=1)
        feeds = self._feeds(np.concatenate([tokens, tokens]), sigma, np.concatenate([keys, keys]), time, role, np.concatenate([bias, other_bias]))
        feeds["cache_k"], feeds["cache_v"] = k, v
        return self.backend.step_session(2 * tokens.shape[0]).run(outputs, feeds)

    def denoise_alongside(self, other, tokens: np.ndarray, sigma: float, keys: np.ndarray, time: int) -> tuple[np.ndarray, np.ndarray]:
        """denoise() of this stepper and of `other` (the same world, its own cache: history guidance's short one),
        as one call of twice the batch on the CPU."""
        if not self._batched_with(other):
            return self.denoise(tokens, sigma, keys, time), other.denoise(tokens, sigma, keys, time)
        (clean,) = self._run_with(other, tokens, sigma, keys, time, 0.0, self._bias_for(time, False), other._bias_for(time, False), ["clean"])
        return tuple(np.split(clean, 2))

    def commit_alongside(self, other, tokens: np.ndarray, sigma: float, keys: np.ndarray, time: int) -> None:
        """commit() into this stepper and `other`, as one call of twice the batch on the CPU: the new entries are
        written straight into both host caches."""
        if not self._batched_with(other):
            self.commit(tokens, sigma, keys, time)
            other.commit(tokens, sigma, keys, time)
            return
        slot = self._slot(time)
        new_k, new_v = self._run_with(other, tokens, sigma, keys, time, 1.0, self._bias_for(time, True), other._bias_for(time, True), ["new_k", "new_v"])
        b = tokens.shape[0]
        for s, part in ((self, slice(0, b)), (other, slice(b, 2 * b))):
            s._write_host(slot, new_k[:, part], new_v[:, part])

    def _write_host(self, slot: slice, new_k: np.ndarray, new_v: np.ndarray) -> None:
        """Committed entries into the host arrays the current ring's OrtValues wrap (CPU only), and their slot shown."""
        self._host[self.current][:, :, :, slot] = new_k
        self._host[2 + self.current][:, :, :, slot] = new_v
        self.bias[:, slot] = 0.0

    def commit(self, tokens: np.ndarray, sigma: float, keys: np.ndarray, time: int) -> None:
        slot = self._slot(time)
        self._run_step(tokens, sigma, keys, time, 1.0, self._bias_for(time, True))
        if self.device == "cpu":  # the ring's OrtValues wrap host arrays: the entries go straight in, no graph run
            self._write_host(slot, self.new_k.numpy(), self.new_v.numpy())
            return
        start = np.array(slot.start, np.int64)
        nxt = 1 - self.current
        for ring, entries in ((self.k, self.new_k), (self.v, self.new_v)):
            binding = self.write_binding
            binding.clear_binding_inputs()
            binding.clear_binding_outputs()
            binding.bind_ortvalue_input("cache", ring[self.current])
            binding.bind_ortvalue_input("entries", entries)
            binding.bind_cpu_input("start", start)
            binding.bind_ortvalue_output("updated", ring[nxt])
            self.write.run_with_iobinding(binding)
        self.current = nxt
        self.bias[:, slot] = 0.0
