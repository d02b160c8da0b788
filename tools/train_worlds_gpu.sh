#!/usr/bin/env bash
# Continues the three shipped worlds on one GPU, all at once, inside a fixed wall-clock lease: collects each world's
# dataset (the same recipe and seeds as tools/train_worlds.sh), then trains each world's dynamics from its shipped
# weights (--init-from) until a common deadline, the three runs sharing the GPU. Ends with GPU play speed.
#
#   tools/train_worlds_gpu.sh [OUT]        (default runs/gpu; worlds land in OUT/<world>.safetensors)
#
# Settings come from the environment: SKYLOOP_PY (python; default .venv/bin/python, else python3), DEVICE (cuda),
# DATA (dataset root, default data), LEASE_S (seconds from start to the end of training, default 440), WORLDS ("maze overworld bounce"),
# COPY_TO (a folder each finished world is copied to at once), SF (self-forcing settings, below), EPISODES_<world> (the recipe's episode counts; smaller for a dry run), BATCH (128), LR (4e-4),
# SET_<world> (that world's own training settings instead of the recipe's, e.g. SET_maze="--set dynamics.depth=9 --set train.weights=int8"
# grows the maze by 3 identity blocks and stores it in int8 to stay under 16 MiB), FROM_<world> ("world", the default:
# continue the shipped world; "tokenizer": new dynamics on the shipped world's tokenizer, e.g. FROM_maze=tokenizer
# SET_maze="--set tokenizer.patch=1" for dynamics on the finer 8x8 token grid, or SET_maze="--set dynamics.spatial_rope=true"
# for attention that reads places relative to each other, +1.5 dB on one step at 18 CPU-minutes: docs/ablations.md;
# new dynamics gained 1.7 dB one step from a 4x learning rate at 206 and 512 CPU steps (batch 32: 2.4e-3, now the preset's),
# so new dynamics here want more than LR's 4e-4, which is for continued worlds: e.g. LR=1.6e-3, not yet measured at batch 128;
# Muon, "--set train.optimizer=muon --set train.muon_scale=10", equalled the 4x rate).
# Every run logs to OUT/<world>.log; a world that fails does not stop the others.
# The recipe of each world is its best row in docs/ablations.md: self forcing on half the windows (own rollouts of
# 1-6 context frames); overworld also gets a 16-frame context, for the terrain it forgets past 8 frames.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
out="${1:-runs/gpu}"
mkdir -p "$out"
py="${SKYLOOP_PY:-}"
[[ -z $py ]] && { [[ -x .venv/bin/python ]] && py=.venv/bin/python || py=python3; }
device="${DEVICE:-cuda}"
lease="${LEASE_S:-440}"
worlds=(${WORLDS:-maze overworld bounce})
batch="${BATCH:-128}"
lr="${LR:-4e-4}"
data="${DATA:-data}"
start=$(date +%s)
cores=$(nproc)
#                episodes  collect workers   extra training settings
recipe_maze=(     ${EPISODES_maze:-400}       $((cores * 5 / 8 > 1 ? cores * 5 / 8 : 1))  "${SET_maze:-}")
recipe_overworld=(${EPISODES_overworld:-300}  $((cores / 8 > 1 ? cores / 8 : 1))          "${SET_overworld:---set dynamics.context=16}")
recipe_bounce=(   ${EPISODES_bounce:-300}     $((cores / 4 > 1 ? cores / 4 : 1))          "${SET_bounce:-}")
# SF overrides the self-forcing settings, e.g. the rollout buffer 1-24 frames deep (docs/ablations.md, "Self forcing
# from a rollout buffer"): SF="--set dynamics.rollout_p=0.5 --set dynamics.rollout_frames=24 --set dynamics.rollout_refresh=50"
sf="${SF:---set dynamics.rollout_p=0.5 --set dynamics.rollout_frames=6}"

say() { echo "[$(($(date +%s) - start)) s] $*"; }

one_world() {
  local w=$1 r="recipe_$1[@]"
  local rec=("${!r}")
  say "$w: collecting ${rec[0]} episodes with ${rec[1]} workers"
  $py -m engine collect --scene "$w" --episodes "${rec[0]}" --steps 500 --seed 0 --out "$data/$w" --workers "${rec[1]}" >"$out/$w.log" 2>&1 \
    || { say "$w: collect FAILED (see $out/$w.log)"; return 1; }
  local left=$((lease - ($(date +%s) - start) - 40))  # 40 s for start-up, latents and the last evaluation
  if ((left < 30)); then say "$w: no time left to train"; return 1; fi
  local minutes
  minutes=$(awk "BEGIN {print $left / 60}")
  say "$w: data ready; training for $minutes wall-clock minutes on $device"
  # shellcheck disable=SC2086
  local from="FROM_$w" start_from=--init-from
  case "${!from:-world}" in
    world) ;;
    tokenizer) start_from=--tokenizer-from ;;
    *) say "$w: $from must be world or tokenizer, not ${!from}"; return 1 ;;
  esac
  timeout $((left + 120)) $py -m engine train --data "$data/$w" --preset small $start_from "worlds/$w.safetensors" \
    --out "$out/$w.safetensors" --run-dir "$out/run-$w" --steps 1000000 --batch "$batch" --lr "$lr" \
    --device "$device" --threads 4 --no-progress $sf ${rec[2]} \
    --set "train.wall_minutes=$minutes" --set train.warmup=100 --set train.eval_every=1000000 --set train.checkpoint_every=100000 \
    >>"$out/$w.log" 2>&1 || { say "$w: training FAILED (see $out/$w.log)"; return 1; }
  [[ -n ${COPY_TO:-} ]] && cp "$out/$w.safetensors" "$COPY_TO/"
  say "$w: done: $(grep -E 'budget of|world written|wrote' "$out/$w.log" | tail -2 | tr '\n' ' ')"
}

for w in "${worlds[@]}"; do one_world "$w" & done
wait
say "training over"
for w in "${worlds[0]}"; do  # the three are the same model (small): one speed figure
  if [[ -f $out/$w.safetensors && $device == cuda* ]]; then
    $py -m engine bench speed "$out/$w.safetensors" --backend torch --device cuda --frames 300 --repeats 3 --out "$out/speed-$w" >"$out/speed-$w.log" 2>&1
    say "$w speed on the GPU: $(grep -iE 'fps' "$out/speed-$w.log" | head -3 | tr '\n' ' ')"
  fi
done
if [[ $device == cuda* && -d $data/bounce ]]; then  # play speed of the larger preset: its speed does not depend on training
  $py -m engine train --data "$data/bounce" --preset base --out "$out/base-speed.safetensors" --run-dir "$out/run-base" \
    --episodes 4 --tokenizer-steps 2 --steps 2 --device "$device" --no-progress >"$out/speed-base.log" 2>&1 &&
    $py -m engine bench speed "$out/base-speed.safetensors" --backend torch --device cuda --frames 300 --repeats 3 --out "$out/speed-base" >>"$out/speed-base.log" 2>&1
  say "base preset speed on the GPU: $(grep -iE 'fps' "$out/speed-base.log" | head -3 | tr '\n' ' ')"
  rm -f "$out/base-speed.safetensors"
fi
say "all done: worlds and logs in $out"
