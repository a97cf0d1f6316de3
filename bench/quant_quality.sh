#!/usr/bin/env bash
# Quantization quality figures for the closing notes of the compression issue:
# mean KL(ref || quantized) per token on the full calibration set (128 x 256)
# of both bundled models, scale search vs plain max-abs round-to-nearest,
# symmetric and asymmetric, classifier int8 or kept FP16.
#   bench/quant_quality.sh [build-dir]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
slimpack="${1:-$root/build}/tools/slimpack"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

recipe() {  # pass options-json
  printf '{"passes": [{"pass": "%s", "options": %s}, {"pass": "select_layout"}]}' "$1" "$2" > "$tmp/r.json"
}
measure() {  # model label
  local model="$1" label="$2"
  "$slimpack" compile "$root/models/$model" -o "$tmp/m.slim" --recipe "$tmp/r.json" --quiet > /dev/null
  "$slimpack" verify "$tmp/m.slim" --reference "$root/models/$model" \
    --data "$root/models/$model/calib_tokens.json" --quiet --json "$tmp/v.json" > /dev/null
  printf '%-12s %-44s %s\n' "$model" "$label" \
    "$(grep -o '"kl_mean": [^,]*\|"top1_agreement": [^,]*\|"ppl_ratio": [^,]*\|"bytes_per_token": [^,]*' "$tmp/v.json" | tr '\n' ' ')"
}

for model in kjv-byte stories260k; do
  for search in false true; do
    recipe quantize_int8 "{\"search\": $search}"
    measure "$model" "int8 per-channel search=$search"
  done
  for sym in true false; do
    for cls in int8 keep; do
      for search in false true; do
        recipe quantize_int4 "{\"group_size\": 32, \"symmetric\": $sym, \"search\": $search, \"classifier\": \"$cls\"}"
        measure "$model" "int4 g32 sym=$sym classifier=$cls search=$search"
      done
    done
  done
done
