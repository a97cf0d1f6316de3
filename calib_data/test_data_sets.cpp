#include "calib_data/test_data_sets.h"
#include "libcompress/common/file_util.h"

#include <algorithm>
#include <filesystem>

#include "libcompress/io/onnx.h"

namespace slim {
namespace {


Expected<Feeds> ReadOneSet(const std::string& set_dir, const std::vector<const ValueInfo*>& inputs) {
  Feeds feeds;
  for (size_t m = 0; m < inputs.size(); ++m) {
    const std::string path = set_dir + "/input_" + std::to_string(m) + ".pb";
    SLIM_CHECK_INPUT(PathExists(path), set_dir, ": missing ", "input_", m, ".pb for graph input '", inputs[m]->name, "'");
    SLIM_ASSIGN_OR_RETURN(Tensor t, ReadTensorProtoFile(path));
    SLIM_CHECK_INPUT(inputs[m]->dtype == DType::kUndefined || t.dtype() == inputs[m]->dtype, path, ": tensor is ",
                     DTypeName(t.dtype()), ", graph input '", inputs[m]->name, "' is ", DTypeName(inputs[m]->dtype));
    feeds[inputs[m]->name] = std::move(t);
  }
  return feeds;
}

}  // namespace

Expected<std::vector<Feeds>> ReadTestDataSets(const std::string& dir, const Graph& graph) {
  std::vector<const ValueInfo*> inputs;
  for (const auto& in : graph.inputs) {
    if (!graph.FindInitializer(in.name)) inputs.push_back(&in);
  }
  SLIM_CHECK_INPUT(PathExists(dir), dir, ": no such directory");
  std::vector<std::string> sets;
  if (PathExists(dir + "/input_0.pb")) {
    sets.push_back(dir);
  } else {
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
      if (e.is_directory() && e.path().filename().string().rfind("test_data_set_", 0) == 0) {
        sets.push_back(e.path().string());
      }
    }
    SLIM_CHECK_INPUT(!ec, dir, ": cannot list directory: ", ec.message());
    std::sort(sets.begin(), sets.end());
  }
  SLIM_CHECK_INPUT(!sets.empty(), dir, ": no test_data_set_N directories (ONNX test-data layout)");
  std::vector<Feeds> out;
  for (const auto& s : sets) {
    SLIM_ASSIGN_OR_RETURN(Feeds f, ReadOneSet(s, inputs));
    out.push_back(std::move(f));
  }
  return out;
}

}  // namespace slim
