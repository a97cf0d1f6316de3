// node bench/ort_check.js MODEL.onnx MODEL_DIR N OUT.bin [REF.bin]
//
// Runs an exported model in ONNX Runtime (onnxruntime-node, CPU provider)
// over the first N sequences of MODEL_DIR/calib_tokens.json, one full
// sequence per run from an empty KV cache, and writes the logits as
// little-endian float32 [tokens, vocab] per sequence (the layout of
// bench/dump_logits.cpp). Inputs are fed as the graph declares them:
// input_ids int64 [1, T], attention_mask int64 ones, position_ids 0..T-1,
// past_key_values.* empty [1, kv_heads, 0, head_dim] (float32, or float16
// when the graph declares it; heads from the graph's input shape, else from
// MODEL_DIR/config.json).
// With REF.bin (our runtime's logits) prints one JSON line: max |diff|,
// max |ref|, top-1 agreement and rows compared.
// onnxruntime-node is resolved from ORT_DIR (default /work/ort), outside the
// repository: `cd /work/ort && npm install --ignore-scripts onnxruntime-node`.
'use strict';
const fs = require('fs');
const path = require('path');

const ortDir = process.env.ORT_DIR || '/work/ort';
const ort = require(path.join(ortDir, 'node_modules', 'onnxruntime-node'));

function halfToFloat(h) {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * Math.pow(2, -24);
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * Math.pow(2, e - 15);
}

function toFloat32(tensor) {
  if (tensor.type === 'float32') return tensor.data;
  if (tensor.type === 'float16') return Float32Array.from(tensor.data, halfToFloat);
  throw new Error(`logits have type ${tensor.type}`);
}

async function main() {
  const [modelPath, modelDir, nArg, outPath, refPath] = process.argv.slice(2);
  if (!outPath) {
    console.error('usage: node bench/ort_check.js MODEL.onnx MODEL_DIR N OUT.bin [REF.bin]');
    process.exit(2);
  }
  const config = JSON.parse(fs.readFileSync(path.join(modelDir, 'config.json'), 'utf8'));
  const data = JSON.parse(fs.readFileSync(path.join(modelDir, 'calib_tokens.json'), 'utf8'));
  const heads = config.num_attention_heads;
  const kvHeads = config.num_key_value_heads || heads;
  const headDim = config.head_dim || config.hidden_size / heads;
  const session = await ort.InferenceSession.create(modelPath, {
    executionProviders: ['cpu'],
    graphOptimizationLevel: 'all',
  });
  // The graph's own KV-cache shape wins over config.json: structured
  // pruning of attention heads changes it (config.json is the source's).
  const pastType = {};
  const pastDims = {};
  if (session.inputMetadata) {
    for (const m of session.inputMetadata) {
      pastType[m.name] = m.type;
      if (Array.isArray(m.shape)) pastDims[m.name] = m.shape;
    }
  }
  const n = Math.min(parseInt(nArg, 10), data.sequences.length);
  const chunks = [];
  for (let s = 0; s < n; ++s) {
    const ids = data.sequences[s];
    const t = ids.length;
    const feeds = {};
    for (const name of session.inputNames) {
      if (name === 'input_ids') {
        feeds[name] = new ort.Tensor('int64', BigInt64Array.from(ids, BigInt), [1, t]);
      } else if (name === 'attention_mask') {
        feeds[name] = new ort.Tensor('int64', new BigInt64Array(t).fill(1n), [1, t]);
      } else if (name === 'position_ids') {
        feeds[name] = new ort.Tensor('int64', BigInt64Array.from(ids, (_, i) => BigInt(i)), [1, t]);
      } else if (name.startsWith('past_key_values.')) {
        const type = pastType[name] === 'float16' ? 'float16' : 'float32';
        const empty = type === 'float16' ? new Uint16Array(0) : new Float32Array(0);
        const dims = pastDims[name] || [];
        const kv = typeof dims[1] === 'number' ? dims[1] : kvHeads;
        const hd = typeof dims[3] === 'number' ? dims[3] : headDim;
        feeds[name] = new ort.Tensor(type, empty, [1, kv, 0, hd]);
      } else {
        throw new Error(`${modelPath}: input '${name}' is not a decoder input this script knows`);
      }
    }
    const out = await session.run(feeds, ['logits']);
    chunks.push(Buffer.from(Float32Array.from(toFloat32(out.logits)).buffer));
  }
  const logits = Buffer.concat(chunks);
  fs.writeFileSync(outPath, logits);
  if (!refPath) return;
  const got = new Float32Array(logits.buffer, logits.byteOffset, logits.length / 4);
  const refBytes = fs.readFileSync(refPath);
  const want = new Float32Array(refBytes.buffer, refBytes.byteOffset, refBytes.length / 4);
  if (got.length !== want.length) throw new Error(`${got.length} logits, reference has ${want.length}`);
  const vocab = config.vocab_size;
  let maxDiff = 0, maxRef = 0, agree = 0;
  const rows = got.length / vocab;
  for (let r = 0; r < rows; ++r) {
    let ig = 0, iw = 0;
    for (let j = 0; j < vocab; ++j) {
      const g = got[r * vocab + j], w = want[r * vocab + j];
      maxDiff = Math.max(maxDiff, Math.abs(g - w));
      maxRef = Math.max(maxRef, Math.abs(w));
      if (g > got[r * vocab + ig]) ig = j;
      if (w > want[r * vocab + iw]) iw = j;
    }
    if (ig === iw) ++agree;
  }
  console.log(JSON.stringify({
    model: modelPath, sequences: n, rows, max_abs_diff: maxDiff, max_abs_ref: maxRef,
    top1_agreement: agree / rows, ort_version: ort.env.versions ? ort.env.versions.node : undefined,
  }));
}

main().catch((e) => {
  console.error(`ort_check: ${e.message}`);
  process.exit(1);
});
