#include "libcompress/io/model_loader.h"
#include "libcompress/common/file_util.h"
#include "libcompress/common/json_parse.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "libcompress/io/hf_llama.h"
#include "libcompress/io/onnx.h"
#include "libcompress/io/packed_format.h"

namespace slim {
namespace {

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}
std::string DirName(const std::string& p) {
  const auto slash = p.find_last_of('/');
  return slash == std::string::npos ? "." : p.substr(0, slash == 0 ? 1 : slash);
}


Expected<nlohmann::json> ReadJsonFile(const std::string& path) {
  SLIM_ASSIGN_OR_RETURN(const std::string text, ReadFileBytes(path));
  return ParseJsonText(text, path);
}

// An ONNX graph carries no token ids or head counts; a config.json beside it
// (as Optimum exports write) supplies them.
Status ApplyConfigToOnnxDecoder(const std::string& dir, Model* model) {
  const std::string path = dir + "/config.json";
  if (!model->decoder || !PathExists(path)) return Status::Ok();
  SLIM_ASSIGN_OR_RETURN(nlohmann::json cfg, ReadJsonFile(path));
  SLIM_CHECK_INPUT(cfg.is_object(), path, ": expected a JSON object");
  DecoderSpec& d = *model->decoder;
  auto get = [&](const char* key, int64_t* out) {
    if (cfg.contains(key) && cfg[key].is_number_integer()) *out = cfg[key].get<int64_t>();
  };
  get("bos_token_id", &d.bos_token_id);
  get("eos_token_id", &d.eos_token_id);
  get("num_attention_heads", &d.num_heads);
  get("hidden_size", &d.hidden_size);
  get("max_position_embeddings", &d.max_positions);
  if (d.vocab_size == 0) get("vocab_size", &d.vocab_size);
  return Status::Ok();
}

// The files a loaded model came from: what the user named, the sidecars
// that exist beside it, and every file a tensor is mapped from (external
// data, safetensors shards).
void RecordFiles(const std::string& path, const std::string& dir, Model* model) {
  std::vector<std::string>& files = model->files;
  if (!IsDirectory(path)) files.push_back(path);
  if (!dir.empty()) {
    for (const char* side : {"config.json", "slimpack.json", "model.safetensors.index.json", "tokenizer.json",
                             "tokenizer_config.json"}) {
      const std::string p = dir + "/" + side;
      if (PathExists(p)) files.push_back(p);
    }
  }
  for (const std::string& name : model->graph.initializer_names()) {
    std::string mapped = model->graph.FindInitializer(name)->mapped_path();
    if (!mapped.empty()) files.push_back(std::move(mapped));
  }
  for (const Node& n : model->graph.nodes) {
    for (const auto& [key, attr] : n.attrs) {
      std::string mapped = attr.t.mapped_path();
      if (!mapped.empty()) files.push_back(std::move(mapped));
    }
  }
  std::sort(files.begin(), files.end());
  files.erase(std::unique(files.begin(), files.end()), files.end());
}

}  // namespace

Status ApplySlimpackSidecar(const std::string& dir, Model* model) {
  const std::string path = dir + "/slimpack.json";
  if (!PathExists(path)) return Status::Ok();
  SLIM_ASSIGN_OR_RETURN(nlohmann::json j, ReadJsonFile(path));
  SLIM_CHECK_INPUT(j.is_object(), path, ": expected a JSON object");
  if (!j.contains("vocab")) return Status::Ok();
  const auto& v = j["vocab"];
  SLIM_CHECK_INPUT(v.is_object() && v.contains("kind") && v["kind"].is_string(), path,
                   ": \"vocab\" must be an object with a string \"kind\"");
  const std::string kind = v["kind"].get<std::string>();
  SLIM_CHECK_INPUT(kind == "bytes", path, ": vocab kind '", kind,
                   "' is not supported (only \"bytes\")");
  ByteVocab bv;
  if (v.contains("first_id")) {
    SLIM_CHECK_INPUT(v["first_id"].is_number_integer() && v["first_id"].get<int64_t>() >= 0, path,
                     ": vocab.first_id must be a non-negative integer");
    bv.first_id = v["first_id"].get<int64_t>();
  }
  if (model->decoder && model->decoder->vocab_size > 0) {
    SLIM_CHECK_INPUT(bv.first_id + 256 <= model->decoder->vocab_size, path,
                     ": byte vocabulary ids ", bv.first_id, "..", bv.first_id + 255,
                     " exceed the model's vocabulary of ", model->decoder->vocab_size);
  }
  model->byte_vocab = bv;
  return Status::Ok();
}

// tokenizer.json (and tokenizer_config.json) beside the model travel with it.
Status ReadTokenizerFiles(const std::string& dir, Model* model) {
  const std::string path = dir + "/tokenizer.json";
  if (!PathExists(path)) return Status::Ok();
  TokenizerFiles t;
  SLIM_ASSIGN_OR_RETURN(t.json, ReadFileBytes(path));
  const std::string config = dir + "/tokenizer_config.json";
  if (PathExists(config)) {
    SLIM_ASSIGN_OR_RETURN(t.config, ReadFileBytes(config));
  }
  model->tokenizer = std::move(t);
  return Status::Ok();
}

Expected<Model> LoadModel(const std::string& path) {
  if (!PathExists(path)) return InvalidInput(path, ": no such file or directory");
  Model model;
  std::string dir;
  if (IsDirectory(path)) {
    SLIM_CHECK_INPUT(PathExists(path + "/config.json"), path,
                     ": directory has no config.json (for an ONNX model, name the .onnx file)");
    SLIM_ASSIGN_OR_RETURN(model, ReadHuggingFace(path));
    dir = path;
  } else if (IsPackedFile(path)) {
    // The packed file carries its decoder description and vocabulary itself.
    SLIM_ASSIGN_OR_RETURN(model, ReadPacked(path));
    model.path = path;
    RecordFiles(path, "", &model);
    return model;
  } else if (EndsWith(path, ".safetensors")) {
    SLIM_ASSIGN_OR_RETURN(model, ReadHuggingFace(path));
    dir = DirName(path);
  } else if (EndsWith(path, ".onnx")) {
    SLIM_ASSIGN_OR_RETURN(model, ReadOnnx(path));
    dir = DirName(path);
    SLIM_RETURN_IF_ERROR(ApplyConfigToOnnxDecoder(dir, &model));
  } else {
    return InvalidInput(path, ": unrecognised model format (expected a directory with config.json, "
                        "a .safetensors file or an .onnx file)");
  }
  model.path = path;
  SLIM_RETURN_IF_ERROR(ApplySlimpackSidecar(dir, &model));
  SLIM_RETURN_IF_ERROR(ReadTokenizerFiles(dir, &model));
  RecordFiles(path, dir, &model);
  return model;
}

void RefreshDecoderSpec(Model* model) {
  if (!model->decoder || !model->decoder->has_past) return;
  DecoderSpec& d = *model->decoder;
  for (const ValueInfo& in : model->graph.inputs) {
    if (in.name != DecoderSpec::PastKey(0) || !in.shape || in.shape->size() != 4) continue;
    if ((*in.shape)[1].is_static()) d.num_kv_heads = (*in.shape)[1].value;
    if ((*in.shape)[3].is_static()) d.head_dim = (*in.shape)[3].value;
  }
  auto heads = model->graph.metadata.find("hf.num_attention_heads");
  if (heads != model->graph.metadata.end()) d.num_heads = std::stoll(heads->second);
}

}  // namespace slim
