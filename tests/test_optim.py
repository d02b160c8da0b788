"""train.optimizer=muon: Muon on the dynamics' hidden matrices, AdamW on the rest, one optimizer."""

import pytest
import torch

from engine.dynamics.model import Dynamics, DynamicsConfig
from engine.errors import SkyloopError
from engine.train.checkpoint import flatten_optimizer, restore_optimizer
from engine.train.config import resolve_preset
from engine.train.optim import MuonAdam, orthogonalize
from engine.train.run import train_world
from engine.world.bundle import load_bundle, read_spec


def _grads(params, seed):
    g = torch.Generator().manual_seed(seed)
    for p in params:
        p.grad = torch.randn(p.shape, generator=g)


def test_orthogonalize_keeps_the_directions_and_evens_the_singular_values():
    g = torch.randn(48, 16) @ torch.diag(torch.logspace(-1, 1, 16))  # singular values over two decades
    o = orthogonalize(g)
    s = torch.linalg.svdvals(o)
    assert s.min() > 0.5 and s.max() < 1.3, s
    u, _, vh = torch.linalg.svd(g, full_matrices=False)
    rotated = u.T @ o @ vh.T  # diagonal when o has g's singular vectors
    assert (rotated - torch.diag(torch.diagonal(rotated))).abs().max() < 0.05


def test_adam_groups_step_exactly_as_adamw_and_muon_groups_as_torch_muon():
    torch.manual_seed(0)
    vec, mat = torch.randn(12), torch.randn(24, 8)
    ours = [vec.clone().requires_grad_(), mat.clone().requires_grad_()]
    ref = [vec.clone().requires_grad_(), mat.clone().requires_grad_()]
    opt = MuonAdam([{"params": [ours[0]], "weight_decay": 0.1}, {"params": [ours[1]], "weight_decay": 0.1, "muon": True}], lr=1e-2)
    adamw = torch.optim.AdamW([ref[0]], lr=1e-2, betas=(0.9, 0.95), weight_decay=0.1)
    muon = torch.optim.Muon([ref[1]], lr=1e-2, weight_decay=0.1, momentum=0.95, adjust_lr_fn="match_rms_adamw")
    for step in range(4):
        _grads(ours, step)
        _grads(ref, step)
        opt.step()
        adamw.step()
        muon.step()
    assert torch.allclose(ours[0], ref[0], atol=1e-6)
    # torch's Muon runs Newton-Schulz in bfloat16, ours in float32: equal to bfloat16's precision
    moved_ours, moved_ref = ours[1].detach() - mat, ref[1].detach() - mat
    assert (moved_ours - moved_ref).norm() < 0.02 * moved_ref.norm()


def test_muon_refuses_a_group_that_is_not_matrices():
    with pytest.raises(ValueError, match="2-D"):
        MuonAdam([{"params": [torch.zeros(3, requires_grad=True)], "muon": True}], lr=1e-3)


def test_the_dynamics_give_muon_only_hidden_matrices_and_a_checkpoint_restores_its_momentum():
    model = Dynamics(DynamicsConfig(token_dim=8, token_grid=(2, 2), num_keys=3, context=2, width=32, depth=2, heads=2))
    groups = model.optimizer_groups(0.02, muon=True)
    names = {id(p): n for n, p in model.named_parameters()}
    hidden = [names[id(p)] for p in groups[2]["params"]]
    assert groups[2]["muon"] and hidden and all(model.get_parameter(n).ndim == 2 for n in hidden)
    assert any(".qkv." in n for n in hidden) and not any(n.startswith(Dynamics.EDGE_LAYERS) or "pos" in n for n in hidden)
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters())), "every parameter in one group"
    assert len(model.optimizer_groups(0.02)) == 2, "AdamW's groups are unchanged"

    params = list(model.parameters())
    opt = MuonAdam(groups, lr=1e-3)
    _grads(params, 1)
    opt.step()
    tensors, saved_groups = flatten_optimizer(opt, "opt")
    tensors = {k: v.clone() for k, v in tensors.items()}  # as read back from the file: no storage shared with opt
    twin = Dynamics(model.cfg)
    twin.load_state_dict(model.state_dict())
    twin_opt = MuonAdam(twin.optimizer_groups(0.02, muon=True), lr=1e-3)
    restore_optimizer(twin_opt, tensors, "opt", saved_groups)
    _grads(params, 2)
    _grads(list(twin.parameters()), 2)
    opt.step()
    twin_opt.step()
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), twin.state_dict().values()))


def test_a_muon_run_trains_a_world_and_records_its_optimizer(tiny_dataset, tiny_world, tmp_path):
    out = tmp_path / "muon.safetensors"
    preset = resolve_preset("tiny", ["train.optimizer=muon", "train.eval_every=1000"], steps=4)
    train_world(tiny_dataset, preset, out, run_dir=tmp_path / "muon", threads=1, progress=False, init_from=tiny_world)
    assert read_spec(out).training["train"]["optimizer"] == "muon"
    a, b = load_bundle(tiny_world).dynamics.state_dict(), load_bundle(out).dynamics.state_dict()
    assert any(not torch.equal(a[k], b[k]) for k in a), "it trained"


def test_an_unknown_optimizer_is_refused_by_name():
    with pytest.raises(SkyloopError, match="train.optimizer 'sgd'"):
        resolve_preset("tiny", ["train.optimizer=sgd"])


def test_muon_scale_multiplies_only_the_hidden_matrices_steps():
    def moved(scale):
        vec, mat = torch.ones(4, requires_grad=True), torch.ones(6, 4, requires_grad=True)
        opt = MuonAdam([{"params": [vec]}, {"params": [mat], "muon": True}], lr=1e-2, muon_scale=scale)
        _grads([vec, mat], 0)
        opt.step()
        return (vec.detach() - 1).norm(), (mat.detach() - 1).norm()

    (v1, m1), (v3, m3) = moved(1.0), moved(3.0)
    assert torch.isclose(v3, v1) and torch.isclose(m3, 3 * m1)
