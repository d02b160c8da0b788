import dataclasses

import numpy as np
import pytest
import torch

from engine.dynamics.cache import TorchStepper
from engine.dynamics.model import Dynamics, DynamicsConfig, two_stream_mask
from engine.dynamics.sampler import FlowSampler, SamplerConfig

CFG = DynamicsConfig(token_dim=8, token_grid=(2, 3), num_keys=3, context=4, width=32, depth=2, heads=2)
SPATIAL = dataclasses.replace(CFG, spatial_rope=True)


def random_model(cfg=CFG, seed=0):
    torch.manual_seed(seed)
    model = Dynamics(cfg).eval()
    with torch.no_grad():  # the zero-initialised output layers would make every comparison trivially equal
        for p in model.parameters():
            p.normal_(0, 0.2)
    return model


def banded_mask(frames, window):
    """Context frames 0..F-2, targets 1..F-1, each limited to the window: the reference the cache must match."""
    c = torch.arange(frames - 1)
    t = torch.arange(1, frames)
    ctx_ctx = (c[None] <= c[:, None]) & (c[None] > c[:, None] - window)
    tgt_ctx = (c[None] < t[:, None]) & (c[None] >= t[:, None] - window)
    z = torch.zeros(frames - 1, frames - 1, dtype=torch.bool)
    return torch.cat([torch.cat([ctx_ctx, z], 1), torch.cat([tgt_ctx, torch.eye(frames - 1, dtype=torch.bool)], 1)], 0)


def test_shapes_and_mask_of_the_training_window():
    model = random_model()
    b, w, n, d = 2, CFG.context, CFG.tokens_per_frame, CFG.token_dim
    out = model(torch.randn(b, w, n, d), torch.rand(b, w), torch.randn(b, w, n, d), torch.rand(b, w), torch.ones(b, w + 1, 3))
    assert out.shape == (b, w, n, d)
    assert torch.equal(two_stream_mask(w, w), banded_mask(w + 1, w)), "inside one window the band changes nothing"


def test_a_later_frame_cannot_change_an_earlier_prediction():
    model = random_model()
    b, w, n, d = 1, CFG.context, CFG.tokens_per_frame, CFG.token_dim
    torch.manual_seed(1)
    args = [torch.randn(b, w, n, d), torch.rand(b, w), torch.randn(b, w, n, d), torch.rand(b, w), torch.randint(0, 2, (b, w + 1, 3)).float()]
    base = model(*args)
    j = 2  # perturb context frame 2, its keys, and target frame 2
    changed = [a.clone() for a in args]
    changed[0][:, j] += 1.0
    changed[2][:, j - 1] += 1.0  # target copies hold frames 1..W: index j-1 is frame j
    changed[4][:, j] = 1 - changed[4][:, j]
    out = model(*changed)
    # targets of frames 1..j-1 (indices 0..j-2) must not move; frame j and later must
    assert torch.allclose(out[:, : j - 1], base[:, : j - 1], atol=1e-6)
    assert not torch.allclose(out[:, j - 1 :], base[:, j - 1 :], atol=1e-3)


def test_keys_condition_the_prediction():
    model = random_model()
    b, w, n, d = 1, CFG.context, CFG.tokens_per_frame, CFG.token_dim
    args = [torch.randn(b, w, n, d), torch.rand(b, w), torch.randn(b, w, n, d), torch.rand(b, w)]
    a = model(*args, torch.zeros(b, w + 1, 3))
    k = torch.zeros(b, w + 1, 3)
    k[:, -1, 0] = 1
    c = model(*args, k)
    assert torch.allclose(a[:, :-1], c[:, :-1], atol=1e-6) and not torch.allclose(a[:, -1], c[:, -1], atol=1e-3)


@pytest.mark.parametrize(
    "frames, window, cfg",
    # inside one window, wrapping the ring twice; short histories (history guidance); tokens rotated by place too
    [(3, None, CFG), (11, None, CFG), (11, 1, CFG), (11, 2, CFG), (11, None, SPATIAL)],
)
def test_cached_step_equals_full_recompute(frames, window, cfg):
    model = random_model(cfg)
    b, n, d = 2, cfg.tokens_per_frame, cfg.token_dim
    g = torch.Generator().manual_seed(3)
    ctx, tgt = torch.randn(b, frames, n, d, generator=g), torch.randn(b, frames, n, d, generator=g)
    ctx_sigma, tgt_sigma = torch.rand(frames, generator=g) * 0.3, torch.rand(frames, generator=g)
    keys = torch.randint(0, 2, (b, frames, 3), generator=g).float()
    tokens = torch.cat([ctx[:, :-1], tgt[:, 1:]], 1)
    sigma = torch.cat([ctx_sigma[:-1], tgt_sigma[1:]])[None].expand(b, -1)
    frame_keys = torch.cat([keys[:, :-1], keys[:, 1:]], 1)
    times = torch.cat([torch.arange(frames - 1), torch.arange(1, frames)])[None].expand(b, -1)
    role = torch.cat([torch.ones(frames - 1), torch.zeros(frames - 1)])[None].expand(b, -1)
    with torch.no_grad():
        full = model.forward_frames(tokens, sigma, frame_keys, times, role, banded_mask(frames, window or cfg.context))[:, frames - 1 :]
    stepper = TorchStepper(model, b, window=window)
    cached = []
    for t in range(frames):
        if t >= 1:
            cached.append(stepper.denoise(tgt[:, t].numpy(), float(tgt_sigma[t]), keys[:, t].numpy(), t))
        stepper.commit(ctx[:, t].numpy(), float(ctx_sigma[t]), keys[:, t].numpy(), t)
    cached = torch.from_numpy(np.stack(cached, 1))
    assert torch.allclose(cached, full, atol=1e-4), (cached - full).abs().max()


def test_spatial_rope_scores_depend_only_on_the_offset_between_places():
    """q.k of two tokens rotated by their places is the same for every pair of places the same offset apart."""
    from engine.dynamics.model import TemporalRope, spatial_rope_tables

    grid, hd = (4, 5), 32
    rope = TemporalRope(hd, 256)
    cos_s, sin_s = spatial_rope_tables(grid, hd // 8)
    time_cos, time_sin = rope.tables(torch.zeros(grid[0] * grid[1], dtype=torch.long))
    cos, sin = torch.cat([time_cos, cos_s], -1), torch.cat([time_sin, sin_s], -1)  # one time, every place
    q, k = torch.randn(hd).expand(grid[0] * grid[1], hd), torch.randn(hd).expand(grid[0] * grid[1], hd)
    scores = (rope.rotate(q, cos, sin) @ rope.rotate(k, cos, sin).T).reshape(*grid, *grid)
    for dr, dc in [(0, 1), (1, 0), (1, -2), (-3, 4)]:
        same = [scores[r, c, r + dr, c + dc] for r in range(grid[0]) for c in range(grid[1]) if 0 <= r + dr < grid[0] and 0 <= c + dc < grid[1]]
        assert torch.allclose(torch.stack(same), same[0].expand(len(same)), atol=1e-4), (dr, dc)
    assert not torch.allclose(scores[0, 0, 0, 1], scores[0, 0, 1, 0], atol=1e-3), "rows and columns rotate differently"


@pytest.mark.parametrize("cfg", [CFG, SPATIAL])
def test_without_places_a_frame_is_a_set_unless_tokens_are_rotated_by_place(cfg):
    """With the learned per-place embedding zeroed, attention cannot tell the tokens of a frame apart, so permuting them
    permutes the prediction; spatial RoPE tells them apart by their relative places, so the prediction changes."""
    model = random_model(cfg)
    with torch.no_grad():
        model.spatial_pos.zero_()
    b, w, n, d = 1, cfg.context, cfg.tokens_per_frame, cfg.token_dim
    g = torch.Generator().manual_seed(5)
    ctx, tgt = torch.randn(b, w, n, d, generator=g), torch.randn(b, w, n, d, generator=g)
    args = (torch.rand(b, w, generator=g), torch.rand(b, w, generator=g), torch.ones(b, w + 1, 3))
    perm = torch.randperm(n, generator=g)
    with torch.no_grad():
        base = model(ctx, args[0], tgt, args[1], args[2])[:, :, perm]
        permuted = model(ctx[:, :, perm], args[0], tgt[:, :, perm], args[1], args[2])
    assert torch.allclose(base, permuted, atol=1e-5) == (not cfg.spatial_rope)


def test_cache_memory_is_allocated_once():
    model = random_model()
    stepper = TorchStepper(model, 1)
    ptrs = (stepper.cache.k.data_ptr(), stepper.cache.v.data_ptr())
    x = np.zeros((1, CFG.tokens_per_frame, CFG.token_dim), np.float32)
    for t in range(3 * CFG.context):
        stepper.commit(x, 0.0, np.zeros((1, 3), np.float32), t)
    assert (stepper.cache.k.data_ptr(), stepper.cache.v.data_ptr()) == ptrs
    assert torch.isfinite(stepper.cache.bias).all()


def test_sampler_is_seeded_and_exact_for_a_perfect_denoiser():
    target = np.random.default_rng(0).standard_normal((1, 4, 8)).astype(np.float32)
    for cfg in [SamplerConfig(steps=1), SamplerConfig(steps=3), SamplerConfig(steps=4, stochastic=True)]:
        sampler = FlowSampler(cfg)
        calls = []

        def denoise(x, s):
            calls.append(s)
            return target

        out = sampler.sample(denoise, target.shape, np.random.default_rng(1))
        assert np.array_equal(out, target) and len(calls) == cfg.steps and calls[0] == 1.0
    a = FlowSampler(SamplerConfig(steps=2)).sample(lambda x, s: 0.5 * x, (2, 3), np.random.default_rng(5))
    b = FlowSampler(SamplerConfig(steps=2)).sample(lambda x, s: 0.5 * x, (2, 3), np.random.default_rng(5))
    assert np.array_equal(a, b)


def test_key_guidance_pushes_guided_steps_away_from_the_no_keys_estimate():
    shape = (2, 4, 8)
    with_keys, without = np.full(shape, 1.0, np.float32), np.full(shape, 0.25, np.float32)
    for steps, guided in [(1, 1), (3, 1), (3, 2), (2, 5)]:
        sigmas, refs = [], []

        def denoise(x, s):
            sigmas.append(s)
            return with_keys

        def paired(x, s):
            refs.append(s)
            return with_keys, without

        cfg = SamplerConfig(steps=steps, key_guidance=2.0, guided_steps=guided)
        out = FlowSampler(cfg).sample(denoise, shape, np.random.default_rng(0), paired)
        assert refs == [1.0 - k / steps for k in range(min(guided, steps))], "the first guided_steps steps evaluate the pair"
        assert len(refs) + len(sigmas) == steps, "and the others the plain estimate"
        expect = with_keys + 2.0 * (with_keys - without) if guided >= steps else with_keys  # the last step decides x0
        np.testing.assert_allclose(out, expect)
    plain = FlowSampler(SamplerConfig(steps=2)).sample(lambda x, s: 0.5 * x, shape, np.random.default_rng(3))
    off = FlowSampler(SamplerConfig(steps=2, key_guidance=0.0)).sample(lambda x, s: 0.5 * x, shape, np.random.default_rng(3), lambda x, s: (0.5 * x, 0 * x))
    assert np.array_equal(plain, off), "w = 0 leaves the sampler as it was"
    assert "key guidance 2 on the first 1 step" in SamplerConfig(steps=3, key_guidance=2.0).describe()
    assert "guidance" not in SamplerConfig(steps=3).describe()
    for bad in [dict(key_guidance=-1.0), dict(key_guidance=float("nan")), dict(guided_steps=-1)]:
        with pytest.raises(ValueError, match="guid"):
            FlowSampler(SamplerConfig(steps=2, **bad))


def test_short_history_cache_is_what_training_shows_a_short_window():
    """History guidance's reference: a cache of window v predicts what training's short windows (`visible` = v) do."""
    model = random_model()
    b, n, d, w = 2, CFG.tokens_per_frame, CFG.token_dim, CFG.context
    g = torch.Generator().manual_seed(8)
    frames = torch.randn(b, w + 1, n, d, generator=g)
    keys = torch.randint(0, 2, (b, w + 1, 3), generator=g).float()
    sigma = torch.full((b, w), 0.6)
    noisy = frames[:, 1:] + 0.1
    for v in (1, 2, w):
        with torch.no_grad():
            trained = model(frames[:, :w], torch.zeros(b, w), noisy, sigma, keys, visible=torch.full((b,), v))
        stepper = TorchStepper(model, b, window=v)
        cached = []
        for t in range(w + 1):
            if t >= 1:
                cached.append(stepper.denoise(noisy[:, t - 1].numpy(), 0.6, keys[:, t].numpy(), t))
            if t < w:
                stepper.commit(frames[:, t].numpy(), 0.0, keys[:, t].numpy(), t)
        np.testing.assert_allclose(np.stack(cached, 1), trained.numpy(), atol=1e-4)
    with pytest.raises(ValueError, match="history window"):
        TorchStepper(model, 1, window=w + 1)


def test_history_guidance_pushes_away_from_the_short_history_estimate():
    shape = (2, 4, 8)
    full, short = np.full(shape, 1.0, np.float32), np.full(shape, 0.25, np.float32)
    shorts = []

    def short_fn(x, s):
        shorts.append(s)
        return full, short

    for steps, guided in [(1, 1), (3, 1), (2, 2)]:
        shorts.clear()
        cfg = SamplerConfig(steps=steps, history_guidance=2.0, history_steps=guided)
        out = FlowSampler(cfg).sample(lambda x, s: full, shape, np.random.default_rng(0), None, short_fn)
        assert shorts == [1.0 - k / steps for k in range(min(guided, steps))], "the first history_steps steps ask the short history"
        np.testing.assert_allclose(out, full + 2.0 * (full - short) if guided >= steps else full)
    # With key guidance too, both terms are taken against the same unguided estimate.
    none = np.zeros(shape, np.float32)
    cfg = SamplerConfig(steps=1, key_guidance=1.0, history_guidance=0.5)
    out = FlowSampler(cfg).sample(lambda x, s: full, shape, np.random.default_rng(0), lambda x, s: (full, none), short_fn)
    np.testing.assert_allclose(out, full + 1.0 * (full - none) + 0.5 * (full - short))
    assert "history guidance 2 against the last 3 frame(s)" in SamplerConfig(history_guidance=2.0, history_frames=3).describe()
    for bad in [dict(history_guidance=-1.0), dict(history_frames=0), dict(history_steps=-1)]:
        with pytest.raises(ValueError, match="history"):
            FlowSampler(SamplerConfig(steps=2, **bad))


def test_history_guidance_in_a_rollout_commits_to_both_caches_and_restores_both():
    from engine.dynamics.rollout import Rollout

    model = random_model()
    n, d = CFG.tokens_per_frame, CFG.token_dim
    context = np.random.default_rng(1).standard_normal((1, 3, n, d)).astype(np.float32)
    keys = np.eye(3, dtype=np.float32)[[0, 1, 2, 0, 1, 2, 0]]

    def roll(cfg, short_window):
        r = Rollout(TorchStepper(model, 1), FlowSampler(cfg), (1, n, d), 3, TorchStepper(model, 1, window=short_window) if short_window else None)
        r.reset(context, seed=2)
        return r

    plain = roll(SamplerConfig(steps=2), None)
    off = roll(SamplerConfig(steps=2, history_guidance=0.0), 1)
    guided = roll(SamplerConfig(steps=2, history_guidance=1.0, history_frames=1), 1)
    a = np.stack([plain.step(k[None]) for k in keys])
    np.testing.assert_array_equal(a, np.stack([off.step(k[None]) for k in keys]))  # w = 0: the short cache is not asked
    state = guided.snapshot()
    b = np.stack([guided.step(k[None]) for k in keys])
    assert not np.allclose(a, b, atol=1e-4), "guidance changes the frames"
    guided.restore(state)
    np.testing.assert_array_equal(b, np.stack([guided.step(k[None]) for k in keys]))  # both caches came back


def test_key_guidance_in_a_rollout_changes_keyed_frames_only():
    from engine.dynamics.rollout import Rollout

    model = random_model()
    n, d = CFG.tokens_per_frame, CFG.token_dim
    context = np.random.default_rng(0).standard_normal((2, 2, n, d)).astype(np.float32)
    keys = np.array([[1, 0, 0], [0, 0, 0]], np.float32)  # world 0 holds a key, world 1 none

    def frames(cfg, step_keys):
        roll = Rollout(TorchStepper(model, 2), FlowSampler(cfg), (2, n, d), 3)
        roll.reset(context, seed=4)
        return np.stack([roll.step(step_keys) for _ in range(3)])

    plain = frames(SamplerConfig(steps=2), keys)
    guided = frames(SamplerConfig(steps=2, key_guidance=1.5, guided_steps=2), keys)
    assert not np.allclose(plain[:, 0], guided[:, 0], atol=1e-4), "guidance changes the world that holds a key"
    np.testing.assert_allclose(plain[:, 1], guided[:, 1], atol=1e-5)  # and leaves the one that holds none alone
    none = np.zeros_like(keys)
    np.testing.assert_array_equal(frames(SamplerConfig(steps=2), none), frames(SamplerConfig(steps=2, key_guidance=1.5), none))


def test_short_context_windows_hide_older_frames_from_targets():
    w = CFG.context
    visible = torch.tensor([w, 1, 2])
    masks = two_stream_mask(w, w, visible=visible)
    assert masks.shape == (3, 2 * w, 2 * w)
    assert torch.equal(masks[0], two_stream_mask(w, w))
    target_rows = masks[1, w:, :w]  # target t (times 1..W) over context frames 0..W-1
    assert target_rows.sum(1).tolist() == [1] * w, "with 1 visible frame each target sees exactly its previous frame"
    assert masks[1, :w, :w].sum(1).tolist() == [1] * w, "and each context copy sees only itself: no older history leaks in"
    model = random_model()
    b, n, d = 3, CFG.tokens_per_frame, CFG.token_dim
    torch.manual_seed(2)
    args = [torch.randn(b, w, n, d), torch.rand(b, w), torch.randn(b, w, n, d), torch.rand(b, w), torch.ones(b, w + 1, 3)]
    base = model(*args, visible=torch.tensor([1, 1, 1]))
    changed = [a.clone() for a in args]
    changed[0][:, 0] += 5.0  # context frame 0: invisible to every target but the first
    out = model(*changed, visible=torch.tensor([1, 1, 1]))
    assert torch.allclose(out[:, 1:], base[:, 1:], atol=1e-5) and not torch.allclose(out[:, 0], base[:, 0], atol=1e-3)


class NoTruthValue(torch.nn.Module):
    """Like torch.compile's OptimizedModule: runs the model, but `bool(module)` raises (it has no len())."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.calls = inner, 0

    def forward(self, *args, **kwargs):
        self.calls += 1
        return self.inner(*args, **kwargs)

    def __len__(self):
        raise TypeError("no len()")


def test_the_training_losses_run_a_compiled_forward_they_are_given():
    """`skyloop train --compile` crashed with "Dynamics does not support len()": the losses picked `forward or self`."""
    from engine.tokenizer.model import Tokenizer, TokenizerConfig

    model = random_model()
    wrapped = NoTruthValue(model)
    b, w = 2, CFG.context + 1
    tokens = torch.randn(b, w, CFG.tokens_per_frame, CFG.token_dim)
    keys = torch.zeros(b, w, CFG.num_keys)
    assert torch.isfinite(model.training_loss(tokens, keys, torch.Generator().manual_seed(0), forward=wrapped))
    assert wrapped.calls == 1
    tok = Tokenizer(TokenizerConfig(frame_size=(32, 32), widths=(8, 8)))
    wrapped_tok = NoTruthValue(tok)
    assert torch.isfinite(tok.loss(torch.randint(0, 255, (2, 32, 32, 3), dtype=torch.uint8), forward=wrapped_tok))
    assert wrapped_tok.calls == 1


def test_dynamics_settings_from_older_and_newer_world_files():
    """A world file written while a training-only setting existed (motion_weight) still loads; a name this version
    does not know is refused by name."""
    saved = DynamicsConfig().to_json()
    assert DynamicsConfig.from_json(saved | {"motion_weight": 4.0}) == DynamicsConfig()
    with pytest.raises(ValueError, match="unknown dynamics settings warp_drive"):
        DynamicsConfig.from_json(saved | {"warp_drive": 1})
