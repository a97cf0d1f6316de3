#include "libcompress/io/hf_llama.h"
#include "libcompress/common/file_util.h"
#include "libcompress/common/json_parse.h"

#include <sys/stat.h>  // mkdir

#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "libcompress/io/atomic_file.h"
#include "libcompress/io/safetensors.h"

namespace slim {
namespace {

using nlohmann::json;

constexpr const char* kSupportedArchitectures =
    "LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM";

std::string DirName(const std::string& p) {
  const auto slash = p.find_last_of('/');
  return slash == std::string::npos ? "." : p.substr(0, slash == 0 ? 1 : slash);
}

Expected<json> ReadJson(const std::string& path) {
  SLIM_ASSIGN_OR_RETURN(const std::string text, ReadFileBytes(path));
  SLIM_ASSIGN_OR_RETURN(json j, ParseJsonText(text, path));
  SLIM_CHECK_INPUT(j.is_object(), path, ": expected a JSON object, found a ", j.type_name());
  return j;
}

// ---------------------------------------------------------------- config ---

struct HfConfig {
  std::string architecture;
  int64_t hidden = 0, intermediate = 0, layers = 0, heads = 0, kv_heads = 0, head_dim = 0;
  int64_t vocab = 0, max_positions = 2048;
  double rms_norm_eps = 1e-6, rope_theta = 10000.0;
  bool tie_embeddings = false;
  bool qkv_bias = false, o_bias = false, mlp_bias = false;
  int64_t sliding_window = 0;  // 0: every earlier position is visible
  int64_t bos = -1, eos = -1;
};

class ConfigReader {
 public:
  ConfigReader(const std::string& path, const json& j) : path_(path), j_(j) {}

  bool Has(const char* key) const { return j_.contains(key) && !j_[key].is_null(); }

  Status Int(const char* key, bool required, int64_t min_value, int64_t* out,
             int64_t max_value = int64_t{1} << 31) const {
    if (!Has(key)) {
      if (required) return InvalidInput(path_, ": required key \"", key, "\" is missing");
      return Status::Ok();
    }
    const json& v = j_[key];
    SLIM_CHECK_INPUT(v.is_number_integer(), path_, ": \"", key, "\" must be an integer, found ",
                     v.dump());
    const int64_t x = v.get<int64_t>();
    // Bounded so that products of dims (weights, KV cache) cannot overflow
    // and nothing is allocated from a hostile count (kConfigLimits).
    SLIM_CHECK_INPUT(x >= min_value && x <= max_value, path_, ": \"", key, "\" = ", x,
                     " is out of range [", min_value, ", ", max_value, "]");
    *out = x;
    return Status::Ok();
  }

  Status Float(const char* key, double* out) const {
    if (!Has(key)) return Status::Ok();
    const json& v = j_[key];
    SLIM_CHECK_INPUT(v.is_number() && std::isfinite(v.get<double>()) && v.get<double>() > 0,
                     path_, ": \"", key, "\" must be a positive number, found ", v.dump());
    *out = v.get<double>();
    return Status::Ok();
  }

  Status Bool(const char* key, bool* out) const {
    if (!Has(key)) return Status::Ok();
    SLIM_CHECK_INPUT(j_[key].is_boolean(), path_, ": \"", key, "\" must be true or false, found ",
                     j_[key].dump());
    *out = j_[key].get<bool>();
    return Status::Ok();
  }

  // Token ids may be an integer or a list (several EOS ids); the first one
  // is the one the decoder stops on.
  Status TokenId(const char* key, int64_t* out) const {
    if (!Has(key)) return Status::Ok();
    const json* v = &j_[key];
    if (v->is_array() && !v->empty()) v = &(*v)[0];
    SLIM_CHECK_INPUT(v->is_number_integer() && v->get<int64_t>() >= 0, path_, ": \"", key,
                     "\" must be a non-negative integer, found ", j_[key].dump());
    *out = v->get<int64_t>();
    return Status::Ok();
  }

 private:
  const std::string& path_;
  const json& j_;
};

// Upper bounds on config counts, checked before anything is built from
// them. Each is far above every published Llama/Mistral/Qwen2 checkpoint
// (largest seen: 126 layers, 128 heads, 16384 hidden, 53248 intermediate,
// 152064 vocabulary, head_dim 256) and low enough that a hostile value
// fails with a message instead of exhausting memory.
struct ConfigLimits {
  static constexpr int64_t kLayers = 1024;
  static constexpr int64_t kHeads = 1024;
  static constexpr int64_t kHidden = int64_t{1} << 18;
  static constexpr int64_t kIntermediate = int64_t{1} << 20;
  static constexpr int64_t kVocab = int64_t{1} << 23;
  static constexpr int64_t kHeadDim = 4096;
};

Expected<HfConfig> ParseConfig(const std::string& path) {
  SLIM_ASSIGN_OR_RETURN(json j, ReadJson(path));
  ConfigReader r(path, j);
  HfConfig c;
  SLIM_CHECK_INPUT(r.Has("architectures") && j["architectures"].is_array() &&
                       !j["architectures"].empty() && j["architectures"][0].is_string(),
                   path, ": required key \"architectures\" is missing or not a list of names");
  c.architecture = j["architectures"][0].get<std::string>();
  const bool qwen2 = c.architecture == "Qwen2ForCausalLM";
  if (c.architecture != "LlamaForCausalLM" && c.architecture != "MistralForCausalLM" && !qwen2) {
    return Unsupported(path, ": architecture '", c.architecture,
                       "' is not supported (supported: ", kSupportedArchitectures, ")");
  }
  using L = ConfigLimits;
  SLIM_RETURN_IF_ERROR(r.Int("hidden_size", true, 1, &c.hidden, L::kHidden));
  SLIM_RETURN_IF_ERROR(r.Int("intermediate_size", true, 1, &c.intermediate, L::kIntermediate));
  SLIM_RETURN_IF_ERROR(r.Int("num_hidden_layers", true, 1, &c.layers, L::kLayers));
  SLIM_RETURN_IF_ERROR(r.Int("num_attention_heads", true, 1, &c.heads, L::kHeads));
  SLIM_RETURN_IF_ERROR(r.Int("vocab_size", true, 1, &c.vocab, L::kVocab));
  c.kv_heads = c.heads;
  SLIM_RETURN_IF_ERROR(r.Int("num_key_value_heads", false, 1, &c.kv_heads, L::kHeads));
  SLIM_CHECK_INPUT(c.heads % c.kv_heads == 0, path, ": num_attention_heads ", c.heads,
                   " is not a multiple of num_key_value_heads ", c.kv_heads);
  if (r.Has("head_dim")) {
    SLIM_RETURN_IF_ERROR(r.Int("head_dim", false, 1, &c.head_dim, L::kHeadDim));
  } else {
    SLIM_CHECK_INPUT(c.hidden % c.heads == 0, path, ": hidden_size ", c.hidden,
                     " is not a multiple of num_attention_heads ", c.heads,
                     " and there is no head_dim");
    c.head_dim = c.hidden / c.heads;
  }
  SLIM_CHECK_INPUT(c.head_dim % 2 == 0, path, ": head_dim ", c.head_dim,
                   " must be even (rotary embedding rotates pairs)");
  SLIM_RETURN_IF_ERROR(r.Int("max_position_embeddings", false, 1, &c.max_positions));
  SLIM_RETURN_IF_ERROR(r.Float("rms_norm_eps", &c.rms_norm_eps));
  SLIM_RETURN_IF_ERROR(r.Float("rope_theta", &c.rope_theta));
  SLIM_RETURN_IF_ERROR(r.Bool("tie_word_embeddings", &c.tie_embeddings));
  // Qwen2 always has q/k/v biases (its config has no switch for them);
  // Llama/Mistral's attention_bias adds biases to q/k/v and o.
  c.qkv_bias = qwen2;
  bool attention_bias = false;
  SLIM_RETURN_IF_ERROR(r.Bool("attention_bias", &attention_bias));
  if (!qwen2) {
    c.qkv_bias = c.o_bias = attention_bias;
    SLIM_RETURN_IF_ERROR(r.Bool("mlp_bias", &c.mlp_bias));
  }
  SLIM_RETURN_IF_ERROR(r.TokenId("bos_token_id", &c.bos));
  SLIM_RETURN_IF_ERROR(r.TokenId("eos_token_id", &c.eos));
  if (r.Has("rope_scaling")) {
    return Unsupported(path, ": \"rope_scaling\" = ", j["rope_scaling"].dump(),
                       " is not supported (only plain RoPE: rope_scaling null)");
  }
  if (r.Has("hidden_act")) {
    SLIM_CHECK_INPUT(j["hidden_act"].is_string(), path, ": \"hidden_act\" must be a string");
    const std::string act = j["hidden_act"].get<std::string>();
    if (act != "silu" && act != "swish") {
      return Unsupported(path, ": hidden_act '", act, "' is not supported (only silu)");
    }
  }
  if (qwen2) {
    bool use_window = false;
    SLIM_RETURN_IF_ERROR(r.Bool("use_sliding_window", &use_window));
    if (use_window) {
      return Unsupported(path, ": Qwen2 \"use_sliding_window\": true is not supported");
    }
  } else if (c.architecture == "MistralForCausalLM") {
    SLIM_RETURN_IF_ERROR(r.Int("sliding_window", false, 1, &c.sliding_window));
  }
  return c;
}

// --------------------------------------------------------------- weights ---

using TensorMap = std::map<std::string, Tensor>;

// A shard name from an index must be a plain file name in the same
// directory: an index must not make the reader open files elsewhere.
bool IsPlainFileName(const std::string& name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string::npos &&
         name.find('\\') == std::string::npos && name.find('\0') == std::string::npos;
}

Status AddTensors(const std::string& file, std::vector<std::pair<std::string, Tensor>> tensors,
                  std::map<std::string, std::string>* where, TensorMap* out) {
  for (auto& [name, t] : tensors) {
    auto [it, inserted] = where->emplace(name, file);
    SLIM_CHECK_INPUT(inserted, file, ": tensor '", name, "' is also stored in ", it->second);
    (*out)[name] = std::move(t);
  }
  return Status::Ok();
}

Expected<TensorMap> ReadShardedWeights(const std::string& dir, const std::string& index_path) {
  SLIM_ASSIGN_OR_RETURN(json index, ReadJson(index_path));
  SLIM_CHECK_INPUT(index.contains("weight_map") && index["weight_map"].is_object(), index_path,
                   ": \"weight_map\" must be an object {tensor name: shard file}");
  const json& weight_map = index["weight_map"];
  std::set<std::string> shards;
  for (auto it = weight_map.begin(); it != weight_map.end(); ++it) {
    SLIM_CHECK_INPUT(it->is_string(), index_path, ": weight_map entry '", it.key(),
                     "' must name a shard file");
    const std::string shard = it->get<std::string>();
    SLIM_CHECK_INPUT(IsPlainFileName(shard), index_path, ": weight_map entry '", it.key(),
                     "' names shard '", shard, "', which is not a file name in ", dir);
    shards.insert(shard);
  }
  SLIM_CHECK_INPUT(!shards.empty(), index_path, ": weight_map names no shard");
  TensorMap tensors;
  std::map<std::string, std::string> where;
  for (const std::string& shard : shards) {
    const std::string shard_path = dir + "/" + shard;
    SLIM_ASSIGN_OR_RETURN(auto t, ReadSafetensors(shard_path));
    SLIM_RETURN_IF_ERROR(AddTensors(shard_path, std::move(t), &where, &tensors));
  }
  for (auto it = weight_map.begin(); it != weight_map.end(); ++it) {
    const std::string expected = dir + "/" + it->get<std::string>();
    auto w = where.find(it.key());
    SLIM_CHECK_INPUT(w != where.end(), index_path, ": tensor '", it.key(),
                     "' is listed in shard ", it->get<std::string>(), " but is not in it");
    SLIM_CHECK_INPUT(w->second == expected, index_path, ": tensor '", it.key(), "' is listed in ",
                     expected, " but stored in ", w->second);
  }
  return tensors;
}

// ---------------------------------------------------------- graph builder --

// Appends nodes with unique names; every node's single output is named
// after the node, so errors about a value point at the node making it.
class Builder {
 public:
  explicit Builder(Graph* g) : g_(*g) {}

  std::string Op(const std::string& op, const std::string& name,
                 std::vector<std::string> inputs, std::map<std::string, Attribute> attrs = {}) {
    Node n;
    n.name = name;
    n.op_type = op;
    n.inputs = std::move(inputs);
    n.outputs = {name};
    n.attrs = std::move(attrs);
    g_.nodes.push_back(std::move(n));
    return name;
  }

  std::string ConstI64(const std::string& name, std::vector<int64_t> v, bool scalar = false) {
    if (!g_.FindInitializer(name)) {
      std::vector<int64_t> shape;
      if (!scalar) shape = {static_cast<int64_t>(v.size())};
      g_.AddInitializer(name, Tensor::FromVector(DType::kInt64, shape, v));
    }
    return name;
  }
  std::string ConstF32(const std::string& name, std::vector<float> v, bool scalar = false) {
    if (!g_.FindInitializer(name)) {
      std::vector<int64_t> shape;
      if (!scalar) shape = {static_cast<int64_t>(v.size())};
      g_.AddInitializer(name, Tensor::FromVector(DType::kFloat32, shape, v));
    }
    return name;
  }
  std::string Axes(std::vector<int64_t> axes) {
    std::string name = "const.axes";
    for (int64_t a : axes) name += "_" + std::to_string(a);
    return ConstI64(name, std::move(axes));
  }

  // The weight as float32: the initializer itself, or Cast(W) that the
  // interpreter elides when W feeds only Gemm/MatMul B inputs.
  std::string Float(const std::string& weight) {
    const Tensor* t = g_.FindInitializer(weight);
    if (t->dtype() == DType::kFloat32) return weight;
    return Op("Cast", weight + ".cast_f32", {weight},
              {{"to", Attribute::Int(static_cast<int64_t>(DType::kFloat32))}});
  }

  // y = x @ W^T (+ b): x [N, in], W [out, in] as stored by HF.
  std::string Linear(const std::string& name, const std::string& x, const std::string& weight,
                     const std::string& bias) {
    std::vector<std::string> in = {x, Float(weight)};
    if (!bias.empty()) in.push_back(Float(bias));
    return Op("Gemm", name, std::move(in), {{"transB", Attribute::Int(1)}});
  }

  // x * 1/sqrt(mean(x^2, last axis) + eps) * w, on x [N, hidden].
  std::string RmsNorm(const std::string& name, const std::string& x, const std::string& weight,
                      const std::string& eps) {
    const std::string sq = Op("Mul", name + ".sq", {x, x});
    const std::string ms = Op("ReduceMean", name + ".mean", {sq},
                              {{"axes", Attribute::Ints({-1})}, {"keepdims", Attribute::Int(1)}});
    const std::string var = Op("Add", name + ".add_eps", {ms, eps});
    const std::string rms = Op("Sqrt", name + ".sqrt", {var});
    const std::string inv = Op("Reciprocal", name + ".inv", {rms});
    const std::string normed = Op("Mul", name + ".normed", {x, inv});
    return Op("Mul", name, {normed, Float(weight)});
  }

 private:
  Graph& g_;
};

struct LayerNames {
  std::string in_norm, post_norm, q, k, v, o, gate, up, down;
  std::string q_bias, k_bias, v_bias, o_bias, gate_bias, up_bias, down_bias;
};

LayerNames NamesForLayer(const HfConfig& c, int64_t l) {
  const std::string p = "model.layers." + std::to_string(l) + ".";
  LayerNames n;
  n.in_norm = p + "input_layernorm.weight";
  n.post_norm = p + "post_attention_layernorm.weight";
  n.q = p + "self_attn.q_proj.weight";
  n.k = p + "self_attn.k_proj.weight";
  n.v = p + "self_attn.v_proj.weight";
  n.o = p + "self_attn.o_proj.weight";
  n.gate = p + "mlp.gate_proj.weight";
  n.up = p + "mlp.up_proj.weight";
  n.down = p + "mlp.down_proj.weight";
  if (c.qkv_bias) {
    n.q_bias = p + "self_attn.q_proj.bias";
    n.k_bias = p + "self_attn.k_proj.bias";
    n.v_bias = p + "self_attn.v_proj.bias";
  }
  if (c.o_bias) n.o_bias = p + "self_attn.o_proj.bias";
  if (c.mlp_bias) {
    n.gate_bias = p + "mlp.gate_proj.bias";
    n.up_bias = p + "mlp.up_proj.bias";
    n.down_bias = p + "mlp.down_proj.bias";
  }
  return n;
}

// Every tensor the graph reads, with the shape HF stores it in.
std::vector<std::pair<std::string, std::vector<int64_t>>> ExpectedTensors(const HfConfig& c) {
  const int64_t q_out = c.heads * c.head_dim, kv_out = c.kv_heads * c.head_dim;
  std::vector<std::pair<std::string, std::vector<int64_t>>> e;
  e.push_back({"model.embed_tokens.weight", {c.vocab, c.hidden}});
  for (int64_t l = 0; l < c.layers; ++l) {
    const LayerNames n = NamesForLayer(c, l);
    e.push_back({n.in_norm, {c.hidden}});
    e.push_back({n.q, {q_out, c.hidden}});
    e.push_back({n.k, {kv_out, c.hidden}});
    e.push_back({n.v, {kv_out, c.hidden}});
    e.push_back({n.o, {c.hidden, q_out}});
    e.push_back({n.post_norm, {c.hidden}});
    e.push_back({n.gate, {c.intermediate, c.hidden}});
    e.push_back({n.up, {c.intermediate, c.hidden}});
    e.push_back({n.down, {c.hidden, c.intermediate}});
    if (c.qkv_bias) {
      e.push_back({n.q_bias, {q_out}});
      e.push_back({n.k_bias, {kv_out}});
      e.push_back({n.v_bias, {kv_out}});
    }
    if (c.o_bias) e.push_back({n.o_bias, {c.hidden}});
    if (c.mlp_bias) {
      e.push_back({n.gate_bias, {c.intermediate}});
      e.push_back({n.up_bias, {c.intermediate}});
      e.push_back({n.down_bias, {c.hidden}});
    }
  }
  e.push_back({"model.norm.weight", {c.hidden}});
  if (!c.tie_embeddings) e.push_back({"lm_head.weight", {c.vocab, c.hidden}});
  return e;
}

void SetMetadata(const HfConfig& c, Graph* g) {
  auto num = [](double v) {
    std::ostringstream os;
    os.precision(17);
    os << v;
    return os.str();
  };
  auto& m = g->metadata;
  m["hf.architecture"] = c.architecture;
  m["hf.hidden_size"] = std::to_string(c.hidden);
  m["hf.intermediate_size"] = std::to_string(c.intermediate);
  m["hf.num_hidden_layers"] = std::to_string(c.layers);
  m["hf.num_attention_heads"] = std::to_string(c.heads);
  m["hf.num_key_value_heads"] = std::to_string(c.kv_heads);
  m["hf.head_dim"] = std::to_string(c.head_dim);
  m["hf.vocab_size"] = std::to_string(c.vocab);
  m["hf.max_position_embeddings"] = std::to_string(c.max_positions);
  m["hf.rms_norm_eps"] = num(c.rms_norm_eps);
  m["hf.rope_theta"] = num(c.rope_theta);
  m["hf.tie_word_embeddings"] = c.tie_embeddings ? "true" : "false";
  if (c.sliding_window > 0) m["hf.sliding_window"] = std::to_string(c.sliding_window);
}

void BuildGraph(const HfConfig& c, Graph* graph) {
  Graph& g = *graph;
  Builder b(&g);
  const int64_t rep = c.heads / c.kv_heads, hd = c.head_dim;
  const Dim batch("batch_size"), seq("sequence_length"), past("past_sequence_length"),
      total("total_sequence_length");
  g.inputs.push_back({"input_ids", DType::kInt64, Shape{batch, seq}});
  g.inputs.push_back({"attention_mask", DType::kInt64, Shape{batch, total}});
  g.inputs.push_back({"position_ids", DType::kInt64, Shape{batch, seq}});
  for (int64_t l = 0; l < c.layers; ++l) {
    for (const auto& name : {DecoderSpec::PastKey(l), DecoderSpec::PastValue(l)}) {
      g.inputs.push_back({name, DType::kFloat32, Shape{batch, c.kv_heads, past, hd}});
    }
  }
  g.outputs.push_back({"logits", DType::kFloat32, Shape{batch, seq, c.vocab}});
  for (int64_t l = 0; l < c.layers; ++l) {
    for (const auto& name : {DecoderSpec::PresentKey(l), DecoderSpec::PresentValue(l)}) {
      g.outputs.push_back({name, DType::kFloat32, Shape{batch, c.kv_heads, total, hd}});
    }
  }

  // Sizes from the inputs: past = total - seq.
  // Scalar int64 0 and 1: Gather indices, Range bounds, the mask's "real token".
  const std::string idx0 = b.ConstI64("const.i64_0", {0}, true);
  const std::string idx1 = b.ConstI64("const.i64_1", {1}, true);
  const std::string ids_shape = b.Op("Shape", "ids_shape", {"input_ids"});
  const std::string seq_len = b.Op("Gather", "seq_len", {ids_shape, idx1}, {{"axis", Attribute::Int(0)}});
  const std::string mask_shape = b.Op("Shape", "mask_shape", {"attention_mask"});
  const std::string total_len =
      b.Op("Gather", "total_len", {mask_shape, idx1}, {{"axis", Attribute::Int(0)}});
  const std::string past_len = b.Op("Sub", "past_len", {total_len, seq_len});

  // Additive attention bias [b, 1, 1, s, t]: 0 where key j is visible to
  // query i (j <= past + i, attention_mask[b, j] == 1, and within the
  // sliding window if any), -1e9 elsewhere. -1e9 rather than -FLT_MAX so
  // that adding it to a score cannot overflow to -inf; exp() of it is 0.
  const std::string q_pos = b.Op("Range", "mask.q_pos", {past_len, total_len, idx1});
  const std::string k_pos = b.Op("Range", "mask.k_pos", {idx0, total_len, idx1});
  const std::string q_col = b.Op("Unsqueeze", "mask.q_col", {q_pos, b.Axes({1})});
  const std::string future = b.Op("Greater", "mask.future", {k_pos, q_col});
  std::string visible = b.Op("Not", "mask.causal", {future});
  if (c.sliding_window > 0) {
    // HF Mistral hides j <= i - window: visible iff j > i - window.
    const std::string w = b.ConstI64("const.sliding_window", {c.sliding_window}, true);
    const std::string oldest = b.Op("Sub", "mask.window_start", {q_col, w});
    const std::string in_window = b.Op("Greater", "mask.in_window", {k_pos, oldest});
    visible = b.Op("And", "mask.causal_window", {visible, in_window});
  }
  const std::string not_pad = b.Op("Equal", "mask.not_pad", {"attention_mask", idx1});
  const std::string not_pad4 = b.Op("Unsqueeze", "mask.not_pad4", {not_pad, b.Axes({1, 2})});
  const std::string allowed = b.Op("And", "mask.allowed", {visible, not_pad4});
  const std::string zero_f = b.ConstF32("const.f32_0", {0.0f}, true);
  const std::string neg_f = b.ConstF32("const.f32_neg_1e9", {-1e9f}, true);
  const std::string bias4 = b.Op("Where", "mask.bias4", {allowed, zero_f, neg_f});
  const std::string bias5 = b.Op("Unsqueeze", "mask.bias", {bias4, b.Axes({1})});

  // RoPE tables for these positions (HF: emb = cat(freqs, freqs)), [b,1,s,hd].
  std::vector<float> inv_freq(static_cast<size_t>(hd / 2));
  for (size_t i = 0; i < inv_freq.size(); ++i) {
    inv_freq[i] = static_cast<float>(
        1.0 / std::pow(c.rope_theta, static_cast<double>(2 * i) / static_cast<double>(hd)));
  }
  const std::string inv = b.ConstF32("rope.inv_freq", inv_freq);
  const std::string pos_f = b.Op("Cast", "rope.pos_f32", {"position_ids"},
                                 {{"to", Attribute::Int(static_cast<int64_t>(DType::kFloat32))}});
  const std::string pos3 = b.Op("Unsqueeze", "rope.pos3", {pos_f, b.Axes({2})});
  const std::string freqs = b.Op("Mul", "rope.freqs", {pos3, inv});
  const std::string emb = b.Op("Concat", "rope.emb", {freqs, freqs}, {{"axis", Attribute::Int(-1)}});
  const std::string cos3 = b.Op("Cos", "rope.cos3", {emb});
  const std::string sin3 = b.Op("Sin", "rope.sin3", {emb});
  const std::string cos4 = b.Op("Unsqueeze", "rope.cos", {cos3, b.Axes({1})});
  const std::string sin4 = b.Op("Unsqueeze", "rope.sin", {sin3, b.Axes({1})});
  const std::string axis3 = b.Axes({3});
  const std::string start0 = b.ConstI64("const.i64_vec0", {0});
  const std::string half = b.ConstI64("const.rope_half", {hd / 2});
  const std::string end = b.ConstI64("const.rope_end", {hd});
  // x*cos + rotate_half(x)*sin with rotate_half(x) = cat(-x[hd/2:], x[:hd/2]).
  auto rope = [&](const std::string& name, const std::string& x) {
    const std::string lo = b.Op("Slice", name + ".lo", {x, start0, half, axis3});
    const std::string hi = b.Op("Slice", name + ".hi", {x, half, end, axis3});
    const std::string neg_hi = b.Op("Neg", name + ".neg_hi", {hi});
    const std::string rot = b.Op("Concat", name + ".rot", {neg_hi, lo}, {{"axis", Attribute::Int(-1)}});
    const std::string xc = b.Op("Mul", name + ".xcos", {x, cos4});
    const std::string rs = b.Op("Mul", name + ".rsin", {rot, sin4});
    return b.Op("Add", name, {xc, rs});
  };

  // Embedding lookup reads rows of the 16-bit table; hidden state is 2-D
  // [b*s, hidden] from here on so every linear layer is one Gemm.
  const std::string embed = "model.embed_tokens.weight";
  std::string x = b.Op("Gather", "embed", {embed, "input_ids"}, {{"axis", Attribute::Int(0)}});
  if (g.FindInitializer(embed)->dtype() != DType::kFloat32) {
    x = b.Op("Cast", "embed.f32", {x}, {{"to", Attribute::Int(static_cast<int64_t>(DType::kFloat32))}});
  }
  x = b.Op("Reshape", "embed.2d", {x, b.ConstI64("const.shape_2d_hidden", {-1, c.hidden})});

  const std::string eps = b.ConstF32("const.rms_norm_eps", {static_cast<float>(c.rms_norm_eps)}, true);
  const std::string q_shape = b.Op("Concat", "q_shape", {ids_shape, b.ConstI64("const.q_heads_dims", {c.heads, hd})},
                                   {{"axis", Attribute::Int(0)}});
  const std::string kv_shape = b.Op("Concat", "kv_shape", {ids_shape, b.ConstI64("const.kv_heads_dims", {c.kv_heads, hd})},
                                    {{"axis", Attribute::Int(0)}});
  const Attribute to_heads = Attribute::Ints({0, 2, 1, 3});
  const std::string scale = b.ConstF32("const.attn_scale", {static_cast<float>(1.0 / std::sqrt(static_cast<double>(hd)))}, true);
  const std::string q5_shape = b.ConstI64("const.q_grouped_shape", {0, c.kv_heads, rep, -1, hd});
  const std::string ctx4_shape = b.ConstI64("const.ctx_heads_shape", {0, c.heads, -1, hd});
  const std::string ctx2_shape = b.ConstI64("const.shape_2d_attn", {-1, c.heads * hd});
  const std::string axis2 = b.Axes({2});

  for (int64_t l = 0; l < c.layers; ++l) {
    const LayerNames n = NamesForLayer(c, l);
    const std::string p = "layers." + std::to_string(l) + ".";
    const std::string h = b.RmsNorm(p + "input_norm", x, n.in_norm, eps);
    auto heads = [&](const std::string& name, const std::string& w, const std::string& bias,
                     const std::string& shape) {
      const std::string y = b.Linear(p + name, h, w, bias);
      const std::string y4 = b.Op("Reshape", p + name + ".bshd", {y, shape});
      return b.Op("Transpose", p + name + ".bhsd", {y4}, {{"perm", to_heads}});
    };
    const std::string q = rope(p + "q.rope", heads("q", n.q, n.q_bias, q_shape));
    const std::string k = rope(p + "k.rope", heads("k", n.k, n.k_bias, kv_shape));
    const std::string v = heads("v", n.v, n.v_bias, kv_shape);
    const std::string present_k = b.Op("Concat", DecoderSpec::PresentKey(l),
                                       {DecoderSpec::PastKey(l), k}, {{"axis", Attribute::Int(2)}});
    const std::string present_v = b.Op("Concat", DecoderSpec::PresentValue(l),
                                       {DecoderSpec::PastValue(l), v}, {{"axis", Attribute::Int(2)}});
    // Grouped-query attention without repeating K/V: query heads sharing a
    // KV head are grouped, [b, kv, rep, s, hd] against K/V [b, kv, 1, t, hd]
    // (MatMul broadcasts the group axis), so no [b, heads, t, hd] copy of
    // the cache is made per step.
    const std::string qs = b.Op("Mul", p + "q.scaled", {q, scale});
    const std::string q5 = b.Op("Reshape", p + "q.grouped", {qs, q5_shape});
    const std::string kt = b.Op("Transpose", p + "k.t", {present_k}, {{"perm", Attribute::Ints({0, 1, 3, 2})}});
    const std::string kt5 = b.Op("Unsqueeze", p + "k.t5", {kt, axis2});
    const std::string v5 = b.Op("Unsqueeze", p + "v.5", {present_v, axis2});
    const std::string scores = b.Op("MatMul", p + "attn.scores", {q5, kt5});
    const std::string masked = b.Op("Add", p + "attn.masked", {scores, bias5});
    const std::string probs = b.Op("Softmax", p + "attn.probs", {masked}, {{"axis", Attribute::Int(-1)}});
    const std::string ctx5 = b.Op("MatMul", p + "attn.ctx", {probs, v5});
    const std::string ctx4 = b.Op("Reshape", p + "attn.ctx_bhsd", {ctx5, ctx4_shape});
    const std::string ctx_t = b.Op("Transpose", p + "attn.ctx_bshd", {ctx4}, {{"perm", to_heads}});
    const std::string ctx2 = b.Op("Reshape", p + "attn.ctx_2d", {ctx_t, ctx2_shape});
    const std::string o = b.Linear(p + "o", ctx2, n.o, n.o_bias);
    x = b.Op("Add", p + "attn.residual", {x, o});

    const std::string h2 = b.RmsNorm(p + "post_norm", x, n.post_norm, eps);
    const std::string gate = b.Linear(p + "mlp.gate", h2, n.gate, n.gate_bias);
    const std::string up = b.Linear(p + "mlp.up", h2, n.up, n.up_bias);
    const std::string sig = b.Op("Sigmoid", p + "mlp.gate_sigmoid", {gate});
    const std::string silu = b.Op("Mul", p + "mlp.silu", {gate, sig});
    const std::string prod = b.Op("Mul", p + "mlp.silu_up", {silu, up});
    const std::string down = b.Linear(p + "mlp.down", prod, n.down, n.down_bias);
    x = b.Op("Add", p + "mlp.residual", {x, down});
  }
  const std::string final_h = b.RmsNorm("final_norm", x, "model.norm.weight", eps);
  const std::string classifier = c.tie_embeddings ? embed : "lm_head.weight";
  const std::string logits2 = b.Linear("lm_head", final_h, classifier, "");
  const std::string logits_shape = b.Op("Concat", "logits_shape", {ids_shape, b.ConstI64("const.vocab", {c.vocab})},
                                        {{"axis", Attribute::Int(0)}});
  b.Op("Reshape", "logits", {logits2, logits_shape});
}

}  // namespace

Expected<Model> ReadHuggingFace(const std::string& path) {
  std::string dir, single;
  if (IsDirectory(path)) {
    dir = path;
    if (IsRegularFile(dir + "/model.safetensors")) single = dir + "/model.safetensors";
  } else if (IsRegularFile(path)) {
    dir = DirName(path);
    single = path;
  } else {
    return InvalidInput(path, ": no such file or directory");
  }
  const std::string config_path = dir + "/config.json";
  SLIM_CHECK_INPUT(IsRegularFile(config_path), path, ": no config.json in ", dir);
  SLIM_ASSIGN_OR_RETURN(HfConfig c, ParseConfig(config_path));

  TensorMap weights;
  std::string weights_desc;
  if (!single.empty()) {
    SLIM_ASSIGN_OR_RETURN(auto t, ReadSafetensors(single));
    for (auto& [name, tensor] : t) weights[name] = std::move(tensor);
    weights_desc = single;
  } else {
    const std::string index_path = dir + "/model.safetensors.index.json";
    SLIM_CHECK_INPUT(IsRegularFile(index_path), dir,
                     ": neither model.safetensors nor model.safetensors.index.json is present");
    SLIM_ASSIGN_OR_RETURN(weights, ReadShardedWeights(dir, index_path));
    weights_desc = index_path;
  }

  Model model;
  model.format = "safetensors";
  model.path = path;
  Graph& g = model.graph;
  g.name = c.architecture;
  g.producer_name = "slimpack";
  g.opset_imports[""] = 17;
  for (const auto& [name, shape] : ExpectedTensors(c)) {
    auto it = weights.find(name);
    SLIM_CHECK_INPUT(it != weights.end(), weights_desc, ": tensor '", name, "' is missing (",
                     c.architecture, " with this config.json needs it)");
    const Tensor& t = it->second;
    SLIM_CHECK_INPUT(t.shape() == shape, weights_desc, ": tensor '", name, "' has shape ",
                     ShapeToString(t.shape()), ", config.json implies ", ShapeToString(shape));
    if (t.dtype() != DType::kFloat16 && t.dtype() != DType::kBFloat16 &&
        t.dtype() != DType::kFloat32) {
      return Unsupported(weights_desc, ": tensor '", name, "' has dtype ", DTypeName(t.dtype()),
                         " (weights must be float16, bfloat16 or float32)");
    }
    g.AddInitializer(name, t);
  }
  BuildGraph(c, &g);
  SetMetadata(c, &g);
  SLIM_RETURN_IF_ERROR(g.Validate().WithContext(path + ": built graph"));

  DecoderSpec d;
  d.num_layers = c.layers;
  d.num_heads = c.heads;
  d.num_kv_heads = c.kv_heads;
  d.head_dim = c.head_dim;
  d.hidden_size = c.hidden;
  d.vocab_size = c.vocab;
  d.max_positions = c.max_positions;
  d.bos_token_id = c.bos;
  d.eos_token_id = c.eos;
  d.kv_dtype = DType::kFloat32;
  d.has_past = d.has_attention_mask = d.has_position_ids = true;
  model.decoder = d;
  return model;
}

Status WriteHuggingFace(const Model& model, const std::string& dir, const std::vector<std::string>& inputs) {
  const Graph& g = model.graph;
  auto meta = [&](const char* key) -> Expected<std::string> {
    auto it = g.metadata.find(std::string("hf.") + key);
    SLIM_CHECK_INPUT(it != g.metadata.end(), model.path, ": has no hf.", key,
                     " metadata (export --format hf needs a model read from a Hugging Face directory)");
    return it->second;
  };
  auto meta_int = [&](const char* key, int64_t* out) -> Status {
    SLIM_ASSIGN_OR_RETURN(std::string v, meta(key));
    *out = std::stoll(v);
    return Status::Ok();
  };
  HfConfig c;
  SLIM_ASSIGN_OR_RETURN(c.architecture, meta("architecture"));
  SLIM_RETURN_IF_ERROR(meta_int("hidden_size", &c.hidden));
  SLIM_RETURN_IF_ERROR(meta_int("intermediate_size", &c.intermediate));
  SLIM_RETURN_IF_ERROR(meta_int("num_hidden_layers", &c.layers));
  SLIM_RETURN_IF_ERROR(meta_int("num_attention_heads", &c.heads));
  SLIM_RETURN_IF_ERROR(meta_int("num_key_value_heads", &c.kv_heads));
  SLIM_RETURN_IF_ERROR(meta_int("head_dim", &c.head_dim));
  SLIM_RETURN_IF_ERROR(meta_int("vocab_size", &c.vocab));
  SLIM_RETURN_IF_ERROR(meta_int("max_position_embeddings", &c.max_positions));
  SLIM_ASSIGN_OR_RETURN(std::string eps, meta("rms_norm_eps"));
  SLIM_ASSIGN_OR_RETURN(std::string theta, meta("rope_theta"));
  SLIM_ASSIGN_OR_RETURN(std::string tie, meta("tie_word_embeddings"));
  c.rms_norm_eps = std::stod(eps);
  c.rope_theta = std::stod(theta);
  c.tie_embeddings = tie == "true";
  if (g.metadata.count("hf.sliding_window")) c.sliding_window = std::stoll(g.metadata.at("hf.sliding_window"));
  c.qkv_bias = g.FindInitializer("model.layers.0.self_attn.q_proj.bias") != nullptr;
  c.o_bias = g.FindInitializer("model.layers.0.self_attn.o_proj.bias") != nullptr;
  c.mlp_bias = g.FindInitializer("model.layers.0.mlp.gate_proj.bias") != nullptr;
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const auto& [name, shape] : ExpectedTensors(c)) {
    const Tensor* t = g.FindInitializer(name);
    SLIM_CHECK_INPUT(t != nullptr, model.path, ": tensor '", name,
                     "' is not in the graph as a float tensor (quantized? export --format hf writes float models: "
                     "compile with pruning passes only)");
    SLIM_CHECK_INPUT(IsFloat(t->dtype()), model.path, ": tensor '", name, "' has dtype ", DTypeName(t->dtype()),
                     " (export --format hf writes float models)");
    SLIM_CHECK_INPUT(t->shape() == shape, model.path, ": tensor '", name, "' has shape ", ShapeToString(t->shape()),
                     " where config.json implies ", ShapeToString(shape),
                     " (layers of different widths cannot be written as one config)");
    tensors.push_back({name, *t});
  }
  const bool qwen2 = c.architecture == "Qwen2ForCausalLM";
  json cfg = {{"architectures", {c.architecture}},
              {"model_type", qwen2 ? "qwen2" : c.architecture == "MistralForCausalLM" ? "mistral" : "llama"},
              {"hidden_size", c.hidden},
              {"intermediate_size", c.intermediate},
              {"num_hidden_layers", c.layers},
              {"num_attention_heads", c.heads},
              {"num_key_value_heads", c.kv_heads},
              {"head_dim", c.head_dim},
              {"vocab_size", c.vocab},
              {"max_position_embeddings", c.max_positions},
              {"rms_norm_eps", c.rms_norm_eps},
              {"rope_theta", c.rope_theta},
              {"rope_scaling", nullptr},
              {"hidden_act", "silu"},
              {"tie_word_embeddings", c.tie_embeddings},
              {"torch_dtype", DTypeName(g.FindInitializer("model.embed_tokens.weight")->dtype())}};
  if (!qwen2) {
    cfg["attention_bias"] = c.qkv_bias;
    cfg["mlp_bias"] = c.mlp_bias;
  }
  if (c.sliding_window > 0) cfg["sliding_window"] = c.sliding_window;
  if (model.decoder && model.decoder->bos_token_id >= 0) cfg["bos_token_id"] = model.decoder->bos_token_id;
  if (model.decoder && model.decoder->eos_token_id >= 0) cfg["eos_token_id"] = model.decoder->eos_token_id;
  if (!IsDirectory(dir)) {
    SLIM_CHECK_INPUT(::mkdir(dir.c_str(), 0777) == 0, dir, ": cannot create the directory: ", std::strerror(errno));
  }
  // The weights first: a config.json beside no weights is never left.
  SLIM_RETURN_IF_ERROR(CheckOutputPath(dir + "/model.safetensors", inputs));
  SLIM_RETURN_IF_ERROR(CheckOutputPath(dir + "/config.json", inputs));
  SLIM_RETURN_IF_ERROR(WriteSafetensors(dir + "/model.safetensors", tensors, {{"format", "pt"}}));
  return WriteFileAtomic(dir + "/config.json", cfg.dump(2) + "\n", inputs);
}

}  // namespace slim
