#!/usr/bin/env bash
# Wall time and peak RSS of the pruning presets on the synthetic
# TinyLlama-1.1B shape (the pruning issue's scale figure): prune50 and
# prune24-int4 with 16 calibration sequences (stories260k's token data; its
# ids fit TinyLlama's vocabulary), 2 threads.
#   bench/prune_tinyllama.sh [build-dir [work-dir]]   (needs ~6 GB of disk)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
slimpack="${1:-$root/build}/tools/slimpack"
work="${2:-/tmp/slimpack-tinyllama}"
mkdir -p "$work"
[ -f "$work/model/config.json" ] || "$slimpack" synth --preset tinyllama-1.1b -o "$work/model" > /dev/null
calib=(--calib "$root/models/stories260k/calib_tokens.json" --calib-sequences 16 --threads 2)
for preset in prune50 prune24-int4; do
  /usr/bin/time -f "$preset: %e s wall, %U s user, peak RSS %M KiB" \
    "$slimpack" compile "$work/model" -o "$work/$preset.slim" --preset "$preset" "${calib[@]}" --quiet \
      --report "$work/$preset.report.json" > "$work/$preset.txt"
  grep -o '"calibration": {[^}]*}' "$work/$preset.report.json" | head -1 || true
  ls -l "$work/$preset.slim" | awk '{print "  file bytes", $5}'
  rm -f "$work/$preset.slim"
done
