#!/usr/bin/env bash
# docs/cookbook/compress_all.sh on the two bundled models (docs/COOKBOOK.md):
#   test_batch_script.sh SLIMPACK SOURCE_DIR
# 1. Default thresholds (KL <= 0.05, top-1 >= 0.9), the fragile model first:
#    stories260k's int8 top-1 (83 % held out) fails, the batch stops with
#    exit 1 before kjv-byte.
# 2. Top-1 threshold 0.8: both accepted, exit 0, every output written.
set -euo pipefail
export SLIMPACK="$1"
src="$(cd "$2" && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/models"
ln -s "$src/models/stories260k" "$tmp/models/a-stories260k"
ln -s "$src/models/kjv-byte" "$tmp/models/b-kjv-byte"

set +e
"$src/docs/cookbook/compress_all.sh" "$tmp/models" "$tmp/out1"
status=$?
set -e
[ "$status" -eq 1 ] || { echo "expected exit 1 (a model rejected), got $status" >&2; exit 1; }
grep -q '"name": "top1_agreement"' "$tmp/out1/a-stories260k.verify.json"
[ ! -e "$tmp/out1/b-kjv-byte.slim" ] || { echo "the batch went on after a failure" >&2; exit 1; }

MIN_TOP1=0.8 "$src/docs/cookbook/compress_all.sh" "$tmp/models" "$tmp/out2" | tee "$tmp/log"
grep -q "2 model(s) compressed and verified" "$tmp/log"
for m in a-stories260k b-kjv-byte; do
  for f in "$m.slim" "$m.compile.json" "$m.verify.json"; do
    [ -s "$tmp/out2/$f" ] || { echo "missing $f" >&2; exit 1; }
  done
done
echo "batch script: stops at the first rejection; accepts both with top-1 >= 0.8"
