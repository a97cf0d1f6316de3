// ONNX reader and writer (libonnx-dev's generated protobuf classes).
//
// Reading: opset 9 and newer; weights as initializers or Constant nodes;
// FP32/FP16/BF16 (and integer) tensors; raw_data or typed fields; external
// data files relative to the model's directory (absolute locations or ones
// that escape the directory are refused), memory-mapped, never copied;
// inline tensors are copied into 64-byte aligned owned buffers one at a time
// while protobuf's copy is released, so weights are never held twice.
// Every malformed input is a Status naming the file and, where it applies,
// the tensor, node and byte offset. When the graph is an Optimum-style
// decoder (input_ids -> logits, optional past_key_values.N.* / present.N.*),
// Model::decoder is filled from the graph's inputs and outputs.
//
// Writing: the graph, its initializers (raw_data, or external data for large
// tensors when asked) and metadata; written atomically. read -> write -> read
// gives the same graph and tensor bytes.
#pragma once

#include <string>
#include <vector>

#include "libcompress/common/status.h"
#include "libcompress/io/model.h"

namespace slim {

Expected<Model> ReadOnnx(const std::string& path);

// The distinct operator types of the model's main graph ("MatMul", or
// "domain.Op" outside ai.onnx), sorted, without converting anything else. It
// answers "which ops does this file use" even when ReadOnnx refuses the
// model (subgraphs, sequence types), e.g. for the conformance summary.
Expected<std::vector<std::string>> ReadOnnxOpTypes(const std::string& path);

// One TensorProto serialized on its own (ONNX test data: input_0.pb). The
// tensor's name, when set, goes to *name.
Expected<Tensor> ReadTensorProtoFile(const std::string& path, std::string* name = nullptr);

// Writes one TensorProto on its own (the ONNX test-data layout's
// input_0.pb), atomically.
Status WriteTensorProtoFile(const std::string& path, const Tensor& tensor, const std::string& name);

struct OnnxWriteOptions {
  // Tensors of at least this many bytes go to `<output>.data` beside the
  // model (required past protobuf's 2 GiB limit). 0 = everything inline.
  size_t external_data_threshold = 0;
};
Status WriteOnnx(const Graph& graph, const std::string& path, const OnnxWriteOptions& options = {});

}  // namespace slim
