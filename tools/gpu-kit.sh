#!/usr/bin/env bash
# tools/gpu-kit.sh: prepares, on a machine without a GPU, everything one bounded GPU run needs (tools/gpu-check.sh).
#   tools/gpu-kit.sh            (from anywhere; ~10 min on 2 cores the first time, incremental afterwards)
# 1. Builds the GPU tests, gpu_ops_bench and qwen-sft for sm_90 only into $BUILD (default build-sm90).
# 2. Assembles $KIT (default build-gpucarry/, ignored by git through /build*/), the folder the device run carries:
#      bin/       the binaries                      lib/  shared libraries they need that the GPU machine lacks
#      COMMIT     the commit they were built from   SOURCE_DIR  the source path baked into the tests (fixtures)
#      tok/       the Qwen2.5 tokenizer files       data/ two SFT files (end-to-end stages; weights are made there)
#      fallback/  runtime libraries used only if the machine lacks them (libgomp, libz, libstdc++)
#      deps/      headers + libraries of simdjson, utf8proc, gtest, zlib (+ pkgconf) for a fallback build there
#      MANIFEST   sizes and the ldd view of every binary
# Needs nvcc (/usr/local/cuda), the Debian dev packages of tools/install-deps.sh, and ../shared/testdata.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build-sm90}
KIT=${KIT:-$ROOT/build-gpucarry}
TESTDATA=${QSFT_SHARED_TESTDATA:-$ROOT/../shared/testdata}
L=/usr/lib/x86_64-linux-gnu

GPU_TESTS=$(cd "$ROOT/tests/gpu" && ls ./*_test.cpp | sed 's|^\./||; s|\.cpp$||')
TARGETS="$GPU_TESTS gpu_ops_bench gpu_attention_bench gpu_wgmma_probe qwen-sft"
# Configured every time, so an older build folder gets these options too. No MPI: the GPU check runs one process
# per GPU, and NCCL (loaded at run time) needs no MPI, so there is no libmpi to carry.
cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 -DQSFT_CUDA=ON \
  -DQSFT_MPI=OFF >/dev/null
# shellcheck disable=SC2086
cmake --build "$BUILD" -j "${JOBS:-2}" --target $TARGETS

rm -rf "$KIT"
mkdir -p "$KIT"/{bin,lib,fallback,tok,data,deps}
for t in $TARGETS; do
  f=$(find "$BUILD" -maxdepth 2 -type f -name "$t" -perm -u+x | head -1)
  [ -n "$f" ] || { echo "gpu-kit: $t was not built" >&2; exit 1; }
  cp "$f" "$KIT/bin/"
  strip --strip-unneeded "$KIT/bin/$t"
done
grep -m1 -o 'CMAKE_HOME_DIRECTORY:INTERNAL=.*' "$BUILD/CMakeCache.txt" | cut -d= -f2 > "$KIT/SOURCE_DIR"
dirty=$(git -C "$ROOT" status --porcelain --untracked-files=no | grep -q . && echo +dirty || true)
echo "$(git -C "$ROOT" rev-parse --short HEAD)$dirty $(date -u +%FT%TZ)" > "$KIT/COMMIT"

# Libraries: everything ldd resolves outside glibc/libstdc++/the CUDA driver and cuBLAS (the GPU machine has
# CUDA 13 with cuBLAS; it lacks simdjson, utf8proc, gtest): lib/ (always on LD_LIBRARY_PATH there). libgomp, libz
# and libstdc++ go to fallback/ (used only when the carried binaries do not start with the machine's own).
ldd "$KIT"/bin/* | awk '/=> \//{print $3}' | sort -u | while read -r so; do
  case $(basename "$so") in
    libc.so*|libm.so*|libdl.so*|librt.so*|libpthread.so*|ld-linux*|libgcc_s.so*|libcuda.so*|libcublas*) ;;
    libgomp.so*|libz.so*|libstdc++.so*) cp -L "$so" "$KIT/fallback/" ;;
    *) cp -L "$so" "$KIT/lib/" ;;
  esac
done
if ldd "$KIT"/bin/* | grep -q 'not found'; then echo "gpu-kit: unresolved libraries here" >&2; exit 1; fi

# The real tokenizer and a little SFT data for the end-to-end stages (the 0.5B/7B weights are made there).
cp "$TESTDATA"/qwen2.5/{tokenizer.json,tokenizer_config.json,chat_template.jinja} "$KIT/tok/"
cp "$TESTDATA"/sft/glaive_toolcall_en_openai.jsonl "$TESTDATA"/sft/alpaca_en_demo.json "$KIT/data/"

# Headers, libraries, CMake and pkg-config files of the build dependencies, from the installed Debian packages,
# for a build on the GPU machine if the carried binaries do not start there (tools/gpu-check.sh does it).
for p in libsimdjson-dev libsimdjson14 libutf8proc-dev libutf8proc2 libgtest-dev zlib1g-dev zlib1g pkgconf-bin \
         libpkgconf3; do
  dpkg -L "$p" | while read -r f; do
    [ -f "$f" ] || [ -L "$f" ] || continue
    case $f in /usr/share/doc/*|/usr/share/man/*|/usr/src/*|/usr/share/lintian/*) continue ;; esac
    mkdir -p "$KIT/deps$(dirname "$f")"
    cp -P "$f" "$KIT/deps$f"
  done
done
# Absolute symlinks (libz.so -> /lib/...) would dangle there: make them relative to their own folder.
find "$KIT/deps" -type l | while read -r l; do
  t=$(readlink "$l")
  case $t in /*) ln -sfn "$(basename "$t")" "$l" ;; esac
done

{
  echo "kit built $(cat "$KIT/COMMIT") from $ROOT ($BUILD, sm_90)"
  du -sh "$KIT"/* | sed 's/^/size /'
  for b in "$KIT"/bin/*; do echo "ldd $(basename "$b"):"; ldd "$b" | sed 's/^/  /'; done
} > "$KIT/MANIFEST"
# The binaries each embed the same CUDA kernels (18 x ~10 MiB): xz finds the repeats only within its dictionary,
# so -9 (64 MiB) in one thread: 190 MB -> 6.5 MB (the default 8 MiB dictionary, smaller than one binary, gave 37 MB,
# over the carry limit). tools/gpu-check.sh unpacks them there (tar -J, or python3's tarfile when xz is missing).
tar -C "$KIT" -cf - bin | xz -9 -T1 > "$KIT/bin.tar.xz"
rm -rf "$KIT/bin"
tracked=$(git -C "$ROOT" ls-files -z | (cd "$ROOT" && xargs -0 du -cb 2>/dev/null) | tail -1 | cut -f1)
kit=$(du -sb "$KIT" | cut -f1)
printf 'gpu-kit: %s (%d MiB) + tracked tree (%d MiB) = %d MiB (limit 64 MiB)\n' "$KIT" $((kit >> 20)) \
  $((tracked >> 20)) $(((kit + tracked) >> 20))
if (((kit + tracked) >> 20 >= 60)); then echo "gpu-kit: over 60 MiB: the run's carry would be refused" >&2; exit 1; fi
du -sh "$KIT"/*
