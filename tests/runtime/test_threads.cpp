// Threads in the runtime (thread_pool.h): the pool runs every task once, the
// column split obeys its alignment and work threshold, and MatMul, Gemm,
// MatMulQ and a whole decoder give byte-identical outputs for 1, 2, 3 and 7
// threads. The op tests lower min_work_per_thread to 1 so that even small,
// odd-sized products (N not a multiple of 16 or of the thread count) are
// split into several chunks; the default threshold is checked on
// SplitColumns directly.
#include <catch2/catch.hpp>

#include <atomic>
#include <cstring>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "libcompress/io/model_loader.h"
#include "libcompress/kernels/gemm_q.h"
#include "libcompress/kernels/quant.h"
#include "libcompress/numerics/quantize.h"
#include "libcompress/runtime/decoder_session.h"
#include "libcompress/runtime/interpreter.h"
#include "libcompress/runtime/thread_pool.h"
#include "tests/compile_util.h"
#include "tests/test_util.h"

namespace slim {
namespace {

const int kThreadCounts[] = {2, 3, 7};

Tensor RandomTensor(DType dtype, std::vector<int64_t> shape, uint32_t seed) {
  const auto v = slim_test::RandomFloats(static_cast<size_t>(ShapeNumel(shape)), seed);
  if (dtype == DType::kFloat32) return Tensor::FromVector(dtype, shape, v);
  std::vector<uint16_t> bits(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    bits[i] = dtype == DType::kFloat16 ? FloatToHalf(v[i]) : FloatToBFloat16(v[i]);
  }
  return Tensor::FromVector(dtype, shape, bits);
}

RuntimeOptions Threads(int threads) {
  RuntimeOptions o;
  o.threads = threads;
  o.min_work_per_thread = 1;  // split whatever can be split
  return o;
}

bool SameBytes(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() && a.nbytes() == b.nbytes() &&
         std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

// One node reading graph input "a" and initializers "b" (and "c" when
// given), writing graph output "y".
Graph OneNodeGraph(const std::string& op_type, const std::string& domain, DType a_dtype,
                   const std::vector<std::pair<std::string, Tensor>>& inits,
                   std::map<std::string, Attribute> attrs) {
  Graph g;
  g.opset_imports[""] = 17;
  if (!domain.empty()) g.opset_imports[domain] = 1;
  g.inputs.push_back({"a", a_dtype, std::nullopt});
  g.outputs.push_back({"y", DType::kUndefined, std::nullopt});
  Node node;
  node.name = "n0";
  node.op_type = op_type;
  node.domain = domain;
  node.inputs = {"a"};
  for (const auto& [name, t] : inits) {
    node.inputs.push_back(name);
    g.AddInitializer(name, t);
  }
  node.outputs = {"y"};
  node.attrs = std::move(attrs);
  g.nodes.push_back(node);
  return g;
}

Tensor RunWith(const Graph& g, const Tensor& a, const RuntimeOptions& options) {
  auto interp = Interpreter::Create(g, options);
  INFO(interp.status().message());
  REQUIRE(interp.ok());
  REQUIRE((*interp)->threads() == options.threads);
  auto out = (*interp)->Run({{"a", a}});
  INFO(out.status().message());
  REQUIRE(out.ok());
  return out->at("y");
}

// Runs g on 1 thread and on every count of kThreadCounts: byte-identical.
void CheckThreadInvariant(const Graph& g, const Tensor& a) {
  const Tensor one = RunWith(g, a, Threads(1));
  for (int threads : kThreadCounts) {
    INFO("threads " << threads);
    CHECK(SameBytes(one, RunWith(g, a, Threads(threads))));
  }
}

TEST_CASE("SplitColumns: aligned, balanced chunks covering 0..n, bounded by threads and work",
          "[runtime][threads]") {
  auto check_cover = [](const std::vector<ColumnRange>& chunks, size_t n, size_t align) {
    REQUIRE(!chunks.empty());
    CHECK(chunks.front().begin == 0);
    CHECK(chunks.back().end == n);
    for (size_t c = 0; c < chunks.size(); ++c) {
      CHECK(chunks[c].begin % align == 0);
      CHECK(chunks[c].begin < chunks[c].end);
      if (c > 0) CHECK(chunks[c].begin == chunks[c - 1].end);
    }
  };
  // N = 117: 8 units of 16 (the last of 5 columns) over 3 threads: 3, 3, 2.
  auto three = SplitColumns(117, 16, 1 << 30, 3, 1);
  REQUIRE(three.size() == 3);
  check_cover(three, 117, 16);
  CHECK(three[0].end == 32);
  CHECK(three[1].end == 80);
  // More threads than units: one chunk per unit.
  auto seven = SplitColumns(37, 16, 1 << 30, 7, 1);
  CHECK(seven.size() == 3);
  check_cover(seven, 37, 16);
  // The default threshold: a kjv-byte-sized product (128 x 384) stays whole,
  // a TinyLlama-sized one (2048 x 5632, decode) uses every thread.
  CHECK(SplitColumns(384, 16, 128 * 384, 8, kDefaultMinWorkPerThread).size() == 1);
  CHECK(SplitColumns(5632, 16, 2048ull * 5632, 8, kDefaultMinWorkPerThread).size() == 8);
  CHECK(SplitColumns(256, 16, 2048ull * 256, 2, kDefaultMinWorkPerThread).size() == 2);  // K/V projections split too
  // Work for exactly two chunks.
  CHECK(SplitColumns(5632, 16, 2 * kDefaultMinWorkPerThread + 1, 8, kDefaultMinWorkPerThread).size() == 2);
  CHECK(SplitColumns(0, 16, 0, 4, 1).empty());
  check_cover(SplitColumns(5, 8, 1, 4, 0), 5, 8);
}

TEST_CASE("ThreadPool runs every task exactly once, also for concurrent callers", "[runtime][threads]") {
  CHECK(!ThreadPool::Create(0).ok());
  for (int threads : {1, 2, 3, 7}) {
    auto pool = ThreadPool::Create(threads);
    REQUIRE(pool.ok());
    CHECK((*pool)->threads() == threads);
    for (size_t tasks : {size_t{0}, size_t{1}, size_t{5}, size_t{64}}) {
      std::vector<std::atomic<int>> hits(tasks);
      for (auto& h : hits) h = 0;
      (*pool)->Run(tasks, [&](size_t i) { hits[i].fetch_add(1); });
      for (size_t i = 0; i < tasks; ++i) CHECK(hits[i].load() == 1);
    }
    // Two callers at once: one job runs on the pool, the other inline.
    std::vector<std::atomic<int>> a(200), b(200);
    for (size_t i = 0; i < 200; ++i) a[i] = b[i] = 0;
    std::thread other([&] {
      for (int rep = 0; rep < 20; ++rep) (*pool)->Run(200, [&](size_t i) { b[i].fetch_add(1); });
    });
    for (int rep = 0; rep < 20; ++rep) (*pool)->Run(200, [&](size_t i) { a[i].fetch_add(1); });
    other.join();
    for (size_t i = 0; i < 200; ++i) {
      CHECK(a[i].load() == 20);
      CHECK(b[i].load() == 20);
    }
  }
}

TEST_CASE("Interpreter::Create checks the thread count", "[runtime][threads]") {
  const Graph g = OneNodeGraph("MatMul", "", DType::kFloat32,
                               {{"b", RandomTensor(DType::kFloat32, {3, 2}, 1)}}, {});
  for (int bad : {0, -1, RuntimeOptions::kMaxThreads + 1}) {
    RuntimeOptions o;
    o.threads = bad;
    auto interp = Interpreter::Create(g, o);
    REQUIRE(!interp.ok());
    CHECK(interp.status().code() == StatusCode::kInvalidInput);
    CHECK_THAT(interp.status().message(), Catch::Contains("threads"));
  }
  auto interp = Interpreter::Create(g);
  REQUIRE(interp.ok());
  CHECK((*interp)->threads() == 1);
}

TEST_CASE("MatMul and Gemm are byte-identical for 1, 2, 3 and 7 threads", "[runtime][threads]") {
  // M = 1 and 3 take the AVX2 GEMV paths, M = 7 the blocked path; N = 37
  // and 117 are neither multiples of 16 nor of the thread counts.
  const int64_t k = 45;
  for (DType w : {DType::kFloat32, DType::kFloat16, DType::kBFloat16}) {
    for (int64_t m : {1, 3, 7}) {
      for (int64_t n : {37, 117}) {
        INFO(DTypeName(w) << " M " << m << " N " << n);
        const Tensor a = RandomTensor(DType::kFloat32, {m, k}, 10);
        // MatMul: B [K, N] (kKN); Gemm transB: B [N, K] (kNK), with bias.
        CheckThreadInvariant(OneNodeGraph("MatMul", "", DType::kFloat32, {{"b", RandomTensor(w, {k, n}, 11)}}, {}),
                             a);
        if (w == DType::kFloat32) {
          CheckThreadInvariant(
              OneNodeGraph("Gemm", "", DType::kFloat32,
                           {{"b", RandomTensor(w, {n, k}, 12)}, {"c", RandomTensor(DType::kFloat32, {n}, 13)}},
                           {{"transB", Attribute::Int(1)}, {"alpha", Attribute::Float(0.5f)}}),
              a);
        }
      }
    }
  }
  // FP16 activations and batched B (one product per batch entry).
  CheckThreadInvariant(OneNodeGraph("MatMul", "", DType::kFloat16, {{"b", RandomTensor(DType::kFloat16, {2, k, 53}, 14)}}, {}),
                       RandomTensor(DType::kFloat16, {2, 3, k}, 15));
}

// A MatMulQ node over W [n, k] packed in `layout`.
Graph MatMulQGraph(const QuantLayout& layout, const std::string& compute_path, int64_t n, int64_t k) {
  const auto w = slim_test::RandomFloats(static_cast<size_t>(n * k), 20);
  QuantOptions qo;
  qo.scheme = layout.Scheme();
  qo.search = false;
  auto q = QuantizeMatrix(w.data(), static_cast<size_t>(n), static_cast<size_t>(k), qo);
  REQUIRE(q.ok());
  auto blob = PackQuantized(*q, layout);
  REQUIRE(blob.ok());
  const DType dt = layout.kind == QuantLayoutKind::kQ8Row ? DType::kInt8Packed : DType::kInt4Packed;
  std::map<std::string, Attribute> attrs = {{"K", Attribute::Int(k)},
                                            {"N", Attribute::Int(n)},
                                            {"layout", Attribute::String(layout.Name())}};
  if (!compute_path.empty()) attrs["compute_path"] = Attribute::String(compute_path);
  return OneNodeGraph("MatMulQ", "slimpack", DType::kFloat32,
                      {{"w", Tensor::FromBytes(dt, {n, k}, blob->data(), blob->size())},
                       {"bias", RandomTensor(DType::kFloat32, {n}, 21)}},
                      attrs);
}

TEST_CASE("MatMulQ is byte-identical for 1, 2, 3 and 7 threads on every layout", "[runtime][threads]") {
  const int64_t n = 117, k = 100;  // k: a partial last group for every group size
  std::vector<QuantLayout> layouts = AllQuantLayouts();
  for (const QuantLayout& l : AllNlQuantLayouts()) layouts.push_back(l);
  for (const QuantLayout& layout : layouts) {
    std::vector<std::string> paths = {""};
    if (layout.kind == QuantLayoutKind::kQ4X8) paths.push_back("f32-dequant-fma");
    for (const auto& path : paths) {
      for (int64_t m : {1, 5}) {
        INFO(layout.Name() << " path '" << path << "' M " << m);
        CheckThreadInvariant(MatMulQGraph(layout, path, n, k), RandomTensor(DType::kFloat32, {m, k}, 22));
      }
    }
  }
}

// Logits of a prompt and two decode steps.
std::vector<float> DecodeLogits(const Model& model, const RuntimeOptions& options) {
  auto session = DecoderSession::Create(model, options);
  INFO(session.status().message());
  REQUIRE(session.ok());
  std::vector<float> all;
  for (const std::vector<int64_t>& step : {std::vector<int64_t>{256, 73, 110, 32}, {116}, {104}}) {
    auto logits = (*session)->Append(step);
    INFO(logits.status().message());
    REQUIRE(logits.ok());
    all.insert(all.end(), logits->begin(), logits->end());
  }
  return all;
}

bool SameFloats(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

TEST_CASE("A DecoderSession gives identical logits on 1 and 2 threads (kjv-byte, FP16 and int4)",
          "[runtime][threads]") {
  auto model = LoadModel(SLIMPACK_SOURCE_DIR "/models/kjv-byte");
  REQUIRE(model.ok());
  const auto one = DecodeLogits(*model, Threads(1));
  CHECK(SameFloats(one, DecodeLogits(*model, Threads(2))));

  // The int4 model from the quantization pass (MatMulQ in the layout it
  // picks for the generic target; every layout is checked op by op above).
  const Model quantized = slim_test::CompileInMemory(
      SLIMPACK_SOURCE_DIR "/models/kjv-byte",
      R"({"passes": [{"pass": "quantize_int4", "options": {"search": false}}]})");
  size_t matmulq = 0;
  for (const Node& node : quantized.graph.nodes) matmulq += node.op_type == "MatMulQ" ? 1 : 0;
  REQUIRE(matmulq > 0);
  const auto q_one = DecodeLogits(quantized, Threads(1));
  CHECK(!SameFloats(one, q_one));  // the quantized graph is really another one
  CHECK(SameFloats(q_one, DecodeLogits(quantized, Threads(2))));
}

}  // namespace
}  // namespace slim
