#include "libcompress/runtime/interpreter.h"

#include <algorithm>
#include <set>

#include "libcompress/runtime/op_registry.h"

namespace slim {

Expected<std::unique_ptr<Interpreter>> Interpreter::Create(const Graph& graph,
                                                          const RuntimeOptions& options) {
  SLIM_CHECK_INPUT(options.threads >= 1 && options.threads <= RuntimeOptions::kMaxThreads,
                   "runtime threads must be in [1, ", RuntimeOptions::kMaxThreads, "], got ",
                   options.threads);
  std::unique_ptr<Interpreter> interp(new Interpreter(graph));
  SLIM_RETURN_IF_ERROR(interp->Plan());
  if (options.threads > 1) {
    SLIM_ASSIGN_OR_RETURN(interp->pool_, ThreadPool::Create(options.threads));
  }
  interp->parallel_ = ParallelContext{interp->pool_.get(), options.min_work_per_thread};
  return interp;
}

namespace {

// The Cast-elision rule described in interpreter.h.
bool IsElidableWeightCast(const Graph& g, const Node& node) {
  if (node.op_type != "Cast" || !node.domain.empty() || node.inputs.size() != 1) return false;
  if (node.GetInt("to", 0) != static_cast<int64_t>(DType::kFloat32)) return false;
  const Tensor* w = g.FindInitializer(node.inputs[0]);
  if (!w || (w->dtype() != DType::kFloat16 && w->dtype() != DType::kBFloat16)) return false;
  const std::string& out = node.outputs[0];
  for (const auto& o : g.outputs) {
    if (o.name == out) return false;
  }
  const auto consumers = g.Consumers(out);
  if (consumers.empty()) return false;
  for (int c : consumers) {
    const Node& n = g.nodes[static_cast<size_t>(c)];
    if ((n.op_type != "MatMul" && n.op_type != "Gemm") || !n.domain.empty()) return false;
    for (size_t i = 0; i < n.inputs.size(); ++i) {
      if (n.inputs[i] == out && i != 1) return false;
    }
  }
  return true;
}

}  // namespace

Status Interpreter::Plan() {
  opset_ = graph_.onnx_opset();
  SLIM_RETURN_IF_ERROR(graph_.Validate());
  const OpTable& ops = BuiltinOps();
  for (const auto& node : graph_.nodes) {
    if (!ops.Find(node.domain, node.op_type)) {
      return Unsupported(node.Describe(), (node.domain.empty() ? "" : " (domain '" + node.domain + "')"),
                         ": operator is not supported by the slimpack runtime");
    }
    if (const OpCheckFn* check = ops.FindCheck(node.domain, node.op_type)) {
      std::vector<const Tensor*> constants;
      for (const auto& in : node.inputs) constants.push_back(in.empty() ? nullptr : graph_.FindInitializer(in));
      SLIM_RETURN_IF_ERROR((*check)(node, constants));
    }
  }
  auto slot = [&](const std::string& name) {
    auto it = slot_of_.find(name);
    if (it != slot_of_.end()) return it->second;
    const int s = static_cast<int>(constants_.size());
    slot_of_[name] = s;
    constants_.emplace_back();
    return s;
  };
  for (const auto& in : graph_.inputs) slot(in.name);
  for (const auto& name : graph_.initializer_names()) {
    constants_[static_cast<size_t>(slot(name))] = *graph_.FindInitializer(name);
  }
  std::vector<int> last_use;
  for (size_t i = 0; i < graph_.nodes.size(); ++i) {
    const Node& node = graph_.nodes[i];
    if (IsElidableWeightCast(graph_, node)) {
      slot_of_[node.outputs[0]] = slot(node.inputs[0]);  // alias to the 16-bit weight
      continue;
    }
    Step step{i, {}, {}, {}};
    for (const auto& in : node.inputs) step.inputs.push_back(in.empty() ? -1 : slot(in));
    for (const auto& out : node.outputs) step.outputs.push_back(out.empty() ? -1 : slot(out));
    steps_.push_back(std::move(step));
  }
  kind_.assign(constants_.size(), SlotKind::kActivation);
  input_name_.assign(constants_.size(), "");
  for (const auto& in : graph_.inputs) {
    const size_t s = static_cast<size_t>(slot_of_.at(in.name));
    kind_[s] = SlotKind::kInput;
    input_name_[s] = in.name;
  }
  for (const auto& name : graph_.initializer_names()) {
    kind_[static_cast<size_t>(slot_of_.at(name))] = SlotKind::kWeight;
  }
  for (const Step& step : steps_) {
    if (graph_.nodes[step.node].op_type == "Constant" && step.outputs[0] >= 0) {
      kind_[static_cast<size_t>(step.outputs[0])] = SlotKind::kWeight;
    }
  }
  last_use.assign(constants_.size(), -1);
  for (size_t s = 0; s < steps_.size(); ++s) {
    for (int in : steps_[s].inputs) {
      if (in >= 0) last_use[static_cast<size_t>(in)] = static_cast<int>(s);
    }
  }
  for (size_t v = 0; v < last_use.size(); ++v) {
    // Initializers and graph inputs are never released (they are not ours).
    if (last_use[v] >= 0 && !constants_[v].defined()) {
      steps_[static_cast<size_t>(last_use[v])].release.push_back(static_cast<int>(v));
    }
  }
  return Status::Ok();
}

void Interpreter::CountReads(const Step& step, const OpCall& call, std::vector<uint64_t>& read) const {
  const std::string& op = call.node.op_type;
  if (op == "Shape" || op == "Size") return;  // metadata only
  for (size_t i = 0; i < step.inputs.size(); ++i) {
    const int s = step.inputs[i];
    if (s < 0 || kind_[static_cast<size_t>(s)] == SlotKind::kActivation) continue;
    const Tensor& t = *call.inputs[i];
    uint64_t bytes = t.nbytes();
    if ((op == "Gather" || op == "GatherQ") && i == 0 && t.rank() > 0 && call.in(1)) {
      // Only the gathered slices are read (an embedding lookup reads rows).
      const int64_t axis = call.node.GetInt("axis", 0);
      const int64_t dim = t.dim(static_cast<size_t>(axis < 0 ? axis + static_cast<int64_t>(t.rank()) : axis));
      if (dim > 0) bytes = bytes / static_cast<uint64_t>(dim) * static_cast<uint64_t>(call.in(1)->numel());
    }
    // A tensor read by several ops in one run (a shared constant, a tied
    // embedding) is fetched from DRAM once: keep the largest read.
    read[static_cast<size_t>(s)] = std::max(read[static_cast<size_t>(s)], bytes);
  }
}

Expected<std::map<std::string, Tensor>> Interpreter::Run(
    const std::map<std::string, Tensor>& feeds, const std::vector<std::string>& output_names,
    RunStats* stats, const ValueObserver* observer) const {
  std::vector<Tensor> values = constants_;
  for (const auto& in : graph_.inputs) {
    auto it = feeds.find(in.name);
    if (it == feeds.end()) {
      if (graph_.FindInitializer(in.name)) continue;  // input with a default value
      return InvalidInput("graph input '", in.name, "' was not provided");
    }
    if (in.dtype != DType::kUndefined && it->second.dtype() != in.dtype) {
      return InvalidInput("graph input '", in.name, "' expects ", DTypeName(in.dtype), ", got ",
                          DTypeName(it->second.dtype()));
    }
    values[static_cast<size_t>(slot_of_.at(in.name))] = it->second;
  }
  std::vector<std::string> wanted = output_names;
  if (wanted.empty()) {
    for (const auto& o : graph_.outputs) wanted.push_back(o.name);
  }
  std::set<int> keep;
  for (const auto& name : wanted) {
    auto it = slot_of_.find(name);
    if (it == slot_of_.end()) return InvalidInput("value '", name, "' is not in the graph");
    keep.insert(it->second);
  }
  // Watched slots, and the ones already defined before the first node.
  std::map<int, std::string> watched;
  if (observer) {
    for (const auto& name : observer->values) {
      auto it = slot_of_.find(name);
      if (it == slot_of_.end()) return InvalidInput("watched value '", name, "' is not in the graph");
      watched[it->second] = name;
    }
    for (const auto& [slot, name] : watched) {
      const Tensor& t = values[static_cast<size_t>(slot)];
      if (t.defined()) SLIM_RETURN_IF_ERROR(observer->on_value(name, t));
    }
  }
  const OpTable& ops = BuiltinOps();
  std::vector<Tensor> outs;
  std::vector<uint64_t> bytes_read(stats ? values.size() : 0, 0);
  for (const Step& step : steps_) {
    const Node& node = graph_.nodes[step.node];
    OpCall call{node, opset_, {}, parallel_};
    call.inputs.reserve(step.inputs.size());
    for (size_t i = 0; i < step.inputs.size(); ++i) {
      const int s = step.inputs[i];
      if (s >= 0 && !values[static_cast<size_t>(s)].defined()) {
        return Internal(node.Describe(), ": input '", node.inputs[i], "' has no value");
      }
      call.inputs.push_back(s < 0 ? nullptr : &values[static_cast<size_t>(s)]);
    }
    if (stats) CountReads(step, call, bytes_read);
    outs.assign(node.outputs.size(), Tensor());
    Status st = (*ops.Find(node.domain, node.op_type))(call, outs);
    if (!st.ok()) return st;
    for (size_t i = 0; i < step.outputs.size(); ++i) {
      if (step.outputs[i] < 0) continue;
      if (!outs[i].defined()) {
        return Internal(node.Describe(), ": output '", node.outputs[i], "' was not produced");
      }
      values[static_cast<size_t>(step.outputs[i])] = std::move(outs[i]);
      if (!watched.empty()) {
        auto w = watched.find(step.outputs[i]);
        if (w != watched.end()) {
          SLIM_RETURN_IF_ERROR(observer->on_value(w->second, values[static_cast<size_t>(w->first)]));
        }
      }
    }
    for (int r : step.release) {
      if (!keep.count(r)) values[static_cast<size_t>(r)] = Tensor();
    }
  }
  for (size_t v = 0; v < bytes_read.size(); ++v) {
    if (bytes_read[v] == 0) continue;
    if (kind_[v] == SlotKind::kWeight) {
      stats->weight_bytes_read += bytes_read[v];
    } else {
      stats->input_bytes_read[input_name_[v]] += bytes_read[v];
    }
  }
  std::map<std::string, Tensor> result;
  for (const auto& name : wanted) {
    const Tensor& t = values[static_cast<size_t>(slot_of_.at(name))];
    if (!t.defined()) return Internal("value '", name, "' was not computed");
    result[name] = t;
  }
  return result;
}

}  // namespace slim
