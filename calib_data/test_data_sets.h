// Evaluation data for graphs that are not language models: directories in
// ONNX's own test-data layout (DIR/test_data_set_N/input_M.pb, one
// TensorProto per file), the layout ONNX's backend tests use. input_M feeds
// the M-th graph input that is not an initializer.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "libcompress/common/status.h"
#include "libcompress/ir/graph.h"

namespace slim {

using Feeds = std::map<std::string, Tensor>;

// DIR may be the parent of test_data_set_* directories or one of them.
Expected<std::vector<Feeds>> ReadTestDataSets(const std::string& dir, const Graph& graph);

}  // namespace slim
