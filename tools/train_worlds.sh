#!/usr/bin/env bash
# Rebuilds the shipped default worlds from nothing, with the project's own commands.
# The exact commands, seeds and steps below are also recorded in each world file's metadata.
#
#   tools/train_worlds.sh [maze|overworld|bounce ...]     (default: all three)
#
# On 2 CPU cores (bf16 on AMX) a world takes a few hours; on a GPU, minutes. Every step is resumable:
# collect completes what is missing, train continues from its last checkpoint.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
tools/setup
sk=".venv/bin/skyloop"
worlds=("$@")
[[ $# -eq 0 ]] && worlds=(maze overworld bounce)

episodes_maze=400;      steps_maze=8000
episodes_overworld=300; steps_overworld=6000
episodes_bounce=300;    steps_bounce=6000

for w in "${worlds[@]}"; do
  episodes_var="episodes_$w"; steps_var="steps_$w"
  $sk collect --scene "$w" --episodes "${!episodes_var}" --steps 500 --seed 0 --out "data/$w" --workers 2
  resume=""; [[ -f "runs/$w/checkpoint.safetensors" ]] && resume="--resume"
  $sk train --data "data/$w" --preset small --out "worlds/$w.safetensors" --run-dir "runs/$w" \
      --steps "${!steps_var}" --compile $resume
  $sk bench consistency "worlds/$w.safetensors" --out "docs/results/$w" --speed --backend onnx
  rm -rf "runs/$w-clip"
  $sk play "worlds/$w.safetensors" --headless --frames 120 --seed 7 --gif --out "runs/$w-clip"
  cp runs/"$w"-clip/*.gif "docs/results/$w/play.gif"
done
.venv/bin/python tools/make_results.py
