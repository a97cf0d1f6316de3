# Run at build time (cmake -DSRC=... -DOUT=... -P git_commit.cmake): writes
# OUT, a header defining SLIMPACK_GIT_COMMIT (the short commit of SRC, with
# "-dirty" when the work tree differs from it, or "unknown" outside git),
# only when that changed, so nothing rebuilds needlessly.
execute_process(COMMAND git -C "${SRC}" rev-parse --short=12 HEAD
                OUTPUT_VARIABLE commit OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET RESULT_VARIABLE rc)
if(NOT rc EQUAL 0 OR commit STREQUAL "")
  set(commit "unknown")
else()
  execute_process(COMMAND git -C "${SRC}" diff --quiet HEAD -- RESULT_VARIABLE dirty ERROR_QUIET)
  if(dirty EQUAL 1)
    set(commit "${commit}-dirty")
  endif()
endif()
set(text "#define SLIMPACK_GIT_COMMIT \"${commit}\"\n")
set(old "")
if(EXISTS "${OUT}")
  file(READ "${OUT}" old)
endif()
if(NOT old STREQUAL text)
  file(WRITE "${OUT}" "${text}")
endif()
