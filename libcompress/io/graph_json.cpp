// IR graph <-> JSON (schema in graph_json.h and docs/FORMAT.md). The reader
// treats the JSON as untrusted: every field's type is checked before use and
// every error names its JSON path.
#include "libcompress/io/graph_json.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>
#include <utility>
#include <vector>

namespace slim {

using nlohmann::json;

namespace {

// Counts far above any real graph but small enough that a hostile file
// cannot make the reader allocate without bound.
constexpr size_t kMaxNodes = size_t{1} << 22;
constexpr size_t kMaxRank = 64;

const char* AttrTypeName(Attribute::Type t) {
  switch (t) {
    case Attribute::Type::kFloat: return "float";
    case Attribute::Type::kInt: return "int";
    case Attribute::Type::kString: return "string";
    case Attribute::Type::kTensor: return "tensor";
    case Attribute::Type::kFloats: return "floats";
    case Attribute::Type::kInts: return "ints";
    case Attribute::Type::kStrings: return "strings";
  }
  return "?";
}

Expected<Attribute::Type> AttrTypeFromName(const std::string& s, const std::string& where) {
  for (Attribute::Type t :
       {Attribute::Type::kFloat, Attribute::Type::kInt, Attribute::Type::kString,
        Attribute::Type::kTensor, Attribute::Type::kFloats, Attribute::Type::kInts,
        Attribute::Type::kStrings}) {
    if (s == AttrTypeName(t)) return t;
  }
  return InvalidInput(where, ": unknown attribute type '", s,
                      "' (expected float, int, string, tensor, floats, ints or strings)");
}

// Typed accessors: the field must exist and have the JSON type asked for.
Expected<const json*> Field(const json& obj, const char* key, const std::string& where) {
  if (!obj.is_object()) return InvalidInput(where, ": expected a JSON object");
  auto it = obj.find(key);
  if (it == obj.end()) return InvalidInput(where, ": missing field '", key, "'");
  return &*it;
}

Expected<std::string> StringField(const json& obj, const char* key, const std::string& where) {
  SLIM_ASSIGN_OR_RETURN(const json* v, Field(obj, key, where));
  if (!v->is_string()) return InvalidInput(where, ".", key, ": expected a string");
  return v->get<std::string>();
}

Expected<int64_t> IntValue(const json& v, const std::string& where) {
  if (v.is_number_integer()) {
    if (v.is_number_unsigned() &&
        v.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return InvalidInput(where, ": integer out of int64 range");
    }
    return v.get<int64_t>();
  }
  return InvalidInput(where, ": expected an integer");
}

Expected<int64_t> IntField(const json& obj, const char* key, const std::string& where) {
  SLIM_ASSIGN_OR_RETURN(const json* v, Field(obj, key, where));
  return IntValue(*v, where + "." + key);
}

Expected<const json*> ArrayField(const json& obj, const char* key, const std::string& where) {
  SLIM_ASSIGN_OR_RETURN(const json* v, Field(obj, key, where));
  if (!v->is_array()) return InvalidInput(where, ".", key, ": expected an array");
  return v;
}

Expected<std::vector<std::string>> StringArray(const json& arr, const std::string& where) {
  if (!arr.is_array()) return InvalidInput(where, ": expected an array of strings");
  std::vector<std::string> out;
  out.reserve(arr.size());
  for (size_t i = 0; i < arr.size(); ++i) {
    if (!arr[i].is_string()) return InvalidInput(where, "[", i, "]: expected a string");
    out.push_back(arr[i].get<std::string>());
  }
  return out;
}

json ValueInfoToJson(const ValueInfo& vi) {
  json j;
  j["name"] = vi.name;
  j["dtype"] = static_cast<int32_t>(vi.dtype);
  j["shape"] = vi.shape ? DimsToJson(*vi.shape) : json(nullptr);
  return j;
}

Expected<ValueInfo> ValueInfoFromJson(const json& j, const std::string& where) {
  ValueInfo vi;
  SLIM_ASSIGN_OR_RETURN(vi.name, StringField(j, "name", where));
  SLIM_ASSIGN_OR_RETURN(const json* dt, Field(j, "dtype", where));
  // Value infos may leave the type open (dtype 0), tensors may not.
  if (!(dt->is_number_integer() && dt->get<int64_t>() == 0)) {
    SLIM_ASSIGN_OR_RETURN(vi.dtype, DTypeFromCode(*dt, where + ".dtype"));
  }
  SLIM_ASSIGN_OR_RETURN(const json* shape, Field(j, "shape", where));
  if (!shape->is_null()) {
    SLIM_ASSIGN_OR_RETURN(Shape s, DimsFromJson(*shape, where + ".shape"));
    vi.shape = std::move(s);
  }
  return vi;
}

Expected<std::vector<ValueInfo>> ValueInfosFromJson(const json& parent, const char* key,
                                                    const std::string& where) {
  SLIM_ASSIGN_OR_RETURN(const json* arr, ArrayField(parent, key, where));
  std::vector<ValueInfo> out;
  out.reserve(arr->size());
  for (size_t i = 0; i < arr->size(); ++i) {
    SLIM_ASSIGN_OR_RETURN(ValueInfo vi,
                          ValueInfoFromJson((*arr)[i], StrCat(where, ".", key, "[", i, "]")));
    out.push_back(std::move(vi));
  }
  return out;
}

json AttrToJson(const Node& node, const std::string& key, const Attribute& a,
                const TensorAttrNamer& attr_namer) {
  json j;
  j["type"] = AttrTypeName(a.type);
  switch (a.type) {
    case Attribute::Type::kFloat: j["value"] = FloatToJson(a.f); break;
    case Attribute::Type::kInt: j["value"] = a.i; break;
    case Attribute::Type::kString: j["value"] = a.s; break;
    case Attribute::Type::kTensor: j["value"] = attr_namer(node, key); break;
    case Attribute::Type::kFloats: {
      json arr = json::array();
      for (float f : a.floats) arr.push_back(FloatToJson(f));
      j["value"] = std::move(arr);
      break;
    }
    case Attribute::Type::kInts: j["value"] = a.ints; break;
    case Attribute::Type::kStrings: j["value"] = a.strings; break;
  }
  return j;
}

Expected<Attribute> AttrFromJson(const json& j, const std::string& where,
                                 const TensorLookup& lookup) {
  SLIM_ASSIGN_OR_RETURN(std::string type_name, StringField(j, "type", where));
  SLIM_ASSIGN_OR_RETURN(Attribute::Type type, AttrTypeFromName(type_name, where + ".type"));
  SLIM_ASSIGN_OR_RETURN(const json* v, Field(j, "value", where));
  const std::string vwhere = where + ".value";
  Attribute a;
  a.type = type;
  switch (type) {
    case Attribute::Type::kFloat: {
      SLIM_ASSIGN_OR_RETURN(a.f, FloatFromJson(*v, vwhere));
      break;
    }
    case Attribute::Type::kInt: {
      SLIM_ASSIGN_OR_RETURN(a.i, IntValue(*v, vwhere));
      break;
    }
    case Attribute::Type::kString: {
      if (!v->is_string()) return InvalidInput(vwhere, ": expected a string");
      a.s = v->get<std::string>();
      break;
    }
    case Attribute::Type::kTensor: {
      if (!v->is_string()) return InvalidInput(vwhere, ": expected a tensor name");
      Expected<Tensor> t = lookup(v->get<std::string>());
      if (!t.ok()) return t.status().WithContext(vwhere);
      a.t = std::move(t).value();
      break;
    }
    case Attribute::Type::kFloats: {
      if (!v->is_array()) return InvalidInput(vwhere, ": expected an array of numbers");
      for (size_t i = 0; i < v->size(); ++i) {
        SLIM_ASSIGN_OR_RETURN(float f, FloatFromJson((*v)[i], StrCat(vwhere, "[", i, "]")));
        a.floats.push_back(f);
      }
      break;
    }
    case Attribute::Type::kInts: {
      if (!v->is_array()) return InvalidInput(vwhere, ": expected an array of integers");
      for (size_t i = 0; i < v->size(); ++i) {
        SLIM_ASSIGN_OR_RETURN(int64_t x, IntValue((*v)[i], StrCat(vwhere, "[", i, "]")));
        a.ints.push_back(x);
      }
      break;
    }
    case Attribute::Type::kStrings: {
      SLIM_ASSIGN_OR_RETURN(a.strings, StringArray(*v, vwhere));
      break;
    }
  }
  return a;
}

Expected<Node> NodeFromJson(const json& j, const std::string& where, const TensorLookup& lookup) {
  Node n;
  SLIM_ASSIGN_OR_RETURN(n.name, StringField(j, "name", where));
  SLIM_ASSIGN_OR_RETURN(n.op_type, StringField(j, "op_type", where));
  SLIM_ASSIGN_OR_RETURN(n.domain, StringField(j, "domain", where));
  SLIM_ASSIGN_OR_RETURN(const json* inputs, ArrayField(j, "inputs", where));
  SLIM_ASSIGN_OR_RETURN(n.inputs, StringArray(*inputs, where + ".inputs"));
  SLIM_ASSIGN_OR_RETURN(const json* outputs, ArrayField(j, "outputs", where));
  SLIM_ASSIGN_OR_RETURN(n.outputs, StringArray(*outputs, where + ".outputs"));
  SLIM_ASSIGN_OR_RETURN(const json* attrs, Field(j, "attrs", where));
  if (!attrs->is_object()) return InvalidInput(where, ".attrs: expected a JSON object");
  for (auto it = attrs->begin(); it != attrs->end(); ++it) {
    SLIM_ASSIGN_OR_RETURN(Attribute a,
                          AttrFromJson(it.value(), where + ".attrs." + it.key(), lookup));
    n.attrs.emplace(it.key(), std::move(a));
  }
  return n;
}

}  // namespace

json DimsToJson(const Shape& shape) {
  json arr = json::array();
  for (const Dim& d : shape) {
    if (d.is_static() && !d.symbol.empty()) {
      arr.push_back(json{{"value", d.value}, {"symbol", d.symbol}});
    } else if (d.is_static()) {
      arr.push_back(d.value);
    } else if (!d.symbol.empty()) {
      arr.push_back(d.symbol);
    } else {
      arr.push_back(nullptr);
    }
  }
  return arr;
}

Expected<Shape> DimsFromJson(const json& j, const std::string& where) {
  if (!j.is_array()) return InvalidInput(where, ": expected an array of dims");
  if (j.size() > kMaxRank) {
    return InvalidInput(where, ": rank ", j.size(), " exceeds the limit of ", kMaxRank);
  }
  Shape shape;
  for (size_t i = 0; i < j.size(); ++i) {
    const json& d = j[i];
    const std::string dwhere = StrCat(where, "[", i, "]");
    if (d.is_null()) {
      shape.emplace_back();
    } else if (d.is_string()) {
      shape.emplace_back(d.get<std::string>());
    } else if (d.is_object()) {
      SLIM_ASSIGN_OR_RETURN(int64_t v, IntField(d, "value", dwhere));
      SLIM_ASSIGN_OR_RETURN(std::string s, StringField(d, "symbol", dwhere));
      if (v < 0) return InvalidInput(dwhere, ".value: negative dim ", v);
      Dim dim(v);
      dim.symbol = std::move(s);
      shape.push_back(std::move(dim));
    } else {
      SLIM_ASSIGN_OR_RETURN(int64_t v, IntValue(d, dwhere));
      if (v < 0) return InvalidInput(dwhere, ": negative dim ", v);
      shape.emplace_back(v);
    }
  }
  return shape;
}

json FloatToJson(float v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "Infinity" : "-Infinity";
  return static_cast<double>(v);
}

Expected<float> FloatFromJson(const json& j, const std::string& where) {
  if (j.is_number()) {
    const double d = j.get<double>();
    // A finite double outside float range would silently become Inf.
    if (std::fabs(d) > static_cast<double>(std::numeric_limits<float>::max())) {
      return InvalidInput(where, ": ", d, " is outside the float32 range");
    }
    return static_cast<float>(d);
  }
  if (j.is_string()) {
    const std::string s = j.get<std::string>();
    if (s == "NaN") return std::numeric_limits<float>::quiet_NaN();
    if (s == "Infinity") return std::numeric_limits<float>::infinity();
    if (s == "-Infinity") return -std::numeric_limits<float>::infinity();
  }
  return InvalidInput(where, ": expected a number, \"NaN\", \"Infinity\" or \"-Infinity\"");
}

Expected<DType> DTypeFromCode(const json& j, const std::string& where) {
  SLIM_ASSIGN_OR_RETURN(int64_t code, IntValue(j, where));
  if (code == static_cast<int64_t>(DType::kInt4Packed)) return DType::kInt4Packed;
  if (code == static_cast<int64_t>(DType::kInt8Packed)) return DType::kInt8Packed;
  if (code >= 0 && code <= std::numeric_limits<int32_t>::max()) {
    const DType t = DTypeFromOnnx(static_cast<int32_t>(code));
    // Strings have no byte layout, so a packed file never stores them.
    if (t != DType::kUndefined && t != DType::kString) return t;
  }
  return InvalidInput(where, ": unknown dtype code ", code);
}

json GraphToJson(const Graph& graph, const TensorAttrNamer& attr_namer) {
  json g;
  g["name"] = graph.name;
  g["ir_version"] = graph.ir_version;
  g["producer_name"] = graph.producer_name;
  g["producer_version"] = graph.producer_version;
  json opsets = json::object();
  for (const auto& [domain, version] : graph.opset_imports) opsets[domain] = version;
  g["opset_imports"] = std::move(opsets);
  json meta = json::object();
  for (const auto& [k, v] : graph.metadata) meta[k] = v;
  g["metadata"] = std::move(meta);
  json inputs = json::array();
  for (const ValueInfo& vi : graph.inputs) inputs.push_back(ValueInfoToJson(vi));
  g["inputs"] = std::move(inputs);
  json outputs = json::array();
  for (const ValueInfo& vi : graph.outputs) outputs.push_back(ValueInfoToJson(vi));
  g["outputs"] = std::move(outputs);
  // value_info is an unordered_map: sort so the bytes are deterministic.
  std::vector<const ValueInfo*> infos;
  for (const auto& kv : graph.value_info) infos.push_back(&kv.second);
  std::sort(infos.begin(), infos.end(),
            [](const ValueInfo* a, const ValueInfo* b) { return a->name < b->name; });
  json value_info = json::array();
  for (const ValueInfo* vi : infos) value_info.push_back(ValueInfoToJson(*vi));
  g["value_info"] = std::move(value_info);
  g["initializers"] = graph.initializer_names();
  json nodes = json::array();
  for (const Node& n : graph.nodes) {
    json jn;
    jn["name"] = n.name;
    jn["op_type"] = n.op_type;
    jn["domain"] = n.domain;
    jn["inputs"] = n.inputs;
    jn["outputs"] = n.outputs;
    json attrs = json::object();
    for (const auto& [key, a] : n.attrs) attrs[key] = AttrToJson(n, key, a, attr_namer);
    jn["attrs"] = std::move(attrs);
    nodes.push_back(std::move(jn));
  }
  g["nodes"] = std::move(nodes);
  return g;
}

Expected<Graph> GraphFromJson(const json& j, const TensorLookup& lookup) {
  const std::string where = "graph";
  if (!j.is_object()) return InvalidInput(where, ": expected a JSON object");
  Graph g;
  SLIM_ASSIGN_OR_RETURN(g.name, StringField(j, "name", where));
  SLIM_ASSIGN_OR_RETURN(g.ir_version, IntField(j, "ir_version", where));
  SLIM_ASSIGN_OR_RETURN(g.producer_name, StringField(j, "producer_name", where));
  SLIM_ASSIGN_OR_RETURN(g.producer_version, StringField(j, "producer_version", where));

  SLIM_ASSIGN_OR_RETURN(const json* opsets, Field(j, "opset_imports", where));
  if (!opsets->is_object()) return InvalidInput(where, ".opset_imports: expected a JSON object");
  for (auto it = opsets->begin(); it != opsets->end(); ++it) {
    SLIM_ASSIGN_OR_RETURN(int64_t v, IntValue(it.value(), where + ".opset_imports." + it.key()));
    g.opset_imports[it.key()] = v;
  }
  SLIM_ASSIGN_OR_RETURN(const json* meta, Field(j, "metadata", where));
  if (!meta->is_object()) return InvalidInput(where, ".metadata: expected a JSON object");
  for (auto it = meta->begin(); it != meta->end(); ++it) {
    if (!it.value().is_string()) {
      return InvalidInput(where, ".metadata.", it.key(), ": expected a string");
    }
    g.metadata[it.key()] = it.value().get<std::string>();
  }

  SLIM_ASSIGN_OR_RETURN(g.inputs, ValueInfosFromJson(j, "inputs", where));
  SLIM_ASSIGN_OR_RETURN(g.outputs, ValueInfosFromJson(j, "outputs", where));
  SLIM_ASSIGN_OR_RETURN(std::vector<ValueInfo> infos, ValueInfosFromJson(j, "value_info", where));
  for (ValueInfo& vi : infos) {
    const std::string name = vi.name;
    if (!g.value_info.emplace(name, std::move(vi)).second) {
      return InvalidInput(where, ".value_info: duplicate entry '", name, "'");
    }
  }

  SLIM_ASSIGN_OR_RETURN(const json* inits, ArrayField(j, "initializers", where));
  SLIM_ASSIGN_OR_RETURN(std::vector<std::string> init_names,
                        StringArray(*inits, where + ".initializers"));
  std::set<std::string> seen;
  for (size_t i = 0; i < init_names.size(); ++i) {
    const std::string& name = init_names[i];
    if (!seen.insert(name).second) {
      return InvalidInput(where, ".initializers[", i, "]: duplicate initializer '", name, "'");
    }
    Expected<Tensor> t = lookup(name);
    if (!t.ok()) return t.status().WithContext(StrCat(where, ".initializers[", i, "]"));
    g.AddInitializer(name, std::move(t).value());
  }

  SLIM_ASSIGN_OR_RETURN(const json* nodes, ArrayField(j, "nodes", where));
  if (nodes->size() > kMaxNodes) {
    return InvalidInput(where, ".nodes: ", nodes->size(), " nodes exceed the limit of ",
                        kMaxNodes);
  }
  g.nodes.reserve(nodes->size());
  for (size_t i = 0; i < nodes->size(); ++i) {
    SLIM_ASSIGN_OR_RETURN(Node n, NodeFromJson((*nodes)[i], StrCat(where, ".nodes[", i, "]"),
                                               lookup));
    g.nodes.push_back(std::move(n));
  }
  SLIM_RETURN_IF_ERROR(g.Validate().WithContext(where));
  return g;
}

}  // namespace slim
