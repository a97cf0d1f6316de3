// safetensors reader and writer (the Hugging Face weight container).
//
// File layout (all little-endian):
//   u64 header_len | header_len bytes of JSON | data section
// The JSON header is an object: "__metadata__" -> {string: string}
// (optional), and per tensor name -> {"dtype": "F16", "shape": [..],
// "data_offsets": [begin, end]} with offsets relative to the data section.
//
// Reading memory-maps the file and hands out Tensor views into the mapping
// (no copy), after validating every field: header length inside the file,
// JSON object, known dtype, non-negative shape without overflow, offsets
// [begin, end] inside the data section, byte size == numel * dtype size, no
// two tensors overlapping, no duplicate names. Every error names the file,
// the tensor and the byte offset where it applies.
//
// Writing is atomic (AtomicFileWriter) and streams: SafetensorsWriter takes
// the tensor list (names, dtypes, shapes) up front, writes the header, then
// accepts the data bytes in order, so a multi-GB checkpoint can be written
// with bounded memory. The header is padded with spaces to a multiple of 8
// so every tensor in the data section starts 8-byte aligned in the file
// when tensor sizes are multiples of 8 (as the reference implementation).
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "libcompress/common/status.h"
#include "libcompress/io/atomic_file.h"
#include "libcompress/ir/tensor.h"

namespace slim {

struct SafetensorsFile {
  // Tensors in the order of their data offsets (the order they were written).
  std::vector<std::pair<std::string, Tensor>> tensors;
  // The "__metadata__" object (empty when absent).
  std::map<std::string, std::string> metadata;
};

Expected<SafetensorsFile> ReadSafetensorsFile(const std::string& path);
// The tensors only (same validation as ReadSafetensorsFile).
Expected<std::vector<std::pair<std::string, Tensor>>> ReadSafetensors(const std::string& path);

// safetensors dtype string ("F16") <-> DType; kUndefined / nullptr when the
// type has no safetensors name.
DType DTypeFromSafetensors(const std::string& name);
const char* SafetensorsDTypeName(DType dtype);

struct SafetensorsEntry {
  std::string name;
  DType dtype = DType::kUndefined;
  std::vector<int64_t> shape;
};

// Streaming writer: Open() validates the entries and writes the header;
// Append() takes the data bytes of the entries in order (any chunking);
// Commit() checks that exactly the declared bytes were written, then renames
// the file into place. Destroying the writer without Commit() leaves no file.
class SafetensorsWriter {
 public:
  static Expected<SafetensorsWriter> Open(const std::string& path,
                                          std::vector<SafetensorsEntry> entries,
                                          const std::map<std::string, std::string>& metadata = {});
  Status Append(const void* data, size_t nbytes);
  Status Commit();

 private:
  SafetensorsWriter(std::string path, AtomicFileWriter file, uint64_t data_start,
                    uint64_t data_bytes)
      : path_(std::move(path)), file_(std::move(file)), data_start_(data_start),
        data_bytes_(data_bytes) {}
  std::string path_;
  AtomicFileWriter file_;
  uint64_t data_start_ = 0;  // file offset of the data section
  uint64_t data_bytes_ = 0;  // declared size of the data section
};

// Writes whole tensors (in the given order) atomically.
Status WriteSafetensors(const std::string& path,
                        const std::vector<std::pair<std::string, Tensor>>& tensors,
                        const std::map<std::string, std::string>& metadata = {});

}  // namespace slim
