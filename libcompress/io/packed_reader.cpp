// Packed file reader. The file is untrusted: the header, then the metadata,
// then the tensor table are validated in that order (each step only uses
// fields the previous steps proved sane), and ReadPacked additionally checks
// every tensor's checksum before building the graph from views into the
// mapping. Every byte of the file is covered by some check: header and
// metadata by their checksums, tensors by theirs, alignment gaps by being
// required to be zero, and the end of the file by data_offset + data_size.
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <utility>

#include "libcompress/io/graph_json.h"
#include "libcompress/common/json_parse.h"
#include "libcompress/io/packed_format.h"
#include "libcompress/io/packed_internal.h"
#include "libcompress/ir/tensor.h"

namespace slim {

using nlohmann::json;

namespace {

// Limits far above real models that stop a hostile file from making the
// reader allocate without bound.
constexpr uint64_t kMaxMetadataBytes = uint64_t{1} << 30;
constexpr size_t kMaxTensors = size_t{1} << 20;
constexpr size_t kMaxRank = 64;

bool IsPackedDType(DType t) { return t == DType::kInt4Packed || t == DType::kInt8Packed; }

// "SLIMPACK" or "GGUF\x03\x00..." plus the hex bytes, for the magic error.
std::string DescribeBytes(const uint8_t* p, size_t n) {
  std::string text = "\"";
  std::string hex;
  for (size_t i = 0; i < n; ++i) {
    const unsigned char c = p[i];
    if (std::isprint(c) && c != '"' && c != '\\') {
      text += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      text += buf;
    }
    char hb[4];
    std::snprintf(hb, sizeof hb, i ? " %02x" : "%02x", c);
    hex += hb;
  }
  return text + "\" (" + hex + ")";
}

// The header, metadata and tensor table of a mapped file, validated.
struct Parsed {
  std::shared_ptr<MappedFile> file;
  PackedInfo info;
  json meta;
};

Status CheckHeader(const MappedFile& f, PackedInfo* info) {
  const uint64_t size = f.size();
  const uint8_t* p = f.data();
  if (size < sizeof kPackedMagic ||
      std::memcmp(p, kPackedMagic, sizeof kPackedMagic) != 0) {
    return InvalidInput("header (byte 0): magic is ",
                        DescribeBytes(p, std::min<size_t>(size, sizeof kPackedMagic)),
                        ", expected \"SLIMPACK\": not a slimpack packed file");
  }
  if (size < kPackedHeaderBytes) {
    return InvalidInput("header (byte 0): file is ", size, " bytes, shorter than the ",
                        kPackedHeaderBytes, "-byte header (truncated)");
  }
  const packed::Header h = packed::DecodeHeader(p);
  if (h.version != kPackedVersion) {
    return Unsupported("header (byte ", packed::kVersionAt, "): format version ", h.version,
                       ", this reader supports version ", kPackedVersion);
  }
  const uint64_t computed = packed::Checksum64(p, packed::kHeaderChecksumAt);
  if (computed != h.header_checksum) {
    return InvalidInput("header (bytes 0..", kPackedHeaderBytes, "): checksum mismatch: stored ",
                        packed::ChecksumHex(h.header_checksum), ", computed ",
                        packed::ChecksumHex(computed), " (corrupted header)");
  }
  if ((h.flags & ~kPackedFlagPageAligned) != 0) {
    return Unsupported("header (byte ", packed::kFlagsAt, "): unknown flags 0x", std::hex,
                       h.flags, std::dec, " (known: bit 0 page-aligned)");
  }
  const uint64_t align = (h.flags & kPackedFlagPageAligned) ? kPackedPageAlign : kPackedTensorAlign;
  if (h.metadata_offset != kPackedHeaderBytes) {
    return InvalidInput("header (byte ", packed::kMetadataOffsetAt, "): metadata offset ",
                        h.metadata_offset, ", expected ", kPackedHeaderBytes);
  }
  if (h.metadata_size == 0 || h.metadata_size > kMaxMetadataBytes ||
      h.metadata_size > size - h.metadata_offset) {
    return InvalidInput("header (byte ", packed::kMetadataSizeAt, "): metadata size ",
                        h.metadata_size, " does not fit the file (", size, " bytes, limit ",
                        kMaxMetadataBytes, ")");
  }
  const uint64_t meta_end = h.metadata_offset + h.metadata_size;
  if (h.data_offset < meta_end || h.data_offset % align != 0 || h.data_offset - meta_end >= align) {
    return InvalidInput("header (byte ", packed::kDataOffsetAt, "): data offset ", h.data_offset,
                        " must be the first multiple of ", align, " at or after the metadata end ",
                        meta_end);
  }
  if (h.data_offset > size || h.data_size != size - h.data_offset) {
    return InvalidInput("header (byte ", packed::kDataSizeAt, "): data section [", h.data_offset,
                        ", +", h.data_size, ") must end exactly at the end of the file (",
                        size, " bytes; truncated or extended file)");
  }
  info->file_size = size;
  info->version = h.version;
  info->flags = h.flags;
  info->page_aligned = (h.flags & kPackedFlagPageAligned) != 0;
  info->metadata_offset = h.metadata_offset;
  info->metadata_size = h.metadata_size;
  info->data_offset = h.data_offset;
  info->data_size = h.data_size;
  info->metadata_checksum = h.metadata_checksum;
  info->header_checksum = h.header_checksum;
  return Status::Ok();
}

// Bytes [begin, end) must be zero (alignment padding).
Status CheckZeroGap(const MappedFile& f, uint64_t begin, uint64_t end, const std::string& what) {
  for (uint64_t i = begin; i < end; ++i) {
    if (f.data()[i] != 0) {
      return InvalidInput(what, " (byte ", i, "): padding byte is 0x", std::hex,
                          static_cast<int>(f.data()[i]), std::dec, ", must be 0");
    }
  }
  return Status::Ok();
}

Expected<uint64_t> NonNegative(const json& obj, const char* key, const std::string& where) {
  auto it = obj.find(key);
  if (it == obj.end()) return InvalidInput(where, ": missing field '", key, "'");
  if (!it->is_number_unsigned()) {
    return InvalidInput(where, ".", key, ": expected a non-negative integer");
  }
  return it->get<uint64_t>();
}

Expected<std::string> StringOf(const json& obj, const char* key, const std::string& where) {
  auto it = obj.find(key);
  if (it == obj.end()) return InvalidInput(where, ": missing field '", key, "'");
  if (!it->is_string()) return InvalidInput(where, ".", key, ": expected a string");
  return it->get<std::string>();
}

Expected<uint64_t> ParseChecksum(const std::string& s, const std::string& where) {
  if (s.size() != 16 ||
      !std::all_of(s.begin(), s.end(), [](char c) { return std::isxdigit(c) && !std::isupper(c); })) {
    return InvalidInput(where, ": expected 16 lower-case hex digits, found '", s, "'");
  }
  return std::stoull(s, nullptr, 16);
}

// One tensor-table entry; `prev_end` is the end of the previous tensor
// (relative to the data section) so entries are ascending and disjoint.
Expected<PackedTensorEntry> ParseTensorEntry(const json& j, size_t index, const PackedInfo& info,
                                             uint64_t prev_end) {
  std::string where = StrCat("metadata tensors[", index, "]");
  if (!j.is_object()) return InvalidInput(where, ": expected a JSON object");
  PackedTensorEntry e;
  SLIM_ASSIGN_OR_RETURN(e.name, StringOf(j, "name", where));
  SLIM_CHECK_INPUT(!e.name.empty(), where, ": empty tensor name");
  where = StrCat("tensor '", e.name, "' (metadata tensors[", index, "])");
  auto dt = j.find("dtype");
  SLIM_CHECK_INPUT(dt != j.end(), where, ": missing field 'dtype'");
  SLIM_ASSIGN_OR_RETURN(e.dtype, DTypeFromCode(*dt, where + ".dtype"));
  auto shape = j.find("shape");
  SLIM_CHECK_INPUT(shape != j.end() && shape->is_array(), where, ".shape: expected an array");
  SLIM_CHECK_INPUT(shape->size() <= kMaxRank, where, ".shape: rank ", shape->size(),
                   " exceeds the limit of ", kMaxRank);
  for (const json& d : *shape) {
    SLIM_CHECK_INPUT(d.is_number_unsigned(), where, ".shape: dims must be integers >= 0, found ",
                     d.dump());
    const uint64_t v = d.get<uint64_t>();
    SLIM_CHECK_INPUT(v <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()), where,
                     ".shape: dim ", v, " out of range");
    e.shape.push_back(static_cast<int64_t>(v));
  }
  const int64_t numel = ShapeNumel(e.shape);
  SLIM_CHECK_INPUT(numel >= 0, where, ": element count of shape ", ShapeToString(e.shape),
                   " overflows int64");
  SLIM_ASSIGN_OR_RETURN(e.layout, StringOf(j, "layout", where));
  SLIM_ASSIGN_OR_RETURN(uint64_t rel_offset, NonNegative(j, "offset", where));
  SLIM_ASSIGN_OR_RETURN(e.nbytes, NonNegative(j, "nbytes", where));
  SLIM_ASSIGN_OR_RETURN(std::string checksum, StringOf(j, "checksum", where));
  SLIM_ASSIGN_OR_RETURN(e.checksum, ParseChecksum(checksum, where + ".checksum"));

  if (IsPackedDType(e.dtype)) {
    // The byte size of a packed layout is defined by docs/LAYOUTS.md; the
    // kernels check it against the layout when they unpack. Here the entry
    // must at least name a packed layout and hold bytes.
    SLIM_CHECK_INPUT(!e.layout.empty() && e.layout != kDenseLayout, where, ": dtype ",
                     DTypeName(e.dtype), " needs a packed layout name, found '", e.layout, "'");
    SLIM_CHECK_INPUT(e.nbytes > 0, where, ": packed dtype ", DTypeName(e.dtype), " with 0 bytes");
  } else {
    SLIM_CHECK_INPUT(e.layout == kDenseLayout, where, ": dtype ", DTypeName(e.dtype),
                     " must have layout '", kDenseLayout, "', found '", e.layout, "'");
    const uint64_t elem = DTypeSize(e.dtype);
    const uint64_t n = static_cast<uint64_t>(numel);
    SLIM_CHECK_INPUT(n == 0 || elem <= std::numeric_limits<uint64_t>::max() / n, where,
                     ": byte size of ", ShapeToString(e.shape), " overflows");
    SLIM_CHECK_INPUT(e.nbytes == n * elem, where, ": nbytes ", e.nbytes, " but ",
                     DTypeName(e.dtype), " ", ShapeToString(e.shape), " needs ", n * elem);
  }
  const uint64_t align = info.page_aligned ? kPackedPageAlign : kPackedTensorAlign;
  SLIM_CHECK_INPUT(rel_offset % align == 0, where, ": data offset ", rel_offset,
                   " is not a multiple of ", align);
  SLIM_CHECK_INPUT(rel_offset >= prev_end, where, ": data offset ", rel_offset,
                   " overlaps or precedes the previous tensor (which ends at ", prev_end,
                   "); entries must be ascending and disjoint");
  SLIM_CHECK_INPUT(rel_offset <= info.data_size && e.nbytes <= info.data_size - rel_offset, where,
                   ": bytes [", rel_offset, ", +", e.nbytes, ") exceed the data section (",
                   info.data_size, " bytes at file offset ", info.data_offset, ")");
  e.offset = info.data_offset + rel_offset;
  return e;
}

Expected<Parsed> ParseFile(const std::string& path) {
  Parsed out;
  SLIM_ASSIGN_OR_RETURN(out.file, MappedFile::Open(path));
  const MappedFile& f = *out.file;
  PackedInfo& info = out.info;
  info.path = path;
  SLIM_RETURN_IF_ERROR(CheckHeader(f, &info).WithContext(path));

  const std::string msec = StrCat("metadata (bytes ", info.metadata_offset, "..",
                                  info.metadata_offset + info.metadata_size, ")");
  const uint8_t* mp = f.data() + info.metadata_offset;
  const size_t msize = static_cast<size_t>(info.metadata_size);
  const uint64_t computed = packed::Checksum64(mp, msize);
  if (computed != info.metadata_checksum) {
    return InvalidInput(path, ": ", msec, ": checksum mismatch: stored ",
                        packed::ChecksumHex(info.metadata_checksum), ", computed ",
                        packed::ChecksumHex(computed), " (corrupted metadata)");
  }
  info.metadata_json.assign(reinterpret_cast<const char*>(mp), msize);
  SLIM_ASSIGN_OR_RETURN(out.meta, ParseJsonText(info.metadata_json, path + ": " + msec, info.metadata_offset));
  const json& meta = out.meta;
  SLIM_CHECK_INPUT(meta.is_object(), path, ": ", msec, ": expected a JSON object");
  auto fmt = meta.find("format");
  SLIM_CHECK_INPUT(fmt != meta.end() && *fmt == "slimpack-packed", path, ": ", msec,
                   ": field 'format' must be \"slimpack-packed\"");
  SLIM_ASSIGN_OR_RETURN(info.content_sha256, StringOf(meta, "content_sha256", path + ": " + msec));
  SLIM_CHECK_INPUT(info.content_sha256.size() == 64, path, ": ", msec,
                   ": content_sha256 must be 64 hex digits");
  auto prov = meta.find("provenance");
  SLIM_CHECK_INPUT(prov != meta.end() && prov->is_object(), path, ": ", msec,
                   ": field 'provenance' must be a JSON object");
  info.provenance_json = prov->dump();

  auto tensors = meta.find("tensors");
  SLIM_CHECK_INPUT(tensors != meta.end() && tensors->is_array(), path, ": ", msec,
                   ": field 'tensors' must be an array");
  SLIM_CHECK_INPUT(tensors->size() <= kMaxTensors, path, ": ", msec, ": ", tensors->size(),
                   " tensors exceed the limit of ", kMaxTensors);
  std::map<std::string, size_t> names;
  uint64_t prev_end = 0;
  SLIM_RETURN_IF_ERROR(CheckZeroGap(f, info.metadata_offset + info.metadata_size,
                                    info.data_offset, "padding after metadata")
                           .WithContext(path));
  for (size_t i = 0; i < tensors->size(); ++i) {
    Expected<PackedTensorEntry> e = ParseTensorEntry((*tensors)[i], i, info, prev_end);
    if (!e.ok()) return e.status().WithContext(path);
    if (!names.emplace(e->name, i).second) {
      return InvalidInput(path, ": tensor '", e->name, "' (metadata tensors[", i,
                          "]): duplicate name (also tensors[", names[e->name], "])");
    }
    SLIM_RETURN_IF_ERROR(CheckZeroGap(f, info.data_offset + prev_end, e->offset,
                                      StrCat("padding before tensor '", e->name, "'"))
                             .WithContext(path));
    prev_end = e->offset - info.data_offset + e->nbytes;
    info.tensors.push_back(std::move(e).value());
  }
  // Bytes after the last tensor are padding too (none from our writer).
  SLIM_RETURN_IF_ERROR(CheckZeroGap(f, info.data_offset + prev_end, info.file_size,
                                    "padding after the last tensor")
                           .WithContext(path));
  return out;
}

}  // namespace

Expected<PackedInfo> ReadPackedInfo(const std::string& path) {
  SLIM_ASSIGN_OR_RETURN(Parsed p, ParseFile(path));
  return std::move(p.info);
}

Expected<Model> ReadPacked(const std::string& path) {
  SLIM_ASSIGN_OR_RETURN(Parsed p, ParseFile(path));
  const PackedInfo& info = p.info;
  std::map<std::string, Tensor> views;
  std::map<std::string, int> uses;
  for (const PackedTensorEntry& e : info.tensors) {
    const uint8_t* bytes = p.file->data() + e.offset;
    const uint64_t computed = packed::Checksum64(bytes, static_cast<size_t>(e.nbytes));
    if (computed != e.checksum) {
      return InvalidInput(path, ": tensor '", e.name, "' (bytes ", e.offset, "..",
                          e.offset + e.nbytes, "): checksum mismatch: stored ",
                          packed::ChecksumHex(e.checksum), ", computed ",
                          packed::ChecksumHex(computed), " (corrupted tensor data)");
    }
    views[e.name] = Tensor::View(p.file, static_cast<size_t>(e.offset),
                                 static_cast<size_t>(e.nbytes), e.dtype, e.shape);
    uses[e.name] = 0;
  }

  const std::string msec = StrCat("metadata (bytes ", info.metadata_offset, "..",
                                  info.metadata_offset + info.metadata_size, ")");
  auto graph_json = p.meta.find("graph");
  SLIM_CHECK_INPUT(graph_json != p.meta.end(), path, ": ", msec, ": missing field 'graph'");
  // Each table entry backs exactly one initializer or tensor attribute.
  auto lookup = [&](const std::string& name) -> Expected<Tensor> {
    auto it = views.find(name);
    if (it == views.end()) return InvalidInput("tensor '", name, "' is not in the tensor table");
    if (++uses[name] > 1) return InvalidInput("tensor '", name, "' is referenced twice");
    return it->second;
  };
  Expected<Graph> g = GraphFromJson(*graph_json, lookup);
  if (!g.ok()) return g.status().WithContext(path + ": " + msec);
  for (const auto& [name, n] : uses) {
    if (n == 0) {
      return InvalidInput(path, ": tensor '", name,
                          "' is in the tensor table but the graph never references it");
    }
  }

  Model m;
  m.graph = std::move(g).value();
  m.format = "packed";
  m.path = path;
  auto dec = p.meta.find("decoder");
  if (dec != p.meta.end() && !dec->is_null()) {
    Expected<DecoderSpec> d = packed::DecoderFromJson(*dec, "decoder");
    if (!d.ok()) return d.status().WithContext(path + ": " + msec);
    m.decoder = std::move(d).value();
  }
  auto vocab = p.meta.find("byte_vocab");
  if (vocab != p.meta.end() && !vocab->is_null()) {
    auto first = vocab->is_object() ? vocab->find("first_id") : vocab->end();
    SLIM_CHECK_INPUT(vocab->is_object() && first != vocab->end() && first->is_number_integer(),
                     path, ": ", msec, ": byte_vocab must be {\"first_id\": integer}");
    m.byte_vocab = ByteVocab{first->get<int64_t>()};
  }
  // The tokenizer's files travel as two strings (libcompress/text parses them).
  auto tok = p.meta.find("tokenizer");
  if (tok != p.meta.end() && !tok->is_null()) {
    const bool ok = tok->is_object() && tok->contains("json") && (*tok)["json"].is_string() &&
                    tok->contains("config") && (*tok)["config"].is_string();
    SLIM_CHECK_INPUT(ok, path, ": ", msec, ": tokenizer must be {\"json\": string, \"config\": string}");
    m.tokenizer = TokenizerFiles{(*tok)["json"].get<std::string>(), (*tok)["config"].get<std::string>()};
  }
  return m;
}

}  // namespace slim
