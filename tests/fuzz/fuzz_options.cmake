# QSFT_FUZZ=ON (clang only; tools/fuzz.sh configures it): every library is compiled with libFuzzer's coverage
# instrumentation, AddressSanitizer and UndefinedBehaviorSanitizer (an undefined-behaviour report aborts, so the
# fuzzer keeps the input); tests/fuzz then builds one fuzzer per input format. Included before the libraries.
option(QSFT_FUZZ "Build the libFuzzer targets of tests/fuzz (clang only; see tools/fuzz.sh)" OFF)
if(QSFT_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "QSFT_FUZZ=ON needs clang (-DCMAKE_CXX_COMPILER=clang++), not ${CMAKE_CXX_COMPILER_ID}")
  endif()
  add_compile_options(-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined
                      -fno-omit-frame-pointer -g)
  add_link_options(-fsanitize=address,undefined)
endif()
