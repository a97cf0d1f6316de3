#include "libcompress/io/synth.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>

#include "libcompress/io/atomic_file.h"
#include "libcompress/io/safetensors.h"

namespace slim {
namespace {

constexpr double kWeightStd = 0.02;
constexpr double kTwoPi = 6.283185307179586476925286766559;
constexpr size_t kChunkElems = size_t{1} << 18;

uint64_t SplitMix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

uint64_t Fnv1a(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char ch : s) h = (h ^ ch) * 0x100000001b3ull;
  return h;
}

// Normal(0, std) stream for one tensor, seeded by (seed, name) so each
// tensor's values do not depend on which tensors come before it.
class NormalStream {
 public:
  NormalStream(uint64_t seed, const std::string& name) : state_(seed ^ Fnv1a(name)) {}
  double Next() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    // u1 in (0, 1] so log(u1) is finite; 53-bit uniforms.
    const double u1 = (static_cast<double>(SplitMix64(state_) >> 11) + 1.0) * 0x1.0p-53;
    const double u2 = static_cast<double>(SplitMix64(state_) >> 11) * 0x1.0p-53;
    const double r = std::sqrt(-2.0 * std::log(u1));
    const double a = kTwoPi * u2;
    spare_ = r * std::sin(a);
    has_spare_ = true;
    return r * std::cos(a);
  }

 private:
  uint64_t state_;
  double spare_ = 0;
  bool has_spare_ = false;
};

struct SynthTensor {
  std::string name;
  std::vector<int64_t> shape;
  bool ones;  // RMSNorm weight
};

std::vector<SynthTensor> TensorList(const SynthSpec& s) {
  const int64_t hd = s.hidden / s.heads;
  const int64_t q_out = s.heads * hd, kv_out = s.kv_heads * hd;
  const bool biases = s.architecture == "Qwen2ForCausalLM";
  std::vector<SynthTensor> t;
  t.push_back({"model.embed_tokens.weight", {s.vocab, s.hidden}, false});
  for (int64_t l = 0; l < s.layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    t.push_back({p + "input_layernorm.weight", {s.hidden}, true});
    t.push_back({p + "self_attn.q_proj.weight", {q_out, s.hidden}, false});
    if (biases) t.push_back({p + "self_attn.q_proj.bias", {q_out}, false});
    t.push_back({p + "self_attn.k_proj.weight", {kv_out, s.hidden}, false});
    if (biases) t.push_back({p + "self_attn.k_proj.bias", {kv_out}, false});
    t.push_back({p + "self_attn.v_proj.weight", {kv_out, s.hidden}, false});
    if (biases) t.push_back({p + "self_attn.v_proj.bias", {kv_out}, false});
    t.push_back({p + "self_attn.o_proj.weight", {s.hidden, q_out}, false});
    t.push_back({p + "post_attention_layernorm.weight", {s.hidden}, true});
    t.push_back({p + "mlp.gate_proj.weight", {s.intermediate, s.hidden}, false});
    t.push_back({p + "mlp.up_proj.weight", {s.intermediate, s.hidden}, false});
    t.push_back({p + "mlp.down_proj.weight", {s.hidden, s.intermediate}, false});
  }
  t.push_back({"model.norm.weight", {s.hidden}, true});
  if (!s.tie_embeddings) t.push_back({"lm_head.weight", {s.vocab, s.hidden}, false});
  return t;
}

Status ValidateSpec(const SynthSpec& s) {
  const int64_t kMax = int64_t{1} << 20;
  auto in_range = [&](int64_t v) { return v >= 1 && v <= kMax; };
  SLIM_CHECK_INPUT(in_range(s.hidden) && in_range(s.intermediate) && in_range(s.layers) &&
                       in_range(s.heads) && in_range(s.kv_heads) && in_range(s.vocab) &&
                       in_range(s.max_positions),
                   "synthetic model: every size must be in [1, 2^20]");
  SLIM_CHECK_INPUT(s.hidden % s.heads == 0, "synthetic model: hidden ", s.hidden,
                   " is not a multiple of heads ", s.heads);
  SLIM_CHECK_INPUT((s.hidden / s.heads) % 2 == 0, "synthetic model: head_dim ",
                   s.hidden / s.heads, " must be even");
  SLIM_CHECK_INPUT(s.heads % s.kv_heads == 0, "synthetic model: heads ", s.heads,
                   " is not a multiple of kv_heads ", s.kv_heads);
  if (s.architecture != "LlamaForCausalLM" && s.architecture != "MistralForCausalLM" &&
      s.architecture != "Qwen2ForCausalLM") {
    return Unsupported("synthetic model: architecture '", s.architecture,
                       "' is not supported (LlamaForCausalLM, MistralForCausalLM, "
                       "Qwen2ForCausalLM)");
  }
  if (s.dtype != DType::kFloat16 && s.dtype != DType::kBFloat16 && s.dtype != DType::kFloat32) {
    return Unsupported("synthetic model: dtype ", DTypeName(s.dtype),
                       " is not supported (float16, bfloat16, float32)");
  }
  return Status::Ok();
}

Status MakeDirs(const std::string& dir) {
  for (size_t pos = 1; pos <= dir.size(); ++pos) {
    if (pos != dir.size() && dir[pos] != '/') continue;
    const std::string prefix = dir.substr(0, pos);
    if (::mkdir(prefix.c_str(), 0755) != 0 && errno != EEXIST) {
      return InvalidInput(dir, ": cannot create directory ", prefix, ": ", std::strerror(errno));
    }
  }
  struct stat st{};
  SLIM_CHECK_INPUT(::stat(dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode), dir,
                   ": exists and is not a directory");
  return Status::Ok();
}

std::string ConfigJson(const SynthSpec& s) {
  std::string model_type = "llama";
  if (s.architecture == "MistralForCausalLM") model_type = "mistral";
  if (s.architecture == "Qwen2ForCausalLM") model_type = "qwen2";
  nlohmann::ordered_json j;
  j["architectures"] = {s.architecture};
  j["model_type"] = model_type;
  j["hidden_size"] = s.hidden;
  j["intermediate_size"] = s.intermediate;
  j["num_hidden_layers"] = s.layers;
  j["num_attention_heads"] = s.heads;
  j["num_key_value_heads"] = s.kv_heads;
  j["vocab_size"] = s.vocab;
  j["max_position_embeddings"] = s.max_positions;
  j["rms_norm_eps"] = 1e-5;
  j["rope_theta"] = 10000.0;
  j["rope_scaling"] = nullptr;
  j["hidden_act"] = "silu";
  j["tie_word_embeddings"] = s.tie_embeddings;
  j["bos_token_id"] = s.bos_token_id >= 0 ? nlohmann::json(s.bos_token_id) : nlohmann::json(nullptr);
  j["eos_token_id"] = s.eos_token_id >= 0 ? nlohmann::json(s.eos_token_id) : nlohmann::json(nullptr);
  j["torch_dtype"] = s.dtype == DType::kFloat16    ? "float16"
                     : s.dtype == DType::kBFloat16 ? "bfloat16"
                                                   : "float32";
  j["slimpack_synthetic"] = {{"seed", s.seed}, {"weight_std", kWeightStd}};
  return j.dump(2) + "\n";
}

// Element bits in the file's dtype.
void Encode(DType dtype, const std::vector<float>& v, std::vector<uint8_t>* out) {
  const size_t elem = DTypeSize(dtype);
  out->resize(v.size() * elem);
  uint8_t* p = out->data();
  for (size_t i = 0; i < v.size(); ++i, p += elem) {
    if (dtype == DType::kFloat16) {
      const uint16_t h = FloatToHalf(v[i]);
      std::memcpy(p, &h, 2);
    } else if (dtype == DType::kBFloat16) {
      const uint16_t h = FloatToBFloat16(v[i]);
      std::memcpy(p, &h, 2);
    } else {
      std::memcpy(p, &v[i], 4);
    }
  }
}

}  // namespace

Expected<SynthSpec> SynthPreset(const std::string& name) {
  SynthSpec s;
  if (name == "tiny") return s;  // the defaults are the test shape
  if (name == "125m") {
    s.hidden = 768, s.intermediate = 2048, s.layers = 12, s.heads = 12, s.kv_heads = 12;
    s.vocab = 32000, s.max_positions = 2048;
    return s;
  }
  if (name == "tinyllama-1.1b") {
    s.hidden = 2048, s.intermediate = 5632, s.layers = 22, s.heads = 32, s.kv_heads = 4;
    s.vocab = 32000, s.max_positions = 2048;
    return s;
  }
  std::string known;
  for (const auto& n : SynthPresetNames()) known += (known.empty() ? "" : ", ") + n;
  return InvalidInput("unknown synthetic model preset '", name, "' (known: ", known, ")");
}

std::vector<std::string> SynthPresetNames() { return {"tiny", "125m", "tinyllama-1.1b"}; }

int64_t SynthParameterCount(const SynthSpec& spec) {
  int64_t n = 0;
  for (const auto& t : TensorList(spec)) n += ShapeNumel(t.shape);
  return n;
}

Status WriteSyntheticLlama(const SynthSpec& spec, const std::string& dir) {
  SLIM_RETURN_IF_ERROR(ValidateSpec(spec));
  SLIM_RETURN_IF_ERROR(MakeDirs(dir));
  const std::vector<SynthTensor> tensors = TensorList(spec);
  std::vector<SafetensorsEntry> entries;
  for (const auto& t : tensors) entries.push_back({t.name, spec.dtype, t.shape});
  SLIM_ASSIGN_OR_RETURN(
      SafetensorsWriter w,
      SafetensorsWriter::Open(dir + "/model.safetensors", std::move(entries), {{"format", "pt"}}));
  std::vector<float> values;
  std::vector<uint8_t> bytes;
  for (const auto& t : tensors) {
    NormalStream rng(spec.seed, t.name);
    const size_t numel = static_cast<size_t>(ShapeNumel(t.shape));
    for (size_t done = 0; done < numel;) {
      const size_t n = std::min(kChunkElems, numel - done);
      values.resize(n);
      for (float& v : values) v = t.ones ? 1.0f : static_cast<float>(kWeightStd * rng.Next());
      Encode(spec.dtype, values, &bytes);
      SLIM_RETURN_IF_ERROR(w.Append(bytes.data(), bytes.size()));
      done += n;
    }
  }
  SLIM_RETURN_IF_ERROR(w.Commit());
  return WriteFileAtomic(dir + "/config.json", ConfigJson(spec));
}

}  // namespace slim
