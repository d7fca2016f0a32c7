#!/usr/bin/env bash
# tir vs plain, greedy, on Qwen2.5-Coder-0.5B-Instruct Q4_K_M (report.md). Run from the repo root.
# One llama.cpp thread; the runner resumes an interrupted run (results are appended per problem).
set -euo pipefail
PY=${PY:-.venv/bin/python}
OUT=${OUT:-benchmarks/qwen2.5-coder-0.5b/tir-vs-plain}
export OMP_NUM_THREADS=1
$PY benchmarks/fixtures.py fetch qwen2.5-coder-0.5b-instruct-q4_k_m
# Suite: 4 problems from each of 6 reasoning-gym generators + 12 synthetic, suite seed 12001;
# greedy, budget rollouts=1 and 1024 generated tokens per problem.
$PY benchmarks/qwen2.5-coder-0.5b/run_tir.py --out "$OUT" --variants plain,tir --threads 1
# Few-shot exemplars (formats.TIR_EXEMPLARS) on the same suite:
$PY benchmarks/qwen2.5-coder-0.5b/run_tir.py --out "$OUT" --variants tir-fewshot --threads 1
$PY benchmarks/qwen2.5-coder-0.5b/run_tir.py --out "$OUT" --summary
