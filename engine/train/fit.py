"""The one training loop: every phase of a run goes through `fit`.

It owns what every phase needs and knows nothing of what a phase trains (minGPT's `Trainer`,
DIAMOND's `train_component`): the learning-rate schedule, the optimizer step with gradient
clipping, the EMA of the weights, the progress bar, logging every 25 steps, evaluation every
`eval_every` steps, atomic checkpoints every `checkpoint_every` steps, and resuming from one.
A phase (tokenizer_phase.py, dynamics_phase.py) is an object that says what to train and how to
get its loss; `train_step` is the step that `fit` runs and `skyloop bench train` times.
"""

from __future__ import annotations

import math
import time
from typing import Protocol

import numpy as np
import torch

from engine.train.checkpoint import Checkpoint, flatten_optimizer, restore_optimizer, restore_rng, rng_state
from engine.train.context import RunContext

LOG_EVERY = 25  # steps between loss lines in metrics.jsonl


class Phase(Protocol):
    """One part of a run. `skip` first; if it returns None, `build`, then `fit` trains it and calls `finish`."""

    name: str  # "tokenizer", "dynamics": its label in logs and checkpoints
    total: int  # optimizer steps the phase takes (a CPU budget may stop it earlier: `out_of_budget`)
    trained: torch.nn.Module  # the module being optimised (gradient clipping and EMA act on its parameters)
    optimizer: torch.optim.Optimizer
    ema: torch.nn.Module | None  # an averaged copy of `trained`, updated after every step (None: no EMA)
    ema_decay: float
    frames_per_step: int  # frames through the model per step on one rank (the throughput in the log)
    modules: dict[str, torch.nn.Module]  # what a checkpoint holds, by name (tokenizer, dynamics, ema)
    rngs: dict[str, np.random.Generator]  # the phase's random generators, saved in checkpoints (torch's global one always is)
    checkpoint_at_start: bool  # save a checkpoint before the first step (the previous phase's work is then never redone)

    def skip(self, checkpoint: Checkpoint | None): ...  # the phase's result when it need not train (done or taken elsewhere), else None
    def build(self, checkpoint: Checkpoint | None) -> None: ...  # models, optimizer, data; checkpoint: this phase's, to resume
    def lr(self, step: int) -> float: ...  # learning rate of this step
    def loss(self, step: int) -> torch.Tensor: ...  # one batch through the model: the loss to minimise
    def evaluate(self, step: int) -> tuple[dict, str]: ...  # held-out metrics, and a line for the terminal
    def out_of_budget(self) -> bool: ...  # stop now (same answer on every rank)
    def budget_used(self) -> float: ...  # share of the phase's CPU or wall-clock budget spent so far (0 when it has none)
    def state(self) -> dict: ...  # what else a checkpoint must hold (JSON)
    def restore(self, checkpoint: Checkpoint) -> None: ...  # the reverse of `state`
    def finish(self, steps: int, metrics: dict, save): ...  # after the last step: the phase's result


def train_step(phase: Phase, step: int, lr: float, grad_clip: float) -> torch.Tensor:
    """One optimizer step of a phase: its loss, backward, clipped gradients, the update, the EMA. Returns the loss."""
    for group in phase.optimizer.param_groups:
        group["lr"] = lr
    loss = phase.loss(step)
    phase.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(phase.trained.parameters(), grad_clip)
    phase.optimizer.step()
    if phase.ema is not None:  # EMA with warm-up: early on the average follows the weights closely
        decay = min(phase.ema_decay, (1 + step) / (10 + step))
        with torch.no_grad():
            torch._foreach_lerp_(list(phase.ema.parameters()), list(phase.trained.parameters()), 1 - decay)
    return loss


def steps_in_budget(step: int, start: int, used: float, used_at_start: float, planned: int) -> int:
    """The step a budgeted phase will stop at, from its pace in this session: `step` steps done, `start` of them
    before this session, `used` share of the budget spent now and `used_at_start` when this session began.
    Never more than `planned`; `planned` until the pace can be told (no step taken or no budget spent yet)."""
    if step <= start or used <= used_at_start:
        return planned
    per_share = (step - start) / (used - used_at_start)
    return min(planned, max(step, math.ceil(step + (1.0 - used) * per_share)))


def fit(ctx: RunContext, phase: Phase, checkpoint: Checkpoint | None = None):
    """Trains one phase, resuming from `checkpoint` when it is this phase's; returns what `phase.finish` returns."""
    done = phase.skip(checkpoint)
    if done is not None:
        return done
    # "done" is written by the last phase when the run is over: resuming it continues that phase where it ended
    # (it used to start the phase again from step 0; earlier phases skip themselves on it).
    mine = checkpoint if checkpoint is not None and checkpoint.phase in (phase.name, "done") else None
    phase.build(mine)
    cfg, dist = ctx.cfg, ctx.dist
    start = 0
    if mine is not None:
        start = restore(phase, mine)
        ctx.say(f"{phase.name}: resuming at step {start}")
    path = ctx.run_dir / "checkpoint.safetensors"

    def save(step: int, label: str | None = None) -> None:
        if not dist.main:
            return
        opt_tensors, groups = flatten_optimizer(phase.optimizer, "opt")
        rng_tensors, rng_meta = rng_state(phase.rngs)
        tensors = {f"{name}.{k}": v for name, module in phase.modules.items() for k, v in module.state_dict().items()}
        Checkpoint.of(ctx, label or phase.name, step, tensors | opt_tensors | rng_tensors, opt_groups=groups, rng=rng_meta, **phase.state()).save(path)

    if start == 0 and phase.checkpoint_at_start:
        save(0)
    from tqdm import tqdm

    total = phase.total
    bar = tqdm(total=total, initial=start, desc=phase.name, unit="step", disable=not ctx.progress, mininterval=1.0, dynamic_ncols=True)
    tick, seen = time.perf_counter(), 0
    used_at_start = phase.budget_used()  # a budget's stop, not --steps, ends the bar (its ETA follows the budget)
    metrics: dict = {}
    for step in range(start, total):
        lr = phase.lr(step)
        loss = train_step(phase, step, lr, cfg.grad_clip)
        seen += phase.frames_per_step * dist.world
        if used_at_start < 1.0 and (used := phase.budget_used()) > 0:
            bar.total = steps_in_budget(step + 1, start, used, used_at_start, total)
        if (step + 1) % LOG_EVERY == 0 or step + 1 == total:
            now = time.perf_counter()
            rate = seen / (now - tick)  # frames per second through the model
            tick, seen = now, 0
            loss_v = dist.mean(loss.item())  # note: a CPU-GPU sync point, once every LOG_EVERY steps
            bar.set_postfix(loss=f"{loss_v:.4f}", frames_s=f"{rate:.0f}")
            ctx.log({"phase": phase.name, "step": step + 1, "loss": loss_v, "lr": lr, "frames_per_s": rate})
        if dist.main and ((step + 1) % cfg.eval_every == 0 or step + 1 == total):
            metrics, line = phase.evaluate(step + 1)
            ctx.log({"phase": phase.name, "step": step + 1, "eval": metrics})
            bar.write(line)
        if phase.out_of_budget() and step + 1 < total:
            ctx.say(f"\n{phase.name}: budget of {cfg.budget_text()} used up at step {step + 1}")
            total = step + 1
            if dist.main:
                metrics, _ = phase.evaluate(total)
                ctx.log({"phase": phase.name, "step": total, "eval": metrics})
            bar.update(1)
            break
        if (step + 1) % cfg.checkpoint_every == 0 and step + 1 < total:
            save(step + 1)
        bar.update(1)
    bar.close()
    return phase.finish(total, metrics, save)


def restore(phase: Phase, checkpoint: Checkpoint) -> int:
    """A phase's weights, optimizer and random state from its checkpoint; returns the step to continue from."""
    for name, module in phase.modules.items():
        module.load_state_dict(checkpoint.module(name))
    restore_optimizer(phase.optimizer, checkpoint.tensors, "opt", checkpoint.extra["opt_groups"])
    restore_rng(checkpoint.tensors, checkpoint.extra["rng"], phase.rngs)
    phase.restore(checkpoint)
    return checkpoint.step
