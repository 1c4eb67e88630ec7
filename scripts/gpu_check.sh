#!/usr/bin/env bash
# The one prepared run for a lent NVIDIA GPU (the device tool runs it in the repository root):
# the CUDA tests on the real GPU, then the CUDA benchmark. Installs nothing: the GPU machine's
# image has numba, numba-cuda, numpy, pytest, hypothesis and a CUDA PyTorch (the baseline).
# Everything it prints also goes to $OUT/gpu_check.log; copy the benchmark table into
# docs/benchmarks.md by hand, with the date and the GPU line it prints.
#
#     bash scripts/gpu_check.sh            # about 10 minutes on an H200 (budget: 15)
set -o pipefail
export PYTHONPATH="$PWD" PYTHONUNBUFFERED=1
unset NUMBA_ENABLE_CUDASIM  # the real GPU, not the simulator
OUT="${OUT:-/tmp/gpu_check}"
mkdir -p "$OUT"
LOG="$OUT/gpu_check.log"
{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c "import numba, numba_cuda, numpy; print('numba', numba.__version__, \
'numba-cuda', numba_cuda.__version__, 'numpy', numpy.__version__)"
} 2>&1 | tee "$LOG"
status=0
# 1. every CUDA test on the GPU: twins against the CPU backend, the models, and the model
#    conformance files against the reference (3 examples each, as in CI, to fit the budget)
HYPOTHESIS_PROFILE=cuda timeout 300 python3 -m pytest tests/cuda -q -x \
  -p no:cacheprovider --durations=10 2>&1 | tee -a "$LOG" || status=1
# 2. GPT training tokens/s against PyTorch on the same GPU (CPU shapes + GPT-2 small)
timeout 240 python3 scripts/bench.py gpt-cuda --repeat 3 2>&1 | tee -a "$LOG" || status=1
exit $status
