#!/usr/bin/env bash
# The mixed pass at TinyLlama-1.1B scale (synthetic weights, no calibration
# data: data-free estimates, the search without GPTQ), 2 threads:
#  1. --target phone-arm-dotprod --tokens-per-s 60 (38.4 GB/s / 60 = 640 MB
#     per token, weights plus the KV cache at the model's context): wall
#     time, peak RSS, the plan, then verify's bandwidth check on the packed
#     file with the same target and rate;
#  2. --budget-per-b 1.5 --tokens-per-s 10 (1.5 GB/s x 1.1 = 1.65 GB/s, 165 MB
#     per token, far below any choice): exit 2 and the smallest reachable
#     figure;
#  3. --bpw 4.5: wall time and peak RSS.
#   bench/mixed_tinyllama.sh [build-dir [work-dir]]   (needs ~4 GB of disk)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
slimpack="${1:-$root/build}/tools/slimpack"
work="${2:-/tmp/slimpack-tinyllama}"
mkdir -p "$work"
[ -f "$work/model/config.json" ] || "$slimpack" synth --preset tinyllama-1.1b -o "$work/model" > /dev/null
# One calibration-format sequence for verify (token ids of stories260k's data
# fit TinyLlama's vocabulary); compile itself gets no --calib.
data="$root/models/stories260k/calib_tokens.json"

run() {  # label, compile args...
  local label="$1"; shift
  /usr/bin/time -f "$label: %e s wall, %U s user, peak RSS %M KiB" \
    "$slimpack" compile "$work/model" -o "$work/$label.slim" --preset mixed --threads 2 --quiet \
      --report "$work/$label.report.json" "$@" > "$work/$label.txt" 2> "$work/$label.err" || {
    echo "$label: exit $?"; tail -3 "$work/$label.err"; return 0; }
  tail -1 "$work/$label.err"
  grep -E "mixed: budget|int8\)$" "$work/$label.txt" | head -4
  grep -c " int8 " "$work/$label.txt" | sed 's/^/  int8 tensors (rows): /'
  ls -l "$work/$label.slim" | awk '{print "  file bytes", $5}'
}

run phone60 --target phone-arm-dotprod --tokens-per-s 60
"$slimpack" verify "$work/phone60.slim" --reference "$work/model" --data "$data" --limit 1 \
  --target phone-arm-dotprod --tokens-per-s 60 --threads 2 --quiet | grep -E "bytes/token|bandwidth|PASS|FAIL" || true
rm -f "$work/phone60.slim"
run rule15 --budget-per-b 1.5 --tokens-per-s 10
run bpw45 --bpw 4.5
rm -f "$work/bpw45.slim"
