#!/usr/bin/env bash
# Regenerates the reference ids with the installed reference implementation
# and fails when they differ from the committed tests/text/ref/*.json (a new
# reference version, or a corpus or tokenizer file changed without them).
#   tests/text/check_reference.sh NODE NODE_MODULES_DIR
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
node="$1"
modules="$2"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
specs=(gpt2="$here/tokenizers/gpt2" qwen2_5="$here/tokenizers/qwen2_5")
for t in llama2 llama3; do
  d="$modules/@lenml/tokenizer-$t/models"
  [ -f "$d/tokenizer.json" ] && specs+=("$t=$d")
done
REF_OUT="$out" "$node" "$here/make_reference.mjs" "$modules" "${specs[@]}"
status=0
for f in "$out"/*.json; do
  if ! cmp -s "$f" "$here/ref/$(basename "$f")"; then
    echo "reference ids differ from tests/text/ref/$(basename "$f")" >&2
    status=1
  fi
done
exit $status
