#!/usr/bin/env bash
# Fuzzing (libFuzzer, with AddressSanitizer and UndefinedBehaviorSanitizer) of the input formats: safetensors,
# config.json, tokenizer.json, dataset files, cfg.json with --set overrides (tests/fuzz/NAME_fuzz.cpp).
#   tools/fuzz.sh [--seconds N] [--build DIR] [--build-only | --no-build] [TARGET ...]
# Builds DIR (default build-fuzz; clang++, QSFT_FUZZ=ON), writes the seed corpora into DIR/seeds (from tests/data,
# ../shared/testdata and tests/fuzz/seeds), replays the inputs of past findings (tests/fuzz/regressions/TARGET),
# then fuzzes each TARGET (default: all) for N seconds (default 600), growing DIR/corpus/TARGET. Findings go to
# DIR/crashes/TARGET/ and are printed with their sanitizer report; the exit status is 1 when there is any.
# Exit 77: clang++ or libFuzzer is missing (the ctest entries fuzz/* then skip; tools/install-deps.sh --test
# installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=600 build=build-fuzz mode=all targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --build) build="$2"; shift 2 ;;
    --build-only) mode=build; shift ;;
    --no-build) mode=run; shift ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
[ ${#targets[@]} -gt 0 ] || targets=(safetensors model_config tokenizer data train_config)

cxx=$(command -v clang++ || true)
if [ -z "$cxx" ] || ! echo 'extern "C" int LLVMFuzzerTestOneInput(const char*, long) { return 0; }' |
    "$cxx" -x c++ -fsanitize=fuzzer,address,undefined -o /dev/null - 2>/dev/null; then
  echo "fuzz.sh: skipped: clang++ with libFuzzer is not installed (apt-get install clang libclang-rt-14-dev)"
  exit 77
fi

if [ "$mode" != run ]; then
  cmake -S . -B "$build" -G Ninja -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DQSFT_FUZZ=ON \
    -DQSFT_CUDA=OFF -DBUILD_TESTING=ON >/dev/null
  cmake --build "$build" --target fuzzers -j"$(nproc)"
  [ "$mode" = build ] && exit 0
fi

python3 tests/fuzz/make_seeds.py "$build/seeds"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1}"
# The fuzzers write each input to a file under $TMPDIR (the readers take paths): in memory it is ~7x faster.
[ -z "${TMPDIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ] && export TMPDIR=/dev/shm
found=0
for t in "${targets[@]}"; do
  fuzzer="$build/fuzzers/${t}_fuzz"
  [ -x "$fuzzer" ] || { echo "fuzz.sh: no fuzzer $fuzzer (build it: tools/fuzz.sh --build-only)" >&2; exit 2; }
  mkdir -p "$build/corpus/$t" "$build/crashes/$t" "$build/logs"
  log="$build/logs/$t.log"
  flags=(-max_len=65536 -rss_limit_mb=2048 -timeout=10 -artifact_prefix="$build/crashes/$t/" -print_final_stats=1)
  regressions=(tests/fuzz/regressions/"$t"/*)
  if [ -e "${regressions[0]}" ] && ! "$fuzzer" "${flags[@]}" "${regressions[@]}" >"$log" 2>&1; then
    echo "FAIL $t: a past finding (tests/fuzz/regressions/$t) crashes again:"; tail -n 40 "$log"; found=1; continue
  fi
  if "$fuzzer" "${flags[@]}" -max_total_time="$seconds" "$build/corpus/$t" "$build/seeds/$t" >"$log" 2>&1; then
    echo "ok   $t: $(grep -ao 'Done [0-9]* runs in [0-9]* second(s)' "$log" | tail -1)," \
      "$(grep -ao 'exec/s: [0-9]*' "$log" | tail -1), corpus $(ls "$build/corpus/$t" | wc -l) files," \
      "$(grep -ao 'cov: [0-9]*' "$log" | tail -1)"
  else
    echo "FAIL $t: see $log"; grep -av '^#[0-9]' "$log" | tail -n 60
    ls -1 "$build/crashes/$t/"*; found=1
  fi
done
exit $found
