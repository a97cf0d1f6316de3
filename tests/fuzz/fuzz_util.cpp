#include "tests/fuzz/fuzz_util.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace slim::fuzz {

namespace fs = std::filesystem;

std::vector<std::string_view> SplitParts(const uint8_t* data, size_t size, size_t max_parts) {
  std::string_view rest(reinterpret_cast<const char*>(data), size);
  std::vector<std::string_view> parts;
  while (parts.size() + 1 < max_parts) {
    const size_t at = rest.find(kPartSeparator);
    if (at == std::string_view::npos) break;
    parts.push_back(rest.substr(0, at));
    rest.remove_prefix(at + kPartSeparator.size());
  }
  parts.push_back(rest);
  return parts;
}

namespace {

std::string& WorkDirPath() {
  static std::string path;
  return path;
}

void RemoveWorkDir() {
  std::error_code ec;
  if (!WorkDirPath().empty()) fs::remove_all(WorkDirPath(), ec);
}

}  // namespace

const std::string& FreshWorkDir() {
  std::string& dir = WorkDirPath();
  if (dir.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    std::string templ = std::string(tmp && *tmp ? tmp : "/tmp") + "/slimfuzz.XXXXXX";
    if (!mkdtemp(templ.data())) {
      std::perror("slimfuzz: mkdtemp");
      std::abort();
    }
    dir = templ;
    std::atexit(RemoveWorkDir);
  }
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir)) fs::remove_all(entry.path(), ec);
  return dir;
}

std::string WriteFile(const std::string& dir, const std::string& name, std::string_view bytes) {
  const std::string path = dir + "/" + name;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) {
    std::fprintf(stderr, "slimfuzz: cannot write %s\n", path.c_str());
    std::abort();
  }
  return path;
}

void ExpectInputError(const Status& status) {
  if (status.ok()) return;
  const bool input_kind = status.code() == StatusCode::kInvalidInput || status.code() == StatusCode::kUnsupported;
  if (input_kind && !status.message().empty()) return;
  std::fprintf(stderr, "slimfuzz: hostile input gave a status that is not a bad-input error: %s\n",
               status.message().c_str());
  std::abort();
}

}  // namespace slim::fuzz

#include "libcompress/io/model.h"
#include "libcompress/ir/shape_inference.h"
#include "libcompress/runtime/decoder_session.h"

namespace slim::fuzz {

void ExerciseModel(Model& model) {
  auto shapes = InferShapes(model.graph);
  ExpectInputError(shapes.status());
  if (!shapes.ok() || !model.decoder) return;
  // A bounded step: hostile shapes stay cheap, real small models still run.
  uint64_t weight_bytes = 0;
  for (const std::string& name : model.graph.initializer_names()) weight_bytes += model.graph.FindInitializer(name)->nbytes();
  if (weight_bytes > (uint64_t{8} << 20)) return;
  auto session = DecoderSession::Create(model);
  ExpectInputError(session.status());
  if (!session.ok()) return;
  const int64_t token = model.decoder->bos_token_id >= 0 ? model.decoder->bos_token_id : 0;
  auto logits = (*session)->Append({token});
  ExpectInputError(logits.status());
}

}  // namespace slim::fuzz
