#!/usr/bin/env bash
# The one prepared device run for issue 16's GPU rows, on the lent machine, after bench/gpu_prepare.sh here:
#   run(command="bash bench/gpu_check.sh", carry=[".whl", ".gpu-data"], timeout_s=480)
# Installs the carried wheels beside the image's packages, then bench/bench_gpu.py (batch 1 and 32 latency,
# answers against the CPU path, one retrain cycle on the GPU); the output also lands in $OUT.
set -euo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1
out="${OUT:-/tmp}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
python3 bench/bench_gpu.py --data .gpu-data/bears --device cuda 2>&1 | tee "$out/bench_gpu.txt"
