// Hugging Face reader and synthetic checkpoints: config and tensor
// validation, sharded checkpoints, tied/untied classifiers, Qwen2 biases,
// synthetic determinism; and the graph run by the interpreter against the
// bundled models' golden logits, against a plain C++ Llama forward written
// here (biases, sliding window, no GQA), with padding and with the KV cache.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "libcompress/common/sha256.h"
#include "libcompress/io/hf_llama.h"
#include "libcompress/io/safetensors.h"
#include "libcompress/io/synth.h"
#include "libcompress/runtime/interpreter.h"
#include "tests/test_util.h"

namespace fs = std::filesystem;
using Catch::Matchers::Contains;
using nlohmann::json;
using namespace slim;
using slim_test::TempDir;

namespace {

const std::string kModels = std::string(SLIMPACK_SOURCE_DIR) + "/models";

json ReadJson(const std::string& path) {
  std::ifstream in(path);
  return json::parse(in);
}
void WriteJson(const std::string& path, const json& j) { std::ofstream(path) << j.dump(2); }

std::string WriteTiny(const TempDir& tmp, SynthSpec spec = {}, const std::string& name = "m") {
  const std::string dir = tmp / name;
  const Status st = WriteSyntheticLlama(spec, dir);
  INFO(st.message());
  REQUIRE(st.ok());
  return dir;
}

Model MustRead(const std::string& path) {
  auto m = ReadHuggingFace(path);
  INFO(m.status().message());
  REQUIRE(m.ok());
  return std::move(m).value();
}

Status ReadError(const std::string& path) {
  auto m = ReadHuggingFace(path);
  REQUIRE_FALSE(m.ok());
  return m.status();
}

const Node* FindNode(const Graph& g, const std::string& name) {
  for (const auto& n : g.nodes) {
    if (n.name == name) return &n;
  }
  return nullptr;
}

bool SameBytes(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() && a.nbytes() == b.nbytes() &&
         (a.nbytes() == 0 || std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0);
}

// ------------------------------------------------------------ running ---

Tensor I64(std::vector<int64_t> shape, const std::vector<int64_t>& v) {
  return Tensor::FromVector(DType::kInt64, std::move(shape), v);
}

// One forward step: feeds ids [b, s] with the given mask/positions and
// past (empty when `past` is empty); returns logits and fills `present`.
Tensor RunStep(const Interpreter& interp, const DecoderSpec& d, int64_t batch,
               const std::vector<int64_t>& ids, const std::vector<int64_t>& mask,
               const std::vector<int64_t>& positions, std::vector<Tensor>* kv) {
  const int64_t seq = static_cast<int64_t>(ids.size()) / batch;
  std::map<std::string, Tensor> feeds;
  feeds["input_ids"] = I64({batch, seq}, ids);
  feeds["attention_mask"] = I64({batch, static_cast<int64_t>(mask.size()) / batch}, mask);
  feeds["position_ids"] = I64({batch, seq}, positions);
  if (kv->empty()) {
    for (int64_t l = 0; l < 2 * d.num_layers; ++l) {
      kv->emplace_back(DType::kFloat32, std::vector<int64_t>{batch, d.num_kv_heads, 0, d.head_dim});
    }
  }
  for (int64_t l = 0; l < d.num_layers; ++l) {
    feeds[DecoderSpec::PastKey(l)] = (*kv)[static_cast<size_t>(2 * l)];
    feeds[DecoderSpec::PastValue(l)] = (*kv)[static_cast<size_t>(2 * l + 1)];
  }
  auto out = interp.Run(feeds);
  INFO(out.status().message());
  REQUIRE(out.ok());
  for (int64_t l = 0; l < d.num_layers; ++l) {
    (*kv)[static_cast<size_t>(2 * l)] = out->at(DecoderSpec::PresentKey(l));
    (*kv)[static_cast<size_t>(2 * l + 1)] = out->at(DecoderSpec::PresentValue(l));
  }
  return out->at("logits");
}

std::vector<int64_t> Iota(int64_t from, int64_t n) {
  std::vector<int64_t> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = from + i;
  return v;
}

float MaxAbsDiff(const float* a, const float* b, size_t n) {
  float m = 0;
  for (size_t i = 0; i < n; ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

// Plain C++ Llama forward (HF conventions) for one sequence at positions
// 0..n-1: the independent reference for the synthetic-model tests.
std::vector<float> ReferenceLogits(const Model& m, const std::vector<int64_t>& ids, bool qkv_bias,
                                   int64_t window) {
  const DecoderSpec& d = *m.decoder;
  const Graph& g = m.graph;
  auto w = [&](const std::string& name) { return g.FindInitializer(name)->ToFloatVector(); };
  const int64_t n = static_cast<int64_t>(ids.size()), H = d.hidden_size, hd = d.head_dim;
  const int64_t nh = d.num_heads, kvh = d.num_kv_heads, rep = nh / kvh, V = d.vocab_size;
  const int64_t F = g.FindInitializer("model.layers.0.mlp.gate_proj.weight")->dim(0);
  const float eps = std::stof(g.metadata.at("hf.rms_norm_eps"));
  auto matvec = [](const std::vector<float>& W, const float* x, int64_t out, int64_t in,
                   const std::vector<float>* b) {
    std::vector<float> y(static_cast<size_t>(out));
    for (int64_t o = 0; o < out; ++o) {
      double s = b ? (*b)[static_cast<size_t>(o)] : 0.0;
      for (int64_t i = 0; i < in; ++i) s += double(W[static_cast<size_t>(o * in + i)]) * x[i];
      y[static_cast<size_t>(o)] = static_cast<float>(s);
    }
    return y;
  };
  auto rmsnorm = [&](const float* x, const std::vector<float>& wt) {
    double ss = 0;
    for (int64_t i = 0; i < H; ++i) ss += double(x[i]) * x[i];
    const float inv = static_cast<float>(1.0 / std::sqrt(ss / double(H) + eps));
    std::vector<float> y(static_cast<size_t>(H));
    for (int64_t i = 0; i < H; ++i) y[static_cast<size_t>(i)] = x[i] * inv * wt[static_cast<size_t>(i)];
    return y;
  };
  auto rope = [&](float* v, int64_t pos) {
    for (int64_t i = 0; i < hd / 2; ++i) {
      const double f = double(pos) / std::pow(10000.0, double(2 * i) / double(hd));
      const float c = static_cast<float>(std::cos(f)), s = static_cast<float>(std::sin(f));
      const float a = v[i], b = v[i + hd / 2];
      v[i] = a * c - b * s;
      v[i + hd / 2] = b * c + a * s;
    }
  };
  const auto embed = w("model.embed_tokens.weight");
  std::vector<std::vector<float>> x(static_cast<size_t>(n));
  for (int64_t t = 0; t < n; ++t) {
    x[static_cast<size_t>(t)].assign(embed.begin() + ids[static_cast<size_t>(t)] * H,
                                     embed.begin() + (ids[static_cast<size_t>(t)] + 1) * H);
  }
  for (int64_t l = 0; l < d.num_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    const auto wq = w(p + "self_attn.q_proj.weight"), wk = w(p + "self_attn.k_proj.weight"),
               wv = w(p + "self_attn.v_proj.weight"), wo = w(p + "self_attn.o_proj.weight");
    std::vector<float> bq, bk, bv;
    if (qkv_bias) {
      bq = w(p + "self_attn.q_proj.bias"), bk = w(p + "self_attn.k_proj.bias");
      bv = w(p + "self_attn.v_proj.bias");
    }
    std::vector<std::vector<float>> q(static_cast<size_t>(n)), k(q), v(q);
    for (int64_t t = 0; t < n; ++t) {
      const auto h = rmsnorm(x[static_cast<size_t>(t)].data(), w(p + "input_layernorm.weight"));
      q[t] = matvec(wq, h.data(), nh * hd, H, qkv_bias ? &bq : nullptr);
      k[t] = matvec(wk, h.data(), kvh * hd, H, qkv_bias ? &bk : nullptr);
      v[t] = matvec(wv, h.data(), kvh * hd, H, qkv_bias ? &bv : nullptr);
      for (int64_t hh = 0; hh < nh; ++hh) rope(q[t].data() + hh * hd, t);
      for (int64_t hh = 0; hh < kvh; ++hh) rope(k[t].data() + hh * hd, t);
    }
    for (int64_t t = 0; t < n; ++t) {
      std::vector<float> ctx(static_cast<size_t>(nh * hd), 0.f);
      for (int64_t hh = 0; hh < nh; ++hh) {
        const int64_t kv = hh / rep;
        std::vector<double> s(static_cast<size_t>(t + 1), -1e300);
        double mx = -1e300;
        for (int64_t j = 0; j <= t; ++j) {
          if (window > 0 && j <= t - window) continue;
          double dot = 0;
          for (int64_t i = 0; i < hd; ++i) dot += double(q[t][hh * hd + i]) * k[j][kv * hd + i];
          s[j] = dot / std::sqrt(double(hd));
          mx = std::max(mx, s[j]);
        }
        double z = 0;
        for (auto& e : s) z += (e = e < -1e299 ? 0 : std::exp(e - mx));
        for (int64_t j = 0; j <= t; ++j) {
          for (int64_t i = 0; i < hd; ++i) ctx[hh * hd + i] += static_cast<float>(s[j] / z * v[j][kv * hd + i]);
        }
      }
      const auto o = matvec(wo, ctx.data(), H, nh * hd, nullptr);
      for (int64_t i = 0; i < H; ++i) x[t][i] += o[i];
    }
    const auto wg = w(p + "mlp.gate_proj.weight"), wu = w(p + "mlp.up_proj.weight"),
               wd = w(p + "mlp.down_proj.weight");
    for (int64_t t = 0; t < n; ++t) {
      const auto h = rmsnorm(x[t].data(), w(p + "post_attention_layernorm.weight"));
      auto gate = matvec(wg, h.data(), F, H, nullptr);
      const auto up = matvec(wu, h.data(), F, H, nullptr);
      for (int64_t i = 0; i < F; ++i) gate[i] = gate[i] / (1.f + std::exp(-gate[i])) * up[i];
      const auto down = matvec(wd, gate.data(), H, F, nullptr);
      for (int64_t i = 0; i < H; ++i) x[t][i] += down[i];
    }
  }
  const bool tied = g.metadata.at("hf.tie_word_embeddings") == "true";
  const auto lm = w(tied ? "model.embed_tokens.weight" : "lm_head.weight");
  std::vector<float> logits;
  for (int64_t t = 0; t < n; ++t) {
    const auto h = rmsnorm(x[t].data(), w("model.norm.weight"));
    const auto y = matvec(lm, h.data(), V, H, nullptr);
    logits.insert(logits.end(), y.begin(), y.end());
  }
  return logits;
}

// Synthetic weights are small (std 0.02), which makes attention almost
// uniform and hides RoPE or mask mistakes; scaling q/k sharpens it.
void SharpenAttention(const std::string& dir, float factor) {
  auto t = ReadSafetensors(dir + "/model.safetensors");
  REQUIRE(t.ok());
  std::vector<std::pair<std::string, Tensor>> out;
  for (auto& [name, tensor] : *t) {
    Tensor c = tensor.Clone();
    if (name.find("q_proj") != std::string::npos || name.find("k_proj") != std::string::npos) {
      auto* h = c.MutableData<uint16_t>();
      for (int64_t i = 0; i < c.numel(); ++i) h[i] = FloatToHalf(HalfToFloat(h[i]) * factor);
    }
    out.emplace_back(name, std::move(c));
  }
  t->clear();  // drop the mapping before replacing the file
  REQUIRE(WriteSafetensors(dir + "/model.safetensors", out).ok());
}

}  // namespace

// ------------------------------------------------------------ structure ---

TEST_CASE("HF reader builds the decoder-with-past interface", "[hf]") {
  TempDir tmp("hf");
  const std::string dir = WriteTiny(tmp);
  const Model m = MustRead(dir);
  CHECK(m.format == "safetensors");
  REQUIRE(m.decoder.has_value());
  const DecoderSpec& d = *m.decoder;
  CHECK(d.num_layers == 2);
  CHECK(d.num_heads == 4);
  CHECK(d.num_kv_heads == 2);
  CHECK(d.head_dim == 16);
  CHECK(d.hidden_size == 64);
  CHECK(d.vocab_size == 256);
  CHECK(d.max_positions == 128);
  CHECK(d.bos_token_id == 1);
  CHECK(d.eos_token_id == 2);
  CHECK(d.kv_dtype == DType::kFloat32);
  CHECK((d.has_past && d.has_attention_mask && d.has_position_ids));

  const Graph& g = m.graph;
  CHECK(g.Validate().ok());
  CHECK(g.onnx_opset() == 17);
  REQUIRE(g.inputs.size() == 3 + 4);
  CHECK(g.inputs[0].name == "input_ids");
  CHECK(g.inputs[1].name == "attention_mask");
  CHECK(g.inputs[2].name == "position_ids");
  CHECK(g.inputs[3].name == "past_key_values.0.key");
  CHECK(g.inputs[3].dtype == DType::kFloat32);
  CHECK(ShapeToString(*g.inputs[3].shape) == ShapeToString(Shape{"batch_size", 2, "past_sequence_length", 16}));
  REQUIRE(g.outputs.size() == 1 + 4);
  CHECK(g.outputs[0].name == "logits");
  CHECK(ShapeToString(*g.outputs[0].shape) == ShapeToString(Shape{"batch_size", "sequence_length", 256}));
  CHECK(g.outputs[4].name == "present.1.value");

  // Weights are the file's FP16 bytes, mapped, under their HF names; every
  // linear layer is Gemm(transB=1) reading Cast(weight).
  const Tensor* q = g.FindInitializer("model.layers.1.self_attn.q_proj.weight");
  REQUIRE(q != nullptr);
  CHECK(q->dtype() == DType::kFloat16);
  CHECK(q->is_mapped());
  CHECK(q->shape() == std::vector<int64_t>{64, 64});
  const Node* gemm = FindNode(g, "layers.1.q");
  REQUIRE(gemm != nullptr);
  CHECK(gemm->op_type == "Gemm");
  CHECK(gemm->GetInt("transB", 0) == 1);
  CHECK(gemm->inputs.size() == 2);
  const Node* cast = &g.nodes[static_cast<size_t>(g.Producer(gemm->inputs[1]))];
  CHECK(cast->op_type == "Cast");
  CHECK(cast->inputs[0] == "model.layers.1.self_attn.q_proj.weight");
  const std::set<std::string> allowed = {
      "MatMul", "Gemm", "Add", "Sub", "Mul", "Div", "Pow", "Sqrt", "Reciprocal", "Neg", "Exp",
      "Tanh", "Sigmoid", "Softmax", "ReduceMean", "ReduceSum", "ReduceMax", "Gather", "Shape",
      "Reshape", "Transpose", "Concat", "Slice", "Split", "Squeeze", "Unsqueeze", "Expand",
      "Range", "Where", "Equal", "Less", "Greater", "Not", "And", "Cast", "ConstantOfShape",
      "Constant", "Identity", "Trilu", "Cos", "Sin"};
  for (const auto& n : g.nodes) {
    INFO(n.Describe());
    CHECK(allowed.count(n.op_type) == 1);
    CHECK(n.domain.empty());
  }
  CHECK(g.metadata.at("hf.architecture") == "LlamaForCausalLM");
}

TEST_CASE("HF reader: tied and untied classifiers", "[hf]") {
  TempDir tmp("hf");
  SynthSpec tied;
  tied.tie_embeddings = true;
  const Model mt = MustRead(WriteTiny(tmp, tied, "tied"));
  CHECK(mt.graph.FindInitializer("lm_head.weight") == nullptr);
  const Node* head = FindNode(mt.graph, "lm_head");
  REQUIRE(head != nullptr);
  CHECK(head->op_type == "Gemm");
  const Node& cast = mt.graph.nodes[static_cast<size_t>(mt.graph.Producer(head->inputs[1]))];
  CHECK(cast.inputs[0] == "model.embed_tokens.weight");  // the same initializer, no copy

  const Model mu = MustRead(WriteTiny(tmp, {}, "untied"));
  REQUIRE(mu.graph.FindInitializer("lm_head.weight") != nullptr);
  const Node* head_u = FindNode(mu.graph, "lm_head");
  const Node& cast_u = mu.graph.nodes[static_cast<size_t>(mu.graph.Producer(head_u->inputs[1]))];
  CHECK(cast_u.inputs[0] == "lm_head.weight");

  // A tied checkpoint under an untied config lacks lm_head.weight.
  const std::string dir = tmp / "tied";
  json cfg = ReadJson(dir + "/config.json");
  cfg["tie_word_embeddings"] = false;
  WriteJson(dir + "/config.json", cfg);
  CHECK_THAT(ReadError(dir).message(), Contains("'lm_head.weight' is missing"));
}

TEST_CASE("HF reader: Qwen2 q/k/v biases, BF16 and a .safetensors path", "[hf]") {
  TempDir tmp("hf");
  SynthSpec spec;
  spec.architecture = "Qwen2ForCausalLM";
  spec.dtype = DType::kBFloat16;
  const std::string dir = WriteTiny(tmp, spec);
  const Model m = MustRead(dir + "/model.safetensors");
  CHECK(m.graph.metadata.at("hf.architecture") == "Qwen2ForCausalLM");
  const Node* k = FindNode(m.graph, "layers.0.k");
  REQUIRE(k != nullptr);
  REQUIRE(k->inputs.size() == 3);
  const Node& bias_cast = m.graph.nodes[static_cast<size_t>(m.graph.Producer(k->inputs[2]))];
  CHECK(bias_cast.inputs[0] == "model.layers.0.self_attn.k_proj.bias");
  CHECK(m.graph.FindInitializer("model.layers.0.self_attn.k_proj.bias")->dtype() == DType::kBFloat16);
  CHECK(FindNode(m.graph, "layers.0.o")->inputs.size() == 2);  // Qwen2 o_proj has no bias

  // The same weights declared as Llama: the biases are simply not read.
  json cfg = ReadJson(dir + "/config.json");
  cfg["architectures"] = {"LlamaForCausalLM"};
  WriteJson(dir + "/config.json", cfg);
  CHECK(FindNode(MustRead(dir).graph, "layers.0.k")->inputs.size() == 2);
  // Llama with attention_bias also expects an o_proj bias, which is absent.
  cfg["attention_bias"] = true;
  WriteJson(dir + "/config.json", cfg);
  CHECK_THAT(ReadError(dir).message(), Contains("'model.layers.0.self_attn.o_proj.bias' is missing"));
}

TEST_CASE("HF reader rejects bad configs and tensors", "[hf]") {
  TempDir tmp("hf");
  const std::string dir = WriteTiny(tmp);
  const std::string cfg_path = dir + "/config.json";
  const json cfg = ReadJson(cfg_path);

  SECTION("missing required key") {
    for (const char* key : {"hidden_size", "intermediate_size", "num_hidden_layers",
                            "num_attention_heads", "vocab_size"}) {
      json c = cfg;
      c.erase(key);
      WriteJson(cfg_path, c);
      const Status st = ReadError(dir);
      CHECK(st.code() == StatusCode::kInvalidInput);
      CHECK_THAT(st.message(), Contains(std::string("\"") + key + "\" is missing") &&
                                   Contains("config.json"));
    }
  }
  SECTION("unknown architecture") {
    json c = cfg;
    c["architectures"] = {"GPT2LMHeadModel"};
    WriteJson(cfg_path, c);
    const Status st = ReadError(dir);
    CHECK(st.code() == StatusCode::kUnsupported);
    CHECK_THAT(st.message(), Contains("'GPT2LMHeadModel'") && Contains("LlamaForCausalLM") &&
                                 Contains("MistralForCausalLM") && Contains("Qwen2ForCausalLM"));
  }
  SECTION("rope_scaling") {
    json c = cfg;
    c["rope_scaling"] = {{"type", "linear"}, {"factor", 2.0}};
    WriteJson(cfg_path, c);
    const Status st = ReadError(dir);
    CHECK(st.code() == StatusCode::kUnsupported);
    CHECK_THAT(st.message(), Contains("rope_scaling") && Contains("linear"));
  }
  SECTION("bad values") {
    json c = cfg;
    c["num_key_value_heads"] = 3;
    WriteJson(cfg_path, c);
    CHECK_THAT(ReadError(dir).message(), Contains("not a multiple of num_key_value_heads 3"));
    c = cfg;
    c["hidden_size"] = "64";
    WriteJson(cfg_path, c);
    CHECK_THAT(ReadError(dir).message(), Contains("\"hidden_size\" must be an integer"));
    c = cfg;
    c["vocab_size"] = -5;
    WriteJson(cfg_path, c);
    CHECK_THAT(ReadError(dir).message(), Contains("\"vocab_size\" = -5 is out of range"));
    std::ofstream(cfg_path) << "{not json";
    CHECK_THAT(ReadError(dir).message(), Contains("not valid JSON"));
  }
  SECTION("tensor shape differs from the config") {
    json c = cfg;
    c["intermediate_size"] = 128;
    WriteJson(cfg_path, c);
    const Status st = ReadError(dir);
    CHECK_THAT(st.message(), Contains("'model.layers.0.mlp.gate_proj.weight' has shape [160, 64]") &&
                                 Contains("implies [128, 64]"));
  }
  SECTION("no weights") {
    fs::remove(dir + "/model.safetensors");
    CHECK_THAT(ReadError(dir).message(),
               Contains("neither model.safetensors nor model.safetensors.index.json"));
  }
  SECTION("no config") {
    fs::remove(cfg_path);
    CHECK_THAT(ReadError(dir).message(), Contains("no config.json"));
  }
}

TEST_CASE("HF reader: sharded checkpoint equals the single file", "[hf]") {
  TempDir tmp("hf");
  const std::string dir = WriteTiny(tmp);
  const Model single = MustRead(dir);
  const std::string sharded = tmp / "sharded";
  fs::create_directories(sharded);
  fs::copy_file(dir + "/config.json", sharded + "/config.json");
  auto tensors = ReadSafetensors(dir + "/model.safetensors");
  REQUIRE(tensors.ok());
  const size_t half = tensors->size() / 2;
  std::vector<std::pair<std::string, Tensor>> a(tensors->begin(), tensors->begin() + static_cast<long>(half));
  std::vector<std::pair<std::string, Tensor>> b(tensors->begin() + static_cast<long>(half), tensors->end());
  const std::string shard_a = "model-00001-of-00002.safetensors", shard_b = "model-00002-of-00002.safetensors";
  REQUIRE(WriteSafetensors(sharded + "/" + shard_a, a).ok());
  REQUIRE(WriteSafetensors(sharded + "/" + shard_b, b).ok());
  json index;
  index["metadata"] = {{"total_size", 0}};
  for (const auto& [name, t] : a) index["weight_map"][name] = shard_a;
  for (const auto& [name, t] : b) index["weight_map"][name] = shard_b;
  const std::string index_path = sharded + "/model.safetensors.index.json";
  WriteJson(index_path, index);

  const Model m = MustRead(sharded);
  REQUIRE(m.graph.initializer_names() == single.graph.initializer_names());
  for (const auto& name : single.graph.initializer_names()) {
    INFO(name);
    CHECK(SameBytes(*m.graph.FindInitializer(name), *single.graph.FindInitializer(name)));
  }
  REQUIRE(m.graph.nodes.size() == single.graph.nodes.size());
  for (size_t i = 0; i < m.graph.nodes.size(); ++i) {
    CHECK(m.graph.nodes[i].op_type == single.graph.nodes[i].op_type);
    CHECK(m.graph.nodes[i].inputs == single.graph.nodes[i].inputs);
  }

  SECTION("a tensor the index places in the wrong shard") {
    json bad = index;
    bad["weight_map"]["model.norm.weight"] = shard_a;
    WriteJson(index_path, bad);
    CHECK_THAT(ReadError(sharded).message(), Contains("'model.norm.weight' is listed in") &&
                                                 Contains(shard_a) && Contains("stored in"));
  }
  SECTION("a tensor missing from all shards") {
    json bad = index;
    bad["weight_map"].erase("model.norm.weight");
    WriteJson(index_path, bad);
    std::vector<std::pair<std::string, Tensor>> b2;
    for (auto& e : b) {
      if (e.first != "model.norm.weight") b2.push_back(e);
    }
    REQUIRE(WriteSafetensors(sharded + "/" + shard_b, b2).ok());
    CHECK_THAT(ReadError(sharded).message(), Contains("'model.norm.weight' is missing"));
  }
  SECTION("a shard outside the directory") {
    json bad = index;
    bad["weight_map"]["model.norm.weight"] = "../m/model.safetensors";
    WriteJson(index_path, bad);
    CHECK_THAT(ReadError(sharded).message(), Contains("not a file name"));
  }
  SECTION("a malformed shard") {
    std::ofstream(sharded + "/" + shard_b, std::ios::binary | std::ios::trunc) << "1234";
    CHECK_THAT(ReadError(sharded).message(), Contains(shard_b) && Contains("truncated"));
  }
}

TEST_CASE("synthetic checkpoints are deterministic and realistic", "[synth]") {
  TempDir tmp("hf");
  SynthSpec spec;
  spec.seed = 7;
  auto hash = [&](const std::string& name) {
    auto h = Sha256File(WriteTiny(tmp, spec, name) + "/model.safetensors");
    REQUIRE(h.ok());
    return *h;
  };
  const std::string h1 = hash("a"), h2 = hash("b");
  CHECK(h1 == h2);
  spec.seed = 8;
  CHECK(hash("c") != h1);

  // normal(0, 0.02) weights, unit norms, and the preset sizes.
  const Model m = MustRead(tmp / "a");
  const auto up = m.graph.FindInitializer("model.layers.0.mlp.up_proj.weight")->ToFloatVector();
  double sum = 0, sq = 0;
  for (float v : up) sum += v, sq += double(v) * v;
  const double mean = sum / double(up.size()), sd = std::sqrt(sq / double(up.size()) - mean * mean);
  CHECK(std::fabs(mean) < 0.002);
  CHECK(sd == Approx(0.02).epsilon(0.05));
  CHECK(m.graph.FindInitializer("model.norm.weight")->FloatAt(3) == 1.0f);
  auto tl = SynthPreset("tinyllama-1.1b");
  REQUIRE(tl.ok());
  CHECK(SynthParameterCount(*tl) == 1100048384);  // TinyLlama-1.1B's count
  CHECK_FALSE(SynthPreset("7b").ok());
  SynthSpec bad;
  bad.kv_heads = 3;
  CHECK_THAT(WriteSyntheticLlama(bad, tmp / "bad").message(), Contains("kv_heads 3"));
}

// ---------------------------------------------------------------- runtime ---

namespace {

// calib_tokens.json sequences 0..3 and calib_ref_logits.bin [4, 256, V].
void CheckBundledModel(const std::string& name, float* full_diff, float* kv_diff) {
  const std::string dir = kModels + "/" + name;
  const Model m = MustRead(dir);
  const DecoderSpec& d = *m.decoder;
  auto interp = Interpreter::Create(m.graph);
  INFO(interp.status().message());
  REQUIRE(interp.ok());
  const json calib = ReadJson(dir + "/calib_tokens.json");
  const size_t V = static_cast<size_t>(d.vocab_size), T = 256;
  std::vector<float> ref(4 * T * V);
  std::ifstream in(dir + "/calib_ref_logits.bin", std::ios::binary);
  in.read(reinterpret_cast<char*>(ref.data()), static_cast<std::streamsize>(ref.size() * 4));
  REQUIRE(in.gcount() == static_cast<std::streamsize>(ref.size() * 4));
  *full_diff = *kv_diff = 0;
  for (size_t sidx = 0; sidx < 4; ++sidx) {
    const std::vector<int64_t> ids = calib["sequences"][sidx].get<std::vector<int64_t>>();
    REQUIRE(ids.size() == T);
    const float* r = ref.data() + sidx * T * V;
    std::vector<Tensor> kv;
    const Tensor full = RunStep(**interp, d, 1, ids, std::vector<int64_t>(T, 1), Iota(0, 256), &kv);
    REQUIRE(full.shape() == std::vector<int64_t>{1, 256, d.vocab_size});
    *full_diff = std::max(*full_diff, MaxAbsDiff(full.data<float>(), r, T * V));
    // Prefill 200 tokens, then 56 single-token steps through the cache.
    kv.clear();
    const size_t P = 200;
    const Tensor pre = RunStep(**interp, d, 1, {ids.begin(), ids.begin() + P},
                               std::vector<int64_t>(P, 1), Iota(0, P), &kv);
    *kv_diff = std::max(*kv_diff, MaxAbsDiff(pre.data<float>(), full.data<float>(), P * V));
    for (size_t t = P; t < T; ++t) {
      const Tensor step = RunStep(**interp, d, 1, {ids[t]}, std::vector<int64_t>(t + 1, 1),
                                  {static_cast<int64_t>(t)}, &kv);
      REQUIRE(step.shape() == std::vector<int64_t>{1, 1, d.vocab_size});
      *kv_diff = std::max(*kv_diff, MaxAbsDiff(step.data<float>(), full.data<float>() + t * V, V));
    }
    CHECK(kv[0].shape() == std::vector<int64_t>{1, d.num_kv_heads, 256, d.head_dim});
  }
}

}  // namespace

TEST_CASE("HF graph reproduces the golden logits of the bundled models", "[hf][runtime]") {
  for (const char* name : {"stories260k", "kjv-byte"}) {
    float full = 0, kv = 0;
    CheckBundledModel(name, &full, &kv);
    INFO(name << ": max abs diff vs calib_ref_logits " << full << ", KV decode vs full " << kv);
    CHECK(full <= 1e-3f);
    CHECK(kv <= 1e-3f);
  }
}

TEST_CASE("HF graph matches a plain C++ forward on synthetic models", "[hf][runtime]") {
  struct Case {
    const char* what;
    SynthSpec spec;
    int64_t window;
  };
  std::vector<Case> cases;
  cases.push_back({"llama GQA untied", SynthSpec{}, 0});
  SynthSpec qwen;
  qwen.architecture = "Qwen2ForCausalLM";
  qwen.tie_embeddings = true;
  cases.push_back({"qwen2 biases tied", qwen, 0});
  SynthSpec mistral;
  mistral.architecture = "MistralForCausalLM";
  mistral.kv_heads = 4;  // plain multi-head attention
  cases.push_back({"mistral sliding window 5", mistral, 5});
  TempDir tmp("hf");
  const std::vector<int64_t> ids = {1, 17, 200, 3, 3, 99, 45, 12, 250, 7, 64, 128};
  for (const auto& c : cases) {
    INFO(c.what);
    const std::string dir = WriteTiny(tmp, c.spec, std::to_string(c.spec.seed) + c.spec.architecture);
    SharpenAttention(dir, 12.0f);
    if (c.window > 0) {
      json cfg = ReadJson(dir + "/config.json");
      cfg["sliding_window"] = c.window;
      WriteJson(dir + "/config.json", cfg);
    }
    const Model m = MustRead(dir);
    auto interp = Interpreter::Create(m.graph);
    INFO(interp.status().message());
    REQUIRE(interp.ok());
    const std::vector<float> ref =
        ReferenceLogits(m, ids, c.spec.architecture == "Qwen2ForCausalLM", c.window);
    std::vector<Tensor> kv;
    const int64_t n = static_cast<int64_t>(ids.size());
    const Tensor got = RunStep(**interp, *m.decoder, 1, ids, std::vector<int64_t>(ids.size(), 1),
                               Iota(0, n), &kv);
    float scale = 0;
    for (float v : ref) scale = std::max(scale, std::fabs(v));
    CHECK(scale > 0.1f);
    CHECK(MaxAbsDiff(got.data<float>(), ref.data(), ref.size()) <= 1e-4f * scale + 1e-6f);
  }
}

TEST_CASE("HF graph: left padding and batching do not change a sequence's logits", "[hf][runtime]") {
  TempDir tmp("hf");
  const std::string dir = WriteTiny(tmp);
  SharpenAttention(dir, 12.0f);
  const Model m = MustRead(dir);
  auto interp = Interpreter::Create(m.graph);
  REQUIRE(interp.ok());
  const DecoderSpec& d = *m.decoder;
  const std::vector<int64_t> a = {1, 5, 9, 33, 2, 90, 14, 6}, b = {1, 77, 8, 41, 100};
  std::vector<Tensor> kv;
  const Tensor la = RunStep(**interp, d, 1, a, std::vector<int64_t>(8, 1), Iota(0, 8), &kv);
  kv.clear();
  const Tensor lb = RunStep(**interp, d, 1, b, std::vector<int64_t>(5, 1), Iota(0, 5), &kv);
  // Batch of 2: b left-padded by 3 (pad id 0, mask 0, positions from 0 at
  // its first real token).
  std::vector<int64_t> ids = a, mask(8, 1), pos = Iota(0, 8);
  for (int i = 0; i < 3; ++i) ids.push_back(0), mask.push_back(0), pos.push_back(0);
  ids.insert(ids.end(), b.begin(), b.end());
  mask.insert(mask.end(), 5, 1);
  const auto pb = Iota(0, 5);
  pos.insert(pos.end(), pb.begin(), pb.end());
  kv.clear();
  const Tensor lab = RunStep(**interp, d, 2, ids, mask, pos, &kv);
  const size_t V = static_cast<size_t>(d.vocab_size);
  CHECK(MaxAbsDiff(lab.data<float>(), la.data<float>(), 8 * V) <= 1e-5f);
  CHECK(MaxAbsDiff(lab.data<float>() + (8 + 3) * V, lb.data<float>(), 5 * V) <= 1e-5f);
  // One more step for both rows through the cache (mask grows by one).
  std::vector<int64_t> mask2 = mask;
  mask2.insert(mask2.begin() + 8, 1);
  mask2.push_back(1);
  const Tensor step = RunStep(**interp, d, 2, {3, 3}, mask2, {8, 5}, &kv);
  std::vector<Tensor> kv_a, kv_b;
  std::vector<int64_t> a2 = a, b2 = b;
  a2.push_back(3), b2.push_back(3);
  const Tensor la2 = RunStep(**interp, d, 1, a2, std::vector<int64_t>(9, 1), Iota(0, 9), &kv_a);
  const Tensor lb2 = RunStep(**interp, d, 1, b2, std::vector<int64_t>(6, 1), Iota(0, 6), &kv_b);
  CHECK(MaxAbsDiff(step.data<float>(), la2.data<float>() + 8 * V, V) <= 1e-5f);
  CHECK(MaxAbsDiff(step.data<float>() + V, lb2.data<float>() + 5 * V, V) <= 1e-5f);
}
