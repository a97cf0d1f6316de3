#!/usr/bin/env bash
# Decode tokens/s of the bundled runtime on 1 and 2 threads (slimpack run
# --threads), int4 preset: the bundled kjv-byte model and, with --tinyllama,
# a synthetic TinyLlama-1.1B-shaped model (synth ~60 s and 2.2 GB, compile
# ~80 s; removed afterwards). Runs alternate between thread counts so that a
# shared machine's load hits both alike; prints the median of RUNS runs each
# and the ratio 2 threads / 1 thread, and checks that the generated tokens
# are the same on both (outputs are byte-identical for any thread count).
#   bench/decode_threads.sh [build-dir] [--tinyllama]      (RUNS=3 by default)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="$root/build"
tinyllama=0
for arg in "$@"; do
  case "$arg" in
    --tinyllama) tinyllama=1 ;;
    *) build="$arg" ;;
  esac
done
slimpack="$build/tools/slimpack"
runs="${RUNS:-3}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

median() { sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }

bench() {  # label packed-model tokens n
  local label="$1" model="$2" prompt="$3" n="$4"
  : > "$tmp/t1"
  : > "$tmp/t2"
  for ((r = 0; r < runs; r++)); do
    for t in 1 2; do
      "$slimpack" run "$model" --tokens "$prompt" -n "$n" --ignore-eos --threads "$t" --json "$tmp/run$t.json" > /dev/null
      jq -r .tokens_per_s "$tmp/run$t.json" >> "$tmp/t$t"
    done
    if [ "$(jq -c .tokens "$tmp/run1.json")" != "$(jq -c .tokens "$tmp/run2.json")" ]; then
      echo "$label: tokens differ between 1 and 2 threads" >&2
      exit 1
    fi
  done
  local m1 m2
  m1="$(median < "$tmp/t1")"
  m2="$(median < "$tmp/t2")"
  printf '%-28s 1 thread %9.2f tok/s   2 threads %9.2f tok/s   ratio %.2f   (median of %d)\n' \
    "$label" "$m1" "$m2" "$(awk -v a="$m1" -v b="$m2" 'BEGIN {print b / a}')" "$runs"
}

"$slimpack" compile "$root/models/kjv-byte" -o "$tmp/kjv.slim" --preset int4 --quiet > /dev/null
bench "kjv-byte int4" "$tmp/kjv.slim" "256 73" 250

if [ "$tinyllama" = 1 ]; then
  "$slimpack" synth --preset tinyllama-1.1b -o "$tmp/tl" > /dev/null
  "$slimpack" compile "$tmp/tl" -o "$tmp/tl.slim" --preset int4 --threads 2 --quiet > /dev/null
  rm -rf "$tmp/tl"
  bench "tinyllama-1.1b-shape int4" "$tmp/tl.slim" "1 2 3" 16
fi
