"""Training settings and the named presets (`--preset tiny|small|base`), each a small dataclass."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from engine.dynamics.model import DynamicsConfig
from engine.dynamics.sampler import SamplerConfig
from engine.errors import SkyloopError
from engine.tokenizer.model import TokenizerConfig

OPTIMIZERS = ("adamw", "muon")  # train.optimizer: the dynamics' optimizer


CONTINUE_LR = 3e-4  # peak learning rate of a continued world (--init-from) when --lr is not given: a trained world's
#   weights are shaken, not improved, by a new world's rate (every continued run in docs/ablations.md used 2e-4 to 4e-4)


@dataclass
class TrainConfig:
    tokenizer_steps: int = 12000  # optimizer steps of the tokenizer phase (maze: 33.5 dB at 4k, 36.5 dB at 12k)
    dynamics_steps: int = 12000  # optimizer steps of the dynamics phase
    tokenizer_batch: int = 32  # frames per tokenizer step (global: split across DDP ranks)
    dynamics_batch: int = 32  # windows of context + 1 frames per dynamics step (global)
    tokenizer_lr: float = 1e-3  # peak learning rate, cosine decay after warm-up
    dynamics_lr: float = 2.4e-3  # peak learning rate of new dynamics, cosine decay after warm-up (was 6e-4: at 75 CPU-minutes
    #   on the maze, 2.4e-3 gave +1.7 dB one step, +2.2 dB teacher-forced, twice the key response; docs/ablations.md)
    warmup: int = 200  # linear warm-up steps of each phase
    weight_decay: float = 0.02  # AdamW weight decay of the dynamics model (the tokenizer uses none)
    grad_clip: float = 1.0  # max gradient norm
    ema: float = 0.999  # EMA decay of the dynamics weights that get saved (0 = off)
    eval_every: int = 1000  # steps between evaluations (held-out PSNR, PNG strip)
    checkpoint_every: int = 250  # steps between checkpoints (atomic; --resume continues from the last)
    holdout: float = 0.05  # share of episodes held out for evaluation (at least one)
    seed: int = 0  # seeds weight init, batch sampling and noise
    cpu_minutes: float = 0.0  # dynamics phase budget in process CPU minutes (all threads; 0 = none): it stops when used up,
    #   and the learning-rate schedule follows whichever of steps or CPU time is further along (fixed-budget ablations)
    wall_minutes: float = 0.0  # dynamics phase budget in wall-clock minutes (0 = none), the same way: for a GPU, whose
    #   process CPU time says little about the work done, and for a lent machine's fixed lease
    optimizer: str = "adamw"  # of the dynamics: adamw, or muon (Muon for the hidden matrices, AdamW for the rest, one lr)
    muon_scale: float = 1.0  # with optimizer=muon: the hidden matrices' steps, times their RMS match to AdamW's
    weights: str = "float16"  # how the world file stores its weights: float16, or int8 (about 0.55x the size; a wider
    #   network within the 16 MiB a shipped world may weigh), or float32

    def __post_init__(self):
        from engine.world.bundle import WEIGHTS

        if self.weights not in WEIGHTS:  # refused before the run, not after its hours at the save
            raise SkyloopError(f"train.weights {self.weights!r}: one of {', '.join(WEIGHTS)}")
        if self.optimizer not in OPTIMIZERS:
            raise SkyloopError(f"train.optimizer {self.optimizer!r}: one of {', '.join(OPTIMIZERS)}")

    def budget_text(self) -> str:
        """The dynamics phase's budgets in words ("30 CPU-minutes / 6 wall-clock minutes"); "" when there is none."""
        parts = [
            f"{self.cpu_minutes:g} CPU-minutes" if self.cpu_minutes > 0 else "",
            f"{self.wall_minutes:g} wall-clock minutes" if self.wall_minutes > 0 else "",
        ]
        return " / ".join(p for p in parts if p)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, obj: dict) -> "TrainConfig":
        return cls(**obj)


@dataclass
class Preset:
    name: str  # preset name
    about: str  # one line for --help
    tokenizer: TokenizerConfig  # frame_size is replaced by the dataset's
    dynamics: DynamicsConfig  # token and key sizes are replaced by the tokenizer's and the dataset's
    sampler: SamplerConfig = field(default_factory=SamplerConfig)  # default sampler stored in the bundle
    train: TrainConfig = field(default_factory=TrainConfig)

    def for_data(self, frame_size: tuple[int, int], num_keys: int) -> "Preset":
        """The preset fitted to a dataset: frame size, token sizes and key count filled in."""
        tok = replace(self.tokenizer, frame_size=tuple(frame_size))
        try:
            tok.check()
        except ValueError as exc:
            raise SkyloopError(f"preset {self.name}: {exc}; collect at a size that divides, e.g. 64x64 or 64x96") from exc
        dyn = replace(self.dynamics, token_dim=tok.token_dim, token_grid=tok.token_grid, num_keys=num_keys)
        return replace(self, tokenizer=tok, dynamics=dyn)

    def to_json(self) -> dict:
        """The preset as stored in checkpoints (`about` is help text and stays out)."""
        return {
            "name": self.name,
            "tokenizer": self.tokenizer.to_json(),
            "dynamics": self.dynamics.to_json(),
            "sampler": self.sampler.to_json(),
            "train": self.train.to_json(),
        }

    @classmethod
    def from_json(cls, obj: dict) -> "Preset":
        """The preset a checkpoint stored: its configs rebuild its models, whatever the code's defaults are now."""
        about = PRESETS[obj["name"]].about if obj["name"] in PRESETS else ""
        return cls(
            obj["name"],
            about,
            TokenizerConfig.from_json(obj["tokenizer"]),
            DynamicsConfig.from_json(obj["dynamics"]),
            SamplerConfig.from_json(obj["sampler"]),
            TrainConfig.from_json(obj["train"]),
        )


PRESETS: dict[str, Preset] = {
    "tiny": Preset(
        "tiny",
        "for tests: trains in seconds on a CPU",
        TokenizerConfig(pixel_patch=4, widths=(32,), blocks=1, latent_channels=8, patch=2),
        DynamicsConfig(context=4, width=64, depth=2, heads=2),
        SamplerConfig(steps=1),
        TrainConfig(
            tokenizer_steps=150,
            dynamics_steps=150,
            tokenizer_batch=16,
            dynamics_batch=16,
            tokenizer_lr=3e-3,
            dynamics_lr=2e-3,
            warmup=20,
            ema=0.0,
            eval_every=100,
            checkpoint_every=50,
        ),
    ),
    "small": Preset(
        "small",
        "the shipped worlds: >= 30 FPS on 2 CPU cores with ONNX Runtime",
        TokenizerConfig(pixel_patch=4, widths=(96, 160), blocks=1, latent_channels=16, patch=2),
        DynamicsConfig(context=8, width=256, depth=6, heads=4),
        SamplerConfig(steps=2),
        TrainConfig(),
    ),
    "base": Preset(
        "base",
        "for a GPU: 128x128 frames, more tokens, a deeper model",
        TokenizerConfig(pixel_patch=4, widths=(128, 256, 256), blocks=2, latent_channels=32, patch=1),
        DynamicsConfig(context=16, width=512, depth=12, heads=8),
        SamplerConfig(steps=2),
        TrainConfig(tokenizer_steps=20000, dynamics_steps=60000, tokenizer_batch=64, dynamics_batch=64, dynamics_lr=4e-4),
    ),
}


def apply_overrides(preset: Preset, assignments: list[str]) -> Preset:
    """`--set dynamics.depth=4 --set sampler.steps=1 --set train.dynamics_lr=3e-4`: dotted fields, typed from the dataclass."""
    for item in assignments:
        if "=" not in item or "." not in item.split("=", 1)[0]:
            raise SkyloopError(f"--set wants PART.FIELD=VALUE (parts: tokenizer, dynamics, sampler, train), got {item!r}")
        path, raw = item.split("=", 1)
        part, name = path.split(".", 1)
        if part not in ("tokenizer", "dynamics", "sampler", "train"):
            raise SkyloopError(f"--set {item}: unknown part {part!r}; use tokenizer, dynamics, sampler or train")
        preset = replace(preset, **{part: set_field(getattr(preset, part), part, name, raw, f"--set {item}")})
    return preset


def set_field(cfg, part: str, name: str, raw: str, where: str):
    """The dataclass cfg (one of a preset's parts, named `part`) with field `name` set from the text `raw`, typed from
    the field's current value; `where` (the assignment as given) starts every error."""
    import dataclasses
    import json

    fields = {f.name: f for f in dataclasses.fields(cfg)}
    if name not in fields:
        raise SkyloopError(f"{where}: {part} has no field {name!r}; fields: {', '.join(fields)}")
    current = getattr(cfg, name)
    try:
        if isinstance(current, bool):
            value = {"true": True, "false": False, "1": True, "0": False}[raw.lower()]
        elif isinstance(current, tuple):
            value = tuple(json.loads(raw if raw.startswith("[") else f"[{raw}]"))
        else:
            value = type(current)(raw)
    except (KeyError, ValueError, json.JSONDecodeError) as exc:
        raise SkyloopError(f"{where}: {raw!r} is not a valid {type(current).__name__}") from exc
    return replace(cfg, **{name: value})


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise SkyloopError(f"unknown preset {name!r}; presets: {', '.join(PRESETS)}")
    return PRESETS[name]


SHORTHANDS = {  # command-line flags of `skyloop train` that stand for --set assignments (applied after the --set ones)
    "steps": ("train.dynamics_steps",),
    "tokenizer_steps": ("train.tokenizer_steps",),
    "batch": ("train.tokenizer_batch", "train.dynamics_batch"),
    "lr": ("train.dynamics_lr",),
    "eval_every": ("train.eval_every",),
    "checkpoint_every": ("train.checkpoint_every",),
}


def shorthand_settings(**flags) -> list[str]:
    """The --set assignments that flags such as steps=600, batch=16 stand for (flags that are None are left out)."""
    unknown = set(flags) - set(SHORTHANDS)
    if unknown:
        raise TypeError(f"no shorthand flag {sorted(unknown)}; shorthands: {', '.join(SHORTHANDS)}")
    return [f"{field}={value}" for flag, value in flags.items() if value is not None for field in SHORTHANDS[flag]]


def resolve_preset(name: str, settings: list[str] | tuple[str, ...] = (), **shorthands) -> Preset:
    """The one way into a run's configuration: a named preset, then --set assignments, then shorthand flags."""
    return apply_overrides(get_preset(name), list(settings) + shorthand_settings(**shorthands))
