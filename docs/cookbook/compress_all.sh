#!/usr/bin/env bash
# Compress every model in a folder and verify each against its original;
# stop at the first failure (docs/COOKBOOK.md, "A batch script").
#
#   compress_all.sh MODELS_DIR OUT_DIR
#
# A model is a subdirectory holding config.json (Hugging Face layout). Each
# is compiled with $PRESET (default int8); when it has calib_tokens.json,
# the compile calibrates on its sequences $HOLDOUT.. and verify scores the
# held-out sequences 0..$HOLDOUT-1 (default 32) against $MAX_KL (default
# 0.05) and $MIN_TOP1 (default 0.9). Writes OUT_DIR/NAME.slim,
# NAME.compile.json and NAME.verify.json, and a summary line per model.
# Exit: 0 all accepted, 1 a model failed verification, 2 bad input, 3 internal.
set -euo pipefail
models="${1:?usage: compress_all.sh MODELS_DIR OUT_DIR}"
out="${2:?usage: compress_all.sh MODELS_DIR OUT_DIR}"
slimpack="${SLIMPACK:-slimpack}"
preset="${PRESET:-int8}"
holdout="${HOLDOUT:-32}"
mkdir -p "$out"
n=0
for dir in "$models"/*/; do
  dir="${dir%/}"
  [ -f "$dir/config.json" ] || continue
  name="$(basename "$dir")"
  calib=()
  verify_data=()
  if [ -f "$dir/calib_tokens.json" ]; then
    calib=(--calib "$dir/calib_tokens.json" --calib-skip "$holdout")
    verify_data=(--data "$dir/calib_tokens.json" --limit "$holdout")
  else
    echo "$name: no calib_tokens.json; skipped (verify needs data)" >&2
    continue
  fi
  # Any non-zero exit stops the batch (set -e) with that exit code.
  "$slimpack" compile "$dir" -o "$out/$name.slim" --preset "$preset" "${calib[@]}" \
      --report "$out/$name.compile.json" --quiet > /dev/null
  "$slimpack" verify "$out/$name.slim" --reference "$dir" "${verify_data[@]}" \
      --max-kl "${MAX_KL:-0.05}" --min-top1 "${MIN_TOP1:-0.9}" --json "$out/$name.verify.json" --quiet > /dev/null
  kl=$(sed -n 's/.*"kl_mean": \([0-9.e+-]*\).*/\1/p' "$out/$name.verify.json" | head -1)
  echo "$name: $preset accepted, mean KL $kl, $(wc -c < "$out/$name.slim") bytes"
  n=$((n + 1))
done
echo "$n model(s) compressed and verified into $out"
