#!/usr/bin/env bash
# Rebuilds the shipped default worlds from nothing, with the project's own commands, then benchmarks
# them into docs/results/<world>/ and regenerates docs/RESULTS.md.
#
#   tools/train_worlds.sh [maze|overworld|bounce ...]     (default: all three)
#
# The steps below are the ones the shipped worlds were trained with, on 2 CPU cores (bf16 on AMX),
# no GPU: a short budget (maze about 1.5 h, the others 25-35 min each). They are far from
# converged; the presets' own defaults (12000 + 12000 steps) or a GPU give better worlds.
# Every world file also records its exact training command, steps and data recipe in its metadata.
#
# How the shipped maze world differs from a plain run of this script: its tokenizer phase ran in a
# separate run folder (runs/maze-tok, same settings) and was reused with --tokenizer-from, and its
# dynamics run was started with --steps 8000 and cut to --steps 3000 on resume at step 1000 (the
# learning-rate schedule follows the new total from there).
#
# Every step is resumable: collect completes what is missing, train continues from its last checkpoint.
#
# GPU stage (not run by this script: it needs a GPU). The shipped bounce and overworld worlds were then continued
# on a lent H200 by tools/train_worlds_gpu.sh (2026-11-28: the three worlds at once, about 6.5 GPU-minutes each,
# self forcing on half the windows, batch 128, lr 4e-4; overworld with a 16-frame context), and the result copied
# over worlds/<world>.safetensors where its row in docs/ablations.md beat the world before it (bounce, overworld;
# the maze's GPU row was mixed with its 2-step sampler; with 4 steps and fresh noise it was shipped too, see the
# sampler rows in docs/ablations.md). Samplers are chosen by those rows and stored with tools/set_sampler.py:
# maze 4 steps, fresh noise, context noise 0.1, key guidance 1 on the first (docs/ablations.md, "Holding still");
# bounce 4 steps, implied noise; overworld 2 steps with key guidance 0.5 on the first (docs/ablations.md, "Key
# guidance") and canvas memory (docs/ablations.md, "Canvas memory").
# The overworld was then continued once more on 2 CPU cores (2026-12-06, an Intel Xeon with AMX: bf16), 160 CPU-minutes
# of the same recipe at batch 32, and shipped by its row (docs/ablations.md, "More windows for the overworld"):
#   .venv/bin/python tools/ablate.py ow-sf-160 --init worlds/overworld.safetensors --data data/overworld --cpu-minutes 160 \
#       --set dynamics.context=16 --set dynamics.rollout_p=0.5 --set dynamics.rollout_frames=6
#   cp runs/ablate/ow-sf-160/world.safetensors worlds/overworld.safetensors   (the sampler comes along from the world)
# On a machine with a GPU, after this script:
#   tools/train_worlds_gpu.sh runs/gpu && cp runs/gpu/{maze,bounce,overworld}.safetensors worlds/
#   .venv/bin/python tools/set_sampler.py worlds/maze.safetensors --steps 4 --stochastic true --context-noise 0.1 --key-guidance 1 --guided-steps 1
#   .venv/bin/python tools/set_sampler.py worlds/bounce.safetensors --steps 4 --stochastic false --context-noise 0
#   .venv/bin/python tools/set_sampler.py worlds/overworld.safetensors --steps 2 --key-guidance 0.5 --guided-steps 1 --canvas on
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
tools/setup
sk=".venv/bin/skyloop"
worlds=("$@")
[[ $# -eq 0 ]] && worlds=(maze overworld bounce)

#                        episodes  tokenizer steps  dynamics steps  extra settings
recipe_maze=(            400       12000            3000            "")
recipe_overworld=(       300       4000             1000            "")
recipe_bounce=(          300       2500             800             "--set train.tokenizer_lr=0.0005")
#                        CPU-minutes of each continuation of the world above, in order
continue_maze=()
continue_overworld=()
continue_bounce=(        60)   # 2026-11-28: TF 18.94 -> 20.57 dB, foreground share 0.00 -> 0.14 (docs/ablations.md)
# bounce: at the preset's tokenizer_lr (1e-3) its tokenizer diverged at step ~1300 (loss 0.0016 -> 0.09, held-out PSNR
# 31.7 -> 15.7 dB, never recovered: mostly flat frames); half the learning rate trains it cleanly.

for w in "${worlds[@]}"; do
  r="recipe_$w[@]"; r=("${!r}")
  $sk collect --scene "$w" --episodes "${r[0]}" --steps 500 --seed 0 --out "data/$w" --workers 2
  resume=""; [[ -f "runs/$w/checkpoint.safetensors" ]] && resume="--resume"
  $sk train --data "data/$w" --preset small --out "worlds/$w.safetensors" --run-dir "runs/$w" \
      --tokenizer-steps "${r[1]}" --steps "${r[2]}" ${r[3]} --compile $resume
  # Continuations (--init-from: the world's weights, a fresh optimizer, 50 warm-up steps, lr 3e-4), each for a
  # process-CPU budget in minutes, each kept by its row in docs/ablations.md (tools/ablate.py ran the same command).
  c="continue_$w[@]"; c=("${!c}")
  for k in "${!c[@]}"; do
    cont="runs/$w-cont$k"
    if [[ ! -f "$cont/world.safetensors" ]]; then
      resume=""; [[ -f "$cont/run/checkpoint.safetensors" ]] && resume="--resume"
      $sk train --data "data/$w" --preset small --init-from "worlds/$w.safetensors" --out "$cont/world.safetensors" \
          --run-dir "$cont/run" --steps 1000000 --lr 3e-4 --compile --no-progress \
          --set "train.cpu_minutes=${c[$k]}" --set train.warmup=50 --set train.eval_every=1000000 $resume
      cp "$cont/world.safetensors" "worlds/$w.safetensors"
    fi
  done
  if [[ $w == maze ]]; then  # the sampler is chosen by benchmark (docs/results/maze/sampler/sampler.md), then stored
    .venv/bin/python tools/sampler_grid.py "worlds/$w.safetensors" --out "docs/results/$w/sampler"
    .venv/bin/python tools/set_sampler.py "worlds/$w.safetensors" --steps 2 --context-noise 0.1
  fi
  $sk bench consistency "worlds/$w.safetensors" --out "docs/results/$w" --speed --backend onnx
  .venv/bin/python tools/record_demo.py "worlds/$w.safetensors" --out "docs/results/$w"
done
.venv/bin/python tools/make_results.py
