#!/usr/bin/env bash
# Regenerates the seed corpora in tests/fuzz/corpus/ (committed; run this
# after a format change): small files made by slimpack itself from a tiny
# synthetic model, ONNX's own node tests (Debian's libonnx-testdata) and
# the project's recipes and profiles. Needs a built slimpack and jq.
#   tests/fuzz/make_seeds.sh [BUILD_DIR]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="${1:-$root/build}"
slimpack="$build/tools/slimpack"
corpus="$root/tests/fuzz/corpus"
sep=$'\n--slimfuzz-part--\n'
onnx_tests=/usr/share/libonnx-testdata/data/node
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

rm -rf "$corpus"
mkdir -p "$corpus"/{onnx,tensorproto,safetensors,packed,recipe,target,tokens,tokenizer}

# Tiny checkpoints: Llama (GQA), Qwen2 (q/k/v biases), tied embeddings.
tiny=(--hidden 32 --intermediate 64 --layers 1 --heads 2 --kv-heads 1 --vocab 32 --max-positions 16)
"$slimpack" synth -o "$tmp/llama" "${tiny[@]}" >/dev/null
"$slimpack" synth -o "$tmp/qwen" "${tiny[@]}" --architecture Qwen2ForCausalLM --seed 2 >/dev/null
"$slimpack" synth -o "$tmp/tied" --hidden 32 --intermediate 64 --layers 2 --heads 2 --kv-heads 2 --vocab 32 --max-positions 16 --tie-embeddings --seed 3 >/dev/null

# safetensors: config.json, separator, model.safetensors ...
for m in llama qwen tied; do
  { cat "$tmp/$m/config.json"; printf '%s' "$sep"; cat "$tmp/$m/model.safetensors"; } > "$corpus/safetensors/$m"
done
# ... or config.json, index, one shard (every tensor mapped to it).
st="$tmp/llama/model.safetensors"
hlen=$(od -An -tu8 -N8 "$st" | tr -d ' ')
shard=model-00001-of-00001.safetensors
dd if="$st" bs=1 skip=8 count="$hlen" status=none |
  jq -c --arg s "$shard" '{metadata: {total_size: 0}, weight_map: (del(.__metadata__) | map_values($s))}' > "$tmp/index.json"
{ cat "$tmp/llama/config.json"; printf '%s' "$sep"; cat "$tmp/index.json"; printf '%s' "$sep"; cat "$st"; } \
  > "$corpus/safetensors/llama-sharded"

# Packed files: as written, and as [metadata, data] parts (fuzz_packed.cpp).
tok="$tmp/tokens.json"
printf '{"vocab_size": 32, "bos": 1, "sequences": [[1, 5, 9, 3, 30, 2, 7, 7], [1, 31, 0, 4, 12, 12, 6, 8]]}\n' > "$tok"
for preset in int8 int4 int4-uniform int4-g128 prune24-int4 prune50-int8; do
  "$slimpack" compile "$tmp/llama" -o "$tmp/$preset.slim" --preset "$preset" --calib "$tok" --quiet >/dev/null
  cp "$tmp/$preset.slim" "$corpus/packed/$preset"
  f="$tmp/$preset.slim"
  moff=$(od -An -tu8 -j16 -N8 "$f" | tr -d ' ')
  msize=$(od -An -tu8 -j24 -N8 "$f" | tr -d ' ')
  doff=$(od -An -tu8 -j32 -N8 "$f" | tr -d ' ')
  { dd if="$f" bs=1 skip="$moff" count="$msize" status=none; printf '%s' "$sep"; tail -c +"$((doff + 1))" "$f"; } \
    > "$corpus/packed/$preset-parts"
done
"$slimpack" compile "$tmp/qwen" -o "$tmp/qwen.slim" --preset int4 --quiet >/dev/null
cp "$tmp/qwen.slim" "$corpus/packed/qwen-int4"

# ONNX: the tiny decoders exported (dense FP16, uniform int4 as MatMulNBits
# and as DequantizeLinear, int4 nl as float MatMul), and a spread of ONNX
# node tests.
"$slimpack" export "$tmp/llama" -o "$corpus/onnx/llama-fp16" --quiet >/dev/null
"$slimpack" export "$tmp/int4-uniform.slim" -o "$corpus/onnx/llama-int4-nbits" --quiet >/dev/null
"$slimpack" export "$tmp/int4.slim" -o "$corpus/onnx/llama-int4-nl" --quiet >/dev/null
"$slimpack" export "$tmp/int8.slim" -o "$corpus/onnx/llama-int8" --quiet >/dev/null
"$slimpack" export "$tmp/int4-uniform.slim" -o "$corpus/onnx/llama-int4-dq" --int4 dequantize --quiet >/dev/null
for t in test_conv_with_strides_padding test_gemm_default_matrix_bias test_reshape_reduced_dims \
         test_batchnorm_example test_maxpool_2d_pads test_concat_1d_axis_0 test_slice test_gather_0 \
         test_transpose_default test_softmax_axis_1 test_matmul_3d test_resize_upsample_scales_linear; do
  cp "$onnx_tests/$t/model.onnx" "$corpus/onnx/$t"
  cp "$onnx_tests/$t/test_data_set_0/input_0.pb" "$corpus/tensorproto/$t"
done

# Recipes: every preset as compile records it, and the documented example.
for preset in $("$slimpack" passes --json - | jq -r '.presets[].name'); do
  "$slimpack" compile "$tmp/llama" -o "$tmp/r.slim" --preset "$preset" --calib "$tok" $( [ "$preset" = mixed ] && echo --bpw 6 ) --dry-run \
      --report "$tmp/r.json" --quiet 2>/dev/null || continue
  jq '.recipe' "$tmp/r.json" > "$corpus/recipe/$preset"
done
cp "$root"/docs/recipes/*.json "$corpus/recipe/"

# Target profiles: every built-in one as its own file.
n=$("$slimpack" targets --json - | jq length)
for i in $(seq 0 $((n - 1))); do
  "$slimpack" targets --json - | jq ".[$i]" > "$corpus/target/$i.json"
done

# Token data: the small set above and the first sequences of the bundled sets.
cp "$tok" "$corpus/tokens/tiny.json"
for m in kjv-byte stories260k; do
  jq -c '.sequences |= .[:2]' "$root/models/$m/calib_tokens.json" > "$corpus/tokens/$m.json"
done
# Tokenizers: the committed GPT-2 and Qwen2.5 files cut to their first ids
# (merges kept when all three tokens survive), and a Llama-2-style file
# (Prepend/Replace normalizer, byte fallback, decoder sequence, BOS
# template) built here; each alone, with its config, and with text.
sep=$'\n--slimfuzz-part--\n'
shrink() {  # shrink FILE MAX_ID
  jq -c --argjson n "$2" '(.model.vocab | with_entries(select(.value < $n))) as $v | .model.vocab = $v
    | .model.merges |= map(select((split(" ") | length) == 2 and $v[split(" ")[0]] != null
                                  and $v[split(" ")[1]] != null and $v[split(" ") | join("")] != null))' "$1"
}
shrink "$root/tests/text/tokenizers/gpt2/tokenizer.json" 400 > "$tmp/gpt2.json"
shrink "$root/tests/text/tokenizers/qwen2_5/tokenizer.json" 400 > "$tmp/qwen.json"
jq -n -c '
  def hex2: [(. / 16 | floor), (. % 16)] | map("0123456789ABCDEF"[.:.+1]) | join("");
  ({"<unk>": 0, "<s>": 1, "</s>": 2} + ([range(256)] | map({key: ("<0x" + hex2 + ">"), value: (. + 3)}) | from_entries)
   + {"\u2581": 259, "t": 260, "h": 261, "e": 262, "\u2581t": 263, "he": 264, "\u2581the": 265, "\u2581th": 266}) as $v
  | {version: "1.0", truncation: null, padding: null,
     added_tokens: [{id: 0, content: "<unk>", single_word: false, lstrip: false, rstrip: false, normalized: false, special: true},
                    {id: 1, content: "<s>", single_word: false, lstrip: false, rstrip: false, normalized: false, special: true},
                    {id: 2, content: "</s>", single_word: false, lstrip: false, rstrip: false, normalized: false, special: true}],
     normalizer: {type: "Sequence", normalizers: [{type: "Prepend", prepend: "\u2581"}, {type: "Replace", pattern: {String: " "}, content: "\u2581"}]},
     pre_tokenizer: null,
     post_processor: {type: "TemplateProcessing", single: [{SpecialToken: {id: "<s>", type_id: 0}}, {Sequence: {id: "A", type_id: 0}}],
                      pair: [], special_tokens: {"<s>": {id: "<s>", ids: [1], tokens: ["<s>"]}}},
     decoder: {type: "Sequence", decoders: [{type: "Replace", pattern: {String: "\u2581"}, content: " "}, {type: "ByteFallback"},
                                            {type: "Fuse"}, {type: "Strip", content: " ", start: 1, stop: 0}]},
     model: {type: "BPE", dropout: null, unk_token: "<unk>", continuing_subword_prefix: null, end_of_word_suffix: null,
             fuse_unk: true, byte_fallback: true, vocab: $v, merges: ["\u2581 t", "h e", "\u2581t h", "\u2581th e"]}}' > "$tmp/spbpe.json"
echo '{"bos_token": "<s>", "eos_token": "</s>", "clean_up_tokenization_spaces": false}' > "$tmp/spbpe_config.json"
text=$'Hello the world, it\'s 12345 \xc3\xa9t\xc3\xa9 <s> \xf0\x9f\x98\x80\t  end'
for t in gpt2 qwen spbpe; do
  cfg="$tmp/${t}_config.json"
  case "$t" in
    gpt2) cfg="$root/tests/text/tokenizers/gpt2/tokenizer_config.json" ;;
    qwen) cfg="$root/tests/text/tokenizers/qwen2_5/tokenizer_config.json" ;;
  esac
  cp "$tmp/$t.json" "$corpus/tokenizer/$t"
  { cat "$tmp/$t.json"; printf '%s' "$sep"; cat "$cfg"; printf '%s' "$sep"; printf '%s' "$text"; } > "$corpus/tokenizer/$t-text"
done

du -sh "$corpus"/*
