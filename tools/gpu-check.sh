#!/usr/bin/env bash
# One command on a machine with an NVIDIA GPU: build for sm_90 (override with CUDA_ARCH=80 etc.), run every GPU
# test, run compute-sanitizer (memcheck, racecheck) over the op tests, run the micro-benchmarks, and print a
# summary table last. Logs go to $LOG_DIR (default <build>/gpu-check). Exit status: 0 when every stage passed.
#   tools/gpu-check.sh [build-dir]
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build-gpu}
ARCH=${CUDA_ARCH:-90}
LOG_DIR=${LOG_DIR:-$BUILD/gpu-check}
JOBS=${JOBS:-$(nproc)}
mkdir -p "$LOG_DIR"
SANITIZER=${SANITIZER:-$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)}

declare -a NAMES STATUS SECONDS_TAKEN
run_stage() {  # run_stage NAME COMMAND...: runs it, logs to $LOG_DIR/NAME.log, records PASS/FAIL and time
  local name=$1; shift
  local t0=$SECONDS
  echo "==> $name: $*"
  if "$@" > "$LOG_DIR/$name.log" 2>&1; then STATUS+=(PASS); else STATUS+=(FAIL); tail -n 30 "$LOG_DIR/$name.log"; fi
  NAMES+=("$name"); SECONDS_TAKEN+=($((SECONDS - t0)))
}

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader > "$LOG_DIR/gpu.txt" 2>&1 || true
# CMAKE_CUDA20_*: CMake 3.25 does not know nvcc 13's C++20 flag (harmless where it does).
run_stage configure cmake -S . -B "$BUILD" -G Ninja -DQSFT_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="$ARCH" \
  -DCMAKE_CUDA20_STANDARD_COMPILE_OPTION=-std=c++20 -DCMAKE_CUDA20_EXTENSION_COMPILE_OPTION=-std=c++20
run_stage build cmake --build "$BUILD" -j "$JOBS"
run_stage build-bench cmake --build "$BUILD" -j "$JOBS" --target benchmarks
run_stage gpu-tests ctest --test-dir "$BUILD" -R '^gpu/' --output-on-failure
# The sanitizers slow kernels 10-100x: the op tests at the small shapes (the Qwen-size cases are left out).
for tool in memcheck racecheck; do
  for t in "$BUILD"/tests/gpu_ops_*_test; do
    run_stage "$tool-$(basename "$t")" "$SANITIZER" --tool "$tool" --error-exitcode 1 "$t" --gtest_filter='-*Qwen*'
  done
done
for b in "$BUILD"/bench/gpu_*_bench; do
  run_stage "bench-$(basename "$b")" "$b"
  cat "$LOG_DIR/bench-$(basename "$b").log"
done
grep -h "^\[ GPU" "$LOG_DIR"/gpu-tests.log > "$LOG_DIR/accuracy.txt" 2>/dev/null || true

echo
echo "GPU: $(cat "$LOG_DIR/gpu.txt")   commit: $(git rev-parse --short HEAD 2>/dev/null || echo ?)   $(date -u +%F)"
echo "accuracy lines: $LOG_DIR/accuracy.txt   logs: $LOG_DIR"
printf '%-52s %-6s %8s\n' STAGE RESULT SECONDS
failed=0
for i in "${!NAMES[@]}"; do
  printf '%-52s %-6s %8s\n' "${NAMES[$i]}" "${STATUS[$i]}" "${SECONDS_TAKEN[$i]}"
  [ "${STATUS[$i]}" = PASS ] || failed=1
done
exit $failed
