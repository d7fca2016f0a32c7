#!/usr/bin/env bash
# Runs the self-evolution rise (benchmarks/rise/variants.py) once per seed and numerics variant,
# one run at a time, each table into OUT/<variant>.log; the tables are gathered in OUT/tables.txt.
#   benchmarks/rise/variants.sh [OUT_DIR] [RECIPE] [VARIANT ...]
# Variants: seed0 seed1 seed2 (1 thread), threads2 (torch and llama.cpp on 2 threads),
# nomkldnn (torch.backends.mkldnn off), avx2 (ATen, MKL and oneDNN restricted to AVX2 kernels:
# what a CPU without AVX-512, e.g. an AMD EPYC before Zen 4, runs), avx2-seed1, avx2-seed2.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
OUT="${1:-$ROOT/runs/rise-variants}"
RECIPE="${2:-$ROOT/train/recipes/micro-rise.yaml}"
shift $(( $# > 2 ? 2 : $# ))
VARIANTS=("$@")
[ ${#VARIANTS[@]} -gt 0 ] || VARIANTS=(seed0 seed1 seed2 threads2 nomkldnn avx2 avx2-seed1 avx2-seed2)
PY="${PYTHON:-$ROOT/.venv/bin/python}"
AVX2=(ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 DNNL_MAX_CPU_ISA=AVX2)
mkdir -p "$OUT"
for v in "${VARIANTS[@]}"; do
  env=(OMP_NUM_THREADS=1 MKL_NUM_THREADS=1) args=(--seed 0 --threads 1)
  case "$v" in
    seed[0-9]*) args=(--seed "${v#seed}" --threads 1) ;;
    threads2) env=(OMP_NUM_THREADS=2 MKL_NUM_THREADS=2) args=(--seed 0 --threads 2) ;;
    nomkldnn) args+=(--no-mkldnn) ;;
    avx2) env+=("${AVX2[@]}") ;;
    avx2-seed[0-9]*) env+=("${AVX2[@]}") args=(--seed "${v#avx2-seed}" --threads 1) ;;
    *) echo "unknown variant $v" >&2; exit 2 ;;
  esac
  rm -rf "$OUT/$v"
  env "${env[@]}" "$PY" "$ROOT/benchmarks/rise/variants.py" --recipe "$RECIPE" --out "$OUT/$v" \
    --label "$v" "${args[@]}" >"$OUT/$v.log" 2>&1 || echo "$v FAILED (see $OUT/$v.log)" >>"$OUT/$v.log"
  { echo "== $v"; tail -n 6 "$OUT/$v.log"; echo; } | tee -a "$OUT/tables.txt"
done
