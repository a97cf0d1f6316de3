// slimpack_dump_logits MODEL TOKENS.json N OUT.bin [f32]
//
// Runs our runtime (DecoderSession, full-sequence Append from an empty
// context) over the first N sequences of a token dataset and writes their
// logits as little-endian float32, sequence after sequence, row-major
// [tokens, vocab] each. Prints {"sequences", "rows", "vocab"} as JSON on
// stdout. The reference side of bench/ort_export_check.sh: ONNX Runtime's
// logits of the exported model are compared against these.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "libcompress/eval/lm_eval.h"
#include "libcompress/io/atomic_file.h"
#include "libcompress/io/model_loader.h"
#include "libcompress/kernels/gemm_q.h"
#include "libcompress/runtime/decoder_session.h"

namespace {

int Fail(const slim::Status& st) {
  std::fprintf(stderr, "slimpack_dump_logits: %s\n", st.message().c_str());
  return st.code() == slim::StatusCode::kInternal ? 3 : 2;
}

}  // namespace

int main(int argc, char** argv) {
  const bool f32 = argc == 6 && std::string(argv[5]) == "f32";
  if (argc != 5 && !f32) {
    std::fprintf(stderr, "usage: slimpack_dump_logits MODEL TOKENS.json N OUT.bin [f32]\n");
    return 2;
  }
  const size_t limit = std::strtoul(argv[3], nullptr, 10);
  auto data = slim::ReadTokenDataset(argv[2]);
  if (!data.ok()) return Fail(data.status());
  auto model = slim::LoadModel(argv[1]);
  if (!model.ok()) return Fail(model.status());
  // f32: every MatMulQ whose layout has a float kernel takes it; the i8-dot
  // only layouts (int4 nl, 2:4 x8) keep their path, said on stderr.
  for (slim::Node& node : model->graph.nodes) {
    if (!f32 || node.op_type != "MatMulQ") continue;
    auto layout = slim::ParseQuantLayout(node.GetString("layout", ""));
    if (layout.ok() && !slim::SelectQGemm(*layout, slim::QComputePath::kF32DequantFma).ok()) {
      std::fprintf(stderr, "slimpack_dump_logits: %s: layout %s has only the i8-dot path\n", node.name.c_str(),
                   layout->Name().c_str());
      continue;
    }
    node.attrs["compute_path"] = slim::Attribute::String("f32-dequant-fma");
  }
  auto session = slim::DecoderSession::Create(*model);
  if (!session.ok()) return Fail(session.status());
  std::string bytes;
  size_t sequences = 0, rows = 0;
  for (; sequences < limit && sequences < data->sequences.size(); ++sequences) {
    (*session)->Reset();
    auto logits = (*session)->Append(data->sequences[sequences]);
    if (!logits.ok()) return Fail(logits.status());
    bytes.append(reinterpret_cast<const char*>(logits->data()), logits->size() * sizeof(float));
    rows += data->sequences[sequences].size();
  }
  slim::Status st = slim::WriteFileAtomic(argv[4], bytes);
  if (!st.ok()) return Fail(st);
  std::printf("{\"sequences\": %zu, \"rows\": %zu, \"vocab\": %lld}\n", sequences, rows,
              static_cast<long long>((*session)->vocab_size()));
  return 0;
}
