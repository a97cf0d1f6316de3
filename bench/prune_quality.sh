#!/usr/bin/env bash
# Pruning quality figures for the pruning issue's closing notes: NLL
# increase (nats per predicted token, verify's nll - nll_reference), mean KL
# and top-1 on the held-out sequences 0..63 of the bundled models, for
# magnitude, Wanda and SparseGPT at 50% unstructured and 2:4, plus the
# presets prune24-int4, int4-gptq, int8 and prune50-int8, 2:4 + int8, and
# bytes per token. Calibration uses
# sequences 64..127 (--calib-skip 64), never the scored ones.
#   bench/prune_quality.sh [build-dir [model...]]   (models: kjv-byte stories260k)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
slimpack="${1:-$root/build}/tools/slimpack"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

report() {  # model label
  printf '%-12s %-26s %s\n' "$1" "$2" "$(grep -o '"kl_mean": [^,]*\|"top1_agreement": [^,]*\|"nll_reference": [^,]*\|"nll": [^,]*\|"bytes_per_token": [^,]*' "$tmp/v.json" | tr '\n' ' ')"
}

verify() {  # model
  "$slimpack" verify "$tmp/m.slim" --reference "$root/models/$1" --limit 64 \
    --data "$root/models/$1/calib_tokens.json" --quiet --json "$tmp/v.json" > /dev/null || true
}

models=("${@:2}")
[ ${#models[@]} -gt 0 ] || models=(kjv-byte stories260k)
for model in "${models[@]}"; do
  calib=(--calib "$root/models/$model/calib_tokens.json" --calib-skip 64)
  for pattern in '"sparsity": 0.5' '"pattern": "2:4"'; do
    for method in magnitude wanda sparsegpt; do
      printf '{"passes": [{"pass": "prune", "options": {"method": "%s", %s}}, {"pass": "select_layout"}]}' \
        "$method" "$pattern" > "$tmp/r.json"
      "$slimpack" compile "$root/models/$model" -o "$tmp/m.slim" --recipe "$tmp/r.json" --quiet "${calib[@]}" > /dev/null
      verify "$model"
      report "$model" "$method $(echo "$pattern" | tr -d '" ')"
    done
  done
  for preset in int4 int4-gptq prune24-int4 int8 prune50-int8; do
    "$slimpack" compile "$root/models/$model" -o "$tmp/m.slim" --preset "$preset" --quiet "${calib[@]}" > /dev/null
    verify "$model"
    report "$model" "preset $preset"
  done
  # 2:4 + int8 (q8_s24_row) has no preset: a recipe.
  echo '{"passes": [{"pass": "prune", "options": {"method": "sparsegpt", "pattern": "2:4"}},
    {"pass": "quantize_int8", "options": {"gptq": true}}, {"pass": "select_layout"}]}' > "$tmp/r.json"
  "$slimpack" compile "$root/models/$model" -o "$tmp/m.slim" --recipe "$tmp/r.json" --quiet "${calib[@]}" > /dev/null
  verify "$model"
  report "$model" "sparsegpt 2:4 + int8"
done
