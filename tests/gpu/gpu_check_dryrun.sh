#!/usr/bin/env bash
# Dry run of tools/gpu-check.sh on a machine without a GPU, over a copy of the kit (tools/gpu-kit.sh) in which
# gpu_ops_layer_test hangs and gpu_ops_loss_test faults. Checks what the GPU run relies on: every stage reports
# one line "<stage> PASS|FAIL|TIMEOUT|SKIPPED|NOTIME rc seconds"; GPU tests without a GPU are SKIPPED, never PASS;
# the hanging stage is TIMEOUT at its cap; a CUDA fault is rerun test by test with CUDA_LAUNCH_BLOCKING=1; a stage
# is shrunk to the time left and later ones are NOTIME; at most 7 files in $OUT; the summary is printed last.
#   tests/gpu/gpu_check_dryrun.sh          (~3 min; needs build-gpucarry/)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
KIT=${KIT:-$ROOT/build-gpucarry}
[ -d "$KIT/bin" ] || [ -f "$KIT/bin.tar.xz" ] || { echo "skipped: no kit at $KIT (run tools/gpu-kit.sh)"; exit 77; }
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
cp -r "$KIT" "$W/kit"
[ -d "$W/kit/bin" ] || tar -C "$W/kit" -xJf "$W/kit/bin.tar.xz"  # packed as the kit carries them
cat > "$W/kit/bin/gpu_ops_layer_test" <<'SH'
#!/bin/sh
[ "${1:-}" = --gtest_list_tests ] && { printf 'Hang.\n  Forever\n'; exit 0; }
exec sleep 1000
SH
# a test binary with a CUDA fault in its first test: the stage must be rerun test by test, launches blocking
cat > "$W/kit/bin/gpu_ops_loss_test" <<'SH'
#!/bin/sh
case "${1:-}" in
  --gtest_list_tests) printf 'Fault.\n  First\n  Second\n'; exit 0 ;;
  --gtest_filter=Fault.First) echo "CUDA_LAUNCH_BLOCKING=$CUDA_LAUNCH_BLOCKING: cudaErrorIllegalAddress"; exit 1 ;;
  --gtest_filter=*) echo "CUDA_LAUNCH_BLOCKING=$CUDA_LAUNCH_BLOCKING: passed"; exit 0 ;;
  *) echo "kernels/x.cu:1: cudaErrorIllegalAddress (an illegal memory access was encountered)"; exit 1 ;;
esac
SH
check() {  # check RUN CONDITION MESSAGE
  if ! eval "$2"; then echo "FAIL ($1): $3"; cat "$W/$1/summary.txt"; exit 1; fi
}
gpu_check() {  # gpu_check RUN ENV...: one gpu-check run without a GPU into $W/RUN
  local run=$1
  shift
  env OUT="$W/$run" KIT="$W/kit" QSFT_REQUIRE_GPU=0 CONTINUE_WITHOUT_GPU=1 "$@" bash "$ROOT/tools/gpu-check.sh" \
    > "$W/$run.stdout" 2>&1 || true
  echo "== $run ($*)"
  grep -v '^#' "$W/$run/summary.txt"
}

# 1. every stage, the hanging one capped at 15 s
gpu_check all MAX_STAGE=15 BUDGET=600
S=$W/all/summary.txt
check all '(($(grep -cv "^#" $S) >= 28))' "fewer stage lines than stages"
check all '! grep -v "^#" $S | grep -vqE "^[a-z0-9._-]+ +(PASS|FAIL|TIMEOUT|SKIPPED|NOTIME) +[-0-9]+ +[0-9]+$"' "bad line"
check all 'grep -qE "^test-layer +TIMEOUT +124 +1[5-9] *$" $S' "the hanging stage is not TIMEOUT at 15 s"
check all '! grep -E "^(smoke|test)-" $S | grep -v "^test-l" | grep -qvE " SKIPPED "' "a GPU test is not SKIPPED"
check all 'grep -qE "^test-loss +FAIL " $S && grep -qE "^test-loss-isolated +FAIL +1 " $S' "no isolated rerun"
check all 'grep -q "CUDA_LAUNCH_BLOCKING=1: passed" $W/all/tests.log' "the isolated rerun is not blocking"
check all '! grep -qE "^(e2e|bench)-[a-z0-9.]+ +PASS" $S' "a GPU stage PASSes without a GPU"
check all '(($(ls $W/all | wc -l) <= 7))' "more than 7 files in OUT"
check all '[ "$(tail -n 3 $W/all.stdout)" = "$(tail -n 3 $S)" ]' "the summary is not printed last"
# 2. a follow-up run: ONLY, and a budget that the hanging stage uses up
gpu_check short BUDGET=40 "ONLY=smoke-gemm|test-layer|bench-quick"
S=$W/short/summary.txt
check short '[ "$(grep -cv "^#" $S)" = 3 ]' "ONLY did not select 3 stages"
check short 'grep -qE "^test-layer +TIMEOUT +124 +([2-3][0-9]|40) *$" $S' "the hanging stage did not shrink to the budget"
check short 'grep -qE "^bench-quick +NOTIME " $S' "the stage after the budget is not NOTIME"
echo "gpu-check dry run: ok"
