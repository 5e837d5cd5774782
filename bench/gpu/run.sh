#!/usr/bin/env bash
# Every GPU path, proven in one command on a GPU machine, from the repository root:
#
#   bash bench/gpu/run.sh            # on the GPU machine (parts 1-4 <= 8 minutes on an H100/H200;
#                                    # part 5 starts 20 fresh processes, a few seconds each)
#   bash bench/gpu/run.sh --dry-run  # the same script on CPU: tiny sizes, Triton interpreter
#
# 1. prints the torch, CUDA, Triton and driver versions and the device name;
# 2. builds the extension with CUDA for this GPU (HYBRIK_FAST_CUDA=1,
#    TORCH_CUDA_ARCH_LIST from the device, MAX_JOBS from the cores; the
#    machine's own python3 and torch, no network), then asserts that the cuda
#    and triton backends are compiled and that auto chooses them;
# 3. runs pytest -m gpu;
# 4. benchmarks the soft-argmax (B 1, 8, 32, 64 x 29x64^3, fp32 and bf16,
#    against the HBM floor), the IK (B 64, 1024, 65536, fp32 and fp64) and the
#    gpu preset's training step (batch 32 and 64, fused against reference);
# 5. times the training step at the paper configuration with the four heads
#    (issue 16: conv_soft_argmax3d against conv2d + the fused soft-argmax),
#    bf16 autocast, batch 32 and 64, memory above the steady state.
#
# Writes bench/results/gpu-<device>-<date>.{txt,json,log} (RESULTS_DIR
# overrides the folder), each part as soon as it finishes, and copies them to
# $OUT when set.  The dry run skips the build (it prints the command; the
# extension must already be built for CPU) and names its files
# gpu-cpu-dryrun-<date>.*.  Exits non-zero if any part failed.
set -uo pipefail
cd "$(dirname "$0")/../.."

DRY=0
if [ "${1:-}" = "--dry-run" ]; then DRY=1; fi
PY=${PYTHON:-python3}
FLAG=()
if [ $DRY = 1 ]; then
  FLAG=(--dry-run)
  export TRITON_INTERPRET=1
  export CUDA_VISIBLE_DEVICES=""
elif [ -n "${TRITON_INTERPRET:-}" ] && [ "${TRITON_INTERPRET}" != 0 ]; then
  echo "TRITON_INTERPRET=$TRITON_INTERPRET is set: the GPU run would use the interpreter; unset it" >&2
  exit 2
fi

dir=${RESULTS_DIR:-bench/results}
mkdir -p "$dir"
slug=$($PY bench/gpu/gpu_run.py slug "${FLAG[@]}") || { echo "python3 cannot import torch" >&2; exit 2; }
stem="$dir/gpu-$slug-$(date -u +%Y%m%d-%H%M%S)"
log="$stem.log"
failed=0

# part NAME COMMAND...: runs one part, its output into the log; a failure is recorded, not fatal
part() {
  local name=$1
  shift
  echo "== $name ($(date -u +%T))" | tee -a "$log"
  if "$@" >>"$log" 2>&1; then
    echo "   ok" | tee -a "$log"
  else
    echo "   FAILED (see $log)" | tee -a "$log"
    failed=1
    $PY bench/gpu/gpu_run.py note --stem "$stem" --text "part $name FAILED" "${FLAG[@]}" >/dev/null 2>&1
  fi
  if [ -n "${OUT:-}" ]; then mkdir -p "$OUT" && cp "$log" "$OUT/"; fi
}

$PY bench/gpu/gpu_run.py versions --stem "$stem" "${FLAG[@]}" 2>&1 | tee -a "$log"

build() {
  local cmd=(env HYBRIK_FAST_CUDA=1 TORCH_CUDA_ARCH_LIST="$arch" MAX_JOBS="$(nproc)"
             "$PY" -m pip install --no-build-isolation --no-deps --no-index -e .)
  echo "${cmd[*]}"
  if [ $DRY = 1 ]; then echo "(dry run: not built)"; return 0; fi
  "${cmd[@]}"
}
if [ $DRY = 1 ]; then
  arch=9.0
else
  arch=$($PY -c "import torch; print('%d.%d' % torch.cuda.get_device_capability(0))")
fi
part build build
part check "$PY" bench/gpu/gpu_run.py check --stem "$stem" "${FLAG[@]}"
pytest_args=(-m gpu -q -p no:cacheprovider)
part pytest "$PY" -m pytest tests "${pytest_args[@]}"
part soft_argmax "$PY" bench/gpu/gpu_run.py soft_argmax --stem "$stem" "${FLAG[@]}"
part ik "$PY" bench/gpu/gpu_run.py ik --stem "$stem" "${FLAG[@]}"
part train "$PY" bench/gpu/gpu_run.py train --stem "$stem" "${FLAG[@]}"
part train_paper "$PY" bench/gpu/gpu_run.py train_paper --stem "$stem" "${FLAG[@]}"

echo "results: $stem.{txt,json,log}"
exit $failed
