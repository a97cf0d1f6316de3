#!/usr/bin/env bash
# Decode and prefill speed of the bundled runtime on the TinyLlama-1.1B shape
# (a synthetic model: `slimpack synth --preset tinyllama-1.1b`, 2.2 GB FP16,
# far larger than any L3 these hosts have), for the default int4 and int8
# packings and the FP16 source, on 1 and 2 threads, next to a read-bandwidth
# probe run in the same script (bench_bandwidth).
#
# One `slimpack run` per measurement: a 64-token prompt (prefill rate), then
# 64 decoded tokens, so decoding runs at context 64..128. Runs alternate
# between formats and thread counts, so a shared machine's load hits all
# alike; every figure is the median of RUNS runs (5 by default). Effective
# bandwidth = counted bytes per decoded token (weights + KV cache, the
# runtime's traffic counter) x tokens/s; its ratio to the probe's best method
# at the same thread count is the figure of merit (docs/PERFORMANCE.md).
# Needs jq and a build with -DSLIMPACK_BUILD_BENCH=ON; takes about 10 minutes
# on a 2-core host (synth ~1 min, compiles ~2.5 min) and ~5 GB of /tmp.
#   bench/decode_bench.sh [build-dir]          RUNS=5 FORMATS="int4 int8 fp16"
# FORMATS may add int4-uniform (uniform int4 codes, q4g32_sym_x8; int4 is the
# nl levels, q4g32_nl_x8) and int4-24: 2:4-pruned int4 (q4g32_sym_s24_x8).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:-$root/build}"
slimpack="$build/tools/slimpack"
probe="$build/bench/slimpack_bench_bandwidth"
runs="${RUNS:-5}"
formats="${FORMATS:-int4 int8 fp16}"
for tool in "$slimpack" "$probe"; do
  [ -x "$tool" ] || { echo "missing $tool (build with -DSLIMPACK_BUILD_BENCH=ON)" >&2; exit 2; }
done
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

median() { sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }

echo "cpu: $(lscpu | sed -n 's/^Model name: *//p')"
echo "isa cap: ${SLIMPACK_ISA:-none (highest the host has)}"
"$probe" --runs 5 | tee "$tmp/probe.txt"
declare -A probe_gbps
while read -r _ t gbps _; do probe_gbps[$t]="$gbps"; done < <(grep '^best ' "$tmp/probe.txt")

"$slimpack" synth --preset tinyllama-1.1b -o "$tmp/tl" > /dev/null
declare -A model
for f in $formats; do
  case "$f" in
    fp16) model[$f]="$tmp/tl" ;;
    int4|int4-uniform|int8)
      /usr/bin/time -f "compile --preset $f: %e s, peak RSS %M KiB" \
        "$slimpack" compile "$tmp/tl" -o "$tmp/tl-$f.slim" --preset "$f" --quiet > /dev/null
      model[$f]="$tmp/tl-$f.slim" ;;
    int4-24)
      # 2:4 int4 for its speed only: magnitude 2:4 (no calibration data on a
      # random model), then the int4 preset's quantizer without GPTQ; the
      # default select_layout packs it q4g32_sym_s24_x8 (i8-dot).
      cat > "$tmp/int4-24.json" <<'JSON'
{"passes": [{"pass": "prune", "options": {"method": "magnitude", "pattern": "2:4"}},
            {"pass": "quantize_int4", "options": {"group_size": 32, "symmetric": true, "search": true,
             "classifier": "int8", "embeddings": "int8"}},
            {"pass": "select_layout"}]}
JSON
      /usr/bin/time -f "compile $f: %e s, peak RSS %M KiB" \
        "$slimpack" compile "$tmp/tl" -o "$tmp/tl-$f.slim" --recipe "$tmp/int4-24.json" --quiet > /dev/null
      model[$f]="$tmp/tl-$f.slim" ;;
    *) echo "unknown format $f" >&2; exit 2 ;;
  esac
done

prompt="$(seq -s ' ' 1 64)"
for ((r = 0; r < runs; r++)); do
  for f in $formats; do
    for t in 1 2; do
      "$slimpack" run "${model[$f]}" --tokens "$prompt" -n 65 --ignore-eos --threads "$t" \
        --json "$tmp/run.json" > /dev/null
      jq -r .tokens_per_s "$tmp/run.json" >> "$tmp/$f.$t.decode"
      jq -r .prefill_tokens_per_s "$tmp/run.json" >> "$tmp/$f.$t.prefill"
      jq -r .bytes_per_token "$tmp/run.json" > "$tmp/$f.bytes"
      jq -c .tokens "$tmp/run.json" > "$tmp/$f.$t.tokens"
      jq -c .kernels "$tmp/run.json" > "$tmp/$f.kernels"
    done
    if ! cmp -s "$tmp/$f.1.tokens" "$tmp/$f.2.tokens"; then
      echo "$f: generated tokens differ between 1 and 2 threads" >&2
      exit 1
    fi
  done
done

echo
echo "TinyLlama-1.1B shape, prompt 64 tokens, 64 decoded (context 64..128), median of $runs runs"
printf '%-7s %7s %12s %12s %14s %10s %12s\n' format threads "decode tok/s" "MB/token" "effective GB/s" "vs probe" "prefill tok/s"
for f in $formats; do
  bytes="$(cat "$tmp/$f.bytes")"
  for t in 1 2; do
    d="$(median < "$tmp/$f.$t.decode")"
    p="$(median < "$tmp/$f.$t.prefill")"
    awk -v f="$f" -v t="$t" -v d="$d" -v p="$p" -v b="$bytes" -v probe="${probe_gbps[$t]}" 'BEGIN {
      gbps = b * d / 1e9
      printf "%-7s %7d %12.2f %12.1f %14.2f %10.2f %12.1f\n", f, t, d, b / 1e6, gbps, gbps / probe, p
    }'
  done
  echo "      kernels: $(cat "$tmp/$f.kernels")"
done
