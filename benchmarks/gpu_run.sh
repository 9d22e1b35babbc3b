#!/usr/bin/env bash
# One command for the GPU machine: `bash benchmarks/gpu_run.sh [bench args]` (carry .whl: trl, datasets, dill,
# multiprocess; pyarrow in .whl/extra is installed only if the machine's is older than datasets needs).
# Installs what is missing into /tmp/site, runs benchmarks/bench_grpo_gpu.py unbuffered, tees logs into $OUT.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$(mktemp -d)}; export OUT; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY=${PYTHON:-python3}
{ date -u; nvidia-smi --query-gpu=name,memory.total,memory.used,driver_version --format=csv 2>&1
  $PY -c "import sys, torch, transformers; print('python', sys.version.split()[0], 'torch', torch.__version__, 'transformers', transformers.__version__)"
} 2>&1 | tee "$OUT/env.txt"
$PY benchmarks/bench_grpo_gpu.py --out "$OUT" "$@" 2>&1 | tee "$OUT/bench.log"
