#!/bin/bash
# Two experiments at once, as `dvc queue start -j 2` runs them (docs/ablations.md, "Parallel queues
# share the cores"): finetune_video alone, then twice at once with each taking every core's thread
# (no queue worker alive), then twice at once under two live `dvc exp queue-worker` processes (each
# takes cores / 2: s2hand/cpu.py). Needs a finished `dvc repro` (outputs/). Leave the machine idle.
#     bash tools/queue_threads_bench.sh
set -euo pipefail
root=$(git rev-parse --show-toplevel)
tmp=$(mktemp -d)
workers=()
cleanup() {
  [ ${#workers[@]} -gt 0 ] && kill "${workers[@]}" 2>/dev/null || true
  pkill -f "exp queue-worker bench-" 2>/dev/null || true  # left alive, they would halve every later stage's threads
  for d in "$tmp"/a "$tmp"/b; do git -C "$root" worktree remove --force "$d" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
for d in "$tmp"/a "$tmp"/b; do
  git -C "$root" worktree add -q --detach "$d" HEAD
  mkdir -p "$d/outputs/checkpoints"
  for x in dataset keypoints hand_model pseudo_labels convention yt3d_filter; do ln -sfn "$root/outputs/$x" "$d/outputs/$x"; done
  ln -sfn "$root/outputs/checkpoints/finetune" "$d/outputs/checkpoints/finetune"
  ln -sfn "$root/.venv" "$d/.venv"
done
run() {  # folder label: one finetune_video stage, its wall and training seconds
  (cd "$1" && rm -rf outputs/.resume outputs/checkpoints/finetune_video
   t0=$(date +%s.%N); .venv/bin/python -m pipeline.finetune_video > "$tmp/$2_$(basename "$1").log" 2>&1; t1=$(date +%s.%N)
   .venv/bin/python -c "import json,sys; print(sys.argv[1], 'wall %.1f s' % (float(sys.argv[3]) - float(sys.argv[2])),
   'training %.1f s' % json.load(open('reports/train/finetune_video.json'))['train_seconds'])" "$2" "$t0" "$t1")
}
run "$tmp/a" alone
run "$tmp/a" "two_at_once_all_threads" & run "$tmp/b" "two_at_once_all_threads" & wait
for k in 1 2; do python3 -c "import time; time.sleep(3600)" exp queue-worker "bench-$k" & workers+=($!); done
run "$tmp/a" "two_at_once_queue_of_2" & run "$tmp/b" "two_at_once_queue_of_2" & wait
