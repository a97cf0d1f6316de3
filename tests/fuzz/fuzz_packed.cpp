// Packed-format reader, then a session and one decode step when the model
// is a small decoder.
//
// Inputs starting with the magic "SLIMPACK" are written as they are (so the
// header checks are fuzzed too). Any other input is [metadata JSON,
// data section] in two parts, assembled into a file with a valid header and
// valid checksums (tensor checksums recomputed where an entry's offset and
// nbytes lie inside the data): without this the mutator would almost never
// get past the checksums into the tensor table, graph and layouts.
#include <cstring>
#include <nlohmann/json.hpp>

#include "libcompress/io/model_loader.h"
#include "libcompress/io/packed_format.h"
#include "libcompress/io/packed_internal.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

using nlohmann::json;

std::string Assemble(std::string meta, std::string_view data) {
  using namespace slim;
  json j = json::parse(meta, nullptr, /*allow_exceptions=*/false);
  if (j.is_object() && j.contains("tensors") && j["tensors"].is_array()) {
    for (json& e : j["tensors"]) {
      if (!e.is_object() || !e.contains("offset") || !e.contains("nbytes")) continue;
      if (!e["offset"].is_number_unsigned() || !e["nbytes"].is_number_unsigned()) continue;
      const uint64_t off = e["offset"].get<uint64_t>();
      const uint64_t n = e["nbytes"].get<uint64_t>();
      if (off > data.size() || n > data.size() - off) continue;
      e["checksum"] = packed::ChecksumHex(packed::Checksum64(data.data() + off, n));
    }
    meta = j.dump();
  }
  packed::Header h;
  h.version = kPackedVersion;
  h.metadata_offset = kPackedHeaderBytes;
  h.metadata_size = meta.size();
  h.data_offset = (kPackedHeaderBytes + meta.size() + kPackedTensorAlign - 1) / kPackedTensorAlign * kPackedTensorAlign;
  h.data_size = data.size();
  h.metadata_checksum = packed::Checksum64(meta.data(), meta.size());
  std::string file(h.data_offset, '\0');
  packed::EncodeHeader(h, reinterpret_cast<uint8_t*>(file.data()));
  std::memcpy(file.data() + kPackedHeaderBytes, meta.data(), meta.size());
  file.append(data);
  return file;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace slim;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  std::string file;
  if (input.substr(0, sizeof kPackedMagic) == std::string_view(kPackedMagic, sizeof kPackedMagic)) {
    file.assign(input);
  } else {
    const auto parts = fuzz::SplitParts(data, size, 2);
    file = Assemble(std::string(parts[0]), parts.size() > 1 ? parts[1] : std::string_view());
  }
  const std::string& dir = fuzz::FreshWorkDir();
  const std::string path = fuzz::WriteFile(dir, "model.slim", file);
  fuzz::ExpectInputError(ReadPackedInfo(path).status());
  auto model = LoadModel(path);
  fuzz::ExpectInputError(model.status());
  if (model.ok()) fuzz::ExerciseModel(*model);
  return 0;
}
