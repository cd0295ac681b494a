#!/usr/bin/env bash
# tools/gpu-check.sh: the whole GPU check of qwen-sft as one bounded command, run on the GPU machine from the repo
# root with the folder tools/gpu-kit.sh assembled (build-gpucarry/) beside the sources. Results go to $OUT.
#   bash tools/gpu-check.sh                       every check within BUDGET seconds (default 580: one `run` call
#                                                 with timeout_s 600)
#   ONLY='bench-.*' BUDGET=400 bash tools/gpu-check.sh                  the benchmarks, a follow-up call
#   ONLY='test-gemm|memcheck-.*' BUDGET=200 bash tools/gpu-check.sh     a short follow-up run
#   ONLY="$(python3 tools/gpu_summary.py rerun first/summary.txt)" ...  what the first call left undone (then
#                                                 tools/gpu_summary.py merge: one summary of both calls)
# Stages, in order (each under its own timeout, shrunk to the time left minus what the stages after it reserve;
# later ones get NOTIME when none is left). Designed times on an H200 (first run, 2026-11-30, and this layout):
#   env (~16 s with the header) -> smoke-elementwise, smoke-gemm (2 s; stop when no usable GPU)
#   -> test-<family> for every GPU op test binary (~40 s, was 91 s before the large inputs came from a parallel
#      fill; on a CUDA fault: test-<family>-isolated, each test in its own process with CUDA_LAUNCH_BLOCKING=1)
#   -> test-model-step (1 s) -> test-plan (13 s) -> test-full-ft (1 s) -> nccl-world1 (4 s)
#   -> test-attention-4x4096 (~12 s, was 107 s) -> hf-parity (~55 s)
#   -> test-generate-graphs (expected ~5 s: decode steps as CUDA graphs vs eager)
#   -> memcheck-*, racecheck-* on every op test, synccheck-attention, initcheck-attention, initcheck-loss (the
#      tests' small shapes, QSFT_GPU_TEST_SMALL=1; racecheck and synccheck pass when their only hazards are in
#      cuBLASLt's kernels (tools/sanitizer_verdict.py); 45ffbc3's run: memcheck 14 s for all, racecheck 71 s with
#      attention 43 s, five op tests cut short by faults that no longer happen: each 60 s; attention last, in two
#      stages of 90 s: racecheck-attention for the mma and wmma variants, racecheck-attention-wgmma)
#   -> e2e-0.5b (38 s) -> qlora-0.5b (10 s) -> e2e-7b (137 s); every stage before e2e-0.5b keeps the ~210 s these
#      three need. Everything up to here is the bring-up's check (one summary): ~520-600 s by the first run's
#      times plus today's larger tests, so the first call runs the default BUDGET=580 (timeout_s 600, a call's
#      most); what it leaves undone runs in a follow-up (tools/gpu_summary.py rerun, then merge)
#   -> generate-0.5b (~60 s, the generation issue's) -> probe-wgmma (< 5 s: the sm_90a building blocks, a dev
#      check; the wgmma attention, the default on compute capability 9.0 since 45ffbc3's run, is in test-attention)
#   -> benchmarks, for a follow-up call: bench-quick (65 s), bench-attention (18 s), bench-generate (41 s),
#      bench-full
#   -> on request only (named by ONLY, e.g. ONLY='e2e-1.5b|e2e-14b|context-7b' BUDGET=1500): e2e-1.5b,
#      e2e-0.5b-4k (4096 tokens per step: launch overhead), e2e-7b-recompute (both sides recompute),
#      qlora-7b, bench-generate-7b, e2e-14b, context-7b (bench/context_search.py: the longest trainable context,
#      ours and transformers + PEFT), e2e-0.5b-mma, e2e-7b-mma (QSFT_ATTENTION=mma, the attention of GPUs other
#      than the H100/H200; log e2e-mma.log)
# Results (appended as they happen, so a kill loses nothing written): $OUT/summary.txt (one line per stage:
# "<stage> PASS|FAIL|TIMEOUT|SKIPPED|NOTIME rc seconds", printed last), tests.log, accuracy.txt, sanitizer.log,
# e2e.log, bench.log, results.jsonl (bench/results_jsonl.py: one JSON line per figure of the benches, for
# bench/results.jsonl), build.log (only when the carried binaries do not start). A skipped test is SKIPPED, never
# PASS; QSFT_REQUIRE_GPU=1 (the default here) turns the GPU tests' skips into failures.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
KIT=${KIT:-$ROOT/build-gpucarry}
OUT=${OUT:-$ROOT/gpu-out}
BUDGET=${BUDGET:-580}
MIN_STAGE=${MIN_STAGE:-10}  # a stage that would get fewer seconds than this is NOTIME
MAX_STAGE=${MAX_STAGE:-600}  # caps every stage's timeout (the dry run's hanging stage)
export QSFT_REQUIRE_GPU=${QSFT_REQUIRE_GPU:-1} PYTHONUNBUFFERED=1
SUMMARY=$OUT/summary.txt TESTS=$OUT/tests.log SAN=$OUT/sanitizer.log E2E=$OUT/e2e.log BENCH=$OUT/bench.log
E2E_MMA=$OUT/e2e-mma.log
T0=$SECONDS

# ---- internal commands (run under `timeout` as their own process) ----
# --isolated BIN: every test of BIN in its own process (a sticky CUDA fault cannot spoil the next test).
if [ "${1:-}" = --isolated ]; then
  bin=$2 failed=0
  for t in $("$bin" --gtest_list_tests | awk '/^[^ ]/{s=$1} /^  /{print s $1}'); do
    echo "---- $t"
    "$bin" --gtest_filter="$t" || failed=1
  done
  exit $failed
fi

left() { echo $((BUDGET - (SECONDS - T0))); }
selected() { [ -z "${ONLY:-}" ] || [[ $1 =~ ^(${ONLY})$ ]]; }
# reserve NAME SECONDS ...: the seconds of those stages that this run will run (ONLY), to keep for them
reserve() {
  local sum=0
  while (($# >= 2)); do
    selected "$1" && sum=$((sum + $2))
    shift 2
  done
  echo $sum
}
# What e2e-0.5b, qlora-0.5b and e2e-7b need (38, 10, 137 s in the first run): kept by every stage before them.
E2E_KEEP=$(reserve e2e-0.5b 45 qlora-0.5b 15 e2e-7b 150)
mkdir -p "$OUT"
# The kit carries its binaries xz-packed (tools/gpu-kit.sh): unpack them once.
if [ ! -d "$KIT/bin" ] && [ -f "$KIT/bin.tar.xz" ]; then
  tar -C "$KIT" -xJf "$KIT/bin.tar.xz" 2>/dev/null ||
    python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' "$KIT/bin.tar.xz" "$KIT"
fi

# stage NAME TIMEOUT KEEP LOG CMD...: runs CMD with at most TIMEOUT seconds, keeping KEEP seconds of the budget
# for the stages after it; output appended to LOG as it runs. Sets RESULT to the stage's outcome.
RESULT=""
LAST_LOG=$(mktemp)  # the output of the last stage, for its verdict
trap 'rm -f "$LAST_LOG"' EXIT
stage() {
  local name=$1 to=$2 keep=$3 log=$4
  shift 4
  if ! selected "$name"; then RESULT=FILTERED; return; fi
  local avail=$(($(left) - keep))
  ((to > avail)) && to=$avail
  ((to > MAX_STAGE)) && to=$MAX_STAGE
  if ((to < MIN_STAGE)); then
    printf '%-30s %-7s %4s %5s\n' "$name" NOTIME - 0 >> "$SUMMARY"
    RESULT=NOTIME
    return
  fi
  echo "==== $name (timeout ${to}s, $(date -u +%T)): $*" >> "$log"
  local t=$SECONDS
  # timeout signals its whole process group: children of CMD are ended with it
  timeout -k 5 "$to" "$@" 2>&1 | tee -a "$log" > "$LAST_LOG"
  local rc=${PIPESTATUS[0]}
  RESULT=PASS
  if ((rc == 124 || rc == 137)); then
    RESULT=TIMEOUT
  elif ((rc == 77)); then
    RESULT=SKIPPED
  elif ((rc != 0)); then
    RESULT=FAIL
  elif grep -qE '^\[  SKIPPED \]|^skipped: ' "$LAST_LOG"; then
    RESULT=SKIPPED
  elif grep -qE '^\[==========\] 0 tests from' "$LAST_LOG"; then
    RESULT=FAIL  # a filter that matched no test (a renamed test) must not pass
    echo "(no test matched the filter)" >> "$log"
  fi
  printf '%-30s %-7s %4s %5s\n' "$name" "$RESULT" "$rc" $((SECONDS - t)) >> "$SUMMARY"
  echo "==== $name: $RESULT rc=$rc $((SECONDS - t))s" >> "$log"
}

# accuracy.txt: every compared output so far (rewritten after later stages add theirs; a kill keeps the last).
write_accuracy() {
  grep -h '^\[ GPU\|^hf-parity\|^greedy agreement\|^consistency' "$TESTS" > "$OUT/accuracy.txt" 2>/dev/null
}

# ---- env: GPU, driver, clocks, toolkit, Python packages, the kit ----
{
  echo "# qwen-sft gpu-check $(date -u +%FT%TZ) kit $(cat "$KIT/COMMIT" 2>/dev/null || echo '(none)') budget ${BUDGET}s"
  q=name,driver_version,memory.total,clocks.sm,clocks.max.sm,clocks.mem,clocks.max.mem,temperature.gpu,power.draw
  echo "# $q: $(nvidia-smi --query-gpu=$q --format=csv,noheader 2>&1 | head -1)"
  echo "# nvcc: $(nvcc --version 2>/dev/null | tail -1)"
  echo "# compute-sanitizer: $(compute-sanitizer --version 2>/dev/null | tail -1)"
  echo "# python: $(python3 -c 'import sys, torch, transformers, peft
print(sys.version.split()[0], "torch", torch.__version__, "transformers", transformers.__version__,
      "peft", peft.__version__)' 2>&1 | tail -1)"
  echo "# cpus $(nproc), $(free -g 2>/dev/null | awk '/Mem:/{print $2 " GiB"}')"
} >> "$SUMMARY"
stage env 30 0 "$TESTS" nvidia-smi -q -d CLOCK,MEMORY,PERFORMANCE,TEMPERATURE,POWER

# ---- libraries: the kit's lib/ first, cuBLAS(Lt) 13 from the machine; fallback/ when something is missing ----
CUBLAS=/usr/local/cuda/lib64
[ -e $CUBLAS/libcublasLt.so.13 ] ||
  CUBLAS=$(dirname "$(find /usr /opt -name 'libcublasLt.so.13*' 2>/dev/null | head -1)")
export LD_LIBRARY_PATH=$KIT/lib:$CUBLAS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
BIN=$KIT/bin
if ldd "$BIN"/* 2>/dev/null | grep -q 'not found'; then export LD_LIBRARY_PATH=$LD_LIBRARY_PATH:$KIT/fallback; fi
missing=$(ldd "$BIN"/* 2>/dev/null | grep 'not found' | sort -u | tr -s ' \t\n' ' ')
echo "# cublasLt from $CUBLAS; unresolved: ${missing:-none}" >> "$SUMMARY"
# The tests read fixtures under the source path baked in at build time: point it here when it does not exist.
SRC=$(cat "$KIT/SOURCE_DIR" 2>/dev/null || echo "$ROOT")
if [ "$SRC" != "$ROOT" ] && [ ! -e "$SRC" ]; then mkdir -p "$(dirname "$SRC")" && ln -s "$ROOT" "$SRC"; fi

# ---- the carried binaries do not start here: build on the machine (16 cores) from the kit's deps/ ----
if ! "$BIN/gpu_ops_gemm_test" --gtest_list_tests > /dev/null 2>&1; then
  D=$KIT/deps B=/tmp/qsft-build
  export PKG_CONFIG_SYSROOT_DIR=$D PKG_CONFIG_LIBDIR=$D/usr/lib/x86_64-linux-gnu/pkgconfig
  export LD_LIBRARY_PATH=$D/usr/lib/x86_64-linux-gnu:$LD_LIBRARY_PATH
  PKGC=$(command -v pkg-config || echo "$D/usr/bin/pkgconf")
  stage configure 90 300 "$OUT/build.log" cmake -S "$ROOT" -B "$B" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_CUDA_ARCHITECTURES=90 -DQSFT_CUDA=ON -DPKG_CONFIG_EXECUTABLE="$PKGC" \
    -DGTest_DIR="$D/usr/lib/x86_64-linux-gnu/cmake/GTest" -DCMAKE_PREFIX_PATH="$D/usr" -DBUILD_TESTING=ON
  # shellcheck disable=SC2046
  stage build 300 200 "$OUT/build.log" cmake --build "$B" -j "$(nproc)" --target gpu_ops_bench gpu_attention_bench \
    gpu_wgmma_probe qwen-sft $(cd "$ROOT/tests/gpu" && ls ./*_test.cpp | sed 's|^\./||; s|\.cpp$||')
  BIN=/tmp/qsft-bin
  mkdir -p "$BIN"
  cp "$B"/tests/gpu_*_test "$B"/bench/gpu_ops_bench "$B"/bench/gpu_attention_bench "$B"/bench/gpu_wgmma_probe \
    "$B"/qwen-sft "$BIN"/ 2>> "$OUT/build.log"
fi

# ---- smoke: CUDA start-up, one elementwise kernel, one cuBLASLt GEMM ----
stage smoke-elementwise 60 0 "$TESTS" "$BIN/gpu_ops_elementwise_test" \
  --gtest_filter='GpuElementwise.AddScaleDropoutCopyMatchCpu'
SMOKE=$RESULT
stage smoke-gemm 60 0 "$TESTS" "$BIN/gpu_ops_gemm_test" --gtest_filter='GpuGemm.TransposesBiasBetaAndSlicesMatchCpu'
# CONTINUE_WITHOUT_GPU=1 runs every stage anyway (a dry run of this script on a machine without a GPU).
if [[ $SMOKE =~ FAIL|SKIPPED|TIMEOUT && $RESULT =~ FAIL|SKIPPED|TIMEOUT ]] && [ -z "${CONTINUE_WITHOUT_GPU:-}" ]; then
  echo "# no usable GPU (both smoke stages $SMOKE/$RESULT): stopped; see tests.log" >> "$SUMMARY"
  cat "$SUMMARY"
  exit 2
fi

# ---- every GPU op test binary, then the whole training step ----
for bin in "$BIN"/gpu_ops_*_test; do
  fam=${bin##*/gpu_ops_}
  fam=${fam%_test}
  filter=()
  [ "$fam" = attention ] && filter=(--gtest_filter='-*4x4096*')  # the 4 x 4096 case has its own stage
  stage "test-$fam" 150 "$E2E_KEEP" "$TESTS" "$bin" "${filter[@]}"
  if [ "$RESULT" = FAIL ] && grep -qE 'cudaError|CUDA error|illegal|misaligned|unspecified launch' "$LAST_LOG"; then
    CUDA_LAUNCH_BLOCKING=1 stage "test-$fam-isolated" 150 "$E2E_KEEP" "$TESTS" bash "$0" --isolated "$bin"
  fi
done
stage test-model-step 150 "$E2E_KEEP" "$TESTS" "$BIN/gpu_model_step_test"
# qwen-sft plan == what the backend allocates after a step; the device's used memory within 5% (prints the context).
stage test-plan 120 "$E2E_KEEP" "$TESTS" "$BIN/gpu_plan_test"
# Full fine-tuning: every weight's gradient and 20 AdamW steps against the CPU on the fixtures.
stage test-full-ft 150 "$E2E_KEEP" "$TESTS" "$BIN/gpu_full_ft_step_test"
# Training through the NCCL Comm: world 1 bit-identical to no Comm; 2 ranks when there are 2 GPUs (docs/multi-gpu.md).
stage nccl-world1 120 "$E2E_KEEP" "$TESTS" python3 "$ROOT/tests/gpu/nccl_check.py" --bin "$BIN/qwen-sft"
# Every attention kernel at 4 x 4096 tokens, GQA 28/4, D = 128 and 14/2, D = 64 (the CPU reference computes one
# sequence and one kv group of it: ~10 s on 16 cores).
stage test-attention-4x4096 90 "$E2E_KEEP" "$TESTS" "$BIN/gpu_ops_attention_test" --gtest_filter='*4x4096*'
stage hf-parity 180 "$E2E_KEEP" "$TESTS" python3 "$ROOT/tests/interop/hf_parity_test.py" --bin "$BIN/qwen-sft"
# Decode steps as replayed CUDA graphs: the same tokens as eager steps (greedy, seeded sampling, chat turns).
stage test-generate-graphs 120 "$E2E_KEEP" "$TESTS" "$BIN/gpu_generate_graphs_test"
write_accuracy

# ---- compute-sanitizer on every op test at its small shapes (kernels run 10-1000x slower under it) ----
CS=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
# racecheck and synccheck report shared-memory hazards inside cuBLASLt's own kernels (nvjet_*: the first run), and
# leaving those kernels out (--kernel-name-exclude) made them fault under racecheck (2026-11-30, 45ffbc3): both check
# every kernel and tools/sanitizer_verdict.py passes a report only when every record is in cuBLASLt's kernels and the
# tests passed. initcheck does not see some cuBLASLt kernels' stores (our kernel reading a right product was flagged):
# QSFT_ZERO_GEMM_OUTPUTS=1 zeroes each GEMM's output first (kernels/runtime_cuda.h).
VERDICT=(python3 "$ROOT/tools/sanitizer_verdict.py" --)
sanitize() {  # sanitize TOOL BIN TIMEOUT [STAGE_NAME_SUFFIX]
  local fam=${2##*/gpu_ops_} wrap=() limit=20
  [[ $1 =~ racecheck|synccheck ]] && wrap=("${VERDICT[@]}") limit=100000
  QSFT_GPU_TEST_SMALL=1 QSFT_ZERO_GEMM_OUTPUTS=$([[ $1 == initcheck ]] && echo 1 || echo 0) \
    stage "$1-${fam%_test}${4:-}" "$3" "$E2E_KEEP" "$SAN" "${wrap[@]}" "$CS" --tool "$1" --error-exitcode 1 \
    --print-limit $limit "$2" --gtest_filter='-*Qwen*'
}
for bin in "$BIN"/gpu_ops_*_test; do sanitize memcheck "$bin" 45; done
# racecheck on attention (~15 cases per variant, the slowest under racecheck: 43 s for 5 variants at 45ffbc3) runs
# last, so that a slow one costs only itself, in two stages of 90 s: the mma and wmma variants, then the wgmma ones
# (the default on sm_90 since that run; never under racecheck before).
for bin in "$BIN"/gpu_ops_*_test; do [[ $bin == */gpu_ops_attention_test ]] || sanitize racecheck "$bin" 60; done
QSFT_TEST_ATTENTION_VARIANTS=wmma,mma,mma-large,mma-small,mma-atomic-dq,mma-small-atomic-dq \
  sanitize racecheck "$BIN/gpu_ops_attention_test" 90
QSFT_TEST_ATTENTION_VARIANTS=wgmma,wgmma-atomic-dq sanitize racecheck "$BIN/gpu_ops_attention_test" 90 -wgmma
sanitize synccheck "$BIN/gpu_ops_attention_test" 45
sanitize initcheck "$BIN/gpu_ops_attention_test" 45
sanitize initcheck "$BIN/gpu_ops_loss_test" 45

# ---- end to end (ours and transformers + PEFT on the same GPU), then benchmarks with the ceilings of this run ----
# The random models (15 GB at 7B, 30 GB at 14B) go to /dev/shm when it has room: written to this machine's disk, the
# 7B took 57-62 s of init-model in both H200 runs (the 0.5B: 4 s), about the disk's speed, not the generator's.
# e2e_stage empties the folder first: a stage killed at its timeout leaves its model behind, in /dev/shm memory.
E2E_ROOT=/tmp/qsft-e2e
shm_gib=$(df --output=avail -B1G /dev/shm 2>/dev/null | tail -1 | tr -dc 0-9)
((${shm_gib:-0} >= 40)) && E2E_ROOT=/dev/shm/qsft-e2e
echo "# e2e models in $E2E_ROOT (/dev/shm: ${shm_gib:-no} GiB free)" >> "$SUMMARY"
e2e_stage() {
  selected "$1" && rm -rf "$E2E_ROOT" && mkdir -p "$E2E_ROOT"
  TMPDIR=$E2E_ROOT stage "$@"  # generate_bench.py's model folder is a tempfile one
}
E2E_ARGS=(--bin "$BIN/qwen-sft" --kit "$KIT" --work "$E2E_ROOT")
e2e_stage e2e-0.5b 120 "$(reserve qlora-0.5b 15 e2e-7b 150)" "$E2E" python3 "$ROOT/bench/e2e_compare.py" \
  "${E2E_ARGS[@]}" --preset qwen2.5-0.5b --steps 12
# QLoRA: NF4 double-quantized base vs bf16 base, plan against the measured peak (tests/gpu/qlora_e2e.py).
e2e_stage qlora-0.5b 90 "$(reserve e2e-7b 150)" "$E2E" python3 "$ROOT/tests/gpu/qlora_e2e.py" --bin "$BIN/qwen-sft" \
  --kit "$KIT" --work "$E2E_ROOT"
e2e_stage e2e-7b 240 0 "$E2E" python3 "$ROOT/bench/e2e_compare.py" "${E2E_ARGS[@]}" --preset qwen2.5-7b --steps 6 \
  --recompute
# Greedy generation (KV cache, decode attention) against transformers on the same GPU, bf16 both sides: each of our
# tokens the reference's argmax or within 4 bf16 ulps of its max logit, teacher-forced on our tokens (>= 95%). The
# generation issue's stage, after the bring-up's (its ~60 s would otherwise come out of the sanitizers' time).
e2e_stage generate-0.5b 150 0 "$TESTS" python3 "$ROOT/tests/interop/generate_parity_test.py" \
  --bin "$BIN/qwen-sft" --kit "$KIT" --preset qwen2.5-0.5b --device cuda --new-tokens 64 --min-agreement 0.95
# The sm_90a wgmma building blocks against a CPU product (kernels/attention_wgmma_cuda.h; < 5 s): a dev check that
# names a wrong layout directly when the wgmma attention fails test-attention (bench-attention runs it again and
# leaves the dev wgmma variants out when it fails).
stage probe-wgmma 30 0 "$BENCH" "$BIN/gpu_wgmma_probe"
write_accuracy  # again, with the generation's lines
stage bench-quick 120 0 "$BENCH" "$BIN/gpu_ops_bench" --quick
# Attention kernels against torch's SDPA (flash backend) on this GPU, in the same run. First the wgmma building
# blocks against a CPU product (< 5 s); when they fail, the sm_90a variants are left out of the bench
# (QSFT_DEV_WGMMA=off), so a wrong layout cannot cost the other variants' numbers.
stage bench-attention 120 0 "$BENCH" bash -c "{ '$BIN/gpu_wgmma_probe' || export QSFT_DEV_WGMMA=off; } \
  && '$BIN/gpu_attention_bench' 10 && { python3 -c 'import torch' 2>/dev/null \
  || { echo 'skipped: no torch for the SDPA baseline'; exit 77; }; python3 '$ROOT/bench/attention_torch_baseline.py' 10; }"
e2e_stage bench-generate 150 0 "$BENCH" python3 "$ROOT/bench/generate_bench.py" --bin "$BIN/qwen-sft" \
  --kit "$KIT" --preset qwen2.5-0.5b
stage bench-full 300 0 "$BENCH" "$BIN/gpu_ops_bench"
# Longer end-to-end runs, only when ONLY names them (each needs a run of its own: 14B weights are 30 GB).
if [ -n "${ONLY:-}" ]; then
  e2e_stage e2e-1.5b 240 0 "$E2E" python3 "$ROOT/bench/e2e_compare.py" "${E2E_ARGS[@]}" --preset qwen2.5-1.5b --steps 12
  # one 4096-token bin per step: where launch overhead would show (the "GPU busy" line)
  e2e_stage e2e-0.5b-4k 150 0 "$E2E" python3 "$ROOT/bench/e2e_compare.py" "${E2E_ARGS[@]}" --preset qwen2.5-0.5b \
    --steps 20 --micro-batch-tokens 4096
  # both sides recomputing every layer (e2e-7b runs ours with its default "auto": activations kept when they fit)
  e2e_stage e2e-7b-recompute 300 0 "$E2E" python3 "$ROOT/bench/e2e_compare.py" "${E2E_ARGS[@]}" --preset qwen2.5-7b \
    --steps 6 --recompute --ours-checkpointing true
  # QLoRA 7B (NF4 vs bf16 base): the plan against the measured peak, and the dequantize scratch's cost at 7B
  e2e_stage qlora-7b 400 0 "$E2E" python3 "$ROOT/tests/gpu/qlora_e2e.py" --bin "$BIN/qwen-sft" --kit "$KIT" \
    --preset qwen2.5-7b --work "$E2E_ROOT"
  e2e_stage bench-generate-7b 300 0 "$BENCH" python3 "$ROOT/bench/generate_bench.py" --bin "$BIN/qwen-sft" \
    --kit "$KIT" --preset qwen2.5-7b
  e2e_stage e2e-14b 540 0 "$E2E" python3 "$ROOT/bench/e2e_compare.py" "${E2E_ARGS[@]}" --preset qwen2.5-14b --steps 6 \
    --recompute
  e2e_stage context-7b 600 0 "$E2E" python3 "$ROOT/bench/context_search.py" --bin "$BIN/qwen-sft" --kit "$KIT" \
    --preset qwen2.5-7b --work "$E2E_ROOT" --timeout 150
  # e2e-0.5b and e2e-7b with the mma attention (QSFT_ATTENTION=mma, what other GPUs run): e2e_compare.py has no
  # switch to run only ours, so the baseline runs again. Logged apart (e2e-mma.log) so that results.jsonl keeps the
  # default's figures.
  QSFT_ATTENTION=mma e2e_stage e2e-0.5b-mma 120 0 "$E2E_MMA" python3 "$ROOT/bench/e2e_compare.py" "${E2E_ARGS[@]}" \
    --preset qwen2.5-0.5b --steps 12
  QSFT_ATTENTION=mma e2e_stage e2e-7b-mma 240 0 "$E2E_MMA" python3 "$ROOT/bench/e2e_compare.py" "${E2E_ARGS[@]}" \
    --preset qwen2.5-7b --steps 6 --recompute
fi

# ---- report: the tables first, the stage summary last (only the end of the output may be kept) ----
rm -rf "$E2E_ROOT"
echo "# total $((SECONDS - T0))s of ${BUDGET}s" >> "$SUMMARY"
python3 "$ROOT/bench/results_jsonl.py" --out "$OUT/results.jsonl" --commit "$(cat "$KIT/COMMIT" 2>/dev/null || echo none)" \
  --gpu "$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 || echo none)" "$BENCH" "$E2E" \
  2>&1 | sed 's/^/# /' >> "$SUMMARY"
echo "== accuracy: $(grep -c '^\[ GPU' "$OUT/accuracy.txt" 2>/dev/null) compared outputs, $(grep -c 'FAILED$' \
  "$OUT/accuracy.txt" 2>/dev/null) over tolerance; the 15 nearest to their tolerance =="
# "... | <measure> <value> <= <tolerance> ok|FAILED": sorted by value / tolerance
awk '/^\[ GPU/{for (i = 1; i < NF; ++i) if ($i == "|") {print ($(i + 4) > 0 ? $(i + 2) / $(i + 4) : 0) "\t" $0; break}}' \
  "$OUT/accuracy.txt" 2>/dev/null | sort -g -r | head -15 | cut -f2-
grep -h '^hf-parity' "$OUT/accuracy.txt" 2>/dev/null
echo "== bench =="
grep -hE '^\||^ceilings' "$BENCH" 2>/dev/null | head -60
echo "== e2e =="
grep -hE '^E2E|^profile|^CONTEXT|^QLORA' "$E2E" "$E2E_MMA" 2>/dev/null
echo "== summary ($OUT/summary.txt) =="
cat "$SUMMARY"
! grep -qE ' (FAIL|TIMEOUT|SKIPPED|NOTIME) ' "$SUMMARY"
