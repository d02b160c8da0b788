"""The fit loop knows nothing about what it trains: a toy phase (a linear regression) goes through it,
with logging, evaluation, EMA, checkpoints and resume."""

from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from engine.train.checkpoint import Checkpoint
from engine.train.config import resolve_preset
from engine.train.context import RunContext, lr_at
from engine.train.distributed import Dist
from engine.train.fit import fit, steps_in_budget


class LinePhase:
    """Fits y = 3x - 1 from random batches."""

    name = "dynamics"  # a checkpoint label the run knows
    checkpoint_at_start = False
    ema_decay = 0.9
    frames_per_step = 8

    def __init__(self, ctx, stop_at=None):
        self.ctx, self.total, self.stop_at, self.evaluated = ctx, 40, stop_at, []

    def skip(self, checkpoint):
        return None

    def build(self, checkpoint):
        torch.manual_seed(0)
        self.trained = torch.nn.Linear(1, 1)
        self.ema = torch.nn.Linear(1, 1)
        self.ema.load_state_dict(self.trained.state_dict())
        self.optimizer = torch.optim.SGD(self.trained.parameters(), lr=0.1)
        self.modules = {"dynamics": self.trained, "ema": self.ema}
        self.rngs = {"numpy": np.random.default_rng(0)}

    def lr(self, step):
        return lr_at(step, step / self.total, 0.5, 5)

    def loss(self, step):
        if self.stop_at is not None and step == self.stop_at:
            raise KeyboardInterrupt  # a kill between two steps
        x = torch.from_numpy(self.rngs["numpy"].normal(size=(8, 1))).float()
        return (self.trained(x) - (3 * x - 1)).pow(2).mean()

    def evaluate(self, step):
        self.evaluated.append(step)
        return {"weight": self.trained.weight.item()}, f"step {step}"

    def out_of_budget(self):
        return False

    def budget_used(self):
        return 0.0

    def state(self):
        return {}

    def restore(self, checkpoint):
        pass

    def finish(self, steps, metrics, save):
        save(steps, "done")
        return steps, {k: v.clone() for k, v in self.trained.state_dict().items()}, {k: v.clone() for k, v in self.ema.state_dict().items()}


def _ctx(run_dir: Path) -> RunContext:
    preset = resolve_preset("tiny", eval_every=20, checkpoint_every=10)
    preset = replace(preset, tokenizer=replace(preset.tokenizer, frame_size=(32, 32)))
    dataset = SimpleNamespace(keyset=SimpleNamespace(names=("a",)), manifest=SimpleNamespace(content_hash=lambda: "toy"))
    run_dir.mkdir(parents=True, exist_ok=True)
    return RunContext(Dist(device="cpu", threads=1), preset, run_dir, dataset, [], [], out=run_dir / "w", progress=False)


def test_fit_trains_evaluates_and_resumes_where_an_unbroken_run_ends(tmp_path):
    ctx = _ctx(tmp_path / "a")
    phase = LinePhase(ctx)
    steps, weights, ema = fit(ctx, phase)
    assert steps == 40 and phase.evaluated == [20, 40]
    assert abs(float(weights["weight"]) - 3) < 0.2  # it learned
    assert not torch.equal(weights["weight"], ema["weight"])  # the EMA lags behind
    log = [line for line in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines() if '"loss"' in line]
    assert len(log) == 2  # every 25 steps and the last one

    broken = _ctx(tmp_path / "b")
    try:
        fit(broken, LinePhase(broken, stop_at=27))
    except KeyboardInterrupt:
        pass
    checkpoint = Checkpoint.load(tmp_path / "b" / "checkpoint.safetensors")
    assert (checkpoint.phase, checkpoint.step) == ("dynamics", 20)
    torch.manual_seed(123)  # whatever the global state: the checkpoint restores it
    steps, resumed, resumed_ema = fit(broken, LinePhase(broken), checkpoint)
    assert steps == 40
    assert all(torch.equal(weights[k], resumed[k]) for k in weights)
    assert all(torch.equal(ema[k], resumed_ema[k]) for k in ema)


def test_a_budgeted_bar_ends_where_the_budget_will_stop_it_not_at_the_planned_steps():
    assert steps_in_budget(0, 0, 0.0, 0.0, 1_000_000) == 1_000_000  # no pace yet: the plan
    assert steps_in_budget(100, 0, 0.25, 0.0, 1_000_000) == 400  # a quarter of the budget per 100 steps
    assert steps_in_budget(300, 200, 0.75, 0.5, 1_000_000) == 400  # resumed: this session's pace, the earlier steps counted
    assert steps_in_budget(100, 0, 0.25, 0.0, 250) == 250  # never past --steps
    assert steps_in_budget(120, 0, 1.2, 0.0, 1_000_000) == 120  # overspent: the bar ends here
