"""`skyloop train`: a run is a list of phases (tokenizer, then dynamics) fitted in turn by fit.py, then one world file.

Runs unchanged single-process or under `torchrun --nproc_per_node=N` (DDP).
Everything a run makes lives in its run folder: `checkpoint.safetensors`
(atomic, every `checkpoint_every` steps), `metrics.jsonl`, `latents.safetensors`
(the dataset encoded once by the trained tokenizer) and PNG strips of real vs
predicted frames at each evaluation. `--resume` continues a killed run from its
last checkpoint.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

from engine.data.dataset import Dataset
from engine.errors import SkyloopError
from engine.train.checkpoint import Checkpoint
from engine.train.config import Preset
from engine.train.context import RunContext
from engine.train.distributed import Dist
from engine.train.dynamics_phase import DynamicsPhase
from engine.train.fit import fit
from engine.train.tokenizer_phase import TokenizerPhase

PHASES = (TokenizerPhase, DynamicsPhase)  # a run, in order: each phase is made from the context and the previous phase's result


def fit_phases(ctx: RunContext, checkpoint: Checkpoint | None):
    """Fits every phase of the run in turn (resuming the one the checkpoint was in); returns the last one's result."""
    result = None
    for make_phase in PHASES:
        result = fit(ctx, make_phase(ctx, result), checkpoint)
    return result


def split_episodes(dataset: Dataset, holdout: float, say, limit: int | None = None) -> tuple[list, list]:
    bad: list[str] = []
    episodes = dataset.load_all(on_bad=lambda f, m: bad.append(m), limit=limit)
    for message in bad:
        say(f"skipping bad episode: {message}")
    episodes = [e for e in episodes if len(e[0]) >= 2]
    if len(episodes) < 2:
        raise SkyloopError(f"{dataset.root}: need at least 2 usable episodes (one is held out for evaluation), found {len(episodes)}")
    n_hold = max(1, int(round(len(episodes) * holdout)))
    return episodes[:-n_hold], episodes[-n_hold:]


ARCHITECTURE = (
    "token_dim",
    "token_grid",
    "num_keys",
    "context",
    "width",
    "depth",
    "heads",
    "mlp_ratio",
    "rope_period",
    "shared_modulation",
    "spatial_rope",
)


WEIGHTLESS = ("context", "spatial_rope")  # shape fields no parameter depends on: a continued world may change them (--set)
GROWABLE = ("depth",)  # shape fields a continued world may increase: its weights load into the larger network unchanged


def continued_preset(preset: Preset, world: Path) -> Preset:
    """The preset for continuing a world (--init-from): the world's network shape and its (benchmarked) sampler,
    this run's recipe, at CONTINUE_LR unless --lr was given. A weightless field (the context length) set to something
    other than the preset's default is kept, so a world can be taught a longer memory; a larger depth is kept too (the
    world's blocks load among new identity blocks: Dynamics.load_shallower); any other shape field set differently
    from the world is an error (it used to be dropped without a word)."""
    from dataclasses import replace

    from engine.train.config import CONTINUE_LR, get_preset
    from engine.train.tokenizer_phase import asked_patch
    from engine.world.bundle import read_spec

    spec = read_spec(world)
    patch = asked_patch(preset)
    if patch is not None and patch != spec.tokenizer.patch:
        raise SkyloopError(
            f"tokenizer.patch={patch} regroups the tokens, and {world}'s dynamics weights are for tokens of "
            f"{spec.tokenizer.patch}x{spec.tokenizer.patch} latent cells; train new dynamics on its tokenizer with --tokenizer-from {world}"
        )
    if preset.name != spec.training.get("preset", preset.name):
        print(f"note: {world} was trained with preset {spec.training.get('preset')!r}; its network shape is kept")
    default = get_preset(preset.name).dynamics
    shape = {}
    for name in ARCHITECTURE:
        mine, theirs = getattr(preset.dynamics, name), getattr(spec.dynamics, name)
        asked = mine != getattr(default, name) and name not in ("token_dim", "token_grid", "num_keys")  # those follow the data
        if asked and mine != theirs:
            if name in GROWABLE and mine > theirs:
                print(f"note: dynamics.{name} {theirs} -> {mine}: the world's weights load into the larger network, new parts start as identity")
                continue
            if name not in WEIGHTLESS:
                raise SkyloopError(
                    f"dynamics.{name}={mine} cannot be applied to {world}: its weights are for {name}={theirs}; "
                    f"continue with its shape, or train a new world without --init-from"
                )
            print(f"note: dynamics.{name} {theirs} -> {mine} for the continued world (no weights depend on it)")
            continue
        shape[name] = theirs
    train = preset.train
    if train.dynamics_lr == get_preset(preset.name).train.dynamics_lr:  # not asked (--lr): a continued world's gentler rate
        print(f"note: continuing at lr {CONTINUE_LR:g}, not a new world's {train.dynamics_lr:g} (--lr sets it)")
        train = replace(train, dynamics_lr=CONTINUE_LR)
    return replace(preset, tokenizer=spec.tokenizer, dynamics=replace(preset.dynamics, **shape), sampler=spec.sampler, train=train)


def check_compatible(checkpoint: Checkpoint, preset: Preset, dataset: Dataset, where: Path) -> None:
    """A resumed checkpoint must belong to the same preset and kind of data."""
    ck = checkpoint.preset
    if ck.name != preset.name:
        raise SkyloopError(f"{where}: checkpoint is from preset {ck.name!r}, not {preset.name!r}; use --preset {ck.name} or a new --run-dir")
    size = tuple(ck.tokenizer.frame_size)
    if size != tuple(dataset.frame_size):
        raise SkyloopError(f"{where}: checkpoint was trained on {size[0]}x{size[1]} frames, this dataset has {dataset.frame_size[0]}x{dataset.frame_size[1]}")
    keys = checkpoint.keys
    if keys is not None and list(keys) != list(dataset.keyset.names):
        raise SkyloopError(f"{where}: checkpoint's keys {keys} differ from this dataset's {list(dataset.keyset.names)}")


def train_world(
    data: str | os.PathLike,
    preset: Preset,
    out: str | os.PathLike,
    *,
    resume: bool = False,
    run_dir: str | os.PathLike | None = None,
    device: str | None = None,
    threads: int | None = None,
    progress: bool = True,
    command: str = "",
    precision: str = "auto",
    compile: bool = False,
    tokenizer_from: str | os.PathLike | None = None,
    init_from: str | os.PathLike | None = None,
    max_episodes: int | None = None,
) -> Path | None:
    """Trains a world with `preset` (resolved: `resolve_preset(name, settings)`) and writes it to `out`.
    Returns its path (on rank 0)."""
    from dataclasses import replace

    dist = Dist(device=device, threads=threads)
    try:
        dataset = Dataset.open(data)
        train_cfg = preset.train
        preset = preset.for_data(dataset.frame_size, len(dataset.keyset))
        if init_from is not None:
            preset = continued_preset(preset, Path(init_from))
            tokenizer_from = tokenizer_from or init_from
        out = Path(out)
        run_dir = Path(run_dir) if run_dir else Path("runs") / out.stem
        checkpoint = run_dir / "checkpoint.safetensors"
        if dist.main:
            run_dir.mkdir(parents=True, exist_ok=True)
            if checkpoint.exists() and not resume:
                raise SkyloopError(f"{run_dir} holds a previous run; pass --resume to continue it, or choose another --run-dir (or delete it)")
        dist.barrier()
        torch.manual_seed(train_cfg.seed)
        state = None
        if resume and checkpoint.exists():
            state = Checkpoint.load(checkpoint)
            check_compatible(state, preset, dataset, checkpoint)
            # The checkpoint's own configs rebuild its models, whatever the code's defaults are now.
            preset = replace(preset, tokenizer=state.preset.tokenizer, dynamics=state.preset.dynamics, sampler=state.preset.sampler)
        elif resume and dist.main:
            print(f"no checkpoint in {run_dir}: starting a new run")
        ctx = RunContext(
            dist,
            preset,
            run_dir,
            dataset,
            *split_episodes(dataset, train_cfg.holdout, print if dist.main else lambda s: None, max_episodes),
            out=out,
            progress=progress and dist.main,
            command=command,
            precision=precision,
            compile=compile,
            tokenizer_from=Path(tokenizer_from) if tokenizer_from else None,
            init_from=Path(init_from) if init_from else None,
        )
        n_train = sum(len(f) for f, _ in ctx.train_episodes)
        with ctx.autocast():
            mode = "bf16 autocast" if torch.is_autocast_enabled(dist.device.type) else "fp32"
        ctx.say(
            f"train {preset.name} on {dataset.root} ({dataset.manifest.scene}, {dataset.frame_size[0]}x{dataset.frame_size[1]}, "
            f"{len(ctx.train_episodes)} episodes / {n_train} frames for training, {len(ctx.holdout_episodes)} held out) "
            f"on {dist.device}{f' x{dist.world} ranks' if dist.world > 1 else ''}, {mode}; run folder {run_dir}"
        )
        try:
            path = fit_phases(ctx, state)
        except torch.cuda.OutOfMemoryError as exc:
            raise SkyloopError(
                f"out of GPU memory ({str(exc).splitlines()[0]}); try a smaller batch, e.g. --batch {max(1, train_cfg.dynamics_batch // 2)}"
            ) from exc
        return path
    finally:
        dist.close()


def default_command() -> str:
    return "skyloop " + " ".join(sys.argv[1:])
