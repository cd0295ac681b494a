#!/usr/bin/env bash
# Installs what building and testing need, when it is missing (Debian 12; apt as root). Idempotent and quick when
# everything is there. The CUDA toolkit is optional (/usr/local/cuda): without nvcc the CUDA backend is not built.
#   tools/install-deps.sh          build dependencies
#   tools/install-deps.sh --test   also the Python reference packages of the parity tests, and clang with
#                                  libFuzzer for the fuzzers (tests/fuzz; without them the fuzz/* tests skip)
set -euo pipefail
have_build_deps() {  # (OpenMP comes with g++: libgomp)
  command -v cmake >/dev/null && command -v ninja >/dev/null && command -v g++ >/dev/null &&
    pkg-config --exists simdjson libutf8proc libxxhash zlib 2>/dev/null && [ -f /usr/include/gtest/gtest.h ] &&
    [ -f /usr/include/gmock/gmock.h ]
}
if ! have_build_deps; then
  [ "$(id -u)" = 0 ] || { echo "install-deps: missing build dependencies; run as root (apt-get)" >&2; exit 1; }
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends cmake ninja-build g++ pkg-config libsimdjson-dev libutf8proc-dev \
    libgtest-dev libgmock-dev libbenchmark-dev libomp-dev libxxhash-dev zlib1g-dev >/dev/null
fi
if [ "${1:-}" = "--test" ] && ! python3 -c "import tokenizers, jinja2, safetensors, numpy" 2>/dev/null; then
  # The parity tests' references; torch/transformers/peft stay optional (those interop tests skip, saying so).
  python3 -m pip install -q tokenizers jinja2 safetensors numpy
fi
have_libfuzzer() {
  echo 'extern "C" int LLVMFuzzerTestOneInput(const char*, long) { return 0; }' |
    clang++ -x c++ -fsanitize=fuzzer -o /dev/null - 2>/dev/null
}
if [ "${1:-}" = "--test" ] && ! have_libfuzzer; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends clang \
      libclang-rt-14-dev >/dev/null
  else
    echo "install-deps: clang with libFuzzer is missing (not root: not installed); the fuzz tests will skip" >&2
  fi
fi
