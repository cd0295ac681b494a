#!/usr/bin/env bash
# Installs what building and testing need, when it is missing (Debian 12; apt as root). Idempotent and quick when
# everything is there. The CUDA toolkit is optional (/usr/local/cuda): without nvcc the CUDA backend is not built.
#   tools/install-deps.sh          build dependencies
#   tools/install-deps.sh --test   also the Python test environment: a virtual environment ($QSFT_VENV, default
#                                  .venv at the repo root) with the parity tests' references (tokenizers, jinja2,
#                                  safetensors, numpy) and the interop/golden references (torch, transformers, peft),
#                                  and clang with libFuzzer for the fuzzers (tests/fuzz; without them they skip)
# Debian's python3 refuses `pip install` outside a virtual environment (PEP 668), so the tests get their own one;
# tools/run-tests.sh hands its python to CMake, which runs the Python tests with it.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${QSFT_VENV:-$PWD/.venv}"
# The versions tests/data/fixtures were generated with (make_fixtures.py --check compares bit for bit).
interop_packages=(torch==2.15.0 transformers==5.23.0 peft==0.21.2)
parity_packages=(tokenizers jinja2 safetensors numpy)

have_build_deps() {  # (OpenMP comes with g++: libgomp; OpenMPI: the multi-rank CPU backend and its tests)
  command -v cmake >/dev/null && command -v ninja >/dev/null && command -v g++ >/dev/null &&
    pkg-config --exists simdjson libutf8proc libxxhash zlib 2>/dev/null && [ -f /usr/include/gtest/gtest.h ] &&
    [ -f /usr/include/gmock/gmock.h ] && command -v mpirun >/dev/null && command -v mpicxx >/dev/null
}
have_venv_support() { /usr/bin/python3 -c "import venv, ensurepip" 2>/dev/null; }
have_libfuzzer() {
  echo 'extern "C" int LLVMFuzzerTestOneInput(const char*, long) { return 0; }' |
    clang++ -x c++ -fsanitize=fuzzer -o /dev/null - 2>/dev/null
}

apt_packages=()
have_build_deps || apt_packages+=(cmake ninja-build g++ pkg-config libsimdjson-dev libutf8proc-dev libgtest-dev
  libgmock-dev libbenchmark-dev libomp-dev libxxhash-dev zlib1g-dev openmpi-bin libopenmpi-dev)
[ "${1:-}" != "--test" ] || have_venv_support || apt_packages+=(python3 python3-venv python3-pip)
[ "${1:-}" != "--test" ] || have_libfuzzer || apt_packages+=(clang libclang-rt-14-dev)
if [ ${#apt_packages[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || { echo "install-deps: missing ${apt_packages[*]}; run as root (apt-get)" >&2; exit 1; }
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${apt_packages[@]}" >/dev/null
fi
[ "${1:-}" = "--test" ] || exit 0

# The test environment. A venv whose interpreter no longer runs (Python upgraded under it) is made anew.
"$venv/bin/python3" -c "" 2>/dev/null || { rm -rf "$venv" && /usr/bin/python3 -m venv "$venv"; }
importable() { "$venv/bin/python3" -c "import $1" 2>/dev/null; }
have_pinned() {  # every NAME==VERSION given is installed at that version (a local tag like +cpu aside)
  "$venv/bin/python3" - "$@" 2>/dev/null <<'PY'
import sys, importlib.metadata as m
sys.exit(any(m.version(n).split("+")[0] != v for n, v in (a.split("==") for a in sys.argv[1:])))
PY
}
pip_install() { "$venv/bin/python3" -m pip install -q "$@"; }
importable "tokenizers, jinja2, safetensors, numpy" || pip_install "${parity_packages[@]}"
if ! have_pinned "${interop_packages[@]}"; then
  echo "install-deps: installing torch, transformers, peft into $venv (once; a few minutes)" >&2
  # The CPU-only torch build (a fifth of the size) when its index is reachable, else the registry's build.
  pip_install --timeout 20 --retries 0 --index-url https://download.pytorch.org/whl/cpu "${interop_packages[0]}" \
    2>/dev/null || pip_install "${interop_packages[0]}"
  pip_install "${interop_packages[@]}"
fi
