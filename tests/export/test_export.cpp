// ONNX export (libcompress/export/onnx_export.h, `slimpack export`): the
// lowered graph has no slimpack ops, its weights decode to exactly the packed
// model's dequantized weights (decoded here independently of the runtime's
// MatMulNBits / DequantizeLinear), it runs in our runtime with the packed
// model's logits (different summation order only), it survives WriteOnnx ->
// ReadOnnx, and the command writes a loadable file or nothing. The ONNX
// Runtime cross-check needs node and is on demand: bench/ort_export_check.sh.
#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>

#include "libcompress/eval/lm_eval.h"
#include "libcompress/export/onnx_export.h"
#include "libcompress/io/model_loader.h"
#include "libcompress/io/onnx.h"
#include "libcompress/io/packed_format.h"
#include "libcompress/kernels/quant.h"
#include "libcompress/runtime/decoder_session.h"
#include "tests/compile_util.h"
#include "tests/test_util.h"

using namespace slim;
using slim_test::CompileInMemory;

namespace {

const std::string kModels = SLIMPACK_SOURCE_DIR "/models/";

// Plain max-abs rounding (no scale search) keeps the compile quick.
std::string Int4Recipe(int group, bool symmetric, const std::string& layout) {
  return "{\"passes\": [{\"pass\": \"quantize_int4\", \"options\": {\"group_size\": " + std::to_string(group) +
         ", \"symmetric\": " + (symmetric ? "true" : "false") +
         ", \"search\": false, \"classifier\": \"int8\", \"embeddings\": \"int8\"}},"
         " {\"pass\": \"select_layout\", \"options\": {\"int4_layout\": \"" + layout + "\"}}]}";
}
const char* const kInt8Recipe = R"({"passes": [{"pass": "quantize_int8", "options": {"search": false}}]})";

Graph Lower(const Graph& g, Int4Mode mode = Int4Mode::kMatMulNBits, ExportStats* stats = nullptr) {
  ExportOptions opt;
  opt.int4 = mode;
  auto out = LowerToOnnx(g, opt, stats);
  INFO(out.status().message());
  REQUIRE(out.ok());
  return std::move(out).value();
}

int Count(const Graph& g, const std::string& domain, const std::string& op) {
  int n = 0;
  for (const Node& node : g.nodes) n += node.domain == domain && node.op_type == op;
  return n;
}

const Node* FindNode(const Graph& g, const std::string& name) {
  for (const Node& node : g.nodes) {
    if (node.name == name) return &node;
  }
  return nullptr;
}

std::vector<float> Dequantized(const Graph& packed, const Node& q) {
  const Tensor* w = packed.FindInitializer(q.op_type == "GatherQ" ? q.Input(0) : q.Input(1));
  REQUIRE(w != nullptr);
  auto layout = ParseQuantLayout(q.GetString("layout", ""));
  REQUIRE(layout.ok());
  const size_t rows = static_cast<size_t>(w->dim(0)), cols = static_cast<size_t>(w->dim(1));
  std::vector<float> out(rows * cols);
  REQUIRE(DequantizePacked(static_cast<const uint8_t*>(w->raw()), w->nbytes(), *layout, rows, cols, out.data()).ok());
  return out;
}

// MatMulNBits' weight [N, K] decoded from the ONNX Runtime operator spec:
// B [N, n_blocks, block/2] low nibble first, scales [N * n_blocks],
// zero_points [N * ceil(n_blocks/2)] low nibble first (absent: 8).
std::vector<float> DecodeNBits(const Graph& g, const Node& node) {
  const size_t k = static_cast<size_t>(node.GetInt("K", 0)), n = static_cast<size_t>(node.GetInt("N", 0));
  const size_t block = static_cast<size_t>(node.GetInt("block_size", 0)), blocks = (k + block - 1) / block;
  const Tensor* b = g.FindInitializer(node.Input(1));
  const Tensor* s = g.FindInitializer(node.Input(2));
  const Tensor* z = node.Input(3).empty() ? nullptr : g.FindInitializer(node.Input(3));
  REQUIRE(b != nullptr);
  REQUIRE(s != nullptr);
  CHECK(b->dtype() == DType::kUInt8);
  CHECK(b->shape() == std::vector<int64_t>{static_cast<int64_t>(n), static_cast<int64_t>(blocks),
                                           static_cast<int64_t>(block / 2)});
  CHECK(s->numel() == static_cast<int64_t>(n * blocks));
  if (z) CHECK(z->numel() == static_cast<int64_t>(n * ((blocks + 1) / 2)));
  std::vector<float> w(n * k);
  for (size_t r = 0; r < n; ++r) {
    for (size_t c = 0; c < k; ++c) {
      const size_t blk = c / block, j = c % block;
      const uint8_t byte = b->data<uint8_t>()[(r * blocks + blk) * (block / 2) + j / 2];
      const int u = j % 2 ? byte >> 4 : byte & 0xF;
      int zero = 8;
      if (z) {
        const uint8_t zb = z->data<uint8_t>()[r * ((blocks + 1) / 2) + blk / 2];
        zero = blk % 2 ? zb >> 4 : zb & 0xF;
      }
      w[r * k + c] = s->FloatAt(static_cast<int64_t>(r * blocks + blk)) * static_cast<float>(u - zero);
    }
  }
  return w;
}

// Every lowered weight equals the packed weight it came from, bit for bit.
// Returns the layouts seen.
std::set<std::string> CheckWeightsExact(const Graph& packed, const Graph& onnx) {
  std::set<std::string> layouts;
  for (const Node& q : packed.nodes) {
    if (q.domain != "slimpack") continue;
    layouts.insert(q.GetString("layout", ""));
    const std::vector<float> want = Dequantized(packed, q);
    const Node* lowered = FindNode(onnx, q.name);
    REQUIRE(lowered != nullptr);
    std::vector<float> got;
    if (lowered->op_type == "MatMulNBits") {
      got = DecodeNBits(onnx, *lowered);
    } else {
      // MatMul(A, Transpose(DQ)) or Gather(DQ, ids): find the DequantizeLinear.
      const std::string table = lowered->op_type == "Gather" ? lowered->Input(0) : lowered->Input(1);
      const Node* dq = nullptr;
      for (const Node& node : onnx.nodes) {
        for (const auto& o : node.outputs) {
          if (o == table) dq = &node;
        }
      }
      REQUIRE(dq != nullptr);
      if (dq->op_type == "Transpose") {
        const std::string src = dq->Input(0);
        for (const Node& node : onnx.nodes) {
          if (!node.outputs.empty() && node.outputs[0] == src) dq = &node;
        }
      }
      REQUIRE(dq->op_type == "DequantizeLinear");
      CHECK(dq->GetInt("axis", 1) == 0);
      const Tensor* codes = onnx.FindInitializer(dq->Input(0));
      const Tensor* scale = onnx.FindInitializer(dq->Input(1));
      REQUIRE(codes != nullptr);
      REQUIRE(scale != nullptr);
      REQUIRE(codes->dtype() == DType::kInt8);
      const int64_t cols = codes->dim(1);
      got.resize(static_cast<size_t>(codes->numel()));
      for (int64_t i = 0; i < codes->numel(); ++i) {
        got[static_cast<size_t>(i)] = static_cast<float>(codes->IntAt(i)) * scale->FloatAt(i / cols);
      }
    }
    INFO(q.Describe());
    REQUIRE(got.size() == want.size());
    size_t mismatches = 0;
    for (size_t i = 0; i < got.size(); ++i) mismatches += got[i] != want[i];
    CHECK(mismatches == 0);
  }
  return layouts;
}

struct LogitDiff {
  double max_abs = 0, max_logit = 0, top1 = 0;
};

// Both models over the first `sequences` calibration sequences.
LogitDiff CompareLogits(const Model& a, const Model& b, const std::string& model_dir, size_t sequences) {
  auto data = ReadTokenDataset(model_dir + "/calib_tokens.json");
  REQUIRE(data.ok());
  auto sa = DecoderSession::Create(a);
  auto sb = DecoderSession::Create(b);
  INFO(sa.status().message() << " / " << sb.status().message());
  REQUIRE(sa.ok());
  REQUIRE(sb.ok());
  LogitDiff d;
  size_t rows = 0, agree = 0;
  for (size_t s = 0; s < sequences && s < data->sequences.size(); ++s) {
    (*sa)->Reset();
    (*sb)->Reset();
    auto la = (*sa)->Append(data->sequences[s]);
    auto lb = (*sb)->Append(data->sequences[s]);
    INFO(lb.status().message());
    REQUIRE(la.ok());
    REQUIRE(lb.ok());
    REQUIRE(la->size() == lb->size());
    const size_t v = static_cast<size_t>((*sa)->vocab_size());
    for (size_t r = 0; r * v < la->size(); ++r, ++rows) {
      size_t ia = 0, ib = 0;
      for (size_t j = 0; j < v; ++j) {
        const float x = (*la)[r * v + j], y = (*lb)[r * v + j];
        d.max_abs = std::max(d.max_abs, static_cast<double>(std::fabs(x - y)));
        d.max_logit = std::max(d.max_logit, static_cast<double>(std::fabs(x)));
        if (x > (*la)[r * v + ia]) ia = j;
        if (y > (*lb)[r * v + ib]) ib = j;
      }
      agree += ia == ib;
    }
  }
  d.top1 = rows ? static_cast<double>(agree) / static_cast<double>(rows) : 0;
  return d;
}

// The export computes every int4 product in float (MatMulNBits without
// accuracy_level, docs/EXPORT.md); x8 layouts default to the i8-dot path,
// which also rounds the activations to int8, so the packed reference of an
// exact comparison runs the f32-dequant-fma path.
Model F32Path(Model m) {
  for (Node& node : m.graph.nodes) {
    if (node.op_type == "MatMulQ") node.attrs["compute_path"] = Attribute::String("f32-dequant-fma");
  }
  return m;
}

Model AsModel(const Model& like, Graph g) {
  Model m = like;
  m.graph = std::move(g);
  m.format = "onnx";
  return m;
}

void CheckNoSlimpackOps(const Graph& g) {
  for (const Node& node : g.nodes) CHECK(node.domain != "slimpack");
  for (const auto& name : g.initializer_names()) {
    const DType t = g.FindInitializer(name)->dtype();
    CHECK((t != DType::kInt4Packed && t != DType::kInt8Packed));
  }
  CHECK(g.opset_imports.count("slimpack") == 0);
  CHECK(g.onnx_opset() >= 13);
}

int RunCli(const std::string& args) {
  const int rc = std::system((std::string(SLIMPACK_BINARY) + " " + args + " >/dev/null 2>&1").c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

}  // namespace

TEST_CASE("export: kjv-byte int4 sym row and asym x8 -> MatMulNBits, same weights and logits", "[export]") {
  const std::string dir = kModels + "kjv-byte";
  struct Case {
    int group;
    bool symmetric;
    const char* layout;
    const char* want_layout;
  };
  for (const Case& c : {Case{32, true, "row", "q4g32_sym_row"}, Case{64, false, "x8", "q4g64_asym_x8"}}) {
    INFO(c.want_layout);
    const Model packed = CompileInMemory(dir, Int4Recipe(c.group, c.symmetric, c.layout));
    ExportStats stats;
    const Graph onnx = Lower(packed.graph, Int4Mode::kMatMulNBits, &stats);
    CheckNoSlimpackOps(onnx);
    CHECK(stats.matmul_nbits > 0);
    CHECK(Count(onnx, "com.microsoft", "MatMulNBits") == stats.matmul_nbits);
    CHECK(onnx.opset_imports.at("com.microsoft") == 1);
    // Asymmetric layouts carry zero points, symmetric ones use the default 8.
    for (const Node& node : onnx.nodes) {
      if (node.op_type == "MatMulNBits") CHECK(node.Input(3).empty() == c.symmetric);
    }
    CHECK(CheckWeightsExact(packed.graph, onnx).count(c.want_layout) == 1);
    const LogitDiff d = CompareLogits(F32Path(packed), AsModel(packed, onnx), dir, 2);
    WARN(c.want_layout << ": max |logit diff| " << d.max_abs << " (max |logit| " << d.max_logit << "), top-1 "
                       << d.top1);
    CHECK(d.max_abs <= 1e-4 * d.max_logit);
    CHECK(d.top1 >= 0.999);
  }
}

TEST_CASE("export: int4 nl -> float MatMul with the dequantized weights, even with --int4 matmulnbits",
          "[export][nl]") {
  const std::string dir = kModels + "kjv-byte";
  const Model packed = CompileInMemory(
      dir, R"({"passes": [{"pass": "quantize_int4", "options": {"levels": "nl", "search": false}}]})");
  ExportStats stats;
  const Graph onnx = Lower(packed.graph, Int4Mode::kMatMulNBits, &stats);
  CheckNoSlimpackOps(onnx);
  CHECK(stats.matmul_nbits == 0);
  CHECK(stats.int4_dequantized > 0);
  CHECK(onnx.opset_imports.count("com.microsoft") == 0);
  size_t checked = 0;
  for (const Node& q : packed.graph.nodes) {
    if (q.op_type != "MatMulQ" || q.GetString("layout", "") != "q4g32_nl_x8") continue;
    const Node* mm = FindNode(onnx, q.name);
    REQUIRE(mm != nullptr);
    CHECK(mm->op_type == "MatMul");
    const Tensor* w = onnx.FindInitializer(mm->Input(1));
    REQUIRE(w != nullptr);
    REQUIRE(w->dtype() == DType::kFloat32);
    const size_t k = static_cast<size_t>(w->dim(0)), n = static_cast<size_t>(w->dim(1));
    const std::vector<float> want = Dequantized(packed.graph, q);  // [N, K]
    REQUIRE(want.size() == n * k);
    const float* got = w->data<float>();
    for (size_t r = 0; r < n; ++r) {
      for (size_t c = 0; c < k; ++c) REQUIRE(got[c * n + r] == want[r * k + c]);
    }
    ++checked;
  }
  CHECK(checked == static_cast<size_t>(stats.int4_dequantized));
  // The packed model runs nl on the i8-dot path only (activations rounded
  // to int8 per group); the export computes in float.
  const LogitDiff d = CompareLogits(packed, AsModel(packed, onnx), dir, 2);
  WARN("kjv-byte int4 nl: max |logit diff| " << d.max_abs << " (max |logit| " << d.max_logit << "), top-1 " << d.top1);
  CHECK(d.top1 >= 0.97);
}

TEST_CASE("export: int8 and the tied stories260k table -> DequantizeLinear, one table", "[export]") {
  {
    const std::string dir = kModels + "kjv-byte";
    const Model packed = CompileInMemory(dir, kInt8Recipe);
    ExportStats stats;
    const Graph onnx = Lower(packed.graph, Int4Mode::kMatMulNBits, &stats);
    CheckNoSlimpackOps(onnx);
    CHECK(stats.int8_matmuls > 0);
    CHECK(stats.matmul_nbits == 0);
    CHECK(onnx.opset_imports.count("com.microsoft") == 0);
    CheckWeightsExact(packed.graph, onnx);
    const LogitDiff d = CompareLogits(packed, AsModel(packed, onnx), dir, 2);
    WARN("kjv-byte int8: max |logit diff| " << d.max_abs << ", top-1 " << d.top1);
    CHECK(d.max_abs <= 1e-4 * d.max_logit);
  }
  // stories260k: K = 172 (the last group of 32 is padded) and a tied
  // embedding read by GatherQ and the classifier MatMulQ.
  const std::string dir = kModels + "stories260k";
  const Model packed = CompileInMemory(dir, Int4Recipe(32, true, "row"));
  CHECK(Count(packed.graph, "slimpack", "GatherQ") == 1);
  ExportStats stats;
  const Graph onnx = Lower(packed.graph, Int4Mode::kMatMulNBits, &stats);
  CheckNoSlimpackOps(onnx);
  CHECK(stats.gathers == 1);
  CHECK(stats.int8_matmuls == 1);
  CHECK(Count(onnx, "", "DequantizeLinear") == 1);  // the tied table is stored and dequantized once
  CheckWeightsExact(packed.graph, onnx);
  const LogitDiff d = CompareLogits(packed, AsModel(packed, onnx), dir, 2);
  WARN("stories260k int4: max |logit diff| " << d.max_abs << " (max |logit| " << d.max_logit << "), top-1 "
                                             << d.top1);
  CHECK(d.max_abs <= 1e-4 * d.max_logit);
  CHECK(d.top1 >= 0.999);

  // --int4 dequantize: standard ONNX only, same logits.
  const Graph dense = Lower(packed.graph, Int4Mode::kDequantize, &stats);
  CheckNoSlimpackOps(dense);
  CHECK(Count(dense, "com.microsoft", "MatMulNBits") == 0);
  CHECK(dense.opset_imports.count("com.microsoft") == 0);
  CHECK(stats.int4_dequantized > 0);
  const LogitDiff dd = CompareLogits(packed, AsModel(packed, dense), dir, 1);
  CHECK(dd.max_abs <= 1e-4 * dd.max_logit);
}

TEST_CASE("export: WriteOnnx -> ReadOnnx keeps the lowered graph runnable", "[export]") {
  const std::string dir = kModels + "stories260k";
  const Model packed = CompileInMemory(dir, Int4Recipe(64, false, "x8"));
  const Graph onnx = Lower(packed.graph);
  slim_test::TempDir tmp("export");
  REQUIRE(WriteOnnx(onnx, tmp / "m.onnx").ok());
  auto back = ReadOnnx(tmp / "m.onnx");
  INFO(back.status().message());
  REQUIRE(back.ok());
  CHECK(back->decoder.has_value());
  CHECK(Count(back->graph, "com.microsoft", "MatMulNBits") == Count(onnx, "com.microsoft", "MatMulNBits"));
  CHECK(back->graph.opset_imports.at("com.microsoft") == 1);
  const LogitDiff d = CompareLogits(F32Path(packed), AsModel(packed, back->graph), dir, 1);
  CHECK(d.max_abs <= 1e-4 * d.max_logit);
}

TEST_CASE("export: bad packed graphs are refused naming the tensor, plain graphs pass", "[export]") {
  const std::string dir = kModels + "stories260k";
  const Model packed = CompileInMemory(dir, kInt8Recipe);
  // A graph without slimpack ops is already ONNX: returned unchanged.
  auto source = LoadModel(dir);
  REQUIRE(source.ok());
  ExportStats stats;
  const Graph plain = Lower(source->graph, Int4Mode::kMatMulNBits, &stats);
  CHECK(stats.slimpack_ops() == 0);
  CHECK(plain.nodes.size() == source->graph.nodes.size());

  Graph bad = packed.graph;
  std::string weight;
  for (Node& node : bad.nodes) {
    if (node.op_type == "MatMulQ" && weight.empty()) {
      node.attrs["layout"] = Attribute::String("q4g48_sym_row");
      weight = node.Input(1);
    }
  }
  auto r = LowerToOnnx(bad, ExportOptions());
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == StatusCode::kInvalidInput);
  CHECK(r.status().message().find(weight) != std::string::npos);

  // A packed weight read by a standard op cannot be exported.
  bad = packed.graph;
  Node stray;
  stray.name = "stray";
  stray.op_type = "Identity";
  stray.inputs = {weight};
  stray.outputs = {"stray_out"};
  bad.nodes.push_back(stray);
  r = LowerToOnnx(bad, ExportOptions());
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().message().find("stray") != std::string::npos);

  // Opsets below 13 would need DequantizeLinear's axis.
  bad = packed.graph;
  bad.opset_imports[""] = 12;
  r = LowerToOnnx(bad, ExportOptions());
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == StatusCode::kUnsupported);
}

TEST_CASE("slimpack export: writes a loadable ONNX file, exit 2 and nothing written on bad input", "[export][cli]") {
  const std::string dir = kModels + "stories260k";
  slim_test::TempDir tmp("export_cli");
  REQUIRE(WritePacked(CompileInMemory(dir, Int4Recipe(32, true, "row")), tmp / "m.slim").ok());
  REQUIRE(RunCli("export " + (tmp / "m.slim") + " --format onnx -o " + (tmp / "m.onnx") + " --json " +
                 (tmp / "r.json")) == 0);
  auto back = ReadOnnx(tmp / "m.onnx");
  INFO(back.status().message());
  REQUIRE(back.ok());
  CHECK(Count(back->graph, "com.microsoft", "MatMulNBits") > 0);
  std::ifstream report(tmp / "r.json");
  const std::string json((std::istreambuf_iterator<char>(report)), std::istreambuf_iterator<char>());
  CHECK(json.find("\"matmul_nbits\"") != std::string::npos);

  // Not a model, a format we do not write, a missing -o: exit 2, no output.
  {
    std::ofstream junk(tmp / "junk.slim");
    junk << "SLIMPACK but not really";
  }
  CHECK(RunCli("export " + (tmp / "junk.slim") + " --format onnx -o " + (tmp / "junk.onnx")) == 2);
  CHECK_FALSE(std::filesystem::exists(tmp / "junk.onnx"));
  CHECK(RunCli("export " + (tmp / "m.slim") + " --format tflite -o " + (tmp / "x.onnx")) == 2);
  CHECK_FALSE(std::filesystem::exists(tmp / "x.onnx"));
  CHECK(RunCli("export " + (tmp / "m.slim") + " --format onnx") == 2);
  CHECK(RunCli("export --help") == 0);
}
