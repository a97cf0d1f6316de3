#!/usr/bin/env bash
# Quantization quality figures for the compression issue's closing notes:
# mean KL(ref || quantized) per token on the held-out calibration sequences
# 0..63 of both bundled models (128 x 256 tokens each), for
#   rtn      plain max-abs round-to-nearest (the baseline)
#   search   clip-ratio + least-squares scale search, uniform weights
#   calib    the search with errors weighted by E[x^2] (compile --calib)
#   gptq     calib + GPTQ error compensation
#   awq      calib with activation-aware input scales first (awq: true)
#   awq+gptq gptq with awq first
#   ... seq  the same with --calib-mode sequential (one decoder layer at a time)
# int8 per channel and int4 group 32 symmetric/asymmetric, classifier int8 or
# kept FP16, and int4 nl with classifier int8. Calibration uses sequences 64..127, never the scored ones.
#   bench/quant_quality.sh [build-dir [model...]]   (models: kjv-byte stories260k; needs jq)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
slimpack="${1:-$root/build}/tools/slimpack"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

measure() {  # model label pass options-json [compile args...]
  local model="$1" label="$2" pass="$3" options="$4"
  shift 4
  printf '{"passes": [{"pass": "%s", "options": %s}, {"pass": "select_layout"}]}' "$pass" "$options" > "$tmp/r.json"
  "$slimpack" compile "$root/models/$model" -o "$tmp/m.slim" --recipe "$tmp/r.json" --quiet "$@" > /dev/null
  "$slimpack" verify "$tmp/m.slim" --reference "$root/models/$model" --limit 64 \
    --data "$root/models/$model/calib_tokens.json" --quiet --json "$tmp/v.json" > /dev/null
  printf '%-12s %-40s %s\n' "$model" "$label" \
    "$(jq -r '.accuracy | "kl_mean \(.kl_mean) top1_agreement \(.top1_agreement) ppl_ratio \(.ppl_ratio)"' "$tmp/v.json")"
}

models=("${@:2}")
[ ${#models[@]} -gt 0 ] || models=(kjv-byte stories260k)
for model in "${models[@]}"; do
  calib=(--calib "$root/models/$model/calib_tokens.json" --calib-skip 64 --calib-sequences 64)
  measure "$model" "int8 rtn" quantize_int8 '{"search": false}'
  measure "$model" "int8 search" quantize_int8 '{"search": true}'
  measure "$model" "int8 gptq" quantize_int8 '{"gptq": true}' "${calib[@]}"
  for sym in true false; do
    for cls in int8 keep; do
      base="\"group_size\": 32, \"symmetric\": $sym, \"classifier\": \"$cls\""
      label="int4 g32 sym=$sym classifier=$cls"
      measure "$model" "$label rtn" quantize_int4 "{$base, \"search\": false}"
      measure "$model" "$label search" quantize_int4 "{$base, \"search\": true}"
      measure "$model" "$label calib" quantize_int4 "{$base, \"search\": true}" "${calib[@]}"
      measure "$model" "$label gptq" quantize_int4 "{$base, \"gptq\": true}" "${calib[@]}"
      if [ "$cls" = int8 ]; then
        measure "$model" "$label awq" quantize_int4 "{$base, \"awq\": true}" "${calib[@]}"
        measure "$model" "$label awq+gptq" quantize_int4 "{$base, \"gptq\": true, \"awq\": true}" "${calib[@]}"
        measure "$model" "$label gptq seq" quantize_int4 "{$base, \"gptq\": true}" "${calib[@]}" --calib-mode sequential
        measure "$model" "$label awq+gptq seq" quantize_int4 "{$base, \"gptq\": true, \"awq\": true}" "${calib[@]}" \
          --calib-mode sequential
      fi
    done
  done
  # int4 nl (the int4 presets' levels), classifier int8.
  base='"group_size": 32, "levels": "nl", "classifier": "int8"'
  measure "$model" "int4 g32 nl classifier=int8 rtn" quantize_int4 "{$base, \"search\": false}"
  measure "$model" "int4 g32 nl classifier=int8 search" quantize_int4 "{$base, \"search\": true}"
  measure "$model" "int4 g32 nl classifier=int8 calib" quantize_int4 "{$base, \"search\": true}" "${calib[@]}"
  measure "$model" "int4 g32 nl classifier=int8 gptq" quantize_int4 "{$base, \"gptq\": true}" "${calib[@]}"
  measure "$model" "int4 g32 nl classifier=int8 awq" quantize_int4 "{$base, \"awq\": true}" "${calib[@]}"
  measure "$model" "int4 g32 nl classifier=int8 awq+gptq" quantize_int4 "{$base, \"gptq\": true, \"awq\": true}" "${calib[@]}"
  measure "$model" "int4 g32 nl classifier=int8 gptq seq" quantize_int4 "{$base, \"gptq\": true}" "${calib[@]}" \
    --calib-mode sequential
  measure "$model" "int4 g32 nl classifier=int8 awq+gptq seq" quantize_int4 "{$base, \"gptq\": true, \"awq\": true}" \
    "${calib[@]}" --calib-mode sequential
done
