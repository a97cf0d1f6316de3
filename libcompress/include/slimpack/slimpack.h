// slimpack's supported C++ API: load a model, compress it with a recipe,
// write the packed file, open it and run it, verify it against the
// original. Everything else in the source tree is internal and may change.
//
// Link with the CMake package:   find_package(slimpack CONFIG REQUIRED)
//                                target_link_libraries(app PRIVATE slimpack::compress)
//
// Errors are exceptions of type slimpack::Error carrying the command-line
// exit code they correspond to (2: bad input or unsupported, 3: internal).
// Objects are cheap to copy (shared handles); a Model is not thread-safe
// while Compress runs, a Session is used by one thread at a time.
//
//   slimpack::Model m = slimpack::Model::Load("models/kjv-byte");
//   m.Compress("int4");                                // a preset name or recipe JSON
//   m.WritePacked("kjv.int4.slim");
//   slimpack::Session s(slimpack::Model::Load("kjv.int4.slim"));
//   std::vector<float> logits = s.Append({1, 65, 110, 100});
//   slimpack::VerifyResult v = slimpack::Verify(slimpack::Model::Load("kjv.int4.slim"),
//                                               slimpack::Model::Load("models/kjv-byte"),
//                                               "models/kjv-byte/calib_tokens.json");
#pragma once

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace slimpack {

// "0.1.0 (git 1a2b3c4)"
std::string Version();

class Error : public std::runtime_error {
 public:
  Error(int exit_code, const std::string& message) : std::runtime_error(message), exit_code_(exit_code) {}
  int exit_code() const { return exit_code_; }

 private:
  int exit_code_;
};

struct CompressOptions {
  // Calibration data (token JSON, .txt or .jsonl with the model's tokenizer,
  // or an ONNX test-data directory); empty: none (presets that need it fail).
  std::string calib;
  size_t calib_skip = 0;       // hold out the first N sequences
  size_t calib_sequences = 32;  // use at most N (0 = all)
  int threads = 1;             // results do not depend on it
  std::string target = "generic";  // hardware profile name (`slimpack targets`)
};

class Model {
 public:
  // A Hugging Face directory, .safetensors, .onnx or packed file.
  static Model Load(const std::string& path);

  const std::string& path() const;
  std::string format() const;  // "onnx", "safetensors", "packed"
  uint64_t parameters() const;
  bool is_decoder() const;     // a language model the Session can drive

  // Runs `recipe` (a preset name such as "int4", "int8", "int4-gptq",
  // "prune24", or a recipe as JSON text) on the model in place. Returns the
  // compile report as JSON text (the keys of `slimpack compile --report`).
  std::string Compress(const std::string& recipe, const CompressOptions& options = {});
  // Writes the packed file atomically; never over one of the model's own files.
  void WritePacked(const std::string& path) const;

  struct Impl;
  std::shared_ptr<Impl> impl_;
};

// A decoding session with its KV cache over a language model.
class Session {
 public:
  explicit Session(const Model& model, int threads = 1);
  // Appends tokens to the context; returns their logits, row-major
  // [tokens.size(), vocab_size()].
  std::vector<float> Append(const std::vector<int64_t>& tokens);
  int64_t vocab_size() const;
  int64_t context_length() const;
  // Bytes the last Append read (weights, scales, KV cache), as counted.
  uint64_t last_bytes_read() const;

  struct Impl;
  std::shared_ptr<Impl> impl_;
};

struct VerifyResult {
  uint64_t tokens_evaluated = 0;
  double kl_mean = 0, kl_p99 = 0, top1_agreement = 0;
  double nll = 0, nll_reference = 0, ppl_ratio = 0;
  uint64_t bytes_per_token = 0;  // one decode step of `compressed` at the evaluated context
};

// Accuracy of `compressed` against `reference` on token data (as `slimpack
// verify --data`), first `limit` sequences (0 = all).
VerifyResult Verify(const Model& compressed, const Model& reference, const std::string& data, size_t limit = 0,
                    int threads = 1);

}  // namespace slimpack
