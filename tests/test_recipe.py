"""The training recipe's parts at tiny size: self forcing, continuing a world, the CPU-time budget."""

import json

import numpy as np
import pytest
import torch

from engine.dynamics.cache import TorchStepper
from engine.dynamics.model import Dynamics, DynamicsConfig
from engine.dynamics.rollout import Rollout
from engine.dynamics.sampler import FlowSampler, SamplerConfig
from engine.dynamics.self_forcing import own_rollout_context
from engine.train.config import resolve_preset
from engine.train.latents import hold_still, noop_changes
from engine.train.run import train_world
from engine.world.bundle import load_bundle, read_spec


def _model_and_windows(w=4, b=3):
    torch.manual_seed(0)
    cfg = DynamicsConfig(token_dim=8, token_grid=(2, 2), num_keys=3, context=w, width=32, depth=2, heads=2)
    model = Dynamics(cfg)
    with torch.no_grad():  # non-zero outputs: the zero-initialised head would predict zeros for every frame
        model.token_out.weight.normal_(0, 0.2)
    tokens = torch.randn(b, w + 1, 4, 8)
    keys = (torch.rand(b, w + 1, 3) < 0.4).float()
    return model, tokens, keys


def test_self_forcing_context_is_what_play_would_generate():
    model, tokens, keys = _model_and_windows()
    sampler = SamplerConfig(steps=2, context_noise=0.1)
    model.train()
    context = own_rollout_context(model, tokens, keys, generated=2, sampler=sampler, seed=7)
    assert model.training, "the model goes back to training mode"
    assert context.shape == (3, 4, 4, 8)
    assert torch.equal(context[:, :2], tokens[:, :2]), "the real frames before the rollout stay as they are"
    assert not torch.allclose(context[:, 2:], tokens[:, 2:4]), "the latest frames are generated, not copied"
    # The same frames a world session makes: the KV-cached stepper and the sampler, from the same real frames and keys.
    model.eval()
    roll = Rollout(TorchStepper(model, 3), FlowSampler(sampler), (3, 4, 8), 3)
    roll.reset(tokens[:, :2].numpy(), keys[:, :2].numpy(), seed=7)
    expected = np.stack([roll.step(keys[:, t].numpy()) for t in (2, 3)], axis=1)
    np.testing.assert_allclose(context[:, 2:].numpy(), expected, atol=1e-6)


def test_self_forcing_needs_one_real_frame():
    import pytest

    model, tokens, keys = _model_and_windows()
    with pytest.raises(ValueError, match="one real frame"):
        own_rollout_context(model, tokens, keys, generated=4, sampler=SamplerConfig(), seed=0)


def test_training_inputs_take_the_given_context_and_keep_real_targets():
    model, tokens, keys = _model_and_windows()
    model.cfg.max_context_noise = 0.0  # no additive noise: the context copies are exactly what was given
    own = torch.randn(3, 4, 4, 8)
    inputs = model.training_inputs(tokens, keys, own)
    assert torch.equal(inputs["context_tokens"], own)
    assert torch.equal(inputs["target_clean"], tokens[:, 1:])
    pred = model(**{k: v for k, v in inputs.items() if k != "target_clean"})
    assert pred.shape == inputs["target_clean"].shape


def test_the_training_loss_draws_its_noise_from_the_generator_it_is_given():
    model, tokens, keys = _model_and_windows()
    losses = [model.training_loss(tokens, keys, torch.Generator().manual_seed(seed)) for seed in (5, 5, 6)]
    assert losses[0] == losses[1] and losses[0] != losses[2]
    torch.manual_seed(3)
    default = model.training_loss(tokens, keys)  # no generator: torch's global one, as before
    assert default == model.training_loss(tokens, keys, torch.Generator().manual_seed(3))


def test_self_forcing_rolls_out_the_first_share_of_the_windows():
    from engine.dynamics.self_forcing import SelfForcing

    model, tokens, keys = _model_and_windows(b=4)
    model.cfg.rollout_p = 0.5
    context = SelfForcing(model.cfg, SamplerConfig(steps=1), np.random.default_rng(0)).context(model, tokens, keys)
    assert context.shape == (4, 4, 4, 8)
    assert torch.equal(context[2:], tokens[2:, :4])  # the rest keep their real context
    assert torch.equal(context[:2, 0], tokens[:2, 0])  # at least the first frame stays real
    model.cfg.rollout_p = 0.0
    assert SelfForcing(model.cfg, SamplerConfig(), np.random.default_rng(0)).context(model, tokens, keys) is None


def _sequences(cfg, m, length, seed=0):
    """A draw(rng, batch) over m fixed random sequences: the buffer's real data."""
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randn(m, length, cfg.tokens_per_frame, cfg.token_dim, generator=g).numpy()
    keys = (torch.rand(m, length, cfg.num_keys, generator=g) < 0.4).float().numpy()
    return tokens, keys, lambda rng, batch: (tokens[:batch], keys[:batch])


def test_a_rollout_buffer_cuts_windows_deeper_than_the_context_from_what_play_would_generate():
    from engine.dynamics.self_forcing import SelfForcing

    model, _, _ = _model_and_windows(w=4, b=4)
    cfg = model.cfg
    cfg.rollout_p, cfg.rollout_frames, cfg.rollout_refresh, cfg.rollout_buffer = 0.5, 7, 3, 3
    sampler = SamplerConfig(steps=2, context_noise=0.1)
    tokens, keys, draw = _sequences(cfg, 3, cfg.context + 7 + 1)
    sf = SelfForcing(cfg, sampler, np.random.default_rng(0), draw)
    real = torch.randn(4, 5, 4, 8)
    real_keys = torch.zeros(4, 5, 3)
    out_tokens, out_keys, context = sf.batch(model, real, real_keys)
    buf = sf.buffer
    assert buf.refreshes == 1 and context.shape == (4, 4, 4, 8)
    # The buffer's own frames are exactly a world session's: warm-up of `context` real frames, then the real keys.
    model.eval()
    roll = Rollout(TorchStepper(model, 3), FlowSampler(sampler), (3, 4, 8), 3)
    rng = np.random.default_rng(0)  # the same draws the buffer made: rollout seed first
    roll.reset(tokens[:, :4], keys[:, :4], seed=int(rng.integers(2**31)))
    expected = np.stack([roll.step(keys[:, t]) for t in range(4, 11)], axis=1)
    np.testing.assert_allclose(buf.own[:, 4:], expected, atol=1e-5)
    np.testing.assert_array_equal(buf.own[:, :4], tokens[:, :4])
    # The first half of the batch comes from the buffer: real windows at some depth r, own context, real target.
    for i in range(2):
        row, r = next((j, r) for j in range(3) for r in range(1, 8) if np.array_equal(out_tokens[i].numpy(), tokens[j, r : r + 5]))
        np.testing.assert_array_equal(out_keys[i].numpy(), keys[row, r : r + 5])
        np.testing.assert_allclose(context[i].numpy(), buf.own[row, r : r + 4])
        if r >= 4:
            assert not np.allclose(context[i].numpy(), tokens[row, r : r + 4], atol=1e-3), "deep windows have no real context frame"
    assert torch.equal(out_tokens[2:], real[2:]) and torch.equal(context[2:], real[2:, :4]), "the rest stay teacher-forced"
    # Depths reach past the context, and the buffer is regenerated every rollout_refresh batches.
    depths = set()
    for _ in range(12):
        t, _, _ = sf.batch(model, real, real_keys)
        depths |= {r for j in range(3) for r in range(1, 8) for i in range(2) if np.array_equal(t[i].numpy(), tokens[j, r : r + 5])}
    assert max(depths) > cfg.context and min(depths) < cfg.context
    assert buf.refreshes == 1 + 12 // 3


def test_an_anchored_buffer_cuts_windows_only_where_the_rollout_stayed_near_the_truth():
    from engine.dynamics.self_forcing import SelfForcing
    from engine.errors import SkyloopError

    model, _, _ = _model_and_windows(w=4, b=8)
    cfg = model.cfg
    cfg.rollout_p, cfg.rollout_frames, cfg.rollout_refresh, cfg.rollout_buffer, cfg.rollout_keep = 1.0, 7, 50, 3, 0.25
    tokens, keys, draw = _sequences(cfg, 3, cfg.context + 7 + 1)
    sf = SelfForcing(cfg, SamplerConfig(steps=2, context_noise=0.1), np.random.default_rng(0), draw)
    assert "25% least drifted" in sf.describe()
    real, real_keys = torch.randn(8, 5, 4, 8), torch.zeros(8, 5, 3)
    sf.batch(model, real, real_keys)
    buf = sf.buffer
    # The error of each (rollout, depth) pair's last context frame, own vs real, computed here from the buffer itself.
    drift = np.array([[((buf.own[m, 4 + r - 1] - tokens[m, 4 + r - 1]) ** 2).mean() for r in range(1, 8)] for m in range(3)])
    kept = {(int(m), int(r)) for m, r in buf.pairs}
    assert len(kept) == round(0.25 * 21) == 5
    worst_kept = max(drift[m, r - 1] for m, r in kept)
    dropped = [drift[m, r - 1] for m in range(3) for r in range(1, 8) if (m, r) not in kept]
    assert worst_kept <= min(dropped), "the kept pairs are the least drifted ones"
    for _ in range(10):  # every window drawn is cut at a kept pair
        t, _, context = sf.batch(model, real, real_keys)
        for i in range(8):
            pair = next((j, r) for j in range(3) for r in range(1, 8) if np.array_equal(t[i].numpy(), tokens[j, r : r + 5]))
            assert pair in kept
            np.testing.assert_allclose(context[i].numpy(), buf.own[pair[0], pair[1] : pair[1] + 4])
    cfg.rollout_keep = 0.0
    with pytest.raises(SkyloopError, match="rollout_keep"):
        SelfForcing(cfg, SamplerConfig(), np.random.default_rng(0), draw)


def test_self_forcing_past_the_context_needs_a_buffer():
    from engine.dynamics.self_forcing import SelfForcing
    from engine.errors import SkyloopError

    model, _, _ = _model_and_windows(w=4)
    model.cfg.rollout_p, model.cfg.rollout_frames = 0.5, 9
    with pytest.raises(SkyloopError, match="rollout_refresh"):
        SelfForcing(model.cfg, SamplerConfig(), np.random.default_rng(0))
    model.cfg.rollout_refresh = 10
    sf = SelfForcing(model.cfg, SamplerConfig(), np.random.default_rng(0), draw=lambda rng, b: None)
    assert "9 own frames deep" in sf.describe()


def test_a_run_with_a_rollout_buffer_trains_and_records_it(tiny_dataset, tiny_world, tmp_path):
    out = tmp_path / "deep.safetensors"
    sets = ["dynamics.rollout_p=0.5", "dynamics.rollout_frames=9", "dynamics.rollout_refresh=2", "dynamics.rollout_buffer=4", "train.eval_every=1000"]
    preset = resolve_preset("tiny", sets, steps=4)
    train_world(tiny_dataset, preset, out, run_dir=tmp_path / "deep", threads=1, progress=False, init_from=tiny_world)
    spec = read_spec(out)
    assert spec.training["dynamics_steps"] == 4
    assert (spec.dynamics.rollout_frames, spec.dynamics.rollout_refresh, spec.dynamics.rollout_buffer) == (9, 2, 4)
    a, b = load_bundle(tiny_world).dynamics.state_dict(), load_bundle(out).dynamics.state_dict()
    assert any(not torch.equal(a[k], b[k]) for k in a), "it trained"


def test_a_budgeted_self_forcing_run_continues_a_world(tiny_dataset, tiny_world, tmp_path):
    """--init-from starts from the world's dynamics; self forcing trains; the CPU budget stops the run early; compute adds up."""
    out = tmp_path / "more.safetensors"
    before = read_spec(tiny_world).training
    # Zero learning rate: the continued world must come out with the very weights it started from.
    preset = resolve_preset(
        "tiny", ["dynamics.rollout_p=0.5", "dynamics.rollout_frames=2", "train.dynamics_lr=0", "train.ema=0", "train.eval_every=1000"], steps=3
    )
    train_world(tiny_dataset, preset, out, run_dir=tmp_path / "same", threads=1, progress=False, init_from=tiny_world)
    a, b = load_bundle(tiny_world).dynamics.state_dict(), load_bundle(out).dynamics.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    spec = read_spec(out)
    assert spec.training["init_from"] == str(tiny_world)
    assert spec.training["cumulative"]["dynamics_steps"] == before["dynamics_steps"] + 3
    assert spec.training["cumulative"]["runs"] == 2
    assert spec.dynamics.rollout_p == 0.5
    assert spec.sampler == read_spec(tiny_world).sampler, "a continued world keeps its sampler"
    # A budget of 0.05 CPU-minutes (3 s) ends a 100000-step run after a handful of steps, with a world written.
    out2 = tmp_path / "budget.safetensors"
    preset = resolve_preset("tiny", ["dynamics.rollout_p=0.5", "train.cpu_minutes=0.05", "train.eval_every=100000"], steps=100000)
    train_world(tiny_dataset, preset, out2, run_dir=tmp_path / "budget", threads=1, progress=False, init_from=tiny_world)
    training = read_spec(out2).training
    assert 0 < training["dynamics_steps"] < 100000
    assert training["dynamics_cpu_seconds"] >= 3.0
    logged = [json.loads(line) for line in (tmp_path / "budget" / "metrics.jsonl").read_text().splitlines()]
    assert any("eval" in r and r["step"] == training["dynamics_steps"] for r in logged), "the budgeted run is evaluated where it stopped"


def test_a_wall_clock_budget_ends_a_run_and_is_kept_across_a_resume(tiny_dataset, tiny_world, tmp_path):
    """train.wall_minutes (for a GPU or a lent machine's lease) stops the dynamics phase like the CPU budget, writes the
    world, and counts the seconds of earlier sessions when resumed."""
    import time

    out = tmp_path / "wall.safetensors"
    preset = resolve_preset("tiny", ["train.wall_minutes=0.04", "train.eval_every=100000"], steps=100000)
    start = time.perf_counter()
    train_world(tiny_dataset, preset, out, run_dir=tmp_path / "wall", threads=1, progress=False, init_from=tiny_world)
    assert time.perf_counter() - start < 120
    steps = read_spec(out).training["dynamics_steps"]
    assert 0 < steps < 100000
    # Resumed, the budget is already spent: it stops after one more step instead of taking another 2.4 s.
    from engine.train.checkpoint import Checkpoint

    assert Checkpoint.load(tmp_path / "wall" / "checkpoint.safetensors").extra["wall_seconds"] >= 2.4
    train_world(tiny_dataset, preset, out, run_dir=tmp_path / "wall", threads=1, progress=False, init_from=tiny_world, resume=True)
    assert read_spec(out).training["dynamics_steps"] == steps + 1


def test_a_continued_world_can_get_a_longer_memory_but_not_another_shape(tiny_dataset, tiny_world, tmp_path):
    """--set dynamics.context=N with --init-from: no weight depends on the context length, so the world learns to use a
    longer one; a shape field that has weights (width) is refused by name instead of being dropped without a word."""
    from engine.errors import SkyloopError
    from engine.world.session import World

    before = read_spec(tiny_world).dynamics.context
    longer = before + 4
    out = tmp_path / "longer.safetensors"
    preset = resolve_preset("tiny", [f"dynamics.context={longer}", "train.eval_every=1000"], steps=2)
    train_world(tiny_dataset, preset, out, run_dir=tmp_path / "longer", threads=1, progress=False, init_from=tiny_world)
    assert read_spec(out).dynamics.context == longer
    world = World.load(out, backend="torch")
    world.reset(None, seed=3)
    frames = [world.step(()) for _ in range(longer + 3)]  # past the old and the new context: the ring cache wraps
    assert frames[-1].shape == frames[0].shape
    wide = resolve_preset("tiny", [f"dynamics.width={2 * read_spec(tiny_world).dynamics.width}"], steps=2)
    with pytest.raises(SkyloopError, match="dynamics.width"):
        train_world(tiny_dataset, wide, tmp_path / "wide.safetensors", run_dir=tmp_path / "wide", threads=1, progress=False, init_from=tiny_world)


def test_a_continued_world_keeps_its_spatial_rope_and_can_be_given_one(tiny_world, spatial_world):
    """dynamics.spatial_rope changes what the weights compute, so continuing a world keeps the world's setting (a
    spatial world continued without the flag must not lose it); no weight depends on it, so it may be switched on."""
    from engine.train.run import continued_preset

    plain = resolve_preset("tiny", steps=2)
    assert continued_preset(plain, spatial_world).dynamics.spatial_rope
    assert not continued_preset(plain, tiny_world).dynamics.spatial_rope
    assert continued_preset(resolve_preset("tiny", ["dynamics.spatial_rope=true"], steps=2), tiny_world).dynamics.spatial_rope


def test_a_continued_world_takes_the_gentler_rate_unless_one_is_asked(tiny_world):
    """A new world's peak rate shakes a trained one: --init-from without --lr continues at CONTINUE_LR; --lr wins."""
    from engine.train.config import CONTINUE_LR
    from engine.train.run import continued_preset

    assert resolve_preset("tiny").train.dynamics_lr != CONTINUE_LR
    assert continued_preset(resolve_preset("tiny", steps=2), tiny_world).train.dynamics_lr == CONTINUE_LR
    assert continued_preset(resolve_preset("tiny", lr=1e-3, steps=2), tiny_world).train.dynamics_lr == 1e-3
    assert resolve_preset("small").train.dynamics_lr == 2.4e-3  # new dynamics: the rate measured best (docs/ablations.md)


def test_a_continued_world_can_grow_deeper_starting_as_the_same_function(tiny_dataset, tiny_world, tmp_path):
    """--set dynamics.depth=N above the world's with --init-from: its blocks load among new identity blocks, so at zero
    learning rate the grown world plays exactly its frames, and the new blocks still get gradients; a shallower depth is
    refused by name."""
    from engine.dynamics.model import Dynamics
    from engine.errors import SkyloopError
    from engine.world.session import World

    depth = read_spec(tiny_world).dynamics.depth
    out = tmp_path / "deeper.safetensors"
    preset = resolve_preset("tiny", [f"dynamics.depth={depth + 2}", "train.dynamics_lr=0", "train.ema=0", "train.eval_every=1000"], steps=1)
    train_world(tiny_dataset, preset, out, run_dir=tmp_path / "deeper", threads=1, progress=False, init_from=tiny_world)
    assert read_spec(out).dynamics.depth == depth + 2
    keys = np.random.default_rng(1).integers(0, 2, (10, 4)).astype(np.uint8)
    frames = []
    for path in (tiny_world, out):
        world = World.load(path, backend="torch")
        frames.append(np.stack([world.reset(None, seed=4)] + [world.step(k) for k in keys]))
    assert np.array_equal(frames[0], frames[1])

    from dataclasses import replace

    old = load_bundle(tiny_world).dynamics
    grown = Dynamics(replace(old.cfg, depth=depth + 2))
    new = grown.load_shallower(old.state_dict())
    assert len(new) == 2 and all(torch.equal(grown.blocks[i].proj.weight, torch.zeros_like(grown.blocks[i].proj.weight)) for i in new)
    tokens = torch.randn(2, old.cfg.context + 1, old.cfg.tokens_per_frame, old.cfg.token_dim)
    keys_t = torch.zeros(2, old.cfg.context + 1, old.cfg.num_keys)
    grown.training_loss(tokens, keys_t, torch.Generator().manual_seed(0)).backward()
    assert all(grown.blocks[i].proj.weight.grad.abs().sum() > 0 for i in new), "identity at the start, but trainable"

    shallow = resolve_preset("tiny", ["dynamics.depth=1"], steps=1)
    with pytest.raises(SkyloopError, match="dynamics.depth"):
        train_world(tiny_dataset, shallow, tmp_path / "s.safetensors", run_dir=tmp_path / "s", threads=1, progress=False, init_from=tiny_world)


def test_own_rollouts_use_history_guidance_as_play_does(tiny_world):
    """A world whose sampler has history guidance: training's own rollouts (self forcing) are what play makes."""
    from engine.dynamics.self_forcing import own_rollouts
    from engine.world.session import World

    guided = {"steps": 2, "history_guidance": 1.0, "history_frames": 1}
    world = World.load(tiny_world, backend="torch", sampler=guided)
    dynamics = load_bundle(tiny_world).dynamics.float().eval()
    cfg = dynamics.cfg
    g = torch.Generator().manual_seed(2)
    tokens = torch.randn(1, 6, cfg.tokens_per_frame, cfg.token_dim, generator=g)
    keys = (torch.rand(1, 6, cfg.num_keys, generator=g) < 0.5).float()
    world.reset(None)  # the session builds its rollout, with the short-history cache
    roll = world.rollout
    roll.reset(tokens[:, :3].numpy(), keys[:, :3].numpy(), seed=9)
    play = np.stack([roll.step(keys[:, t].numpy()) for t in range(3, 6)], axis=1)
    own = own_rollouts(dynamics, tokens, keys, 3, world.sampler_cfg, seed=9)
    np.testing.assert_allclose(own, play, atol=1e-5)
    plain = own_rollouts(dynamics, tokens, keys, 3, SamplerConfig(steps=2), seed=9)
    assert not np.allclose(own, plain, atol=1e-4), "and guidance is not silently off"


def test_hold_still_windows_repeat_a_frame_under_no_keys_from_a_random_point_on():
    rng = np.random.default_rng(0)
    tokens = rng.normal(size=(64, 9, 4, 8)).astype(np.float32)
    keys = (rng.random((64, 9, 3)) < 0.5).astype(np.float32)
    before_t, before_k = tokens.copy(), keys.copy()
    hold_still(tokens, keys, np.random.default_rng(1), p=0.5)
    held = [b for b in range(64) if not np.array_equal(tokens[b], before_t[b])]
    assert 16 < len(held) < 48, "about half the windows"
    for b in held:
        j = int(np.argmax([not np.array_equal(tokens[b, t], before_t[b, t]) for t in range(9)]))
        assert j >= 1 and np.array_equal(tokens[b, :j], before_t[b, :j]) and np.array_equal(keys[b, :j], before_k[b, :j])
        assert (tokens[b, j:] == before_t[b, j - 1]).all() and not keys[b, j:].any()
        assert noop_changes([tokens[b, j - 1 :]], [keys[b, j - 1 :]]) == (9 - j, 0), "the held part stands still"
    assert noop_changes([before_t[0]], [np.zeros((9, 3))]) == (8, 8)  # random frames under no keys: every tick changed


def test_hold_still_is_refused_for_a_game_that_moves_without_keys(tmp_path):
    import functools

    from engine.data.collect import collect
    from engine.errors import SkyloopError
    from scenes import make_scene
    from scenes.explore import make_policy

    data = tmp_path / "bounce"  # its balls fly whatever the player holds
    collect(data, functools.partial(make_scene, "bounce", size=(32, 32)), make_policy, episodes=2, steps=24, seed=3, progress=False)
    preset = resolve_preset("tiny", ["dynamics.hold_still_p=0.2", "train.eval_every=1000"], steps=2)
    with pytest.raises(SkyloopError, match=r"no-key ticks changed the frame; leave it at 0"):
        train_world(data, preset, tmp_path / "w.safetensors", run_dir=tmp_path / "run", threads=1, progress=False)
    assert not (tmp_path / "w.safetensors").exists()


def test_hold_still_trains_on_a_game_that_stands_still(tiny_dataset, tiny_world, tmp_path):
    out = tmp_path / "still.safetensors"  # the overworld stands still when no key is held
    preset = resolve_preset("tiny", ["dynamics.hold_still_p=0.5", "train.eval_every=1000"], steps=3)
    train_world(tiny_dataset, preset, out, run_dir=tmp_path / "still", threads=1, progress=False, init_from=tiny_world)
    assert read_spec(out).dynamics.hold_still_p == 0.5 and read_spec(out).training["dynamics_steps"] == 3


def test_the_key_swap_maps_each_key_to_its_opposite_and_leaves_the_others():
    from engine.dynamics.model import key_swap_matrix
    from engine.keys import KeySet

    keyset = KeySet(("forward", "back", "turn_left", "turn_right", "fire"), {})
    held = torch.tensor([[1.0, 0, 1, 0, 1], [0, 1, 0, 0, 0], [0, 0, 0, 0, 0]])
    swapped = held @ key_swap_matrix(keyset)
    assert swapped.tolist() == [[0.0, 1, 0, 1, 1], [1.0, 0, 0, 0, 0], [0.0, 0, 0, 0, 0]]


def test_key_contrast_charges_a_world_whose_keys_change_nothing_and_grades_only_noisy_targets_whose_keys_swap():
    from engine.dynamics.model import KEY_CONTRAST_MIN_SIGMA, KEY_CONTRAST_RATIO
    from engine.keys import KeySet

    model, tokens, keys = _model_and_windows()
    swap = __import__("engine.dynamics.model", fromlist=["key_swap_matrix"]).key_swap_matrix(KeySet(("left", "right", "fire"), {}))
    keys[:, :, :2] = 0
    keys[:, 1::2, 0] = 1  # every other tick holds "left": its target is graded, the others ("fire" or nothing) are not
    plain = model.training_loss(tokens, keys, torch.Generator().manual_seed(4))
    model.cfg.key_contrast = 0.5
    with pytest.raises(ValueError, match="opposites"):
        model.training_loss(tokens, keys, torch.Generator().manual_seed(4))
    # Recomputed by hand from the same noisy inputs: predictions under the held and the swapped keys.
    inputs = model.training_inputs(tokens, keys, None, torch.Generator().manual_seed(4))
    target = inputs.pop("target_clean")
    err_held = (model(**inputs) - target).pow(2).mean(dim=(2, 3))
    err_swap = (model(**inputs, target_keys=inputs["keys"][:, 1:] @ swap) - target).pow(2).mean(dim=(2, 3))
    graded = (keys[:, 1:, 0] == 1) & (inputs["target_sigma"] > KEY_CONTRAST_MIN_SIGMA)
    assert graded.any() and not graded.all()
    gap = torch.log(err_held + 1e-4) - torch.log(err_swap + 1e-4) + np.log(KEY_CONTRAST_RATIO)
    expected = plain + 0.5 * torch.relu(gap)[graded].mean()
    loss = model.training_loss(tokens, keys, torch.Generator().manual_seed(4), key_swap=swap)
    torch.testing.assert_close(loss, expected)
    # A world deaf to its keys predicts the same under both: it pays the whole margin on every graded target.
    with torch.no_grad():
        model.keys_in.weight.zero_()
    deaf = model.training_loss(tokens, keys, torch.Generator().manual_seed(4), key_swap=swap)
    model.cfg.key_contrast = 0.0
    deaf_plain = model.training_loss(tokens, keys, torch.Generator().manual_seed(4))
    torch.testing.assert_close(deaf, deaf_plain + 0.5 * np.log(KEY_CONTRAST_RATIO), rtol=1e-5, atol=1e-6)


def test_key_contrast_teaches_a_tiny_world_which_way_its_keys_move_the_frame():
    """Toy game: the next frame is the last one plus +v under "left", -v under "right". A few steps with the
    contrast term separate the two keys' predictions more than the same steps without it."""
    from engine.dynamics.model import key_swap_matrix
    from engine.keys import KeySet

    swap = key_swap_matrix(KeySet(("left", "right", "fire"), {}))

    def windows(b=16, w=4):
        keys = torch.zeros(b, w + 1, 3)
        keys[torch.arange(b)[:, None], torch.arange(w + 1)[None], torch.randint(0, 2, (b, w + 1), generator=gen)] = 1
        frames = [torch.randn(b, 4, 8, generator=gen)]
        for t in range(1, w + 1):
            frames.append(frames[-1] + (keys[:, t, 0] - keys[:, t, 1])[:, None, None] * v)
        return torch.stack(frames, 1), keys

    def separation(weight):
        gen.manual_seed(seed)
        model, _, _ = _model_and_windows()
        model.cfg.short_context_p = 0.0
        model.cfg.key_contrast = weight
        opt = torch.optim.Adam(model.parameters(), lr=3e-3)
        torch.manual_seed(1)
        for _ in range(25):
            tokens, keys = windows()
            loss = model.training_loss(tokens, keys, torch.Generator().manual_seed(2), key_swap=swap)
            opt.zero_grad()
            loss.backward()
            opt.step()
        tokens, keys = windows(64)
        inputs = model.training_inputs(tokens, keys, None, torch.Generator().manual_seed(3))
        inputs.pop("target_clean")
        inputs["target_sigma"] = torch.ones_like(inputs["target_sigma"])  # what the first sampler step sees
        inputs["target_tokens"] = torch.randn(inputs["target_tokens"].shape, generator=gen)
        with torch.no_grad():
            left = model(**inputs, target_keys=torch.tensor([1.0, 0, 0]).expand(64, 4, 3))
            right = model(**inputs, target_keys=torch.tensor([0.0, 1, 0]).expand(64, 4, 3))
        return float(((left - right) * v).sum(dim=(2, 3)).mean() / (2 * v.pow(2).sum()))  # 1 = the full +v vs -v move

    gains = []
    for seed in range(3):
        gen = torch.Generator().manual_seed(seed)
        v = torch.randn(4, 8, generator=gen)
        plain, contrast = separation(0.0), separation(1.0)
        assert contrast > plain, (seed, plain, contrast)
        gains.append(contrast - plain)
    assert np.mean(gains) > 0.08, gains  # measured 0.10, 0.17, 0.14


def test_a_run_with_key_contrast_trains_and_records_it(tiny_dataset, tiny_world, tmp_path):
    out = tmp_path / "contrast.safetensors"  # the overworld's keys come in opposite pairs (up/down, left/right)
    preset = resolve_preset("tiny", ["dynamics.key_contrast=0.5", "train.eval_every=1000"], steps=3)
    train_world(tiny_dataset, preset, out, run_dir=tmp_path / "contrast", threads=1, progress=False, init_from=tiny_world)
    assert read_spec(out).dynamics.key_contrast == 0.5 and read_spec(out).training["dynamics_steps"] == 3
