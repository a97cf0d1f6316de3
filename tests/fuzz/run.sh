#!/usr/bin/env bash
# Runs one libFuzzer target (or all) for a time, with ASan and UBSan.
#   tests/fuzz/run.sh TARGET|all SECONDS [BUILD_DIR]
# TARGET: onnx tensorproto safetensors packed recipe target tokens tokenizer.
# Builds the targets in BUILD_DIR (default build-san, configured by
# `tools/bootstrap.sh sanitize-build` when it does not exist yet: clang,
# ASan, UBSan, libFuzzer).
# The seed corpus (tests/fuzz/corpus/TARGET) is copied to
# BUILD_DIR/corpus/TARGET, where new inputs accumulate across runs; crash,
# leak, timeout and out-of-memory inputs go to BUILD_DIR/artifacts/TARGET/.
# Prints one summary line per target: executions, edges covered, findings.
# Exit 0 when no target found anything. FUZZ_SEED (default 0: from the
# clock) fixes libFuzzer's random seed: CI sets it, so a CI run replays a
# prefix of the mutations a longer local run with the same seed and the
# committed seeds has tried.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
all=(onnx tensorproto safetensors packed recipe target tokens tokenizer)
target="${1:-}"
seconds="${2:-}"
build="${3:-$root/build-san}"
if [ -z "$target" ] || [ -z "$seconds" ]; then
  echo "usage: $0 TARGET|all SECONDS [BUILD_DIR]   (targets: ${all[*]})" >&2
  exit 2
fi
if [ "$target" = all ]; then
  targets=("${all[@]}")
else
  case " ${all[*]} " in *" $target "*) targets=("$target") ;; *)
    echo "$0: unknown target '$target' (targets: ${all[*]})" >&2; exit 2 ;;
  esac
fi

if [ ! -f "$build/CMakeCache.txt" ]; then
  SAN_BUILD_DIR="$build" "$root/tools/bootstrap.sh" sanitize-build >/dev/null
fi
grep -q '^SLIMPACK_FUZZ:BOOL=ON' "$build/CMakeCache.txt" || {
  echo "$0: $build is not a fuzz build (SLIMPACK_FUZZ=ON)" >&2; exit 2; }
cmake --build "$build" -j "${JOBS:-$(nproc)}" --target "${targets[@]/#/fuzz_}" >/dev/null

status=0
for t in "${targets[@]}"; do
  corpus="$build/corpus/$t"
  artifacts="$build/artifacts/$t"
  mkdir -p "$corpus" "$artifacts"
  cp -n "$root/tests/fuzz/corpus/$t"/* "$corpus"/ 2>/dev/null || true
  dict="$root/tests/fuzz/dict/json.dict"
  case "$t" in onnx|tensorproto) dict="$root/tests/fuzz/dict/onnx.dict" ;; esac
  log="$build/fuzz_$t.log"
  rc=0
  # -timeout: one input may take at most 10 s; -rss_limit_mb: a reader that
  # allocates past 2 GiB for a small file is a finding.
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=0 \
    "$build/tests/fuzz/fuzz_$t" "$corpus" -dict="$dict" -seed="${FUZZ_SEED:-0}" -max_total_time="$seconds" -timeout=10 \
      -rss_limit_mb=2048 -max_len=262144 -artifact_prefix="$artifacts/" -print_final_stats=1 \
      >"$log" 2>&1 || rc=$?
  execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | awk '{print $2}' | tail -1)
  edges=$(grep -o 'cov: [0-9]*' "$log" | awk '{print $2}' | tail -1)
  findings=$(find "$artifacts" -type f | wc -l)
  echo "fuzz $t: ${seconds} s, ${execs:-?} executions, ${edges:-?} edges, $findings findings (rc $rc; log $log)"
  if [ "$rc" -ne 0 ] || [ "$findings" -ne 0 ]; then
    status=1
    grep -m1 -A30 "ERROR\|runtime error\|slimfuzz:\|terminate called\|deadly signal" "$log" || tail -30 "$log"
  fi
done
exit "$status"
