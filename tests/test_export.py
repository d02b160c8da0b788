import json
import shutil
import warnings

import numpy as np
import pytest

from engine.errors import SkyloopError
from engine.world.session import World

FRAMES = 40


def rollout_unit(world, keys, seed=4):
    world.reset(None, seed=seed)
    return np.stack([world.step_unit(k) for k in keys])


def test_export_writes_every_file_with_hashes(tiny_export):
    meta = json.loads((tiny_export / "world.json").read_text())
    for name in ("encoder.onnx", "decoder.onnx", "step.onnx", "cache_write.onnx"):
        assert (tiny_export / name).stat().st_size > 0 and len(meta["files"][name]) == 64
    assert meta["world"]["scene"] == "overworld" and (tiny_export / "start_frames.npy").exists()


def test_onnx_world_matches_torch_frame_for_frame(tiny_world, tiny_export):
    """fp32 parity over 40 autoregressive frames: max difference <= 1e-3 on a 0-1 pixel scale."""
    keys = np.random.default_rng(0).integers(0, 2, (FRAMES, 4)).astype(np.uint8)
    torch_frames = rollout_unit(World.load(tiny_world, backend="torch"), keys)
    onnx_frames = rollout_unit(World.load(tiny_export, backend="onnx"), keys)
    diff = np.abs(torch_frames - onnx_frames).max()
    assert diff <= 1e-3, f"max abs difference {diff:.2e}"
    assert torch_frames.std() > 0.01, "the frames are not blank"


def test_onnx_parity_with_a_batch_and_the_dynamic_cache_axis(tiny_world, tiny_export):
    keys = np.random.default_rng(1).integers(0, 2, (12, 3, 4)).astype(np.uint8)
    out = []
    for path, backend in ((tiny_world, "torch"), (tiny_export, "onnx")):
        world = World.load(path, backend=backend)
        world.reset([None, 1, 2], seed=0)
        out.append(np.stack([world.step_unit(k) for k in keys]))
    assert np.abs(out[0] - out[1]).max() <= 1e-3


def test_onnx_parity_with_key_guidance_on_the_doubled_batch(tiny_world, tiny_export):
    """Key guidance runs both estimates as one call of twice the batch: a step graph of its own batch on the CPU."""
    keys = np.random.default_rng(2).integers(0, 2, (8, 2, 4)).astype(np.uint8)
    keys[:, :, 0] = 1  # a key held everywhere: guidance is never a no-op
    out = []
    for path, backend in ((tiny_world, "torch"), (tiny_export, "onnx")):
        world = World.load(path, backend=backend, sampler={"key_guidance": 1.0, "guided_steps": 2})
        world.reset([None, 1], seed=0)
        out.append(np.stack([world.step_unit(k) for k in keys]))
    assert np.abs(out[0] - out[1]).max() <= 1e-3


def test_fixed_batch_step_sessions_compute_the_shared_graph(tiny_export):
    """On the CPU each batch gets a copy of the step graph with its batch and cache length fixed (made once, kept);
    it computes what the shared graph with free dimensions does."""
    from engine.world.onnx_backend import OnnxBackend

    backend = OnnxBackend.open(tiny_export, device="cpu")
    c = backend.spec.dynamics
    rng = np.random.default_rng(0)
    for b in (1, 3):
        feeds = {
            "tokens": rng.standard_normal((b, c.tokens_per_frame, c.token_dim)).astype(np.float32),
            "sigma": np.full(b, 0.7, np.float32),
            "keys": rng.integers(0, 2, (b, c.num_keys)).astype(np.float32),
            "time": np.full(b, 11, np.int64),
            "role": np.zeros(b, np.float32),
            "cache_k": rng.standard_normal((c.depth, b, c.heads, c.cache_tokens, c.head_dim)).astype(np.float32),
            "cache_v": rng.standard_normal((c.depth, b, c.heads, c.cache_tokens, c.head_dim)).astype(np.float32),
            "cache_bias": np.where(rng.random((b, c.cache_tokens)) < 0.3, -np.inf, 0.0).astype(np.float32),
        }
        fixed = backend.step_session(b)
        assert backend.step_session(b) is fixed and fixed is not backend.sessions["step"]
        for got, want in zip(fixed.run(None, feeds), backend.sessions["step"].run(None, feeds)):
            assert got.shape == want.shape and np.abs(got - want).max() <= 1e-4


def test_a_cached_export_of_an_older_graph_revision_is_made_again(tiny_world, tmp_path, monkeypatch):
    from engine.export.onnx_export import GRAPH_REVISION
    from engine.files import sha256_file
    from engine.world.onnx_backend import cache_dir_for

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    World.load(tiny_world, backend="onnx")
    meta_path = cache_dir_for(sha256_file(tiny_world)) / "world.json"
    meta = json.loads(meta_path.read_text())
    assert meta["graph_revision"] == GRAPH_REVISION
    del meta["graph_revision"]  # as every export before revisions were recorded
    meta_path.write_text(json.dumps(meta))
    World.load(tiny_world, backend="onnx")
    assert json.loads(meta_path.read_text())["graph_revision"] == GRAPH_REVISION


def test_step_graph_accepts_another_cache_length(tiny_export):
    import onnxruntime as ort

    session = ort.InferenceSession(str(tiny_export / "step.onnx"), providers=["CPUExecutionProvider"])
    meta = json.loads((tiny_export / "world.json").read_text())["world"]["dynamics"]
    n, d, k = meta["token_grid"][0] * meta["token_grid"][1], meta["token_dim"], meta["num_keys"]
    L, H, hd = meta["depth"], meta["heads"], meta["width"] // meta["heads"]
    for cache in (n, 3 * n):
        out = session.run(
            None,
            {
                "tokens": np.zeros((1, n, d), np.float32),
                "sigma": np.ones(1, np.float32),
                "keys": np.zeros((1, k), np.float32),
                "time": np.zeros(1, np.int64),
                "role": np.zeros(1, np.float32),
                "cache_k": np.zeros((L, 1, H, cache, hd), np.float32),
                "cache_v": np.zeros((L, 1, H, cache, hd), np.float32),
                "cache_bias": np.zeros((1, cache), np.float32),
            },
        )
        assert out[0].shape == (1, n, d) and out[1].shape == (L, 1, H, n, hd)


def test_fp16_export_is_close(tiny_world, tmp_path):
    """fp16 graphs (meant for GPUs) run on the CPU provider too; the note states their PSNR against fp32."""
    from engine.export.onnx_export import export_world

    half = export_world(tiny_world, tmp_path / "half", fp16=True)
    keys = np.random.default_rng(2).integers(0, 2, (16, 4)).astype(np.uint8)
    a = rollout_unit(World.load(tiny_world, backend="torch"), keys)
    b = rollout_unit(World.load(half, backend="onnx"), keys)
    mse = float(((a - b) ** 2).mean())
    psnr = -10 * np.log10(max(mse, 1e-12))
    assert psnr > 25, f"fp16 vs fp32 PSNR {psnr:.1f} dB"


def test_a_missing_or_changed_file_is_named(tiny_export, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_export, broken)
    (broken / "decoder.onnx").unlink()
    with pytest.raises(SkyloopError, match="decoder.onnx is missing"):
        World.load(broken, backend="onnx")
    shutil.copy(tiny_export / "decoder.onnx", broken / "decoder.onnx")
    with open(broken / "step.onnx", "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(SkyloopError, match="step.onnx does not match world.json"):
        World.load(broken, backend="onnx")
    with pytest.raises(SkyloopError, match="no world.json"):
        World.load(tmp_path, backend="onnx")


def test_asking_for_cuda_without_it_warns_and_falls_back(tiny_export):
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this machine has the CUDA provider")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        world = World.load(tiny_export, backend="onnx", device="cuda")
    assert world.describe()["providers"] == ["CPUExecutionProvider"]
    assert any("CUDA" in str(w.message) for w in caught)
    assert world.describe()["warnings"]


def test_a_bundle_is_exported_on_first_onnx_load(tiny_world, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    world = World.load(tiny_world, backend="onnx")
    assert str(tmp_path) in world.describe()["export"]
    world.reset(None)
    assert world.step([]).shape == (32, 32, 3)


def test_cli_export_and_speed_bench(tiny_world, tmp_path, cli):
    proc = cli("export", tiny_world, "--out", tmp_path / "x", check=True)
    assert (tmp_path / "x" / "step.onnx").exists()
    proc = cli(
        "bench", "speed", tiny_world, "--backend", "torch,onnx", "--frames", "20", "--warmup", "5", "--repeats", "2", "--out", tmp_path / "speed", check=True
    )
    last = json.loads(proc.stdout.strip().splitlines()[-1])
    assert last["backend"] == "onnx" and last["fps"] > 0 and last["ms_p99"] >= last["ms_p50"] > 0
    assert set(last["all"]) == {"torch", "onnx"}
    assert (tmp_path / "speed" / "latency.png").stat().st_size > 1000
    report = json.loads((tmp_path / "speed" / "report.json").read_text())
    assert report["machine"]["cpu"] and report["results"]["onnx"]["providers"] == ["CPUExecutionProvider"]


def test_onnx_parity_of_a_world_whose_tokens_are_rotated_by_place(tiny_world, spatial_world, tmp_path):
    """dynamics.spatial_rope adds constant tables the step graph must carry: parity with a batch of rollouts and with the
    doubled batch of key guidance, and the flag must change what the world draws."""
    from engine.export.onnx_export import export_world

    bundle = export_world(spatial_world, tmp_path / "spatial")
    keys = np.random.default_rng(3).integers(0, 2, (10, 3, 4)).astype(np.uint8)
    keys[:, :, 0] = 1
    out = {}
    for name, path, backend in (("plain", tiny_world, "torch"), ("torch", spatial_world, "torch"), ("onnx", bundle, "onnx")):
        for guided in (False, True):
            sampler = {"key_guidance": 1.0, "guided_steps": 2} if guided else None
            world = World.load(path, backend=backend, sampler=sampler)
            world.reset([None, 1, 2], seed=0)
            out[name, guided] = np.stack([world.step_unit(k) for k in keys])
    for guided in (False, True):
        assert np.abs(out["torch", guided] - out["onnx", guided]).max() <= 1e-3
        assert np.abs(out["torch", guided] - out["plain", guided]).max() > 1e-3, "spatial_rope changed nothing"
