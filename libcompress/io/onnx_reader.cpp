// ONNX reader: ModelProto (libonnx-dev's generated classes) -> IR Model.
//
// The model file is memory-mapped and parsed with a CodedInputStream whose
// total-bytes limit is raised to protobuf's hard 2 GiB ceiling. Inline
// tensor bytes (raw_data, typed fields) are copied into 64-byte aligned
// owned buffers one tensor at a time, and the protobuf copy of each tensor is
// released right after, so the parsed message and the IR never hold the
// weights twice. External data files are mapped once each and the tensors
// become views into the mapping (no copy). Every error names the file and,
// where it applies, the tensor, node, value or byte offset.
#include <limits.h>
#include <stdlib.h>

#include <climits>
#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <onnx/onnx_pb.h>

#include "libcompress/io/onnx.h"

namespace slim {
namespace {

constexpr int64_t kMinOpset = 9;

// Where external data files are looked up, and the files already mapped
// (many tensors share one data file).
struct ExternalData {
  std::string dir;  // directory of the model (or .pb) file, "" = cwd
  std::map<std::string, std::shared_ptr<MappedFile>> files;
};

std::string DirName(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// Parses `bytes` as message `msg`; protobuf's default limit is raised to the
// format's own INT_MAX ceiling so models up to 2 GiB load.
bool ParseMessage(const MappedFile& file, google::protobuf::MessageLite* msg) {
  google::protobuf::io::ArrayInputStream array(file.data(), static_cast<int>(file.size()));
  google::protobuf::io::CodedInputStream coded(&array);
  coded.SetTotalBytesLimit(INT_MAX);
  return msg->ParseFromCodedStream(&coded) && coded.ConsumedEntireMessage();
}

Expected<std::shared_ptr<MappedFile>> MapProtoFile(const std::string& path) {
  SLIM_ASSIGN_OR_RETURN(std::shared_ptr<MappedFile> file, MappedFile::Open(path));
  SLIM_CHECK_INPUT(file->size() > 0, path, ": file is empty");
  SLIM_CHECK_INPUT(file->size() <= static_cast<size_t>(INT_MAX), path, ": ", file->size(),
                   " bytes is past protobuf's 2 GiB limit; an ONNX file this large must keep its "
                   "weights in external data files");
  return file;
}

// The mapped external file for `location`, refusing locations that could
// read outside the model's directory: absolute paths, '..' components and
// symlinks that resolve elsewhere.
Expected<std::shared_ptr<MappedFile>> OpenExternal(ExternalData& ext, const std::string& tensor,
                                                   const std::string& location) {
  auto it = ext.files.find(location);
  if (it != ext.files.end()) return it->second;
  SLIM_CHECK_INPUT(!location.empty(), "tensor '", tensor, "': external data has no location");
  SLIM_CHECK_INPUT(location[0] != '/', "tensor '", tensor, "': external data location '", location,
                   "' is absolute; only paths relative to the model's directory are allowed");
  size_t start = 0;
  while (start <= location.size()) {
    size_t end = location.find('/', start);
    if (end == std::string::npos) end = location.size();
    SLIM_CHECK_INPUT(location.compare(start, end - start, "..") != 0, "tensor '", tensor,
                     "': external data location '", location,
                     "' contains a '..' component; it must stay inside the model's directory");
    start = end + 1;
  }
  const std::string path = ext.dir + "/" + location;
  char dir_real[PATH_MAX];
  char file_real[PATH_MAX];
  SLIM_CHECK_INPUT(::realpath(ext.dir.c_str(), dir_real) != nullptr, "tensor '", tensor,
                   "': cannot resolve the model directory '", ext.dir, "'");
  SLIM_CHECK_INPUT(::realpath(path.c_str(), file_real) != nullptr, "tensor '", tensor,
                   "': external data file '", path, "' does not exist");
  const std::string dir_prefix = std::string(dir_real) == "/" ? "/" : std::string(dir_real) + "/";
  SLIM_CHECK_INPUT(std::strncmp(file_real, dir_prefix.c_str(), dir_prefix.size()) == 0, "tensor '",
                   tensor, "': external data location '", location, "' resolves to '", file_real,
                   "', outside the model's directory '", dir_real, "' (symlink escape)");
  SLIM_ASSIGN_OR_RETURN(std::shared_ptr<MappedFile> file, MappedFile::Open(path));
  ext.files[location] = file;
  return file;
}

Expected<uint64_t> ParseExternalNumber(const std::string& tensor, const std::string& key,
                                       const std::string& value) {
  SLIM_CHECK_INPUT(!value.empty() && value.size() <= 19 &&
                       value.find_first_not_of("0123456789") == std::string::npos,
                   "tensor '", tensor, "': external data ", key, " '", value,
                   "' is not a non-negative integer");
  return static_cast<uint64_t>(std::stoull(value));
}

Expected<Tensor> ExternalTensor(const onnx::TensorProto& tp, DType dtype,
                                std::vector<int64_t> shape, size_t nbytes, ExternalData& ext) {
  const std::string& name = tp.name();
  std::string location;
  uint64_t offset = 0;
  bool has_length = false;
  uint64_t length = 0;
  for (const auto& kv : tp.external_data()) {
    if (kv.key() == "location") {
      location = kv.value();
    } else if (kv.key() == "offset") {
      SLIM_ASSIGN_OR_RETURN(offset, ParseExternalNumber(name, "offset", kv.value()));
    } else if (kv.key() == "length") {
      SLIM_ASSIGN_OR_RETURN(length, ParseExternalNumber(name, "length", kv.value()));
      has_length = true;
    }
  }
  SLIM_CHECK_INPUT(!has_length || length == nbytes, "tensor '", name, "': external data length ",
                   length, " does not match dims ", ShapeToString(shape), " ", DTypeName(dtype),
                   " (", nbytes, " bytes)");
  SLIM_ASSIGN_OR_RETURN(std::shared_ptr<MappedFile> file, OpenExternal(ext, name, location));
  SLIM_CHECK_INPUT(offset <= file->size() && nbytes <= file->size() - offset, "tensor '", name,
                   "': external data [", offset, ", ", offset + nbytes, ") lies outside '",
                   file->path(), "' (", file->size(), " bytes)");
  return Tensor::View(file, static_cast<size_t>(offset), nbytes, dtype, std::move(shape));
}

// Copies a typed repeated field into an owned tensor, narrowing each value
// to the element type (int32_data carries fp16/bf16 bit patterns and the
// small integer types, per onnx.proto).
template <typename Elem, typename Field>
Tensor FromTypedField(DType dtype, std::vector<int64_t> shape, const Field& field) {
  Tensor t(dtype, std::move(shape));
  Elem* out = t.MutableData<Elem>();
  for (int i = 0; i < field.size(); ++i) out[i] = static_cast<Elem>(field.Get(i));
  return t;
}

// TensorProto -> Tensor. Releases the proto's copy of the bytes so a model
// never holds its weights twice while it is being converted.
Expected<Tensor> ConvertTensor(onnx::TensorProto& tp, ExternalData& ext) {
  const std::string& name = tp.name();
  const DType dtype = DTypeFromOnnx(tp.data_type());
  if (dtype == DType::kUndefined || dtype == DType::kString) {
    return Unsupported("tensor '", name, "' has element type ", tp.data_type(),
                       dtype == DType::kString ? " (string)" : "",
                       "; slimpack reads float, integer and bool tensors");
  }
  SLIM_CHECK_INPUT(!tp.has_segment(), "tensor '", name, "' is segmented; not supported");
  std::vector<int64_t> shape(tp.dims().begin(), tp.dims().end());
  const int64_t numel = ShapeNumel(shape);
  const size_t elem = DTypeSize(dtype);
  SLIM_CHECK_INPUT(numel >= 0 && static_cast<uint64_t>(numel) <= SIZE_MAX / elem, "tensor '", name,
                   "' has invalid dims ", ShapeToString(shape));
  const size_t nbytes = static_cast<size_t>(numel) * elem;

  if (tp.data_location() == onnx::TensorProto::EXTERNAL) {
    return ExternalTensor(tp, dtype, std::move(shape), nbytes, ext);
  }
  if (tp.has_raw_data()) {
    std::string* raw = tp.mutable_raw_data();
    SLIM_CHECK_INPUT(raw->size() == nbytes, "tensor '", name, "': raw_data holds ", raw->size(),
                     " bytes but dims ", ShapeToString(shape), " ", DTypeName(dtype), " need ",
                     nbytes);
    Tensor t = Tensor::FromBytes(dtype, std::move(shape), raw->data(), raw->size());
    std::string().swap(*raw);
    return t;
  }
  auto check_count = [&](int found, const char* field) -> Status {
    SLIM_CHECK_INPUT(static_cast<int64_t>(found) == numel, "tensor '", name, "': ", field,
                     " holds ", found, " values but dims ", ShapeToString(shape), " need ", numel);
    return Status::Ok();
  };
  Tensor t;
  switch (dtype) {
    case DType::kFloat32:
      SLIM_RETURN_IF_ERROR(check_count(tp.float_data_size(), "float_data"));
      t = FromTypedField<float>(dtype, shape, tp.float_data());
      tp.clear_float_data();
      break;
    case DType::kFloat64:
      SLIM_RETURN_IF_ERROR(check_count(tp.double_data_size(), "double_data"));
      t = FromTypedField<double>(dtype, shape, tp.double_data());
      tp.clear_double_data();
      break;
    case DType::kInt64:
      SLIM_RETURN_IF_ERROR(check_count(tp.int64_data_size(), "int64_data"));
      t = FromTypedField<int64_t>(dtype, shape, tp.int64_data());
      tp.clear_int64_data();
      break;
    case DType::kUInt32:
      SLIM_RETURN_IF_ERROR(check_count(tp.uint64_data_size(), "uint64_data"));
      t = FromTypedField<uint32_t>(dtype, shape, tp.uint64_data());
      tp.clear_uint64_data();
      break;
    case DType::kUInt64:
      SLIM_RETURN_IF_ERROR(check_count(tp.uint64_data_size(), "uint64_data"));
      t = FromTypedField<uint64_t>(dtype, shape, tp.uint64_data());
      tp.clear_uint64_data();
      break;
    case DType::kInt32:
      SLIM_RETURN_IF_ERROR(check_count(tp.int32_data_size(), "int32_data"));
      t = FromTypedField<int32_t>(dtype, shape, tp.int32_data());
      tp.clear_int32_data();
      break;
    case DType::kFloat16:
    case DType::kBFloat16:
    case DType::kUInt16:
      SLIM_RETURN_IF_ERROR(check_count(tp.int32_data_size(), "int32_data"));
      t = FromTypedField<uint16_t>(dtype, shape, tp.int32_data());
      tp.clear_int32_data();
      break;
    case DType::kInt16:
      SLIM_RETURN_IF_ERROR(check_count(tp.int32_data_size(), "int32_data"));
      t = FromTypedField<int16_t>(dtype, shape, tp.int32_data());
      tp.clear_int32_data();
      break;
    case DType::kInt8:
      SLIM_RETURN_IF_ERROR(check_count(tp.int32_data_size(), "int32_data"));
      t = FromTypedField<int8_t>(dtype, shape, tp.int32_data());
      tp.clear_int32_data();
      break;
    case DType::kUInt8:
      SLIM_RETURN_IF_ERROR(check_count(tp.int32_data_size(), "int32_data"));
      t = FromTypedField<uint8_t>(dtype, shape, tp.int32_data());
      tp.clear_int32_data();
      break;
    case DType::kBool: {
      SLIM_RETURN_IF_ERROR(check_count(tp.int32_data_size(), "int32_data"));
      t = Tensor(dtype, shape);
      uint8_t* out = t.MutableData<uint8_t>();
      for (int i = 0; i < tp.int32_data_size(); ++i) out[i] = tp.int32_data(i) != 0 ? 1 : 0;
      tp.clear_int32_data();
      break;
    }
    default:
      return Unsupported("tensor '", name, "' has element type ", DTypeName(dtype),
                         "; slimpack cannot read it");
  }
  return t;
}

Status ConvertValueInfo(const onnx::ValueInfoProto& vi, const char* role, ValueInfo* out) {
  out->name = vi.name();
  if (!vi.has_type()) return Status::Ok();  // untyped: dtype and shape unknown
  const onnx::TypeProto& type = vi.type();
  if (!type.has_tensor_type()) {
    return Unsupported(role, " '", vi.name(),
                       "' is not a tensor (sequence, map or optional types are not supported)");
  }
  const onnx::TypeProto::Tensor& tt = type.tensor_type();
  if (tt.elem_type() != 0) {
    out->dtype = DTypeFromOnnx(tt.elem_type());
    if (out->dtype == DType::kUndefined) {
      return Unsupported(role, " '", vi.name(), "' has element type ", tt.elem_type(),
                         ", which slimpack does not support");
    }
  }
  if (!tt.has_shape()) return Status::Ok();
  Shape shape;
  for (const auto& d : tt.shape().dim()) {
    if (d.has_dim_value()) {
      SLIM_CHECK_INPUT(d.dim_value() >= 0, role, " '", vi.name(), "' has negative dim ",
                       d.dim_value());
      shape.emplace_back(d.dim_value());
    } else if (d.has_dim_param()) {
      shape.emplace_back(d.dim_param());
    } else {
      shape.emplace_back();
    }
  }
  out->shape = std::move(shape);
  return Status::Ok();
}

Status ConvertAttribute(onnx::AttributeProto& ap, const Node& node, ExternalData& ext,
                        Attribute* out) {
  const std::string what = node.Describe() + " attribute '" + ap.name() + "'";
  switch (ap.type()) {
    case onnx::AttributeProto::FLOAT:
      *out = Attribute::Float(ap.f());
      return Status::Ok();
    case onnx::AttributeProto::INT:
      *out = Attribute::Int(ap.i());
      return Status::Ok();
    case onnx::AttributeProto::STRING:
      *out = Attribute::String(ap.s());
      return Status::Ok();
    case onnx::AttributeProto::TENSOR: {
      Expected<Tensor> t = ConvertTensor(*ap.mutable_t(), ext);
      if (!t.ok()) return t.status().WithContext(what);
      *out = Attribute::FromTensor(std::move(t).value());
      return Status::Ok();
    }
    case onnx::AttributeProto::FLOATS:
      *out = Attribute::Floats({ap.floats().begin(), ap.floats().end()});
      return Status::Ok();
    case onnx::AttributeProto::INTS:
      *out = Attribute::Ints({ap.ints().begin(), ap.ints().end()});
      return Status::Ok();
    case onnx::AttributeProto::STRINGS:
      out->type = Attribute::Type::kStrings;
      out->strings.assign(ap.strings().begin(), ap.strings().end());
      return Status::Ok();
    case onnx::AttributeProto::GRAPH:
    case onnx::AttributeProto::GRAPHS:
      return Unsupported(what, " is a subgraph: control flow (If, Loop, Scan) is not supported");
    case onnx::AttributeProto::UNDEFINED:
      return InvalidInput(what, " has no type");
    default:
      return Unsupported(what, " has type ", onnx::AttributeProto::AttributeType_Name(ap.type()),
                         ", which slimpack does not support");
  }
}

Status ConvertGraph(onnx::GraphProto& gp, ExternalData& ext, Graph* g) {
  g->name = gp.name();
  if (gp.sparse_initializer_size() > 0) {
    return Unsupported("sparse initializer '", gp.sparse_initializer(0).values().name(),
                       "': sparse initializers are not supported");
  }
  for (const auto& vi : gp.input()) {
    ValueInfo v;
    SLIM_RETURN_IF_ERROR(ConvertValueInfo(vi, "graph input", &v));
    g->inputs.push_back(std::move(v));
  }
  for (const auto& vi : gp.output()) {
    ValueInfo v;
    SLIM_RETURN_IF_ERROR(ConvertValueInfo(vi, "graph output", &v));
    g->outputs.push_back(std::move(v));
  }
  for (const auto& vi : gp.value_info()) {
    ValueInfo v;
    SLIM_RETURN_IF_ERROR(ConvertValueInfo(vi, "value", &v));
    g->value_info[v.name] = std::move(v);
  }
  for (auto& tp : *gp.mutable_initializer()) {
    SLIM_CHECK_INPUT(!tp.name().empty(), "an initializer has no name");
    SLIM_CHECK_INPUT(g->FindInitializer(tp.name()) == nullptr, "initializer '", tp.name(),
                     "' is defined twice");
    const std::string name = tp.name();
    SLIM_ASSIGN_OR_RETURN(Tensor t, ConvertTensor(tp, ext));
    g->AddInitializer(name, std::move(t));
  }
  g->nodes.reserve(static_cast<size_t>(gp.node_size()));
  for (auto& np : *gp.mutable_node()) {
    Node node;
    node.name = np.name();
    node.op_type = np.op_type();
    node.domain = np.domain();
    node.inputs.assign(np.input().begin(), np.input().end());
    node.outputs.assign(np.output().begin(), np.output().end());
    for (auto& ap : *np.mutable_attribute()) {
      Attribute attr;
      SLIM_RETURN_IF_ERROR(ConvertAttribute(ap, node, ext, &attr));
      SLIM_CHECK_INPUT(node.attrs.emplace(ap.name(), std::move(attr)).second, node.Describe(),
                       " has attribute '", ap.name(), "' twice");
    }
    g->nodes.push_back(std::move(node));
  }
  return g->Validate();
}

const ValueInfo* FindValue(const std::vector<ValueInfo>& values, const std::string& name) {
  for (const auto& v : values) {
    if (v.name == name) return &v;
  }
  return nullptr;
}

// Optimum / torch decoder interface: input_ids -> logits, optionally with
// past_key_values.N.key/value [batch, kv_heads, past, head_dim] inputs.
std::optional<DecoderSpec> DetectDecoder(const Graph& g) {
  DecoderSpec spec;
  if (!FindValue(g.inputs, spec.input_ids)) return std::nullopt;
  const ValueInfo* logits = FindValue(g.outputs, spec.logits);
  if (!logits) return std::nullopt;
  if (logits->shape && !logits->shape->empty() && logits->shape->back().is_static()) {
    spec.vocab_size = logits->shape->back().value;
  }
  spec.has_attention_mask = FindValue(g.inputs, "attention_mask") != nullptr;
  spec.has_position_ids = FindValue(g.inputs, "position_ids") != nullptr;
  while (FindValue(g.inputs, DecoderSpec::PastKey(spec.num_layers)) &&
         FindValue(g.inputs, DecoderSpec::PastValue(spec.num_layers))) {
    ++spec.num_layers;
  }
  spec.has_past = spec.num_layers > 0;
  if (spec.has_past) {
    const ValueInfo* past = FindValue(g.inputs, DecoderSpec::PastKey(0));
    if (past->dtype != DType::kUndefined) spec.kv_dtype = past->dtype;
    if (past->shape && past->shape->size() == 4) {
      const Shape& s = *past->shape;
      if (s[1].is_static()) spec.num_kv_heads = s[1].value;
      if (s[3].is_static()) spec.head_dim = s[3].value;
    }
  }
  return spec;
}

Expected<Model> ReadOnnxImpl(const std::string& path, std::shared_ptr<MappedFile> file) {
  onnx::ModelProto mp;
  SLIM_CHECK_INPUT(ParseMessage(*file, &mp),
                   "not an ONNX model: protobuf parsing failed after reading up to ",
                   file->size(), " bytes (the file is truncated or is not a ModelProto)");
  file.reset();  // the parsed message owns copies; drop the mapping early
  SLIM_CHECK_INPUT(mp.has_graph(), "not an ONNX model: ModelProto has no graph (ir_version ",
                   mp.ir_version(), ")");
  Model model;
  model.format = "onnx";
  model.path = path;
  Graph& g = model.graph;
  for (const auto& op : mp.opset_import()) {
    SLIM_CHECK_INPUT(g.opset_imports.emplace(op.domain(), op.version()).second,
                     "opset_import lists domain '", op.domain(), "' twice");
  }
  const int64_t opset = g.onnx_opset();
  SLIM_CHECK_INPUT(opset > 0, "no opset_import for the default domain (ai.onnx)");
  if (opset < kMinOpset) {
    return Unsupported("ai.onnx opset ", opset, " is older than ", kMinOpset,
                       ", the oldest slimpack reads; convert the model with "
                       "onnx.version_converter to a newer opset");
  }
  g.ir_version = mp.ir_version();
  g.producer_name = mp.producer_name();
  g.producer_version = mp.producer_version();
  for (const auto& kv : mp.metadata_props()) g.metadata[kv.key()] = kv.value();
  ExternalData ext;
  ext.dir = DirName(path);
  SLIM_RETURN_IF_ERROR(ConvertGraph(*mp.mutable_graph(), ext, &g));
  model.decoder = DetectDecoder(g);
  return model;
}

}  // namespace

Expected<Model> ReadOnnx(const std::string& path) {
  Expected<std::shared_ptr<MappedFile>> file = MapProtoFile(path);  // errors name the path
  if (!file.ok()) return file.status();
  Expected<Model> model = ReadOnnxImpl(path, std::move(file).value());
  if (!model.ok()) return model.status().WithContext(path);
  return model;
}

Expected<std::vector<std::string>> ReadOnnxOpTypes(const std::string& path) {
  Expected<std::shared_ptr<MappedFile>> file = MapProtoFile(path);
  if (!file.ok()) return file.status();
  onnx::ModelProto mp;
  if (!ParseMessage(**file, &mp)) {
    return InvalidInput(path, ": not an ONNX model: protobuf parsing failed");
  }
  std::set<std::string> ops;
  for (const auto& n : mp.graph().node()) {
    const bool std_domain = n.domain().empty() || n.domain() == "ai.onnx";
    ops.insert(std_domain ? n.op_type() : n.domain() + "." + n.op_type());
  }
  return std::vector<std::string>(ops.begin(), ops.end());
}

Expected<Tensor> ReadTensorProtoFile(const std::string& path, std::string* name) {
  Expected<std::shared_ptr<MappedFile>> file = MapProtoFile(path);
  if (!file.ok()) return file.status();
  onnx::TensorProto tp;
  if (!ParseMessage(**file, &tp)) {
    return InvalidInput(path, ": not a TensorProto: protobuf parsing failed (",
                        (*file)->size(), " bytes)");
  }
  ExternalData ext;
  ext.dir = DirName(path);
  if (name) *name = tp.name();
  Expected<Tensor> t = ConvertTensor(tp, ext);
  if (!t.ok()) return t.status().WithContext(path);
  return t;
}

}  // namespace slim
