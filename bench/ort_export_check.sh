#!/usr/bin/env bash
# ONNX Runtime cross-check of `slimpack export` (docs/EXPORT.md "Measured").
#
# For each configuration: compile the bundled model, export it to ONNX, run
# the packed file in our runtime (slimpack_dump_logits) and the exported file
# in ONNX Runtime (bench/ort_check.js), and print max |logit difference|,
# max |logit| and top-1 agreement over the first N calibration sequences,
# against the packed model on the f32-dequant-fma path (packed_path=f32, the
# exported arithmetic) and on its default path (packed_path=default).
#
# Needs a build with -DSLIMPACK_BUILD_BENCH=ON and onnxruntime-node installed
# outside the repository (not in CI):
#   mkdir -p /work/ort && cd /work/ort && npm install --ignore-scripts onnxruntime-node
# Usage: bench/ort_export_check.sh [BUILD_DIR] [N]   (ORT_DIR overrides /work/ort)
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-$root/build}"
n="${2:-8}"
slimpack="$build/tools/slimpack"
dump="$build/bench/slimpack_dump_logits"
for exe in "$slimpack" "$dump"; do
  [[ -x "$exe" ]] || { echo "missing $exe (build with -DSLIMPACK_BUILD_BENCH=ON)" >&2; exit 2; }
done
command -v node >/dev/null || { echo "node is not installed" >&2; exit 2; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

asym_x8='{"passes":[{"pass":"quantize_int4","options":{"symmetric":false}},{"pass":"select_layout","options":{"int4_layout":"x8"}}]}'
echo "$asym_x8" >"$work/asym_x8.json"
# Group 64 on K = 172: three blocks, so a zero-point row ends in half a byte.
asym_g64='{"passes":[{"pass":"quantize_int4","options":{"symmetric":false,"group_size":64}},{"pass":"select_layout","options":{"int4_layout":"row"}}]}'
echo "$asym_g64" >"$work/asym_g64.json"

# 25% of FFN neurons removed (a smaller dense FP16 model), and 2:4 + int4
# (the 2:4 layout exports as dense MatMulNBits): calibrated on sequences 64..
ffn25='{"passes":[{"pass":"prune_structured","options":{"ffn_ratio":0.25}}]}'
echo "$ffn25" >"$work/ffn25.json"
calib_kjv="--calib $root/models/kjv-byte/calib_tokens.json --calib-skip 64"
# One KV group (with its query heads) removed from every layer of
# stories260K; half the query heads of each KV group of kjv-byte.
kv1='{"passes":[{"pass":"prune_structured","options":{"ffn_ratio":0,"kv_groups":1}}]}'
echo "$kv1" >"$work/kv1.json"
heads50='{"passes":[{"pass":"prune_structured","options":{"ffn_ratio":0,"head_ratio":0.5}}]}'
echo "$heads50" >"$work/heads50.json"
calib_stories="--calib $root/models/stories260k/calib_tokens.json --calib-skip 64"
# 2:4 + int8 (q8_s24_row; prune50-int8 gives q8_bm_row): both export as dense
# int8 DequantizeLinear.
p24i8='{"passes":[{"pass":"prune","options":{"method":"sparsegpt","pattern":"2:4"}},{"pass":"quantize_int8","options":{"gptq":true}}]}'
echo "$p24i8" >"$work/p24i8.json"
# prune24-int4 with the row layouts: the float path ONNX Runtime's
# MatMulNBits computes (the default x8 2:4 layout runs i8-dot only).
p24i4='{"passes":[{"pass":"prune","options":{"method":"sparsegpt","pattern":"2:4"}},{"pass":"quantize_int4","options":{"gptq":true}},{"pass":"select_layout","options":{"int4_layout":"row"}}]}'
echo "$p24i4" >"$work/p24i4.json"

# name model compile-args export-args
configs=(
  "kjv-ffn25|kjv-byte|--recipe $work/ffn25.json $calib_kjv|"
  "kjv-prune24-int4|kjv-byte|--recipe $work/p24i4.json $calib_kjv|"
  "kjv-prune50-int8|kjv-byte|--preset prune50-int8 $calib_kjv|"
  "kjv-prune24-int8|kjv-byte|--recipe $work/p24i8.json $calib_kjv|"
  "kjv-heads50|kjv-byte|--recipe $work/heads50.json $calib_kjv|"
  "stories260k-kv1|stories260k|--recipe $work/kv1.json $calib_stories|"
  "kjv-int4-nl|kjv-byte|--preset int4|"
  "kjv-int4-sym-row|kjv-byte|--preset int4-uniform|"
  "kjv-int4-asym-x8|kjv-byte|--recipe $work/asym_x8.json|"
  "kjv-int8|kjv-byte|--preset int8|"
  "kjv-int4-dequantize|kjv-byte|--preset int4-uniform|--int4 dequantize"
  "stories260k-int4|stories260k|--preset int4-uniform|"
  "stories260k-int4-asym-x8|stories260k|--recipe $work/asym_x8.json|"
  "stories260k-int4-asym-g64-row|stories260k|--recipe $work/asym_g64.json|"
)
for c in "${configs[@]}"; do
  IFS='|' read -r name model compile_args export_args <<<"$c"
  dir="$root/models/$model"
  # shellcheck disable=SC2086  # the argument strings are word lists
  "$slimpack" compile "$dir" -o "$work/$name.slim" $compile_args --quiet >/dev/null
  # shellcheck disable=SC2086
  "$slimpack" export "$work/$name.slim" --format onnx -o "$work/$name.onnx" $export_args --quiet >/dev/null
  # Against the packed model on the f32-dequant-fma path (the exported
  # arithmetic), then on its default path (i8-dot for x8 layouts).
  "$dump" "$work/$name.slim" "$dir/calib_tokens.json" "$n" "$work/$name.f32.bin" f32 >/dev/null
  "$dump" "$work/$name.slim" "$dir/calib_tokens.json" "$n" "$work/$name.default.bin" >/dev/null
  size="$(stat -c %s "$work/$name.onnx")"
  for ref in f32 default; do
    result="$(node "$root/bench/ort_check.js" "$work/$name.onnx" "$dir" "$n" "$work/$name.ort.bin" "$work/$name.$ref.bin")"
    echo "$name onnx_bytes=$size packed_path=$ref $result"
  done
done
