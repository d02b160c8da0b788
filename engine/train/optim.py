"""Muon for the dynamics' hidden matrices, Adam for the rest, in one torch optimizer.

Muon (Jordan et al. 2024; "Muon is Scalable for LLM Training", Liu et al. 2025) replaces each hidden
matrix's momentum update by its nearest orthogonal matrix (a few Newton-Schulz iterations), so that
every direction of the matrix learns at the same rate instead of the few the gradient favours. The
update is scaled to the RMS of an AdamW update (Moonshot's rule, 0.2 * sqrt(max(rows, cols))), so
the two share one learning rate, one schedule and one weight decay.

One optimizer with a `muon` flag per group, rather than two optimizers side by side: the training
loop sets one learning rate on `param_groups`, and checkpoints flatten one `state_dict`.
"""

from __future__ import annotations

import math

import torch
from torch.optim.adam import adam

# Keller Jordan's quintic coefficients: five iterations bring every singular value into about [0.7, 1.2]
NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)


def orthogonalize(g: torch.Tensor, steps: int = 5, eps: float = 1e-7) -> torch.Tensor:
    """The matrix nearest g with all singular values about 1 (Newton-Schulz on g / |g|)."""
    a, b, c = NS_COEFFICIENTS
    x = g.float() / (g.norm() + eps)
    wide = x.shape[0] > x.shape[1]
    if wide:
        x = x.T
    for _ in range(steps):
        s = x @ x.T
        x = a * x + (b * s + c * s @ s) @ x
    return x.T if wide else x


class MuonAdam(torch.optim.Optimizer):
    """Groups with `muon=True` (2-D weights only) take Muon steps; the others take AdamW steps.

    All groups share `lr` (set by the training loop's schedule) and decay weights decoupled, by `lr * weight_decay` a step,
    as AdamW does; a muon group's steps are `muon_scale` times larger (the RMS match equates a Muon step with a typical
    AdamW step late in training; early on AdamW's steps are larger)."""

    def __init__(self, groups: list[dict], lr: float, betas=(0.9, 0.95), eps: float = 1e-8, momentum: float = 0.95, muon_scale: float = 1.0):
        for group in groups:
            if group.get("muon") and any(p.ndim != 2 for p in group["params"]):
                raise ValueError("MuonAdam: a muon group holds only 2-D weight matrices")
        super().__init__(groups, dict(lr=lr, betas=betas, eps=eps, momentum=momentum, weight_decay=0.0, muon=False, muon_scale=muon_scale))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            (self._muon if group["muon"] else self._adamw)(group, params)
        return loss

    def _muon(self, group: dict, params: list[torch.Tensor]) -> None:
        lr, m = group["lr"], group["momentum"]
        for p in params:
            state = self.state[p]
            if not state:
                state["momentum"] = torch.zeros_like(p)
            p.mul_(1 - lr * group["weight_decay"])
            buf = state["momentum"]
            buf.lerp_(p.grad, 1 - m)
            update = orthogonalize(p.grad.lerp(buf, m))  # Nesterov
            p.add_(update.to(p.dtype), alpha=-lr * group["muon_scale"] * 0.2 * math.sqrt(max(p.shape)))

    def _adamw(self, group: dict, params: list[torch.Tensor]) -> None:
        """torch's own AdamW step (its functional form), with torch.optim.AdamW's state names."""
        for p in params:
            state = self.state[p]
            if not state:
                state["step"] = torch.zeros((), dtype=torch.float32)
                state["exp_avg"] = torch.zeros_like(p)
                state["exp_avg_sq"] = torch.zeros_like(p)
        states = [self.state[p] for p in params]
        b1, b2 = group["betas"]
        adam(
            params,
            [p.grad for p in params],
            [s["exp_avg"] for s in states],
            [s["exp_avg_sq"] for s in states],
            [],
            [s["step"] for s in states],
            decoupled_weight_decay=True,
            amsgrad=False,
            beta1=b1,
            beta2=b2,
            lr=group["lr"],
            weight_decay=group["weight_decay"],
            eps=group["eps"],
            maximize=False,
        )
