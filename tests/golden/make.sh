#!/usr/bin/env bash
# Regenerates tests/golden/tiny-int4.slim, the golden packed file of
# tests/tools/test_reproducible.cpp. Run it only for a deliberate change of
# the bytes the writer produces (a format change also bumps kPackedVersion,
# packed_format.h; a numerical change says so in its commit).
#   tests/golden/make.sh [BUILD_DIR]
# The commands are the test's, in an empty directory, with relative paths
# (the source path is recorded in the provenance).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
slimpack="$(cd "${1:-$root/build}" && pwd)/tools/slimpack"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
"$slimpack" synth -o tiny --hidden 32 --intermediate 64 --layers 1 --heads 2 --kv-heads 1 --vocab 64 \
  --max-positions 32 --seed 7 >/dev/null
"$slimpack" compile tiny -o tiny-int4.slim --preset int4 --quiet >/dev/null
cp tiny-int4.slim "$root/tests/golden/tiny-int4.slim"
sha256sum "$root/tests/golden/tiny-int4.slim"
