// ONNX writer: IR Graph -> ModelProto file (and `<path>.data` for external
// tensors), both written atomically.
//
// Initializer bytes are streamed, not copied into the protobuf message: the
// model is serialized without initializers, and the graph field is emitted
// by hand as
//   tag(graph) len | GraphProto without initializers | { tag(initializer) len
//   | TensorProto header (dims, data_type, name) | tag(raw_data) len | bytes }*
// Protobuf parsers accept fields in any order inside a message, so this is
// an ordinary ModelProto, and writing a 1.9 GB model costs no extra copy of
// its weights. External tensors are appended to the data file at 64-byte
// aligned offsets so readers can map them for SIMD loads.
#include <climits>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <onnx/onnx_pb.h>

#include "libcompress/io/atomic_file.h"
#include "libcompress/io/onnx.h"

namespace slim {
namespace {

// Above this many inline bytes the writer moves tensors to external data on
// its own: protobuf cannot parse messages past 2 GiB, and the graph itself
// needs some of that room.
constexpr uint64_t kMaxInlineBytes = 1800ull << 20;
// Tensors at least this large go external in that automatic mode; small ones
// (shapes, scalars) stay inline where tools expect them.
constexpr size_t kAutoExternalThreshold = 1024;
constexpr uint64_t kExternalAlignment = 64;

// Protobuf wire format: field tag for a length-delimited field, varints.
void AppendVarint(uint64_t v, std::string* out) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}
void AppendLengthDelimitedHeader(int field, uint64_t length, std::string* out) {
  AppendVarint(static_cast<uint64_t>(field) << 3 | 2u, out);
  AppendVarint(length, out);
}
// Field numbers from onnx.proto.
constexpr int kModelGraphField = 7;
constexpr int kGraphInitializerField = 5;
constexpr int kTensorRawDataField = 9;

std::string BaseName(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// The `<model>.data` file, opened when the first tensor goes external.
class ExternalSink {
 public:
  ExternalSink(std::string path, size_t threshold)
      : path_(std::move(path)), location_(BaseName(path_)), threshold_(threshold) {}

  bool Wants(const Tensor& t) const { return threshold_ > 0 && t.nbytes() >= threshold_; }

  // Appends the tensor's bytes and points `tp` at them.
  Status Put(const Tensor& t, onnx::TensorProto* tp) {
    if (!writer_) {
      SLIM_ASSIGN_OR_RETURN(AtomicFileWriter w, AtomicFileWriter::Open(path_));
      writer_.emplace(std::move(w));
    }
    static const char kZeros[kExternalAlignment] = {};
    const uint64_t pad = (kExternalAlignment - writer_->offset() % kExternalAlignment) %
                         kExternalAlignment;
    SLIM_RETURN_IF_ERROR(writer_->Write(kZeros, pad));
    const uint64_t offset = writer_->offset();
    SLIM_RETURN_IF_ERROR(writer_->Write(t.raw(), t.nbytes()));
    tp->set_data_location(onnx::TensorProto::EXTERNAL);
    auto add = [&](const char* key, const std::string& value) {
      auto* kv = tp->add_external_data();
      kv->set_key(key);
      kv->set_value(value);
    };
    add("location", location_);
    add("offset", std::to_string(offset));
    add("length", std::to_string(t.nbytes()));
    return Status::Ok();
  }

  Status Commit() { return writer_ ? writer_->Commit() : Status::Ok(); }

 private:
  std::string path_;
  std::string location_;
  size_t threshold_;
  std::optional<AtomicFileWriter> writer_;
};

// dims, data_type and name; the bytes are added by the caller.
Status TensorHeader(const Tensor& t, const std::string& name, onnx::TensorProto* tp) {
  const DType dtype = t.dtype();
  if (DTypeFromOnnx(static_cast<int32_t>(dtype)) == DType::kUndefined ||
      dtype == DType::kString) {
    return Unsupported("tensor '", name, "' has dtype ", DTypeName(dtype),
                       ", which an ONNX file cannot store");
  }
  const int64_t numel = t.numel();
  SLIM_CHECK_INPUT(numel >= 0 && static_cast<uint64_t>(numel) * DTypeSize(dtype) == t.nbytes(),
                   "tensor '", name, "' holds ", t.nbytes(), " bytes but its shape ",
                   ShapeToString(t.shape()), " ", DTypeName(dtype), " needs ",
                   numel * static_cast<int64_t>(DTypeSize(dtype)));
  tp->set_name(name);
  tp->set_data_type(static_cast<int32_t>(dtype));
  for (int64_t d : t.shape()) tp->add_dims(d);
  return Status::Ok();
}

void FillValueInfo(const ValueInfo& v, onnx::ValueInfoProto* vp) {
  vp->set_name(v.name);
  if (v.dtype == DType::kUndefined && !v.shape) return;
  auto* tt = vp->mutable_type()->mutable_tensor_type();
  if (v.dtype != DType::kUndefined) tt->set_elem_type(static_cast<int32_t>(v.dtype));
  if (!v.shape) return;
  auto* shape = tt->mutable_shape();
  for (const Dim& d : *v.shape) {
    auto* dp = shape->add_dim();
    if (d.is_static()) {
      dp->set_dim_value(d.value);
    } else if (!d.symbol.empty()) {
      dp->set_dim_param(d.symbol);
    }
  }
}

Status FillAttribute(const Node& node, const std::string& key, const Attribute& a,
                     ExternalSink& sink, onnx::AttributeProto* ap) {
  ap->set_name(key);
  switch (a.type) {
    case Attribute::Type::kFloat:
      ap->set_type(onnx::AttributeProto::FLOAT);
      ap->set_f(a.f);
      break;
    case Attribute::Type::kInt:
      ap->set_type(onnx::AttributeProto::INT);
      ap->set_i(a.i);
      break;
    case Attribute::Type::kString:
      ap->set_type(onnx::AttributeProto::STRING);
      ap->set_s(a.s);
      break;
    case Attribute::Type::kTensor: {
      ap->set_type(onnx::AttributeProto::TENSOR);
      onnx::TensorProto* tp = ap->mutable_t();
      Status st = TensorHeader(a.t, node.name.empty() ? key : node.name + "." + key, tp);
      if (!st.ok()) return st.WithContext(node.Describe());
      if (sink.Wants(a.t)) {
        SLIM_RETURN_IF_ERROR(sink.Put(a.t, tp));
      } else {
        tp->set_raw_data(a.t.raw(), a.t.nbytes());
      }
      break;
    }
    case Attribute::Type::kFloats:
      ap->set_type(onnx::AttributeProto::FLOATS);
      for (float f : a.floats) ap->add_floats(f);
      break;
    case Attribute::Type::kInts:
      ap->set_type(onnx::AttributeProto::INTS);
      for (int64_t i : a.ints) ap->add_ints(i);
      break;
    case Attribute::Type::kStrings:
      ap->set_type(onnx::AttributeProto::STRINGS);
      for (const auto& s : a.strings) ap->add_strings(s);
      break;
  }
  return Status::Ok();
}

// One initializer as it is streamed: serialized header, then (inline) bytes.
struct InitializerRecord {
  std::string header;    // TensorProto fields + the raw_data tag and length
  const Tensor* inline_bytes = nullptr;  // null when the tensor is external
  uint64_t size() const { return header.size() + (inline_bytes ? inline_bytes->nbytes() : 0); }
};

uint64_t TotalTensorBytes(const Graph& graph) {
  uint64_t total = 0;
  for (const auto& name : graph.initializer_names()) total += graph.FindInitializer(name)->nbytes();
  for (const auto& node : graph.nodes) {
    for (const auto& [key, a] : node.attrs) {
      if (a.type == Attribute::Type::kTensor) total += a.t.nbytes();
    }
  }
  return total;
}

Status WriteOnnxImpl(const Graph& graph, const std::string& path, const OnnxWriteOptions& options) {
  SLIM_CHECK_INPUT(graph.onnx_opset() > 0,
                   "the graph imports no ai.onnx opset; an ONNX model needs one");
  size_t threshold = options.external_data_threshold;
  if (threshold == 0 && TotalTensorBytes(graph) > kMaxInlineBytes) {
    threshold = kAutoExternalThreshold;
  }
  ExternalSink sink(path + ".data", threshold);

  onnx::ModelProto mp;
  mp.set_ir_version(graph.ir_version);
  mp.set_producer_name(graph.producer_name);
  mp.set_producer_version(graph.producer_version);
  for (const auto& [domain, version] : graph.opset_imports) {
    auto* op = mp.add_opset_import();
    op->set_domain(domain);
    op->set_version(version);
  }
  for (const auto& [key, value] : graph.metadata) {
    auto* kv = mp.add_metadata_props();
    kv->set_key(key);
    kv->set_value(value);
  }

  onnx::GraphProto gp;
  gp.set_name(graph.name);
  for (const auto& v : graph.inputs) FillValueInfo(v, gp.add_input());
  for (const auto& v : graph.outputs) FillValueInfo(v, gp.add_output());
  // value_info is a hash map; sorted names keep the output deterministic.
  std::map<std::string, const ValueInfo*> sorted_info;
  for (const auto& [name, v] : graph.value_info) sorted_info[name] = &v;
  for (const auto& [name, v] : sorted_info) FillValueInfo(*v, gp.add_value_info());
  for (const Node& node : graph.nodes) {
    auto* np = gp.add_node();
    np->set_name(node.name);
    np->set_op_type(node.op_type);
    np->set_domain(node.domain);
    for (const auto& in : node.inputs) np->add_input(in);
    for (const auto& out : node.outputs) np->add_output(out);
    for (const auto& [key, a] : node.attrs) {
      SLIM_RETURN_IF_ERROR(FillAttribute(node, key, a, sink, np->add_attribute()));
    }
  }

  std::vector<InitializerRecord> records;
  records.reserve(graph.initializer_count());
  uint64_t graph_size = gp.ByteSizeLong();
  for (const auto& name : graph.initializer_names()) {
    const Tensor& t = *graph.FindInitializer(name);
    onnx::TensorProto tp;
    SLIM_RETURN_IF_ERROR(TensorHeader(t, name, &tp));
    InitializerRecord rec;
    if (sink.Wants(t)) {
      SLIM_RETURN_IF_ERROR(sink.Put(t, &tp));
      rec.header = tp.SerializeAsString();
    } else {
      rec.header = tp.SerializeAsString();
      AppendLengthDelimitedHeader(kTensorRawDataField, t.nbytes(), &rec.header);
      rec.inline_bytes = &t;
    }
    std::string field;
    AppendLengthDelimitedHeader(kGraphInitializerField, rec.size(), &field);
    rec.header.insert(0, field);
    graph_size += rec.size();
    records.push_back(std::move(rec));
  }

  std::string head = mp.SerializeAsString();
  AppendLengthDelimitedHeader(kModelGraphField, graph_size, &head);
  head += gp.SerializeAsString();
  const uint64_t file_size = head.size() + graph_size - gp.ByteSizeLong();
  if (file_size > static_cast<uint64_t>(INT_MAX)) {
    return InvalidInput("the model would be ", file_size,
                        " bytes, past protobuf's 2 GiB limit; set an external data threshold");
  }

  SLIM_ASSIGN_OR_RETURN(AtomicFileWriter out, AtomicFileWriter::Open(path));
  SLIM_RETURN_IF_ERROR(out.Write(head));
  for (const auto& rec : records) {
    SLIM_RETURN_IF_ERROR(out.Write(rec.header));
    if (rec.inline_bytes) {
      SLIM_RETURN_IF_ERROR(out.Write(rec.inline_bytes->raw(), rec.inline_bytes->nbytes()));
    }
  }
  // The data file first: a model on disk must never point at missing data.
  SLIM_RETURN_IF_ERROR(sink.Commit());
  return out.Commit();
}

}  // namespace

Status WriteOnnx(const Graph& graph, const std::string& path, const OnnxWriteOptions& options) {
  Status st = WriteOnnxImpl(graph, path, options);
  // File errors from AtomicFileWriter already start with the path they name.
  if (st.ok() || st.message().rfind(path, 0) == 0) return st;
  return st.WithContext(path);
}

}  // namespace slim

namespace slim {

Status WriteTensorProtoFile(const std::string& path, const Tensor& tensor, const std::string& name) {
  onnx::TensorProto tp;
  SLIM_RETURN_IF_ERROR(TensorHeader(tensor, name, &tp).WithContext(path));
  tp.set_raw_data(tensor.raw(), tensor.nbytes());
  std::string bytes;
  if (!tp.SerializeToString(&bytes)) return Internal(path, ": cannot serialize tensor '", name, "'");
  return WriteFileAtomic(path, bytes);
}

}  // namespace slim
