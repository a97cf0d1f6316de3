// Reference interpreter: executes an IR graph node by node with ONNX
// semantics.
//
// Create() checks every operator before anything runs (an unsupported op is
// an error naming op and node) and builds a plan: a slot per value, the step
// after which each slot can be freed, and one execution-only rewrite that
// keeps FP16 weights FP16 in memory: Cast(fp16/bf16 initializer -> float)
// feeding only MatMul/Gemm B inputs is skipped and the matmul reads the
// 16-bit weight directly (converting on the fly), so an FP32-compute graph
// over FP16 weights never holds an FP32 copy of the weights.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "libcompress/common/status.h"
#include "libcompress/ir/graph.h"
#include "libcompress/runtime/thread_pool.h"

namespace slim {

struct OpCall;  // op_registry.h

// Memory traffic of one Run, counted as the ops execute: bytes of weights
// (initializers and Constant-node tensors) and of graph inputs (for a decoder:
// the KV cache) that operators read. Gather/GatherQ read only the gathered
// rows; Shape/Size read no data; a tensor read by several ops counts once
// (its largest read). This is what a decoded token costs in DRAM
// traffic when weights do not fit in cache, the figure the bandwidth budget
// is checked against.
struct RunStats {
  uint64_t weight_bytes_read = 0;
  std::map<std::string, uint64_t> input_bytes_read;  // per graph input
};

// Watches values as a Run computes them (calibration statistics): on_value is
// called once per Run for each watched name, right after the node producing
// it (graph inputs: before the first node), before the value may be freed,
// so a caller sees every activation without the run holding them all. An
// error from on_value stops the run and is returned.
struct ValueObserver {
  std::vector<std::string> values;
  std::function<Status(const std::string& name, const Tensor& value)> on_value;
};

// How a session executes. Outputs are byte-identical for every setting
// (thread_pool.h says why); only the speed changes.
struct RuntimeOptions {
  static constexpr int kMaxThreads = 256;
  // Threads for large matrix products, the calling thread included
  // (1 = everything on the calling thread).
  int threads = 1;
  // A product is split only into chunks of at least this many multiply-adds
  // (tests lower it to split tiny products).
  uint64_t min_work_per_thread = kDefaultMinWorkPerThread;
};

class Interpreter {
 public:
  // `graph` must outlive the interpreter. Starts options.threads - 1 worker
  // threads, kept until the interpreter is destroyed; threads must be in
  // [1, RuntimeOptions::kMaxThreads].
  static Expected<std::unique_ptr<Interpreter>> Create(const Graph& graph,
                                                       const RuntimeOptions& options = RuntimeOptions());

  // Runs the graph. `feeds` holds every graph input (by name); returns the
  // requested outputs (all graph outputs when `output_names` is empty).
  // When `stats` is given, the memory traffic is added to it; `observer`
  // (may be null) sees the values it watches.
  Expected<std::map<std::string, Tensor>> Run(const std::map<std::string, Tensor>& feeds,
                                              const std::vector<std::string>& output_names = {},
                                              RunStats* stats = nullptr,
                                              const ValueObserver* observer = nullptr) const;

  const Graph& graph() const { return graph_; }
  int threads() const { return pool_ ? pool_->threads() : 1; }

 private:
  struct Step {
    size_t node;
    std::vector<int> inputs;   // slot per node input, -1 when omitted
    std::vector<int> outputs;  // slot per node output, -1 when omitted
    std::vector<int> release;  // slots whose last reader is this step
  };
  explicit Interpreter(const Graph& graph) : graph_(graph) {}
  Status Plan();
  void CountReads(const Step& step, const OpCall& call, std::vector<uint64_t>& read) const;

  const Graph& graph_;
  int64_t opset_ = 0;
  std::map<std::string, int> slot_of_;
  std::vector<Tensor> constants_;  // slot -> initializer (undefined for others)
  enum class SlotKind : uint8_t { kActivation, kWeight, kInput };
  std::vector<SlotKind> kind_;     // what a read of the slot counts as in RunStats
  std::vector<std::string> input_name_;  // slot -> graph input name (kInput slots)
  std::vector<Step> steps_;
  std::unique_ptr<ThreadPool> pool_;  // null for one thread
  ParallelContext parallel_;          // what every OpCall gets
};

}  // namespace slim
