"""The torch backend: eager (or `torch.compile`d) tokenizer and dynamics step."""

from __future__ import annotations

import numpy as np
import torch

from engine.dynamics.cache import TorchStepper
from engine.frames import quantize
from engine.world.bundle import Bundle


class TorchBackend:
    name = "torch"

    def __init__(self, bundle: Bundle, device="cpu", compile: bool = False):
        self.device = torch.device(device)
        self.tokenizer = bundle.tokenizer.to(self.device).eval()
        self.dynamics = bundle.dynamics.to(self.device).eval()
        self.compiled = compile
        if compile:  # only the per-frame functions, as DIAMOND does
            self.name = "compile"
            self.dynamics.step = torch.compile(self.dynamics.step, dynamic=False)
            self.tokenizer.decoder = torch.compile(self.tokenizer.decoder, dynamic=False)

    @property
    def device_name(self) -> str:
        if self.device.type == "cuda":
            return f"cuda ({torch.cuda.get_device_name(self.device)})"
        return f"cpu ({torch.get_num_threads()} threads)"

    def details(self) -> dict:
        return {"torch": torch.__version__, "threads": torch.get_num_threads()}

    def stepper(self, batch: int, window: int | None = None) -> TorchStepper:
        return TorchStepper(self.dynamics, batch, self.device, window)

    @torch.inference_mode()
    def encode(self, frames: np.ndarray) -> np.ndarray:
        """uint8 [B, H, W, 3] -> tokens [B, N, D] float32."""
        x = torch.from_numpy(np.ascontiguousarray(frames)).to(self.device)
        return self.tokenizer.encode(x).float().cpu().numpy()

    @torch.inference_mode()
    def decode_unit(self, tokens: np.ndarray) -> np.ndarray:
        """tokens [B, N, D] -> float frames [B, H, W, 3] in [0, 1]."""
        x = torch.from_numpy(np.ascontiguousarray(tokens, np.float32)).to(self.device)
        return self.tokenizer.decode(x).permute(0, 2, 3, 1).float().cpu().numpy()

    def decode(self, tokens: np.ndarray) -> np.ndarray:
        """tokens [B, N, D] -> uint8 [B, H, W, 3], quantised on the host exactly as every backend does."""
        return quantize(self.decode_unit(tokens))
