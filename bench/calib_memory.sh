#!/usr/bin/env bash
# Wall time and peak RSS of `compile --preset int4-gptq` on the TinyLlama-1.1B
# shape (synthetic, `slimpack synth --preset tinyllama-1.1b`), with one-pass
# and with sequential calibration (--calib-mode sequential: one decoder layer's
# E[xx^T] at a time). Calibration: SEQS random token sequences of LEN tokens
# (default 8 x 128; the issue's figure is 128 x 256, which takes hours here).
# Random weights and tokens: a cost measurement, not a quality one.
#   bench/calib_memory.sh [build-dir]      SEQS=8 LEN=128 MODES="one-pass sequential"
# Needs about 12 GB of RAM for one-pass and 3 GB of /tmp; ~20 minutes on 2 cores.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
slimpack="${1:-$root/build}/tools/slimpack"
seqs="${SEQS:-8}" len="${LEN:-128}" modes="${MODES:-one-pass sequential}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
echo "cpu: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) threads"
"$slimpack" synth --preset tinyllama-1.1b -o "$tmp/model" > /dev/null
awk -v n="$seqs" -v l="$len" 'BEGIN { srand(7); printf "{\"vocab_size\": 32000, \"sequences\": [";
  for (s = 0; s < n; ++s) { printf "%s[", s ? "," : ""; for (t = 0; t < l; ++t) printf "%s%d", t ? "," : "", int(rand() * 32000); printf "]" }
  print "]}" }' > "$tmp/calib.json"
for mode in $modes; do
  /usr/bin/time -f "%e %M" -o "$tmp/time" "$slimpack" compile "$tmp/model" -o "$tmp/m.slim" --preset int4-gptq \
    --calib "$tmp/calib.json" --calib-sequences "$seqs" --calib-mode "$mode" --quiet --json "$tmp/c.json" > /dev/null
  read -r wall rss < "$tmp/time"
  printf '%-10s %s x %s tokens: wall %s s, peak RSS %.2f GB, calibration %s s, quantize_int4 %s s\n' "$mode" "$seqs" \
    "$len" "$wall" "$(awk -v r="$rss" 'BEGIN { print r / 1048576 }')" "$(jq -r '.calibration.seconds | floor' "$tmp/c.json")" \
    "$(jq -r '.passes[0].seconds | floor' "$tmp/c.json")"
  rm -f "$tmp/m.slim"
done
