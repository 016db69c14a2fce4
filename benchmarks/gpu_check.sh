#!/usr/bin/env bash
# Everything this project checks on a lent CUDA machine, in one run of about 6 minutes:
#   1. the test suite's torch tests there (tests/torch/test_cuda_graph.py compares the step
#      replayed from a CUDA graph with eager steps on the GPU);
#   2. benchmarks/update_speed.py --device cuda: eager, CUDA graph and reference-style steps;
#   3. benchmarks/iteration_time.py on cheetah-vel: ours eagerly, ours with the CUDA graph,
#      and the per-task-loop baseline, with the ratios.
# Prepare here with benchmarks/fetch_gpu_wheels.sh, then run there (device tool):
#   run(command="bash benchmarks/gpu_check.sh", carry=[".whl"], timeout_s=540)
# Logs go to $OUT (or ./gpu_logs when OUT is unset).
set -uo pipefail
cd "$(dirname "$0")/.."
LOGS=${OUT:-gpu_logs}
mkdir -p "$LOGS"
export PYTHONUNBUFFERED=1 MUJOCO_GL=egl
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site:$PWD
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$LOGS/device.log"
python3 -c "import torch, mujoco, gymnasium; print(torch.__version__, mujoco.__version__, gymnasium.__version__, torch.cuda.get_device_name())" | tee -a "$LOGS/device.log"
timeout 150 python3 -m pytest -q -p no:cacheprovider tests/torch tests/core/test_checkpoint.py \
    2>&1 | tee "$LOGS/tests.log"
timeout 120 python3 benchmarks/update_speed.py --device cuda --steps 50 2>&1 | tee "$LOGS/update_speed.log"
timeout 150 python3 benchmarks/iteration_time.py --train-steps 200 2>&1 | tee "$LOGS/iteration_eager.log"
timeout 90 python3 benchmarks/iteration_time.py --train-steps 200 --skip-baseline \
    --set util_params.cuda_graph=true 2>&1 | tee "$LOGS/iteration_graph.log"
