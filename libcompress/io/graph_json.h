// IR graph <-> JSON, the graph part of the packed file's metadata section.
//
// Everything a Graph holds is written (nodes with every attribute kind,
// graph inputs/outputs/value_info with dtypes and symbolic shapes, opset
// imports, metadata, producer fields), except tensor bytes: initializers and
// tensor-valued attributes are written as *names* that the caller resolves to
// entries of its own tensor table, so weights stay out of the JSON. The
// schema is specified in docs/FORMAT.md ("graph" object); in short:
//
//   dtype    ONNX TensorProto.DataType code (slimpack's packed types 1001/1002)
//   dim      integer >= 0 (static), string (symbol), null (unknown), or
//            {"value": n, "symbol": s} when a dim has both
//   float    JSON number when finite, else "NaN" / "Infinity" / "-Infinity"
//            (JSON has no non-finite numbers); every float32 value round-trips
//            exactly because it is written as the double it converts to
//
// Output is deterministic (object keys sorted, value_info sorted by name), so
// writing the same graph twice gives the same bytes. This header is for the
// io layer only: it exposes nlohmann::json, which slimpack_io links
// privately.
#pragma once

#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "libcompress/common/status.h"
#include "libcompress/ir/graph.h"

namespace slim {

// Names the tensor-table entry that holds a tensor-valued attribute
// (`node.attrs[attr_key]`). Initializers are always named by their own name.
using TensorAttrNamer =
    std::function<std::string(const Node& node, const std::string& attr_key)>;
// Returns the tensor behind a name from the caller's tensor table, or an
// error naming what is missing.
using TensorLookup = std::function<Expected<Tensor>(const std::string& name)>;

nlohmann::json GraphToJson(const Graph& graph, const TensorAttrNamer& attr_namer);

// Rebuilds a graph, validating types and ranges of every field (errors name
// the JSON path, e.g. "graph.nodes[3].attrs.axis: expected an integer").
// Graph::Validate is run on the result.
Expected<Graph> GraphFromJson(const nlohmann::json& j, const TensorLookup& lookup);

// Helpers shared with the packed metadata (tensor table, value infos).
nlohmann::json DimsToJson(const Shape& shape);
Expected<Shape> DimsFromJson(const nlohmann::json& j, const std::string& where);
nlohmann::json FloatToJson(float v);
Expected<float> FloatFromJson(const nlohmann::json& j, const std::string& where);
// A DType code known to slimpack (plain or packed), else InvalidInput.
Expected<DType> DTypeFromCode(const nlohmann::json& j, const std::string& where);

}  // namespace slim
