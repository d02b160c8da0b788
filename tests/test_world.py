import json
import os
import struct

import numpy as np
import pytest
from safetensors.numpy import save_file

from engine.errors import SkyloopError
from engine.world.bundle import BundleError, load_bundle, read_spec
from engine.world.session import World
from tests.conftest import rewrite_metadata


def test_bundle_carries_everything_play_needs(tiny_world, tiny_dataset):
    from engine.data.dataset import Dataset

    spec = read_spec(tiny_world)
    ds = Dataset.open(tiny_dataset)
    assert spec.scene == "overworld" and spec.frame_size == (32, 32)
    assert spec.keyset.names == ds.keyset.names and spec.keyset.bindings["up"]
    assert spec.dataset["content_hash"] == ds.manifest.content_hash()
    assert spec.training["dynamics_steps"] == 40 and spec.training["preset"] == "tiny"
    bundle = load_bundle(tiny_world)
    assert bundle.start_frames.shape[1:] == (32, 32, 3)


def test_save_load_round_trip_gives_the_same_frames(tiny_world, tmp_path):
    from engine.world.bundle import save_bundle

    bundle = load_bundle(tiny_world)
    copy = tmp_path / "copy.safetensors"
    save_bundle(copy, bundle.spec, bundle.tokenizer, bundle.dynamics, extra={"start_frames": __import__("torch").from_numpy(bundle.start_frames)})
    a, b = World.load(tiny_world, backend="torch"), World.load(copy, backend="torch")
    keys = np.random.default_rng(0).integers(0, 2, (12, 4)).astype(np.uint8)
    fa = [a.reset(None, seed=2)] + [a.step(k) for k in keys]
    fb = [b.reset(None, seed=2)] + [b.step(k) for k in keys]
    assert np.array_equal(np.stack(fa), np.stack(fb))


def test_int8_weights_halve_the_file_and_play_nearly_the_same_frames(tiny_world, tmp_path, capsys):
    """`skyloop pack --weights int8`: blocks of 64 inputs with a float32 scale each; the file says how it stores its
    weights, loads back into float32 modules, and a re-save keeps the storage (tools/set_sampler, decoder tuning)."""
    import torch

    from engine.cli import main as cli_main
    from engine.world.bundle import dequantize_int8, quantize_int8, save_bundle, weight_storage

    w = torch.randn(96, 128) * torch.linspace(0.01, 3.0, 128)  # inputs of very different scales: blocks matter
    q, scale = quantize_int8(w)
    assert q.dtype == torch.int8 and scale.shape == (96, 2)
    err = (dequantize_int8(q, scale) - w).abs().reshape(96, 2, 64)
    assert (err <= scale[..., None] / 2 + 1e-7).all(), "each weight within half a step of its block's grid"

    out = tmp_path / "int8.safetensors"
    assert cli_main(["pack", str(tiny_world), "--weights", "int8", "--out", str(out)]) == 0
    assert "float16 -> int8 weights" in capsys.readouterr().out
    assert weight_storage(out) == "int8" and weight_storage(tiny_world) == "float16"
    assert out.stat().st_size < 0.7 * tiny_world.stat().st_size
    assert json.loads(__import__("safetensors").safe_open(str(out), "np").metadata()["skyloop"])["format_version"] == 2
    a, b = World.load(tiny_world, backend="torch"), World.load(out, backend="torch")
    keys = np.random.default_rng(0).integers(0, 2, (12, 4)).astype(np.uint8)
    fa = np.stack([a.reset(None, seed=2)] + [a.step(k) for k in keys]).astype(float)
    fb = np.stack([b.reset(None, seed=2)] + [b.step(k) for k in keys]).astype(float)
    assert 10 * np.log10(255**2 / np.mean((fa - fb) ** 2)) > 30, "int8 rounding moves the frames a little, not the world"
    bundle = load_bundle(out)
    assert bundle.weights == "int8"
    again = tmp_path / "again.safetensors"
    bundle.save(again)
    c = load_bundle(again)
    assert all(torch.allclose(c.dynamics.state_dict()[k], v, atol=1e-6) for k, v in bundle.dynamics.state_dict().items()), "re-quantizing is idempotent"
    assert cli_main(["pack", str(out), "--weights", "float16", "--out", str(out)]) != 0
    assert "write the repacked world to another file" in capsys.readouterr().err and weight_storage(out) == "int8"
    with pytest.raises(SkyloopError, match="unknown weight storage 'int4'"):
        save_bundle(tmp_path / "x.safetensors", bundle.spec, bundle.tokenizer, bundle.dynamics, weights="int4")


def test_int8_weights_whose_scales_do_not_fit_are_named(tiny_world, tmp_path):
    from engine.cli import main as cli_main

    packed = tmp_path / "int8.safetensors"
    cli_main(["pack", str(tiny_world), "--weights", "int8", "--out", str(packed)])
    name = "dynamics.blocks.0.qkv.weight.int8_scale"
    bad = tmp_path / "bad.safetensors"
    rewrite_metadata(packed, bad, lambda o, t: t.update({name: t[name][:-1]}))
    with pytest.raises(BundleError, match="do not match their scales"):
        World.load(bad)
    rewrite_metadata(packed, bad, lambda o, t: t.pop(name))
    with pytest.raises(BundleError, match="int8 weights without scales"):
        World.load(bad)


def test_same_context_keys_and_seed_give_the_same_frames(tiny_world):
    world = World.load(tiny_world, backend="torch")
    keys = np.random.default_rng(1).integers(0, 2, (10, 4)).astype(np.uint8)
    runs = []
    for seed in (5, 5, 6):
        world.reset(None, seed=seed)
        runs.append(np.stack([world.step(k) for k in keys]))
    assert np.array_equal(runs[0], runs[1]) and not np.array_equal(runs[0], runs[2])


def test_context_from_an_image_and_from_a_clip(tiny_world):
    world = World.load(tiny_world, backend="torch")
    big = np.random.default_rng(0).integers(0, 255, (100, 140, 3), dtype=np.uint8)
    first = world.reset(big)
    assert first.shape == (32, 32, 3) and any("resized" in n for n in world.notices)
    assert world.step(["up"]).shape == (32, 32, 3)
    clip = np.random.default_rng(1).integers(0, 255, (6, 32, 32, 3), dtype=np.uint8)
    assert np.array_equal(world.reset(clip), clip[-1]) and world.time == 6


def test_batch_of_worlds_matches_single_worlds(tiny_world):
    world = World.load(tiny_world, backend="torch")
    keys = np.random.default_rng(2).integers(0, 2, (6, 4)).astype(np.uint8)
    world.reset([None, None], seed=3)
    batched = np.stack([world.step(np.stack([k, k])) for k in keys])  # [T, B, H, W, 3]
    assert batched.shape == (6, 2, 32, 32, 3)
    assert np.abs(batched[:, 0].astype(int) - batched[:, 1].astype(int)).max() > 0, "each world draws its own noise"


def test_key_guidance_pairs_equal_two_separate_estimates_on_both_backends(tiny_world, tiny_export):
    """The ONNX stepper batches the with- and without-keys estimates into one call; it must equal two calls, and a
    guided world must step the same on ONNX Runtime as on torch."""
    rng = np.random.default_rng(4)
    onnx_world = World.load(tiny_export, backend="onnx", threads=1, sampler={"key_guidance": 1.0, "guided_steps": 2})
    onnx_world.reset([None, None], seed=2)
    for _ in range(3):
        onnx_world.step(rng.integers(0, 2, (2, 4)).astype(np.uint8))
    stepper = onnx_world.rollout.stepper
    tokens = rng.standard_normal((2, *onnx_world.rollout.shape[1:])).astype(np.float32)
    keys, none = np.array([[1, 0, 0, 1], [0, 1, 0, 0]], np.float32), np.zeros((2, 4), np.float32)
    a, b = stepper.denoise_pair(tokens, 0.7, keys, none, onnx_world.time)
    np.testing.assert_allclose(a, stepper.denoise(tokens, 0.7, keys, onnx_world.time), atol=1e-5)
    np.testing.assert_allclose(b, stepper.denoise(tokens, 0.7, none, onnx_world.time), atol=1e-5)
    frames = []
    for backend, path in (("onnx", tiny_export), ("torch", tiny_world)):
        world = World.load(path, backend=backend, threads=1, sampler={"key_guidance": 1.0, "guided_steps": 2})
        world.reset(None, seed=5)
        frames.append(np.stack([world.step_unit(k) for k in np.eye(4, dtype=np.uint8)]))
    assert np.abs(frames[0] - frames[1]).max() <= 1e-3


@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_a_save_state_survives_more_steps_than_the_context(tiny_world, tiny_export, backend):
    """restore() brings back the world as it was at snapshot(), however far it ran since (the benchmark's forks
    branch from one): the ring cache is rewritten every `context` steps, so a save state must not share its memory."""
    world = World.load(tiny_export if backend == "onnx" else tiny_world, backend=backend, threads=1)
    keys = np.random.default_rng(6).integers(0, 2, (3 * world.spec.dynamics.context, 4)).astype(np.uint8)
    world.reset(None, seed=2)
    world.step(["up"])
    state = world.snapshot()
    first = np.stack([world.step_unit(k) for k in keys])
    world.restore(state)
    np.testing.assert_array_equal(first, np.stack([world.step_unit(k) for k in keys]))


def test_history_guidance_steps_the_same_on_both_backends(tiny_world, tiny_export):
    """The short-history cache (history guidance's reference) masks the same slots on ONNX Runtime as on torch."""
    frames = []
    over = {"history_guidance": 1.0, "history_frames": 2, "history_steps": 2}
    for backend, path in (("onnx", tiny_export), ("torch", tiny_world)):
        world = World.load(path, backend=backend, threads=1, sampler=over)
        world.reset(None, seed=5)
        frames.append(np.stack([world.step_unit(k) for k in np.eye(4, dtype=np.uint8)[[0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2]]]))
    plain = World.load(tiny_world, backend="torch", threads=1)
    plain.reset(None, seed=5)
    unguided = np.stack([plain.step_unit(k) for k in np.eye(4, dtype=np.uint8)[[0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2]]])
    assert np.abs(frames[0] - frames[1]).max() <= 1e-3
    assert np.abs(frames[1] - unguided).max() > 1e-3, "and guidance changes what the world draws"
    world = World.load(tiny_export, backend="onnx", threads=1, sampler=over)  # a save state holds both caches
    world.reset(None, seed=5)
    world.step(["up"])
    state = world.snapshot()
    ahead = [world.step_unit(k) for k in np.eye(4, dtype=np.uint8)]
    world.restore(state)
    np.testing.assert_array_equal(np.stack(ahead), np.stack([world.step_unit(k) for k in np.eye(4, dtype=np.uint8)]))
    context = World.load(tiny_world, backend="torch").spec.dynamics.context
    with pytest.raises(SkyloopError, match="fewer frames than the world's context"):
        World.load(tiny_world, backend="torch", sampler={"history_guidance": 1.0, "history_frames": context})


def test_memory_is_flat_over_many_steps(tiny_export):
    """10,000 steps: the KV cache and buffers are allocated once, so resident memory does not grow."""
    world = World.load(tiny_export, backend="onnx", threads=1)
    stepper_arrays = None

    def rss_mb():
        with open(f"/proc/{os.getpid()}/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    world.reset(None, seed=0)
    rng = np.random.default_rng(0)
    for _ in range(500):  # warm-up: allocator pools settle
        world.step(rng.integers(0, 2, 4).astype(np.uint8))
    stepper_arrays = [id(a) for a in world.rollout.stepper._host]
    before = rss_mb()
    for _ in range(10_000):
        world.step(rng.integers(0, 2, 4).astype(np.uint8))
    growth = rss_mb() - before
    assert [id(a) for a in world.rollout.stepper._host] == stepper_arrays
    assert world.time == 10_501
    assert growth < 16, f"resident memory grew by {growth:.1f} MiB over 10,000 steps"


# ---- bad files ----------------------------------------------------------------
def test_truncated_bundle_says_truncated(tiny_world, tmp_path):
    bad = tmp_path / "cut.safetensors"
    data = tiny_world.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(BundleError, match="truncated"):
        World.load(bad)


def test_foreign_safetensors_says_not_a_world(tmp_path):
    path = tmp_path / "other.safetensors"
    save_file({"w": np.zeros(3, np.float32)}, str(path), metadata={"author": "someone"})
    with pytest.raises(BundleError, match="not a Skyloop world"):
        World.load(path)


def test_garbage_file_says_not_safetensors(tmp_path):
    path = tmp_path / "junk.safetensors"
    path.write_bytes(struct.pack("<Q", 10**12) + b"junk")
    with pytest.raises(BundleError, match="not a safetensors file"):
        World.load(path)


def test_other_format_version_is_named(tiny_world, tmp_path):
    path = tmp_path / "future.safetensors"
    rewrite_metadata(tiny_world, path, lambda o, t: o.update(format_version=99))
    with pytest.raises(BundleError, match="version 99"):
        World.load(path)


def test_weights_that_do_not_match_the_config_are_named(tiny_world, tmp_path):
    path = tmp_path / "mismatch.safetensors"
    rewrite_metadata(tiny_world, path, lambda o, t: o["dynamics"].update(width=128, heads=4))
    with pytest.raises(BundleError, match="dynamics weights do not match"):
        World.load(path)


def test_missing_world_file():
    with pytest.raises(SkyloopError, match="does not exist"):
        World.load("/nonexistent/world.safetensors")


def test_the_learned_world_is_a_gymnasium_env(tiny_world):
    from gymnasium.utils.env_checker import check_env

    from engine import WorldEnv

    env = WorldEnv(tiny_world, max_steps=5, reward_fn=lambda frame, keys: float(frame.mean() / 255))
    check_env(env, skip_render_check=True)
    obs, info = env.reset(seed=3)
    assert obs.shape == (32, 32, 3) and info["keys"] == ["up", "down", "left", "right"]
    total, truncated = 0.0, False
    while not truncated:
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        total += reward
    assert info["tick"] == 5 and 0 < total <= 5


def test_a_world_saved_by_an_earlier_version_still_loads_and_plays_the_same():
    """tests/data/world_v1.safetensors was written by format version 1 (tests/data/make_compat_fixture.py)."""
    from pathlib import Path

    here = Path(__file__).parent / "data"
    spec = read_spec(here / "world_v1.safetensors")
    assert spec.scene == "overworld" and spec.keyset.names == ("up", "down", "left", "right")
    world = World.load(here / "world_v1.safetensors", backend="torch")  # the fixture is a torch rollout
    keys = [["up"], ["up", "left"], [], ["right"], ["down"], ["down", "right"], ["left"], []]
    frames = np.stack([world.reset(None, seed=5)] + [world.step(k) for k in keys])
    expected = np.load(here / "world_v1_rollout.npy")
    diff = np.abs(frames.astype(int) - expected.astype(int))
    assert diff.max() <= 3 and diff.mean() < 0.5, "same frames, up to float differences between CPUs"


def test_the_default_backend_is_onnx_runtime_where_it_imports(tiny_world):
    from engine import WorldEnv
    from engine.world.default_backend import default_backend, resolve_backend

    assert default_backend() == "onnx" and resolve_backend(None) == resolve_backend("auto") == "onnx"
    assert resolve_backend("torch") == "torch"
    assert World.load(tiny_world).describe()["backend"] == "onnx"
    assert WorldEnv(tiny_world).world.describe()["backend"] == "onnx"


def test_the_default_backend_is_torch_where_onnxruntime_does_not_import(tiny_world, monkeypatch):
    import sys

    from engine import WorldEnv
    from engine.world.default_backend import default_backend

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` now raises ImportError
    assert default_backend() == "torch" and default_backend("cuda") == "torch"
    assert World.load(tiny_world).describe()["backend"] == "torch"
    assert WorldEnv(tiny_world).world.describe()["backend"] == "torch"


def test_cuda_asked_of_a_cpu_only_onnxruntime_runs_torch(monkeypatch):
    import onnxruntime

    from engine.world.default_backend import default_backend

    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CPUExecutionProvider"])
    assert default_backend("cuda") == "torch" and default_backend("cpu") == default_backend() == "onnx"
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert default_backend("cuda:0") == "onnx"


def test_an_unknown_backend_is_named(tiny_world):
    with pytest.raises(SkyloopError, match="unknown backend 'tensorrt'; use auto, torch, compile, onnx"):
        World.load(tiny_world, backend="tensorrt")


def test_compiled_world_matches_eager(tiny_world):
    """The torch.compile fast path against the eager reference."""
    keys = np.random.default_rng(4).integers(0, 2, (10, 4)).astype(np.uint8)
    out = []
    for backend in ("torch", "compile"):
        world = World.load(tiny_world, backend=backend, threads=1)
        world.reset(None, seed=6)
        out.append(np.stack([world.step_unit(k) for k in keys]))
    assert np.abs(out[0] - out[1]).max() <= 1e-3


def test_the_backends_and_steppers_declare_the_same_interface():
    """Twins side by side: torch and ONNX Runtime implement every member of Backend and Stepper."""
    from engine.dynamics.cache import TorchStepper
    from engine.dynamics.stepper import Stepper
    from engine.world.backend import Backend
    from engine.world.onnx_backend import OnnxBackend, OnnxStepper
    from engine.world.torch_backend import TorchBackend

    def members(protocol):
        return {m for m in vars(protocol) if not m.startswith("_")} | set(getattr(protocol, "__annotations__", {}))

    for cls in (TorchBackend, OnnxBackend):
        assert members(Backend) <= set(dir(cls)) | {"name"}, cls
    for cls in (TorchStepper, OnnxStepper):
        assert members(Stepper) <= set(dir(cls)), cls


def test_a_torch_world_runs_through_the_declared_interfaces(tiny_world):
    from engine.dynamics.stepper import Stepper
    from engine.world.backend import Backend

    world = World.load(tiny_world)
    assert isinstance(world.backend, Backend) and isinstance(world.backend.stepper(1), Stepper)


def test_a_world_describes_itself_for_skyloop_info():
    from pathlib import Path

    path = Path(__file__).parent / "data" / "world_v1.safetensors"
    text = read_spec(path).describe(str(path), path.stat().st_size)
    assert text.startswith(f"{path} (0.4 MiB): a world of scene overworld")
    assert "keys: up [up/w], down [down/s]" in text and "trained: preset tiny, 60 tokenizer + 60 dynamics steps" in text
