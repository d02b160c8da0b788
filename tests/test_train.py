import functools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.errors import SkyloopError
from engine.train.config import resolve_preset
from engine.train.run import train_world
from tests.conftest import ROOT


def _eval(run_dir: Path) -> dict:
    evals = [json.loads(line)["eval"] for line in (run_dir / "metrics.jsonl").read_text().splitlines() if '"eval"' in line]
    return [e for e in evals if "psnr_1step" in e][-1]


def test_tiny_learns_the_maze_beyond_repeating_the_last_frame(tmp_path):
    """The stated bar: tiny, maze at 32x32, 300 tokenizer + 600 dynamics steps (about a minute on 2 CPU cores):
    held-out 1-step PSNR at least 0.75 dB above the repeat-last-frame baseline, and at least 23 dB."""
    from engine.data.collect import collect
    from scenes import make_scene
    from scenes.explore import make_policy

    data = collect(tmp_path / "maze", functools.partial(make_scene, "maze", size=(32, 32)), make_policy, episodes=12, steps=64, seed=0, progress=False)
    train_world(
        data.root,
        resolve_preset("tiny", steps=600, tokenizer_steps=300, eval_every=600),
        tmp_path / "w.safetensors",
        run_dir=tmp_path / "run",
        threads=2,
        progress=False,
    )
    e = _eval(tmp_path / "run")
    assert e["psnr_1step"] >= e["psnr_repeat_last"] + 0.75, e
    assert e["psnr_1step"] >= 23.0, e
    assert (tmp_path / "run" / "eval_0000600.png").stat().st_size > 1000


def _train_cmd(data, out, run_dir, *extra):
    return [
        sys.executable,
        "-m",
        "engine",
        "train",
        "--data",
        str(data),
        "--preset",
        "tiny",
        "--out",
        str(out),
        "--run-dir",
        str(run_dir),
        "--tokenizer-steps",
        "40",
        "--steps",
        "120",
        "--checkpoint-every",
        "10",
        "--eval-every",
        "1000",
        "--threads",
        "1",
        "--no-progress",
        *extra,
    ]


@pytest.mark.parametrize("recipe", [[], ["--set", "dynamics.rollout_p=0.5"]], ids=["teacher-forcing", "self-forcing"])
def test_a_killed_run_resumes_and_ends_where_an_unbroken_run_does(tiny_dataset, tmp_path, recipe):
    """Self forcing too: its own random draws are part of the checkpoint."""
    from safetensors.numpy import load_file

    # the unbroken run beside the one that gets killed (one thread each: the same numbers either way, half the wall time)
    with open(tmp_path / "ref.log", "w") as ref_log:  # a file, not a pipe: nothing reads it until the end (the child keeps its copy)
        ref = subprocess.Popen(
            _train_cmd(tiny_dataset, tmp_path / "ref.safetensors", tmp_path / "ref", *recipe), cwd=ROOT, stdout=ref_log, stderr=subprocess.STDOUT
        )
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(
        _train_cmd(tiny_dataset, tmp_path / "w.safetensors", run_dir, *recipe), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 300
    killed_at = None
    while time.time() < deadline and proc.poll() is None:
        metrics = run_dir / "metrics.jsonl"
        if metrics.exists():
            steps = [json.loads(line) for line in metrics.read_text().splitlines()]
            dyn = [s["step"] for s in steps if s.get("phase") == "dynamics" and "loss" in s]
            if dyn and dyn[-1] >= 50:
                proc.send_signal(signal.SIGKILL)  # mid-training, no chance to clean up
                killed_at = dyn[-1]
                break
        time.sleep(0.05)
    proc.wait()
    assert killed_at is not None, "the run finished before it could be killed"
    assert not (tmp_path / "w.safetensors").exists()
    again = subprocess.run(_train_cmd(tiny_dataset, tmp_path / "w.safetensors", run_dir, *recipe, "--resume"), cwd=ROOT, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert "dynamics: resuming at step" in again.stdout
    ref.wait(timeout=300)
    assert ref.returncode == 0, (tmp_path / "ref.log").read_text()
    a, b = load_file(str(tmp_path / "ref.safetensors")), load_file(str(tmp_path / "w.safetensors"))
    assert a.keys() == b.keys()
    assert all(np.array_equal(a[k], b[k]) for k in a), "resumed training differs from the unbroken run"


def test_without_resume_an_existing_run_is_not_overwritten(tiny_dataset, tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "checkpoint.safetensors").write_bytes(b"x")
    with pytest.raises(SkyloopError, match="--resume"):
        train_world(tiny_dataset, resolve_preset("tiny"), tmp_path / "w.safetensors", run_dir=run_dir, progress=False)


def test_resume_with_other_data_is_refused(tiny_dataset, tmp_path):
    import functools

    from engine.data.collect import collect
    from scenes import make_scene
    from scenes.explore import make_policy

    run_dir = tmp_path / "run"
    train_world(
        tiny_dataset,
        resolve_preset("tiny", steps=10, tokenizer_steps=10, checkpoint_every=5, eval_every=1000),
        tmp_path / "w.safetensors",
        run_dir=run_dir,
        threads=1,
        progress=False,
    )
    other = collect(tmp_path / "bounce", functools.partial(make_scene, "bounce", size=(32, 32)), make_policy, episodes=2, steps=20, progress=False)
    with pytest.raises(SkyloopError, match="keys"):
        train_world(other.root, resolve_preset("tiny"), tmp_path / "w2.safetensors", run_dir=run_dir, resume=True, threads=1, progress=False)
    big = collect(tmp_path / "big", functools.partial(make_scene, "overworld", size=(64, 64)), make_policy, episodes=2, steps=20, progress=False)
    with pytest.raises(SkyloopError, match="32x32"):
        train_world(big.root, resolve_preset("tiny"), tmp_path / "w3.safetensors", run_dir=run_dir, resume=True, threads=1, progress=False)


def test_frame_size_that_does_not_divide_is_a_clear_error(tmp_path):
    from engine.data.collect import collect
    from scenes import make_scene
    from scenes.explore import make_policy

    odd = collect(tmp_path / "odd", functools.partial(make_scene, "bounce", size=(36, 36)), make_policy, episodes=2, steps=10, progress=False)
    with pytest.raises(SkyloopError, match="divide"):
        train_world(odd.root, resolve_preset("tiny"), tmp_path / "w.safetensors", run_dir=tmp_path / "run", progress=False)


def test_a_world_trained_with_int8_weights_says_so_and_an_unknown_storage_is_refused_before_training(tiny_dataset, tiny_world, tmp_path):
    from engine.world.bundle import weight_storage

    with pytest.raises(SkyloopError, match="train.weights 'int4': one of float16, int8, float32"):
        resolve_preset("tiny", ["train.weights=int4"])
    out = tmp_path / "w8.safetensors"
    train_world(
        tiny_dataset,
        resolve_preset("tiny", ["train.weights=int8", "train.eval_every=1000"], steps=1),
        out,
        run_dir=tmp_path / "r",
        progress=False,
        init_from=tiny_world,
    )
    assert weight_storage(out) == "int8"


def test_ddp_on_gloo_with_two_processes(tiny_dataset, tmp_path):
    from engine.world.bundle import read_spec

    torchrun = Path(sys.executable).with_name("torchrun")
    out = tmp_path / "ddp.safetensors"
    cmd = [
        str(torchrun),
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "engine",
        "train",
        "--data",
        str(tiny_dataset),
        "--preset",
        "tiny",
        "--out",
        str(out),
        "--run-dir",
        str(tmp_path / "run"),
        "--tokenizer-steps",
        "20",
        "--steps",
        "20",
        "--eval-every",
        "20",
        "--device",
        "cpu",
        "--no-progress",
    ]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    spec = read_spec(out)
    assert spec.training["ranks"] == 2
    assert proc.stdout.count("world written to") == 1, "only rank 0 writes"


def test_nothing_is_ever_unpickled():
    """Weights travel as safetensors; no torch.load, pickle or allow_pickle=True anywhere in the package."""
    offenders = []
    for path in list((ROOT / "engine").rglob("*.py")) + list((ROOT / "scenes").rglob("*.py")):
        text = path.read_text()
        for needle in ("torch.load(", "pickle.load", "allow_pickle=True", "import pickle"):
            if needle in text:
                offenders.append(f"{path.relative_to(ROOT)}: {needle}")
    assert not offenders, offenders


@pytest.mark.parametrize("source", ["world", "checkpoint"])
def test_new_dynamics_on_an_existing_tokenizer(tiny_world, tiny_dataset, tmp_path, source):
    """--tokenizer-from takes a world file or a run's checkpoint, and the new world keeps that tokenizer exactly."""
    from engine.train.run import train_world
    from engine.world.bundle import load_tokenizer

    src = tiny_world if source == "world" else tiny_world.parent / "run" / "checkpoint.safetensors"
    assert src.exists()
    out = tmp_path / "w.safetensors"
    train_world(
        tiny_dataset,
        resolve_preset("tiny", steps=5, eval_every=5, checkpoint_every=1000),
        out,
        run_dir=tmp_path / "run",
        threads=1,
        progress=False,
        command="tests",
        tokenizer_from=src,
    )
    _, reused = load_tokenizer(out)
    _, original = load_tokenizer(tiny_world)
    a, b = reused.state_dict(), original.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_new_dynamics_on_a_finer_token_grid_of_the_same_tokenizer(tiny_world, tiny_dataset, tmp_path, cli):
    """--set tokenizer.patch=1 with --tokenizer-from: the tokenizer's weights unchanged, each latent cell its own token
    (4x the tokens, a quarter the size); a latent cache of the old grouping is encoded again, not misread; the world
    plays on ONNX Runtime. Continuing a world's dynamics (--init-from) on another grouping is refused by name."""
    import shutil

    from engine.world.bundle import load_tokenizer, read_spec

    def train(preset, out, run):
        train_world(tiny_dataset, preset, out, run_dir=run, threads=1, progress=False, command="tests", tokenizer_from=tiny_world)

    train(resolve_preset("tiny", steps=1, eval_every=1000), tmp_path / "coarse.safetensors", tmp_path / "coarse")
    run, out = tmp_path / "run", tmp_path / "fine.safetensors"
    run.mkdir()
    shutil.copy(tmp_path / "coarse" / "latents.safetensors", run)  # the same tokenizer and episodes, 2x2 cells a token
    preset = resolve_preset("tiny", ["tokenizer.patch=1"], steps=3, eval_every=1000, checkpoint_every=1000)
    train(preset, out, run)
    coarse, fine = read_spec(tiny_world), read_spec(out)
    assert coarse.tokenizer.patch == 2 and fine.tokenizer.patch == 1
    assert fine.dynamics.tokens_per_frame == 4 * coarse.dynamics.tokens_per_frame
    assert fine.dynamics.token_dim * 4 == coarse.dynamics.token_dim == coarse.tokenizer.token_dim
    a, b = load_tokenizer(out)[1].state_dict(), load_tokenizer(tiny_world)[1].state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    from safetensors import safe_open

    with safe_open(str(run / "latents.safetensors"), framework="np") as fh:
        assert fh.get_slice("train.0").get_shape()[1:] == [fine.dynamics.tokens_per_frame, fine.dynamics.token_dim]
    proc = cli("play", out, "--headless", "--frames", "4", "--out", tmp_path / "rec", check=True)
    assert json.loads(proc.stdout.strip().splitlines()[-1])["frames"] == 4
    with pytest.raises(SkyloopError, match="tokenizer.patch=1 regroups the tokens.*--tokenizer-from"):
        train_world(tiny_dataset, preset, tmp_path / "c.safetensors", run_dir=tmp_path / "run2", progress=False, init_from=tiny_world)


def test_every_rank_passes_the_latent_cache_barrier_once_whether_or_not_the_cache_exists(tmp_path):
    """DDP hung when a slow rank found the cache rank 0 had just written and skipped the barrier rank 0 waited at."""
    from types import SimpleNamespace

    import torch

    from engine.tokenizer.model import Tokenizer, TokenizerConfig
    from engine.train.latents import load_or_encode_latents

    torch.manual_seed(0)
    tok = Tokenizer(TokenizerConfig(frame_size=(32, 32), widths=(8, 8)))
    rng = np.random.default_rng(0)
    episodes = [(rng.integers(0, 255, (5, 32, 32, 3), dtype=np.uint8), np.zeros((5, 2), np.uint8)) for _ in range(3)]
    barriers = []

    def ctx(rank):
        dist = SimpleNamespace(main=rank == 0, device=torch.device("cpu"), barrier=lambda: barriers.append(rank))
        return SimpleNamespace(run_dir=tmp_path, train_episodes=episodes[:2], holdout_episodes=episodes[2:], dist=dist, say=lambda *a: None)

    first = load_or_encode_latents(ctx(0), tok)  # no cache: rank 0 encodes, writes, passes the barrier
    assert (tmp_path / "latents.safetensors").exists() and barriers == [0]
    late = load_or_encode_latents(ctx(1), tok)  # a rank that arrives after the file exists still passes the barrier
    again = load_or_encode_latents(ctx(0), tok)  # a cached run: rank 0 passes it too
    assert barriers == [0, 1, 0]
    for got in (late, again):
        assert all(np.array_equal(a, b) for a, b in zip(got[0] + got[1], first[0] + first[1]))
