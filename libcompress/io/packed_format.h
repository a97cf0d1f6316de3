// The slimpack packed file: what `slimpack compile` writes and the runtime
// memory-maps. docs/FORMAT.md is the specification; in short:
//
//   [0, 64)          header: magic "SLIMPACK", u32 version, u32 flags,
//                    u64 metadata offset/size, u64 data offset/size,
//                    u64 metadata checksum, u64 header checksum (LE)
//   metadata         UTF-8 JSON: graph, decoder, vocab, tensor table
//                    (name, dtype, shape, layout, offset, nbytes, checksum),
//                    provenance, SHA-256 of the data section
//   data             tensor bytes, each tensor at a multiple of 64 bytes
//                    (4096 when flags bit 0 says page-aligned), gaps zero
//
// Checksums are XXH3-64 (seed 0). The reader validates every header field,
// offset, size, alignment and checksum before it hands out a tensor, so a
// flipped byte anywhere in the file is reported with the section or tensor
// and byte offset; tensors are then zero-copy views into the mapping.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "libcompress/common/status.h"
#include "libcompress/io/model.h"

namespace slim {

inline constexpr char kPackedMagic[8] = {'S', 'L', 'I', 'M', 'P', 'A', 'C', 'K'};
inline constexpr uint32_t kPackedVersion = 1;
inline constexpr uint32_t kPackedFlagPageAligned = 1u << 0;
inline constexpr size_t kPackedHeaderBytes = 64;
inline constexpr size_t kPackedTensorAlign = 64;
inline constexpr size_t kPackedPageAlign = 4096;
// Layout name of tensors stored as plain little-endian row-major elements.
inline constexpr char kDenseLayout[] = "dense";

struct PackedWriteOptions {
  // Align every tensor (and the data section) to 4096 bytes instead of 64,
  // so each tensor starts on its own page when the file is memory-mapped.
  bool page_align = false;
  // Opaque JSON object text recorded as metadata "provenance" (tool version,
  // recipe, source model hash, calibration hash, target profile, ...). Empty
  // means {}. It must parse as a JSON object.
  std::string provenance_json;
};

// Writes `model` (graph, decoder spec, byte vocabulary, every initializer and
// tensor-valued attribute) atomically to `path`. Tensors of the packed dtypes
// (kInt4Packed/kInt8Packed) take their layout name from the `layout`
// attribute of the nodes that read them (all readers must agree); every
// other tensor has layout "dense". Deterministic: the same model and options
// give byte-identical files.
Status WritePacked(const Model& model, const std::string& path,
                   const PackedWriteOptions& options = {});

struct PackedTensorEntry {
  std::string name;
  DType dtype = DType::kUndefined;
  std::vector<int64_t> shape;
  std::string layout;     // "dense" or a packed layout name (docs/LAYOUTS.md)
  uint64_t offset = 0;    // absolute file offset of the first byte
  uint64_t nbytes = 0;
  uint64_t checksum = 0;  // XXH3-64 of the nbytes bytes
};

struct PackedInfo {
  std::string path;
  uint64_t file_size = 0;
  uint32_t version = 0;
  uint32_t flags = 0;
  bool page_aligned = false;
  uint64_t metadata_offset = 0;
  uint64_t metadata_size = 0;
  uint64_t data_offset = 0;
  uint64_t data_size = 0;
  uint64_t metadata_checksum = 0;
  uint64_t header_checksum = 0;
  std::string metadata_json;    // the metadata section as stored
  std::string provenance_json;  // the "provenance" object, compact JSON
  std::string content_sha256;   // lower-case hex SHA-256 of the data section
  std::vector<PackedTensorEntry> tensors;  // file order (ascending offset)
};

// Header, metadata and tensor table, validated (every rule of ReadPacked
// except the tensor data checksums, which need a pass over all weights).
// For inspection and reports.
Expected<PackedInfo> ReadPackedInfo(const std::string& path);

// The whole model, after validating everything including every tensor's
// checksum; tensors are views into a read-only memory map (no copies).
// Model::format is "packed".
Expected<Model> ReadPacked(const std::string& path);

// True when the file starts with the packed magic (for the model loader).
bool IsPackedFile(const std::string& path);

}  // namespace slim
