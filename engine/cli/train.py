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
