"""Which backend runs a world when none is named: the fastest this machine has.

ONNX Runtime steps the shipped worlds about 2.5x faster than torch eager on a
CPU (skyloop bench speed), so it is the default wherever `onnxruntime` imports;
the ONNX backend itself then picks CUDA when usable and the CPU otherwise.
Every entry point (play, bench, `World.load`, `WorldEnv`) asks this module, so
they all agree; `--backend` / `backend=` still choose explicitly.
"""

from __future__ import annotations

from engine.errors import SkyloopError

AUTO = "auto"  # "the default": resolved by default_backend()
BACKENDS = ("torch", "compile", "onnx")  # what World.load runs


def onnxruntime_providers() -> list[str] | None:
    """The execution providers of the installed onnxruntime, or None when it does not import."""
    try:
        import onnxruntime
    except (ImportError, OSError):  # not installed, or a broken install (a missing shared library)
        return None
    return list(onnxruntime.get_available_providers())


def default_backend(device: str | None = None) -> str:
    """ "onnx" when onnxruntime imports, else "torch".

    When CUDA is asked for explicitly and onnxruntime has no CUDA provider (the CPU build), torch runs
    instead: it may have CUDA, and the ONNX backend would only warn and run on the CPU.
    """
    providers = onnxruntime_providers()
    if providers is None:
        return "torch"
    if device is not None and str(device).startswith("cuda") and "CUDAExecutionProvider" not in providers:
        return "torch"
    return "onnx"


def resolve_backend(name: str | None, device: str | None = None) -> str:
    """A backend name as given (None or "auto" for the default) -> one of BACKENDS; a clear error otherwise."""
    if name in (None, "", AUTO):
        return default_backend(device)
    if name not in BACKENDS:
        raise SkyloopError(f"unknown backend {name!r}; use auto, {', '.join(BACKENDS)}")
    return name
