"""`skyloop train`: a dataset in, a world file out."""

from __future__ import annotations

from engine.cli.parents import Parents


def cmd_train(args) -> int:
    from engine.train.config import resolve_preset
    from engine.train.run import default_command, train_world

    # --steps, --batch, --lr ... are shorthands for --set assignments, applied after them
    preset = resolve_preset(
        args.preset,
        args.set or [],
        steps=args.steps,
        tokenizer_steps=args.tokenizer_steps,
        batch=args.batch,
        lr=args.lr,
        eval_every=args.eval_every,
        checkpoint_every=args.checkpoint_every,
    )
    train_world(
        args.data,
        preset,
        args.out,
        resume=args.resume,
        run_dir=args.run_dir,
        device=args.device,
        threads=args.threads,
        progress=not args.no_progress,
        command=default_command(),
        precision=args.precision,
        compile=args.compile,
        tokenizer_from=args.tokenizer_from,
        init_from=args.init_from,
        max_episodes=args.episodes,
    )
    return 0


def add_parser(sub, parents: Parents) -> None:
    """train."""
    p = sub.add_parser("train", help="train a world (tokenizer, then dynamics) into one .safetensors bundle", parents=[parents.training])
    p.add_argument("--data", required=True, help="dataset folder (from collect or import)")
    p.add_argument("--preset", default="small", help="tiny | small | base (default small)")
    p.add_argument("--out", required=True, help="world file to write, e.g. worlds/maze.safetensors")
    p.add_argument("--steps", type=int, help="dynamics steps: --set train.dynamics_steps=N (default: the preset's)")
    p.add_argument("--tokenizer-steps", type=int, help="tokenizer steps: --set train.tokenizer_steps=N (default: the preset's)")
    p.add_argument("--episodes", type=int, help="use only the first N episodes of the dataset")
    p.add_argument(
        "--set", action="append", metavar="PART.FIELD=VALUE", help="override a preset field, e.g. --set dynamics.depth=4 --set sampler.steps=1 (repeatable)"
    )
    p.add_argument("--tokenizer-from", metavar="WORLD", help="reuse the tokenizer of this world file (skips the tokenizer phase)")
    p.add_argument(
        "--init-from",
        metavar="WORLD",
        help="continue training this world file: its tokenizer and dynamics weights, "
        "its network shape (a --set dynamics.context=N is kept: no weight depends on it), a fresh optimizer; compute adds up in the new world's metadata (training.cumulative)",
    )
    p.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its last checkpoint")
    p.add_argument("--run-dir", help="folder for checkpoints, metrics and strips (default runs/<out name>)")
    p.add_argument(
        "--batch", type=int, help="global batch size of both phases: --set train.tokenizer_batch=N --set train.dynamics_batch=N (default: the preset's)"
    )
    p.add_argument("--lr", type=float, help="peak learning rate of the dynamics phase: --set train.dynamics_lr=LR (default: the preset's)")
    p.add_argument("--eval-every", type=int, help="steps between evaluations: --set train.eval_every=N (default: the preset's)")
    p.add_argument("--checkpoint-every", type=int, help="steps between checkpoints: --set train.checkpoint_every=N (default: the preset's)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (logs still go to the run folder)")
    p.set_defaults(func=cmd_train)
    add_tune_decoder_parser(sub)


def cmd_tune_decoder(args) -> int:
    from dataclasses import fields

    from engine.train.decoder_tune import DecoderTuneConfig, tune_decoder
    from engine.train.run import default_command

    given = {f.name: getattr(args, f.name) for f in fields(DecoderTuneConfig) if getattr(args, f.name, None) is not None}
    tune_decoder(args.world, args.data, args.out, DecoderTuneConfig(**given), threads=args.threads, command=default_command())
    return 0


def add_tune_decoder_parser(sub) -> None:
    """tune-decoder."""
    from engine.train.decoder_tune import DecoderTuneConfig

    d = DecoderTuneConfig()
    p = sub.add_parser(
        "tune-decoder",
        help="fit a world's decoder to the latents its own rollouts make (reconstruction + a patch critic); dynamics and encoder stay as they are",
    )
    p.add_argument("world", help="world file whose decoder is tuned")
    p.add_argument("--data", required=True, help="the dataset the world was trained on")
    p.add_argument("--out", required=True, help="world file to write (may be the same file)")
    p.add_argument("--cpu-minutes", type=float, help=f"budget in process CPU minutes (default {d.cpu_minutes:g}: none, run --steps)")
    p.add_argument("--steps", type=int, help=f"decoder steps (default {d.steps})")
    p.add_argument("--batch", type=int, help=f"frames per step, half real latents, half own (default {d.batch})")
    p.add_argument("--lr", type=float, help=f"decoder learning rate; the critic gets twice it (default {d.lr:g})")
    p.add_argument("--adversarial", type=float, help=f"weight of the critic's loss on the decoder; 0 = reconstruction only (default {d.adversarial:g})")
    p.add_argument("--energy", type=float, help=f"weight of the local edge-energy loss (sharp edges near the right place); 0 = none (default {d.energy:g})")
    p.add_argument("--horizon", type=int, help=f"frames each own rollout runs (default {d.horizon})")
    p.add_argument("--paired", type=int, help=f"own predictions up to this many frames out are paired with their real frame (default {d.paired})")
    p.add_argument("--windows", type=int, help=f"rollouts per buffer refresh (default {d.windows})")
    p.add_argument("--refresh", type=int, help=f"steps between buffer refreshes (default {d.refresh})")
    p.add_argument("--seed", type=int, help=f"seed (default {d.seed})")
    p.add_argument("--threads", type=int, help="CPU threads (default: torch's own)")
    p.set_defaults(func=cmd_tune_decoder)
