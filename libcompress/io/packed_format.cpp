// Packed file writer, plus the header codec and JSON pieces the reader
// (packed_reader.cpp) shares. The writer plans the whole file before writing
// a byte: tensor offsets, then one pass over the weights for the per-tensor
// XXH3 checksums and the data section's SHA-256 (both live in the metadata,
// which precedes the data), then header, metadata and data in one sequential
// stream through AtomicFileWriter.
#include "libcompress/io/packed_format.h"

#include <xxhash.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <utility>
#include <vector>

#include "libcompress/common/sha256.h"
#include "libcompress/io/atomic_file.h"
#include "libcompress/io/graph_json.h"
#include "libcompress/io/packed_internal.h"

namespace slim {

using nlohmann::json;

namespace packed {

uint64_t Checksum64(const void* data, size_t size) { return XXH3_64bits(data, size); }

std::string ChecksumHex(uint64_t checksum) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(checksum));
  return buf;
}

namespace {
void StoreLE32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
void StoreLE64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
}  // namespace

uint32_t LoadLE32(const uint8_t* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}
uint64_t LoadLE64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

void EncodeHeader(const Header& h, uint8_t out[64]) {
  std::memcpy(out + kMagicAt, kPackedMagic, 8);
  StoreLE32(out + kVersionAt, h.version);
  StoreLE32(out + kFlagsAt, h.flags);
  StoreLE64(out + kMetadataOffsetAt, h.metadata_offset);
  StoreLE64(out + kMetadataSizeAt, h.metadata_size);
  StoreLE64(out + kDataOffsetAt, h.data_offset);
  StoreLE64(out + kDataSizeAt, h.data_size);
  StoreLE64(out + kMetadataChecksumAt, h.metadata_checksum);
  StoreLE64(out + kHeaderChecksumAt, Checksum64(out, kHeaderChecksumAt));
}

Header DecodeHeader(const uint8_t in[64]) {
  Header h;
  h.version = LoadLE32(in + kVersionAt);
  h.flags = LoadLE32(in + kFlagsAt);
  h.metadata_offset = LoadLE64(in + kMetadataOffsetAt);
  h.metadata_size = LoadLE64(in + kMetadataSizeAt);
  h.data_offset = LoadLE64(in + kDataOffsetAt);
  h.data_size = LoadLE64(in + kDataSizeAt);
  h.metadata_checksum = LoadLE64(in + kMetadataChecksumAt);
  h.header_checksum = LoadLE64(in + kHeaderChecksumAt);
  return h;
}

json DecoderToJson(const DecoderSpec& d) {
  return json{{"num_layers", d.num_layers},
              {"num_heads", d.num_heads},
              {"num_kv_heads", d.num_kv_heads},
              {"head_dim", d.head_dim},
              {"hidden_size", d.hidden_size},
              {"vocab_size", d.vocab_size},
              {"max_positions", d.max_positions},
              {"bos_token_id", d.bos_token_id},
              {"eos_token_id", d.eos_token_id},
              {"kv_dtype", static_cast<int32_t>(d.kv_dtype)},
              {"has_past", d.has_past},
              {"has_attention_mask", d.has_attention_mask},
              {"has_position_ids", d.has_position_ids},
              {"input_ids", d.input_ids},
              {"logits", d.logits}};
}

Expected<DecoderSpec> DecoderFromJson(const json& j, const std::string& where) {
  if (!j.is_object()) return InvalidInput(where, ": expected a JSON object");
  DecoderSpec d;
  auto get_int = [&](const char* key, int64_t* out) -> Status {
    auto it = j.find(key);
    if (it == j.end()) return InvalidInput(where, ": missing field '", key, "'");
    if (!it->is_number_integer()) return InvalidInput(where, ".", key, ": expected an integer");
    *out = it->get<int64_t>();
    return Status::Ok();
  };
  auto get_bool = [&](const char* key, bool* out) -> Status {
    auto it = j.find(key);
    if (it == j.end()) return InvalidInput(where, ": missing field '", key, "'");
    if (!it->is_boolean()) return InvalidInput(where, ".", key, ": expected true or false");
    *out = it->get<bool>();
    return Status::Ok();
  };
  auto get_string = [&](const char* key, std::string* out) -> Status {
    auto it = j.find(key);
    if (it == j.end()) return InvalidInput(where, ": missing field '", key, "'");
    if (!it->is_string()) return InvalidInput(where, ".", key, ": expected a string");
    *out = it->get<std::string>();
    return Status::Ok();
  };
  SLIM_RETURN_IF_ERROR(get_int("num_layers", &d.num_layers));
  SLIM_RETURN_IF_ERROR(get_int("num_heads", &d.num_heads));
  SLIM_RETURN_IF_ERROR(get_int("num_kv_heads", &d.num_kv_heads));
  SLIM_RETURN_IF_ERROR(get_int("head_dim", &d.head_dim));
  SLIM_RETURN_IF_ERROR(get_int("hidden_size", &d.hidden_size));
  SLIM_RETURN_IF_ERROR(get_int("vocab_size", &d.vocab_size));
  SLIM_RETURN_IF_ERROR(get_int("max_positions", &d.max_positions));
  SLIM_RETURN_IF_ERROR(get_int("bos_token_id", &d.bos_token_id));
  SLIM_RETURN_IF_ERROR(get_int("eos_token_id", &d.eos_token_id));
  for (int64_t v : {d.num_layers, d.num_heads, d.num_kv_heads, d.head_dim, d.hidden_size,
                    d.vocab_size, d.max_positions}) {
    SLIM_CHECK_INPUT(v >= 0, where, ": negative size ", v, " (sizes are >= 0, 0 = unknown)");
  }
  auto kv = j.find("kv_dtype");
  if (kv == j.end()) return InvalidInput(where, ": missing field 'kv_dtype'");
  SLIM_ASSIGN_OR_RETURN(d.kv_dtype, DTypeFromCode(*kv, where + ".kv_dtype"));
  SLIM_RETURN_IF_ERROR(get_bool("has_past", &d.has_past));
  SLIM_RETURN_IF_ERROR(get_bool("has_attention_mask", &d.has_attention_mask));
  SLIM_RETURN_IF_ERROR(get_bool("has_position_ids", &d.has_position_ids));
  SLIM_RETURN_IF_ERROR(get_string("input_ids", &d.input_ids));
  SLIM_RETURN_IF_ERROR(get_string("logits", &d.logits));
  return d;
}

}  // namespace packed

namespace {

using packed::ChecksumHex;
using packed::Checksum64;

constexpr size_t RoundUp(size_t x, size_t a) { return (x + a - 1) / a * a; }

bool IsPackedDType(DType t) { return t == DType::kInt4Packed || t == DType::kInt8Packed; }

// One tensor-table entry being planned.
struct PlannedTensor {
  std::string name;
  Tensor tensor;
  std::string value;  // graph value whose consumers name the layout ("" = none)
  std::string layout;
  uint64_t offset = 0;  // relative to the data section
  uint64_t checksum = 0;
};

// The layout of a packed tensor: the `layout` attribute every consumer of
// its value agrees on.
Expected<std::string> PackedLayout(const Graph& g, const PlannedTensor& t) {
  std::set<std::string> layouts;
  if (!t.value.empty()) {
    for (int idx : g.Consumers(t.value)) {
      const Node& n = g.nodes[static_cast<size_t>(idx)];
      auto it = n.attrs.find("layout");
      if (it == n.attrs.end()) continue;
      if (it->second.type != Attribute::Type::kString || it->second.s.empty()) {
        return InvalidInput("tensor '", t.name, "': ", n.Describe(),
                            " has a 'layout' attribute that is not a non-empty string");
      }
      layouts.insert(it->second.s);
    }
  }
  if (layouts.empty()) {
    return InvalidInput("tensor '", t.name, "' has dtype ", DTypeName(t.tensor.dtype()),
                        " but no node reading it names its layout (string attribute 'layout')");
  }
  if (layouts.size() > 1) {
    return InvalidInput("tensor '", t.name, "' is read with different layouts ('",
                        *layouts.begin(), "' and '", *layouts.rbegin(),
                        "'); one tensor has one layout");
  }
  if (*layouts.begin() == kDenseLayout) {
    return InvalidInput("tensor '", t.name, "' has dtype ", DTypeName(t.tensor.dtype()),
                        " but layout '", kDenseLayout, "', which is for plain dtypes");
  }
  return *layouts.begin();
}

Status CheckTensor(const PlannedTensor& t) {
  const Tensor& x = t.tensor;
  if (x.dtype() == DType::kUndefined || x.dtype() == DType::kString) {
    return Unsupported("tensor '", t.name, "': dtype ", DTypeName(x.dtype()),
                       " cannot be stored in a packed file");
  }
  const int64_t numel = x.numel();
  if (numel < 0) {
    return InvalidInput("tensor '", t.name, "': invalid shape ", ShapeToString(x.shape()));
  }
  if (x.nbytes() > 0 && !x.defined()) {
    return InvalidInput("tensor '", t.name, "': ", x.nbytes(), " bytes but no storage");
  }
  if (IsPackedDType(x.dtype())) {
    SLIM_CHECK_INPUT(x.nbytes() > 0, "tensor '", t.name, "': packed dtype ",
                     DTypeName(x.dtype()), " with 0 bytes");
  } else {
    const size_t expect = static_cast<size_t>(numel) * DTypeSize(x.dtype());
    SLIM_CHECK_INPUT(x.nbytes() == expect, "tensor '", t.name, "': ", x.nbytes(),
                     " bytes, but ", DTypeName(x.dtype()), " ", ShapeToString(x.shape()),
                     " needs ", expect);
  }
  return Status::Ok();
}

// Collects the tensor table: initializers in graph order, then every
// tensor-valued attribute in node order. A Constant's `value` is named after
// the value it produces, other attributes "<output>#<key>"; a clash with an
// existing name gets a ".N" suffix, so names stay unique and deterministic.
struct TensorPlan {
  std::vector<PlannedTensor> tensors;
  std::map<std::pair<const Node*, std::string>, std::string> attr_names;
};

Expected<TensorPlan> PlanTensors(const Graph& g, size_t align) {
  TensorPlan plan;
  std::set<std::string> used;
  for (const std::string& name : g.initializer_names()) {
    PlannedTensor t;
    t.name = name;
    t.tensor = *g.FindInitializer(name);
    t.value = name;
    used.insert(name);
    plan.tensors.push_back(std::move(t));
  }
  for (const Node& n : g.nodes) {
    for (const auto& [key, attr] : n.attrs) {
      if (attr.type != Attribute::Type::kTensor) continue;
      const bool constant_value =
          n.op_type == "Constant" && key == "value" && n.outputs.size() == 1 && !n.outputs[0].empty();
      std::string base;
      if (constant_value) {
        base = n.outputs[0];
      } else {
        std::string stem = n.name;
        for (const std::string& o : n.outputs) {
          if (!o.empty()) {
            stem = o;
            break;
          }
        }
        base = stem + "#" + key;
      }
      std::string name = base;
      for (int suffix = 1; used.count(name); ++suffix) name = StrCat(base, ".", suffix);
      used.insert(name);
      plan.attr_names[{&n, key}] = name;
      PlannedTensor t;
      t.name = name;
      t.tensor = attr.t;
      if (constant_value) t.value = n.outputs[0];
      plan.tensors.push_back(std::move(t));
    }
  }
  uint64_t cursor = 0;
  for (PlannedTensor& t : plan.tensors) {
    SLIM_RETURN_IF_ERROR(CheckTensor(t));
    if (IsPackedDType(t.tensor.dtype())) {
      SLIM_ASSIGN_OR_RETURN(t.layout, PackedLayout(g, t));
    } else {
      t.layout = kDenseLayout;
    }
    t.offset = RoundUp(cursor, align);
    cursor = t.offset + t.tensor.nbytes();
  }
  return plan;
}

// Alignment padding: every gap in the file is shorter than the alignment.
const uint8_t* ZeroBytes() {
  static const std::vector<uint8_t> zeros(kPackedPageAlign, 0);
  return zeros.data();
}

}  // namespace

Status WritePacked(const Model& model, const std::string& path,
                   const PackedWriteOptions& options) {
  const Graph& g = model.graph;
  SLIM_RETURN_IF_ERROR(g.Validate().WithContext(path));
  const size_t align = options.page_align ? kPackedPageAlign : kPackedTensorAlign;

  json provenance = json::object();
  if (!options.provenance_json.empty()) {
    provenance = json::parse(options.provenance_json, nullptr, /*allow_exceptions=*/false);
    if (provenance.is_discarded() || !provenance.is_object()) {
      return InvalidInput(path, ": provenance is not a JSON object: ",
                          options.provenance_json.substr(0, 80));
    }
  }

  Expected<TensorPlan> planned = PlanTensors(g, align);
  if (!planned.ok()) return planned.status().WithContext(path);
  TensorPlan& plan = *planned;

  // Checksums and the content hash need every byte of the data section, which
  // is exactly the tensors in order with zero gaps between them.
  Sha256 sha;
  uint64_t data_size = 0;
  for (PlannedTensor& t : plan.tensors) {
    if (t.offset > data_size) sha.Update(ZeroBytes(), t.offset - data_size);
    t.checksum = Checksum64(t.tensor.raw(), t.tensor.nbytes());
    if (t.tensor.nbytes()) sha.Update(t.tensor.raw(), t.tensor.nbytes());
    data_size = t.offset + t.tensor.nbytes();
  }

  json tensors = json::array();
  for (const PlannedTensor& t : plan.tensors) {
    tensors.push_back(json{{"name", t.name},
                           {"dtype", static_cast<int32_t>(t.tensor.dtype())},
                           {"shape", t.tensor.shape()},
                           {"layout", t.layout},
                           {"offset", t.offset},
                           {"nbytes", t.tensor.nbytes()},
                           {"checksum", ChecksumHex(t.checksum)}});
  }
  json meta;
  meta["format"] = "slimpack-packed";
  meta["graph"] = GraphToJson(g, [&](const Node& n, const std::string& key) {
    return plan.attr_names.at({&n, key});
  });
  meta["decoder"] = model.decoder ? packed::DecoderToJson(*model.decoder) : json(nullptr);
  meta["byte_vocab"] =
      model.byte_vocab ? json{{"first_id", model.byte_vocab->first_id}} : json(nullptr);
  // Only when there is one, so files of models without a tokenizer are as before.
  if (model.tokenizer) meta["tokenizer"] = json{{"json", model.tokenizer->json}, {"config", model.tokenizer->config}};
  meta["tensors"] = std::move(tensors);
  meta["content_sha256"] = sha.HexDigest();
  meta["provenance"] = std::move(provenance);
  std::string meta_text;
  try {
    meta_text = meta.dump();
  } catch (const json::exception& e) {
    // Strings (names, attributes, metadata) must be UTF-8 to be JSON.
    return InvalidInput(path, ": cannot encode metadata as JSON: ", e.what());
  }

  packed::Header h;
  h.version = kPackedVersion;
  h.flags = options.page_align ? kPackedFlagPageAligned : 0u;
  h.metadata_offset = kPackedHeaderBytes;
  h.metadata_size = meta_text.size();
  h.data_offset = RoundUp(kPackedHeaderBytes + meta_text.size(), align);
  h.data_size = data_size;
  h.metadata_checksum = Checksum64(meta_text.data(), meta_text.size());
  uint8_t header[kPackedHeaderBytes];
  packed::EncodeHeader(h, header);

  SLIM_ASSIGN_OR_RETURN(AtomicFileWriter w, AtomicFileWriter::Open(path));
  SLIM_RETURN_IF_ERROR(w.Write(header, sizeof header));
  SLIM_RETURN_IF_ERROR(w.Write(meta_text));
  SLIM_RETURN_IF_ERROR(w.Write(ZeroBytes(), h.data_offset - w.offset()));
  for (const PlannedTensor& t : plan.tensors) {
    SLIM_RETURN_IF_ERROR(w.Write(ZeroBytes(), h.data_offset + t.offset - w.offset()));
    SLIM_RETURN_IF_ERROR(w.Write(t.tensor.raw(), t.tensor.nbytes()));
  }
  return w.Commit();
}

bool IsPackedFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[sizeof kPackedMagic];
  if (!in.read(magic, sizeof magic)) return false;
  return std::memcmp(magic, kPackedMagic, sizeof magic) == 0;
}

}  // namespace slim
