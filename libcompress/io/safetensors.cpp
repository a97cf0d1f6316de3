#include "libcompress/io/safetensors.h"
#include "libcompress/common/json_parse.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

namespace slim {
namespace {

using nlohmann::json;

constexpr uint64_t kHeaderLenBytes = 8;

uint64_t LoadU64LE(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

void StoreU64LE(uint64_t v, uint8_t* p) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}

struct DTypeAndName {
  const char* name;
  DType dtype;
};
constexpr DTypeAndName kDTypes[] = {
    {"F16", DType::kFloat16}, {"BF16", DType::kBFloat16}, {"F32", DType::kFloat32},
    {"F64", DType::kFloat64}, {"I64", DType::kInt64},     {"I32", DType::kInt32},
    {"I16", DType::kInt16},   {"I8", DType::kInt8},       {"U8", DType::kUInt8},
    {"BOOL", DType::kBool},
};

// Parses the JSON header. ParseJsonText rejects duplicate keys: a tensor
// named twice would make the file ambiguous.
Status ParseHeader(const std::string& path, const uint8_t* begin, const uint8_t* end, json* out) {
  SLIM_ASSIGN_OR_RETURN(*out, ParseJsonText(std::string_view(reinterpret_cast<const char*>(begin),
                                                               static_cast<size_t>(end - begin)),
                                              path + ": header", kHeaderLenBytes));
  SLIM_CHECK_INPUT(out->is_object(), path, ": header at byte 8 is a JSON ", out->type_name(),
                   ", expected an object");
  return Status::Ok();
}

bool AsNonNegative(const json& v, uint64_t* out) {
  if (!v.is_number_unsigned()) return false;
  *out = v.get<uint64_t>();
  return true;
}

struct Entry {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  uint64_t begin, end;  // relative to the data section
};

Expected<Entry> ParseEntry(const std::string& path, const std::string& name, const json& info,
                           uint64_t data_size) {
  const std::string where = path + ": tensor '" + name + "'";
  SLIM_CHECK_INPUT(info.is_object(), where, ": header entry is a JSON ", info.type_name(),
                   ", expected an object");
  SLIM_CHECK_INPUT(info.contains("dtype") && info["dtype"].is_string(), where,
                   ": missing string field \"dtype\"");
  const std::string dtype_name = info["dtype"].get<std::string>();
  const DType dtype = DTypeFromSafetensors(dtype_name);
  if (dtype == DType::kUndefined) {
    return Unsupported(where, ": dtype '", dtype_name,
                       "' is not supported (F16, BF16, F32, F64, I64, I32, I16, I8, U8, BOOL)");
  }
  SLIM_CHECK_INPUT(info.contains("shape") && info["shape"].is_array(), where,
                   ": \"shape\" must be a list of non-negative integers");
  std::vector<int64_t> shape;
  for (const auto& d : info["shape"]) {
    uint64_t v = 0;
    SLIM_CHECK_INPUT(AsNonNegative(d, &v) &&
                         v <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()),
                     where, ": \"shape\" must be a list of non-negative integers, found ", d.dump());
    shape.push_back(static_cast<int64_t>(v));
  }
  const int64_t numel = ShapeNumel(shape);
  const uint64_t elem = DTypeSize(dtype);
  SLIM_CHECK_INPUT(numel >= 0 && static_cast<uint64_t>(numel) <=
                                     std::numeric_limits<uint64_t>::max() / elem,
                   where, ": size of shape ", ShapeToString(shape), " overflows");
  const uint64_t nbytes = static_cast<uint64_t>(numel) * elem;
  SLIM_CHECK_INPUT(info.contains("data_offsets") && info["data_offsets"].is_array() &&
                       info["data_offsets"].size() == 2,
                   where, ": \"data_offsets\" must be [begin, end]");
  uint64_t begin = 0, end = 0;
  SLIM_CHECK_INPUT(AsNonNegative(info["data_offsets"][0], &begin) &&
                       AsNonNegative(info["data_offsets"][1], &end),
                   where, ": \"data_offsets\" must be two non-negative integers, found ",
                   info["data_offsets"].dump());
  SLIM_CHECK_INPUT(begin <= end, where, ": data_offsets begin ", begin, " > end ", end);
  SLIM_CHECK_INPUT(end <= data_size, where, ": data_offsets end ", end,
                   " is past the end of the data section (", data_size, " bytes)");
  SLIM_CHECK_INPUT(end - begin == nbytes, where, ": dtype/shape size mismatch: ", dtype_name, " ",
                   ShapeToString(shape), " needs ", nbytes, " bytes, data_offsets [", begin, ", ",
                   end, "] hold ", end - begin);
  return Entry{name, dtype, std::move(shape), begin, end};
}

}  // namespace

DType DTypeFromSafetensors(const std::string& name) {
  for (const auto& d : kDTypes) {
    if (name == d.name) return d.dtype;
  }
  return DType::kUndefined;
}

const char* SafetensorsDTypeName(DType dtype) {
  for (const auto& d : kDTypes) {
    if (dtype == d.dtype) return d.name;
  }
  return nullptr;
}

Expected<SafetensorsFile> ReadSafetensorsFile(const std::string& path) {
  SLIM_ASSIGN_OR_RETURN(std::shared_ptr<MappedFile> file, MappedFile::Open(path));
  const uint64_t size = file->size();
  SLIM_CHECK_INPUT(size >= kHeaderLenBytes, path, ": truncated: ", size,
                   " bytes, a safetensors file starts with an 8-byte header length");
  const uint64_t header_len = LoadU64LE(file->data());
  SLIM_CHECK_INPUT(header_len <= size - kHeaderLenBytes, path, ": header length ", header_len,
                   " (bytes 0..7) runs past the end of the file (", size, " bytes)");
  const uint8_t* header = file->data() + kHeaderLenBytes;
  json j;
  SLIM_RETURN_IF_ERROR(ParseHeader(path, header, header + header_len, &j));

  const uint64_t data_start = kHeaderLenBytes + header_len;
  const uint64_t data_size = size - data_start;
  SafetensorsFile out;
  std::vector<Entry> entries;
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.key() == "__metadata__") {
      SLIM_CHECK_INPUT(it->is_object(), path, ": \"__metadata__\" must be an object of strings");
      for (auto m = it->begin(); m != it->end(); ++m) {
        SLIM_CHECK_INPUT(m->is_string(), path, ": \"__metadata__\" value '", m.key(),
                         "' is not a string");
        out.metadata[m.key()] = m->get<std::string>();
      }
      continue;
    }
    SLIM_ASSIGN_OR_RETURN(Entry e, ParseEntry(path, it.key(), *it, data_size));
    entries.push_back(std::move(e));
  }
  // Overlap check over tensors sorted by start; empty tensors overlap nothing.
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  const Entry* prev = nullptr;
  for (const Entry& e : entries) {
    if (e.begin == e.end) continue;
    if (prev) {
      SLIM_CHECK_INPUT(e.begin >= prev->end, path, ": tensor '", e.name, "' (data bytes ",
                       e.begin, "..", e.end, ") overlaps tensor '", prev->name, "' (", prev->begin,
                       "..", prev->end, ")");
    }
    prev = &e;
  }
  out.tensors.reserve(entries.size());
  for (Entry& e : entries) {
    const uint64_t offset = data_start + e.begin;
    const size_t nbytes = static_cast<size_t>(e.end - e.begin);
    const size_t elem = DTypeSize(e.dtype);
    Tensor t;
    if (offset % elem == 0) {
      t = Tensor::View(file, static_cast<size_t>(offset), nbytes, e.dtype, std::move(e.shape));
    } else {
      // Kernels read typed pointers; a misaligned view would be undefined
      // behaviour, so such (rare, hand-made) files get an owned copy.
      t = Tensor::FromBytes(e.dtype, std::move(e.shape), file->data() + offset, nbytes);
    }
    out.tensors.emplace_back(std::move(e.name), std::move(t));
  }
  return out;
}

Expected<std::vector<std::pair<std::string, Tensor>>> ReadSafetensors(const std::string& path) {
  SLIM_ASSIGN_OR_RETURN(SafetensorsFile f, ReadSafetensorsFile(path));
  return std::move(f.tensors);
}

Expected<SafetensorsWriter> SafetensorsWriter::Open(
    const std::string& path, std::vector<SafetensorsEntry> entries,
    const std::map<std::string, std::string>& metadata) {
  // ordered_json keeps the insertion order: metadata first, then tensors in
  // data order, so the header reads like the file.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::set<std::string> names;
  uint64_t offset = 0;
  for (const auto& e : entries) {
    const char* dtype = SafetensorsDTypeName(e.dtype);
    if (!dtype) {
      return Unsupported(path, ": tensor '", e.name, "' has dtype ", DTypeName(e.dtype),
                         ", which safetensors cannot store");
    }
    SLIM_CHECK_INPUT(e.name != "__metadata__", path, ": a tensor cannot be named __metadata__");
    SLIM_CHECK_INPUT(names.insert(e.name).second, path, ": tensor name '", e.name,
                     "' given twice");
    const int64_t numel = ShapeNumel(e.shape);
    SLIM_CHECK_INPUT(numel >= 0, path, ": tensor '", e.name, "' has invalid shape ",
                     ShapeToString(e.shape));
    const uint64_t nbytes = static_cast<uint64_t>(numel) * DTypeSize(e.dtype);
    header[e.name] = {{"dtype", dtype}, {"shape", e.shape}, {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  uint8_t len[8];
  StoreU64LE(text.size(), len);
  SLIM_ASSIGN_OR_RETURN(AtomicFileWriter w, AtomicFileWriter::Open(path));
  SLIM_RETURN_IF_ERROR(w.Write(len, sizeof(len)));
  SLIM_RETURN_IF_ERROR(w.Write(text));
  const uint64_t data_start = w.offset();
  return SafetensorsWriter(path, std::move(w), data_start, offset);
}

Status SafetensorsWriter::Append(const void* data, size_t nbytes) {
  const uint64_t written = file_.offset() - data_start_;
  if (nbytes > data_bytes_ - written) {
    return Internal(path_, ": ", nbytes, " bytes appended at data byte ", written,
                    " exceed the declared data section of ", data_bytes_, " bytes");
  }
  return file_.Write(data, nbytes);
}

Status SafetensorsWriter::Commit() {
  const uint64_t written = file_.offset() - data_start_;
  if (written != data_bytes_) {
    return Internal(path_, ": ", written, " data bytes written, the header declares ",
                    data_bytes_);
  }
  return file_.Commit();
}

Status WriteSafetensors(const std::string& path,
                        const std::vector<std::pair<std::string, Tensor>>& tensors,
                        const std::map<std::string, std::string>& metadata) {
  std::vector<SafetensorsEntry> entries;
  entries.reserve(tensors.size());
  for (const auto& [name, t] : tensors) {
    SLIM_CHECK_INPUT(t.defined(), path, ": tensor '", name, "' has no data");
    if (!SafetensorsDTypeName(t.dtype())) {
      return Unsupported(path, ": tensor '", name, "' has dtype ", DTypeName(t.dtype()),
                         ", which safetensors cannot store");
    }
    SLIM_CHECK_INPUT(t.nbytes() == static_cast<size_t>(t.numel()) * DTypeSize(t.dtype()), path,
                     ": tensor '", name, "' has ", t.nbytes(), " bytes, its dtype and shape need ",
                     static_cast<size_t>(t.numel()) * DTypeSize(t.dtype()));
    entries.push_back({name, t.dtype(), t.shape()});
  }
  SLIM_ASSIGN_OR_RETURN(SafetensorsWriter w, SafetensorsWriter::Open(path, std::move(entries), metadata));
  for (const auto& [name, t] : tensors) SLIM_RETURN_IF_ERROR(w.Append(t.raw(), t.nbytes()));
  return w.Commit();
}

}  // namespace slim
