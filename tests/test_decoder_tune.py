"""Decoder tuning on the world's own latents with a patch critic (engine/train/decoder_tune.py), at tiny size."""

import numpy as np
import pytest
import torch

from engine.errors import SkyloopError
from engine.train.decoder_tune import DecoderTuneConfig, OwnRollouts, PatchCritic, tune_decoder
from engine.world.bundle import load_bundle, read_spec

TINY = dict(steps=6, batch=8, windows=4, horizon=4, refresh=3, critic_start=2, warmup=2, lr=1e-3)


def test_tuning_changes_the_decoder_only_and_records_itself(tiny_dataset, tiny_world, tmp_path):
    out = tmp_path / "tuned.safetensors"
    tune_decoder(tiny_world, tiny_dataset, out, DecoderTuneConfig(**TINY, adversarial=0.1), threads=1, say=lambda s: None, command="tests")
    a, b = load_bundle(tiny_world), load_bundle(out)
    dec_a, dec_b = a.tokenizer.decoder.state_dict(), b.tokenizer.decoder.state_dict()
    assert any(not torch.equal(dec_a[k], dec_b[k]) for k in dec_a), "the decoder learned"
    for name in ("encoder", "latent_mean", "latent_std"):
        sa = {k: v for k, v in a.tokenizer.state_dict().items() if k.startswith(name)}
        sb = {k: v for k, v in b.tokenizer.state_dict().items() if k.startswith(name)}
        assert all(torch.equal(sa[k], sb[k]) for k in sa), f"{name} must stay: the world's latents keep their meaning"
    da, db = a.dynamics.state_dict(), b.dynamics.state_dict()
    assert all(torch.equal(da[k], db[k]) for k in da), "the dynamics model stays"
    assert np.array_equal(a.start_frames, b.start_frames)
    training = read_spec(out).training
    tune = training["decoder_tunes"][-1]
    assert tune["steps"] == TINY["steps"] and tune["config"]["adversarial"] == 0.1
    assert set(tune["before"]) == {"recon_psnr", "recon_sharpness_ratio", "own_1step_psnr", "own_sharpness_ratio"}
    before = read_spec(tiny_world).training["cumulative"]
    assert training["cumulative"]["runs"] == before["runs"] + 1
    assert training["cumulative"]["cpu_hours"] >= before["cpu_hours"]  # rounded to 3.6 s: a tiny run may not show
    assert training["cumulative"]["decoder_steps"] == TINY["steps"]
    # The tuned world plays.
    from engine.world.session import World

    world = World.load(out, backend="torch")
    world.reset(None, seed=1)
    assert world.step(()).shape == world.reset(None, seed=1).shape


def test_reconstruction_only_tuning_lowers_the_loss_on_own_predictions(tiny_dataset, tiny_world, tmp_path):
    """With no critic, tuning is plain regression on real latents and paired own predictions: on the same
    buffer, the paired loss must fall."""
    from engine.data.dataset import Dataset
    from engine.tokenizer.model import frames_to_unit, reconstruction_loss
    from engine.train.run import split_episodes

    cfg = DecoderTuneConfig(**{**TINY, "steps": 30, "refresh": 1000, "paired": 4}, adversarial=0.0)
    bundle = load_bundle(tiny_world)
    train_eps, _ = split_episodes(Dataset.open(tiny_dataset), cfg.holdout, lambda s: None)
    rng = np.random.default_rng([cfg.seed, 7])  # the same buffer tune_decoder draws first
    tokens, real, _ = OwnRollouts(bundle.tokenizer, bundle.dynamics, bundle.spec.sampler, train_eps, cfg, rng).make()

    def paired_loss(path):
        tok = load_bundle(path).tokenizer
        with torch.no_grad():
            return reconstruction_loss(tok.decode(tokens), frames_to_unit(real)).item()

    out = tmp_path / "plain.safetensors"
    tune_decoder(tiny_world, tiny_dataset, out, cfg, threads=1, say=lambda s: None)
    assert paired_loss(out) < paired_loss(tiny_world)


def test_edge_energy_loss_ranks_flat_above_soft_above_a_one_pixel_shift():
    """What the decoder is asked for: drawing no edge costs most, a rounded-off edge less, a sharp edge one pixel
    off little, the right edge nothing (L1 on raw gradients ranks a soft edge worse than none, which flattens)."""
    from engine.train.decoder_tune import edge_energy_loss

    torch.manual_seed(0)
    sharp = torch.nn.functional.interpolate((torch.rand(4, 3, 4, 4) > 0.5).float(), scale_factor=4)  # blocks, hard edges
    soft = torch.nn.functional.avg_pool2d(sharp, 3, 1, 1, count_include_pad=False)
    flat = torch.full_like(sharp, 0.5)
    shifted = torch.roll(sharp, 1, dims=-1)
    losses = [edge_energy_loss(x, sharp).item() for x in (flat, soft, shifted, sharp)]
    assert losses[0] > losses[1] > losses[2] > losses[3] == 0.0, losses


def test_the_critic_scores_patches_and_tells_real_from_flat_after_training():
    torch.manual_seed(0)
    critic = PatchCritic(width=8)
    real = (torch.rand(8, 3, 32, 32) > 0.5).float()  # sharp, high-contrast
    flat = torch.full((8, 3, 32, 32), 0.5)  # a smear
    assert critic(real).shape == (8, 1, 8, 8)
    opt = torch.optim.Adam(critic.parameters(), lr=2e-3)
    for _ in range(60):
        loss = torch.relu(1 - critic(real)).mean() + torch.relu(1 + critic(flat)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert critic(real).mean() > critic(flat).mean() + 0.5


def test_tuning_on_another_games_data_is_refused_by_name(tiny_world, tmp_path):
    import functools

    from engine.data.collect import collect
    from scenes import make_scene
    from scenes.explore import make_policy

    other = tmp_path / "bounce"
    collect(other, functools.partial(make_scene, "bounce", size=(32, 32)), make_policy, episodes=2, steps=16, seed=1, progress=False)
    with pytest.raises(SkyloopError, match="keys"):
        tune_decoder(tiny_world, other, tmp_path / "x.safetensors", DecoderTuneConfig(**TINY), threads=1, say=lambda s: None)
