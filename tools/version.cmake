# cmake -DSOURCE_DIR=... -DVERSION=... -DOUT=.../qsft_version.h -P version.cmake: the version header of qwen-sft,
# the project version and the git commit SOURCE_DIR is at ("-dirty" with uncommitted changes to tracked files,
# "unknown" outside a git checkout). Run on every build; the file is rewritten only when its content changes.
cmake_minimum_required(VERSION 3.25)
execute_process(COMMAND git -C "${SOURCE_DIR}" rev-parse --short=12 HEAD RESULT_VARIABLE rc
                OUTPUT_VARIABLE commit OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
if(rc EQUAL 0)
  execute_process(COMMAND git -C "${SOURCE_DIR}" status --porcelain --untracked-files=no
                  OUTPUT_VARIABLE changes ERROR_QUIET)
  if(changes)
    string(APPEND commit "-dirty")
  endif()
else()
  set(commit "unknown")
endif()
file(CONFIGURE OUTPUT "${OUT}" CONTENT "#pragma once\n#define QSFT_VERSION \"@VERSION@\"\n#define QSFT_GIT_COMMIT \"@commit@\"\n" @ONLY)
