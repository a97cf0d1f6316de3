#!/usr/bin/env bash
# Runs the hostile cases of issue #10 against a built slimpack and writes
# docs/HOSTILE.md: each case's command, exit code, message and what was left
# on disk. Every row is measured by this script, not written by hand; a row
# whose exit code differs from the expected one is marked and the script
# exits 1.
#   docs/make_hostile.sh build/tools/slimpack          rewrite docs/HOSTILE.md
#   docs/make_hostile.sh build/tools/slimpack --check  exit 1 if it would change
# Paths in messages are printed relative to the case's scratch directory
# ($T). Runs in about a minute (one small synthetic model is compiled and
# interrupted twice).
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
slimpack="$(realpath "${1:?usage: $0 path/to/slimpack [--check]}")"
mode="${2:-}"
T="$(mktemp -d /tmp/slimpack-hostile.XXXXXX)"
trap 'rm -rf "$T"' EXIT
models="$root/models"
failed=0
rows=()

# case NAME EXPECTED_EXIT CHECK_CMD -- COMMAND...
# Runs COMMAND in $T; CHECK_CMD (a shell snippet, run after) says what is
# left on disk ("" = nothing to check). The message is the first line of
# the command's output that starts with "slimpack" or "error".
case_row() {
  local name="$1" want="$2" check="$3"
  shift 4
  local out code left=""
  out="$(cd "$T" && "$@" 2>&1)"
  code=$?
  if [ -n "$check" ]; then left="$(cd "$T" && bash -c "$check" 2>&1)"; fi
  local msg
  msg="$(printf '%s\n' "$out" | grep -m1 -E '^(slimpack|error)' || printf '%s\n' "$out" | head -1)"
  [ -n "$msg" ] || msg="(no output)"
  msg="${msg//$T/\$T}"
  msg="${msg//$models/models}"
  msg="${msg//|/\\|}"
  local mark=""
  if [ "$code" != "$want" ]; then mark=" **(expected $want)**"; failed=1; fi
  local cmd="${shown:-$*}"
  cmd="${cmd//$slimpack/slimpack}"
  cmd="${cmd//$T/\$T}"
  cmd="${cmd//$models/models}"
  rows+=("| $name | \`$cmd\` | $code$mark | $msg | $left |")
  shown=""
}
shown=""  # set before case_row to show a command other than the one run

# Inputs the cases use.
cp -r "$models/stories260k" "$T/m"
cp "$models/stories260k/model.onnx" "$T/model.onnx"
ln -s model.onnx "$T/link.onnx"
ln "$T/m/model.safetensors" "$T/hardlink.safetensors"
mkfifo "$T/fifo"
mkdir "$T/dir"
sum_of() { sha256sum "$1" | cut -c1-12; }
src_sum="$(sum_of "$T/model.onnx")"
st_sum="$(sum_of "$T/m/model.safetensors")"

# Output paths.
case_row "output is the input" 2 "[ \"\$(sha256sum model.onnx | cut -c1-12)\" = $src_sum ] && echo 'input unchanged'" -- \
  "$slimpack" compile "$T/model.onnx" -o "$T/model.onnx" --preset int8 --quiet
case_row "output is a symlink to the input" 2 "[ \"\$(sha256sum model.onnx | cut -c1-12)\" = $src_sum ] && echo 'input unchanged'" -- \
  "$slimpack" compile "$T/model.onnx" -o "$T/link.onnx" --preset int8 --quiet
case_row "output is a hard link to a weight file the input reads" 2 "[ \"\$(sha256sum m/model.safetensors | cut -c1-12)\" = $st_sum ] && echo 'weights unchanged'" -- \
  "$slimpack" compile "$T/m" -o "$T/hardlink.safetensors" --preset int8 --quiet
case_row "output is a device" 2 "[ -c /dev/full ] && echo '/dev/full still a device'" -- \
  "$slimpack" compile "$T/m" -o /dev/full --preset int8 --quiet
case_row "output is a FIFO" 2 "[ -p fifo ] && echo 'still a FIFO'" -- \
  "$slimpack" compile "$T/m" -o "$T/fifo" --preset int8 --quiet
case_row "output is a directory" 2 "[ -d dir ] && [ -z \"\$(ls -A dir)\" ] && echo 'directory unchanged'" -- \
  "$slimpack" compile "$T/m" -o "$T/dir" --preset int8 --quiet
case_row "output's parent does not exist" 2 "" -- \
  "$slimpack" compile "$T/m" -o "$T/no/such/dir/o.slim" --preset int8 --quiet
echo "previous output" > "$T/full.slim"
shown="ulimit -f 64 (trap '' XFSZ); slimpack compile \$T/m -o \$T/full.slim --preset int8 --quiet"
case_row "file-size limit hit while writing (RLIMIT_FSIZE 64 KiB, as a full disk)" 2 \
  "[ \"\$(cat full.slim)\" = 'previous output' ] && ! ls -A | grep -q tmp && echo 'previous output kept, no temporary'" -- \
  bash -c "ulimit -f 64; trap '' XFSZ; exec '$slimpack' compile '$T/m' -o '$T/full.slim' --preset int8 --quiet"

# Signals during a write: a synthetic model big enough that the packed file
# takes a while to write; the signal goes once the temporary exists.
"$slimpack" synth --preset tiny --layers 4 --hidden 1024 --intermediate 4096 --vocab 4096 -o "$T/synth" > /dev/null
interrupt() {
  local sig="$1"
  echo "previous output" > "$T/sig.slim"
  "$slimpack" compile "$T/synth" -o "$T/sig.slim" --preset int8 --quiet > "$T/sig.out" 2>&1 &
  local pid=$!
  # compgen is a builtin: the poll forks nothing, so the signal lands
  # within microseconds of the temporary's creation.
  local start=$SECONDS
  while ! compgen -G "$T/.sig.slim.tmp.$pid.*" > /dev/null && ((SECONDS - start < 120)); do :; done
  kill -s "$sig" "$pid"
  wait "$pid"
  local code=$?
  cat "$T/sig.out"
  return $code
}
shown="slimpack compile \$T/synth -o \$T/sig.slim --preset int8 --quiet; kill -INT once its temporary exists"
case_row "SIGINT while the packed file is written" 130 \
  "[ \"\$(cat sig.slim)\" = 'previous output' ] && ! ls -A | grep -q tmp && echo 'previous output kept, no temporary'" -- \
  interrupt INT
shown="the same with kill -TERM"
case_row "SIGTERM while the packed file is written" 143 \
  "[ \"\$(cat sig.slim)\" = 'previous output' ] && ! ls -A | grep -q tmp && echo 'previous output kept, no temporary'" -- \
  interrupt TERM

# Hostile inputs.
mkdir "$T/layers"
cp "$models/stories260k/model.safetensors" "$T/layers/"
sed -E 's/"num_hidden_layers": *[0-9]+/"num_hidden_layers": 1000000000/' "$models/stories260k/config.json" \
  > "$T/layers/config.json"
case_row "config.json with 10^9 layers" 2 "" -- "$slimpack" inspect "$T/layers"
mkdir "$T/trunc"
cp "$models/stories260k/config.json" "$T/trunc/"
head -c 100000 "$models/stories260k/model.safetensors" > "$T/trunc/model.safetensors"
case_row "truncated safetensors" 2 "" -- "$slimpack" inspect "$T/trunc"
mkdir "$T/hdr"
cp "$models/stories260k/config.json" "$T/hdr/"
{ printf '\xff\xff\xff\xff\xff\xff\x00\x00'; head -c 64 /dev/zero; } > "$T/hdr/model.safetensors"
case_row "safetensors header length 2^48" 2 "" -- "$slimpack" inspect "$T/hdr"
mkdir "$T/dup"
cp "$models/stories260k/config.json" "$T/dup/"
{ h='{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'
  printf "$(printf '\\x%02x' "${#h}")\\x00\\x00\\x00\\x00\\x00\\x00\\x00"; printf '%s' "$h"; head -c 4 /dev/zero; } > "$T/dup/model.safetensors"
case_row "safetensors header names a tensor twice" 2 "" -- "$slimpack" inspect "$T/dup"
head -c 5000 "$models/stories260k/model.onnx" > "$T/trunc.onnx"
case_row "truncated ONNX protobuf" 2 "" -- "$slimpack" inspect "$T/trunc.onnx"
# An ONNX file whose initializer's external data points outside its
# directory (CVE-2024-27318's pattern), encoded from text with protoc.
protoc --encode=onnx.ModelProto -I/usr/include /usr/include/onnx/onnx.proto > "$T/traversal.onnx" <<'EOF'
ir_version: 8
opset_import { domain: "" version: 17 }
graph {
  name: "g"
  node { input: "x" input: "w" output: "y" op_type: "Add" }
  initializer { name: "w" dims: 4 data_type: 1 data_location: EXTERNAL
    external_data { key: "location" value: "../../../../etc/passwd" }
    external_data { key: "length" value: "16" } }
  input { name: "x" type { tensor_type { elem_type: 1 shape { dim { dim_value: 4 } } } } }
  output { name: "y" type { tensor_type { elem_type: 1 shape { dim { dim_value: 4 } } } } }
}
EOF
case_row "ONNX external data outside the model's directory" 2 "" -- "$slimpack" inspect "$T/traversal.onnx"
echo '{"passes": [{"pass": "quantize_int4", "options": {"group_size": 32, "group_size": 128}}]}' > "$T/dup_recipe.json"
case_row "recipe sets an option twice" 2 "" -- \
  "$slimpack" compile "$T/m" -o "$T/r.slim" --recipe "$T/dup_recipe.json" --quiet
"$slimpack" compile "$T/m" -o "$T/good.slim" --preset int8 --quiet > /dev/null
head -c 20000 "$T/good.slim" > "$T/trunc.slim"
case_row "truncated packed file" 2 "" -- "$slimpack" inspect "$T/trunc.slim"
cp "$T/good.slim" "$T/flip.slim"
# Byte 200000 is inside a weight tensor of the stories260k int8 file.
printf '\x5a' | dd of="$T/flip.slim" bs=1 seek=200000 conv=notrunc status=none
case_row "packed file with one byte changed" 2 "" -- "$slimpack" inspect "$T/flip.slim"
printf '{"version": 1.0, "model": {"type": "Mystery"}}' > "$T/tokenizer.json"
case_row "tokenizer.json of an unknown model type" 2 "" -- "$slimpack" tokenize "$T/tokenizer.json" --text hi

table="$(mktemp)"
{
  cat <<'EOF'
# Hostile inputs and unsafe outputs: what slimpack does

Generated by `docs/make_hostile.sh build/tools/slimpack` (it runs every case; CTest
`hostile_doc_is_current` checks that this file matches what the binary does). `$T` is the
case's scratch directory; "left on disk" is checked by the script after the command.
The same cases, and many more, are unit tests (tests/tools/test_outputs.cpp,
tests/io/test_atomic_file.cpp, tests/io/test_*.cpp); the fuzzers are in docs/FUZZING.md.

| case | command | exit | message | left on disk |
| --- | --- | ---: | --- | --- |
EOF
  printf '%s\n' "${rows[@]}"
} > "$table"

if [ "$mode" = --check ]; then
  if ! diff -u "$root/docs/HOSTILE.md" "$table"; then
    echo "docs/HOSTILE.md is out of date: run docs/make_hostile.sh $1" >&2
    failed=1
  fi
else
  cp "$table" "$root/docs/HOSTILE.md"
fi
rm -f "$table"
exit $failed
