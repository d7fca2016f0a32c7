#!/usr/bin/env bash
# Reproduces every figure of models/edgestar-tiny.md on a CPU (2 cores here), from
# an empty run folder to the shipped bundle and its evaluations. Steps can be run one by one;
# each writes its own folder under benchmarks/edgestar-tiny/.
# Needs `edgestar` on PATH (an activated virtual environment with the [train,quantize] extras).
#   bash benchmarks/edgestar-tiny/reproduce.sh            # everything (about 2 hours)
#   STEPS="eval solve" bash benchmarks/edgestar-tiny/reproduce.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
RUN=${RUN:-runs/edgestar-tiny}
OUT=benchmarks/edgestar-tiny
BUNDLE=models/edgestar-tiny
STEPS=${STEPS:-"evolve deploy eval budget ceiling solve bench"}
TEST=$RUN/problems/test.jsonl          # the recipe's fixed test split (200 problems)
# The shipped bundle is the run's last round (2); ROUND=N deploys and evaluates round N instead.
last=$RUN/round${ROUND:-2}

for step in $STEPS; do case $step in
evolve)   # the round table: $RUN/report.md, rounds.png, round*/report.json
  edgestar train evolve --recipe train/recipes/edgestar-tiny.yaml --out "$RUN" --resume
  mkdir -p "$OUT/run"  # the run folder is not kept in git; its reports are
  cp "$RUN/report.md" "$RUN/rounds.png" "$RUN/manifest.json" "$OUT/run/"
  for r in "$RUN"/round*/report.json; do cp "$r" "$OUT/run/$(basename "$(dirname "$r")").json"; done ;;
deploy)   # Q4_K_M policy + Q8_0 PPM (+ ONNX f32/int8), each verified against torch
  edgestar deploy --policy "$last/policy" --ppm "$last/ppm" --profile laptop-cpu \
      --out "$BUNDLE" --force --threads 1
  cp "$BUNDLE/deploy_report.json" "$OUT/deploy_report.json" 2>/dev/null || true ;;
eval)     # accuracy per strategy at the default budget, shipped and F32. One thread each, two
  # at a time (2 cores), as in every step below.
  # The F32 run takes the bundle's search settings (width 8, 8 rollouts, select as deployed:
  # majority for a PPM under 60% held-out accuracy); mcts:weighted lets the PPM pick the answer.
  sel=$(python -c "import json,sys; print(json.load(open(sys.argv[1]))['search'].get('select', 'weighted'))" "$BUNDLE/bundle.json")
  edgestar eval --suite "$TEST" --strategy greedy --strategy mcts --strategy mcts:weighted \
      --threads 1 --out "$OUT/eval-default" --force &
  edgestar eval --suite "$TEST" --model "$last/policy.gguf" --ppm "$last/ppm.gguf" --format rstar \
      --width 8 --rollouts 8 --select "$sel" --strategy greedy --strategy mcts \
      --strategy mcts:weighted --threads 1 --out "$OUT/eval-f32" --force
  wait ;;
budget)   # equal generated-token budgets, and suites the model never trained on
  edgestar eval --suite "$TEST" -n 60 --strategy greedy --strategy best_of_n:majority \
      --strategy best_of_n:weighted --strategy beam --strategy mcts --tokens 400,1200 \
      --threads 1 --out "$OUT/eval-budget" --force &
  edgestar eval --suite reasoning-gym:fraction_simplification -n 40 --strategy greedy \
      --strategy mcts --threads 1 --out "$OUT/eval-rg-fraction_simplification" --force
  edgestar eval --suite synthetic:comparison,sequences -n 40 --strategy greedy \
      --strategy mcts --threads 1 --out "$OUT/eval-unseen-skills" --force
  wait ;;
ceiling)  # coverage (report.md): how often ANY answer a search finished is right, i.e. the most
  # that a perfect reward model could select, as best-of-N draws more chains and as MCTS widens
  edgestar eval --suite "$TEST" --strategy best_of_n:majority --rollouts 8,16,32 \
      --threads 1 --out "$OUT/eval-ceiling-bon" --force &
  edgestar eval --suite "$TEST" --strategy mcts --width 32 --rollouts 32 \
      --threads 1 --out "$OUT/eval-ceiling-mcts-w32" --force
  wait ;;
solve)    # wall time and peak memory of `edgestar solve` as a user runs it
  edgestar bench --solve --runs 3 --out "$OUT/solve" --force ;;
bench)    # tree-search throughput on the shipped policy
  edgestar bench --bundle "$BUNDLE" --out "$OUT/bench" --threads 1 --runs 1 --force ;;
*) echo "unknown step $step" >&2; exit 2 ;;
esac; done
