// ONNX node-test conformance: runs ONNX's own backend node tests
// (libonnx-testdata, /usr/share/libonnx-testdata/data/node/<case>/) through
// the reference interpreter.
//
// A case is claimed when every operator of its model is in BuiltinOps().
// Every claimed case must pass (outputs equal within the tolerances below)
// unless tests/runtime/conformance_exclusions.txt lists it with a reason; a
// listed case that passes is a stale exclusion and fails the test, so the
// list stays honest. SLIMPACK_CONFORMANCE_FILTER=sub1,sub2 restricts the run
// to cases whose directory name contains one of the substrings. See
// docs/CONFORMANCE.md.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "libcompress/io/onnx.h"
#include "libcompress/runtime/interpreter.h"
#include "libcompress/runtime/op_registry.h"

namespace fs = std::filesystem;
using namespace slim;

namespace {

const char* const kNodeTests = "/usr/share/libonnx-testdata/data/node";
const std::string kExclusions =
    std::string(SLIMPACK_SOURCE_DIR) + "/tests/runtime/conformance_exclusions.txt";

// ONNX's backend test compares with numpy's assert_allclose; these are its
// float tolerances, loosened for 16-bit floats whose unit roundoff is 2^-11
// (fp16) and 2^-8 (bf16).
struct Tolerance {
  double rtol;
  double atol;
};
constexpr Tolerance kFloatTolerance{1e-3, 1e-5};  // float32, float64
constexpr Tolerance kHalfTolerance{1e-2, 1e-3};   // float16
constexpr Tolerance kBFloatTolerance{2e-2, 1e-2};  // bfloat16

double FloatValue(const Tensor& t, int64_t i) {
  if (t.dtype() == DType::kFloat64) {
    double v;
    std::memcpy(&v, t.data<uint8_t>() + 8 * i, 8);
    return v;
  }
  return static_cast<double>(t.FloatAt(i));
}

// "" when `got` matches `want`; otherwise what differs first (dtype, shape or
// the first element out of tolerance, with its flat index).
std::string Compare(const Tensor& got, const Tensor& want) {
  if (got.dtype() != want.dtype()) {
    return StrCat("dtype ", DTypeName(got.dtype()), ", expected ", DTypeName(want.dtype()));
  }
  if (got.shape() != want.shape()) {
    return StrCat("shape ", ShapeToString(got.shape()), ", expected ",
                  ShapeToString(want.shape()));
  }
  const int64_t n = want.numel();
  if (IsFloat(want.dtype())) {
    const Tolerance tol = want.dtype() == DType::kFloat16    ? kHalfTolerance
                          : want.dtype() == DType::kBFloat16 ? kBFloatTolerance
                                                             : kFloatTolerance;
    for (int64_t i = 0; i < n; ++i) {
      const double g = FloatValue(got, i);
      const double w = FloatValue(want, i);
      if (std::isnan(g) && std::isnan(w)) continue;
      if (g == w) continue;  // also equal infinities
      if (std::isinf(g) || std::isinf(w)) return StrCat("element ", i, " is ", g, ", expected ", w);
      if (std::fabs(g - w) <= tol.atol + tol.rtol * std::fabs(w)) continue;
      std::ostringstream os;
      os.precision(9);
      os << "element " << i << " is " << g << ", expected " << w << " (rtol " << tol.rtol
         << ", atol " << tol.atol << ")";
      return os.str();
    }
    return "";
  }
  const size_t elem = DTypeSize(want.dtype());
  for (int64_t i = 0; i < n; ++i) {
    if (std::memcmp(got.data<uint8_t>() + i * elem, want.data<uint8_t>() + i * elem, elem) != 0) {
      return StrCat("element ", i, " is ", got.IntAt(i), ", expected ", want.IntAt(i),
                    " (exact)");
    }
  }
  return "";
}

std::vector<std::string> FilterFromEnv() {
  std::vector<std::string> parts;
  const char* env = std::getenv("SLIMPACK_CONFORMANCE_FILTER");
  if (!env) return parts;
  std::stringstream ss(env);
  std::string part;
  while (std::getline(ss, part, ',')) {
    if (!part.empty()) parts.push_back(part);
  }
  return parts;
}

bool Selected(const std::string& name, const std::vector<std::string>& filter) {
  if (filter.empty()) return true;
  for (const auto& f : filter) {
    if (name.find(f) != std::string::npos) return true;
  }
  return false;
}

// "test_name  reason" per line; '#' starts a comment. Malformed lines are
// reported as failures.
std::map<std::string, std::string> ReadExclusions(std::vector<std::string>* failures) {
  std::map<std::string, std::string> out;
  std::ifstream in(kExclusions);
  if (!in) {
    failures->push_back("cannot read " + kExclusions);
    return out;
  }
  std::string line;
  for (int lineno = 1; std::getline(in, line); ++lineno) {
    const size_t hash = line.find('#');
    if (hash != std::string::npos) line.resize(hash);
    std::istringstream ls(line);
    std::string name;
    if (!(ls >> name)) continue;
    std::string reason;
    std::getline(ls >> std::ws, reason);
    if (reason.empty() || !out.emplace(name, reason).second) {
      failures->push_back(StrCat(kExclusions, ":", lineno, ": '", name,
                                 reason.empty() ? "' has no reason" : "' is listed twice"));
    }
  }
  return out;
}

// "domain.Op" -> (domain, op) as ReadOnnxOpTypes spells them.
bool Claimed(const std::string& op) {
  const size_t dot = op.find_last_of('.');
  if (dot == std::string::npos) return BuiltinOps().Find("", op) != nullptr;
  return BuiltinOps().Find(op.substr(0, dot), op.substr(dot + 1)) != nullptr;
}

// ONNX 1.12 stores bfloat16 test tensors as uint16 (numpy has no bfloat16);
// the bits are bfloat16 when the graph declares that type.
Tensor AsDeclared(Tensor t, DType declared) {
  if (declared == DType::kBFloat16 && t.dtype() == DType::kUInt16) {
    return Tensor::FromBytes(DType::kBFloat16, t.shape(), t.raw(), t.nbytes());
  }
  return t;
}

DType DeclaredType(const std::vector<ValueInfo>& values, const std::string& name) {
  for (const auto& v : values) {
    if (v.name == name) return v.dtype;
  }
  return DType::kUndefined;
}

// Loads input_K.pb / output_K.pb of one test_data_set directory.
Status LoadDataSet(const fs::path& dir, const Graph& g, std::map<std::string, Tensor>* feeds,
                   std::vector<std::pair<std::string, Tensor>>* expected) {
  std::vector<std::string> inputs;  // graph inputs that a test must feed
  for (const auto& in : g.inputs) {
    if (!g.FindInitializer(in.name)) inputs.push_back(in.name);
  }
  for (size_t k = 0;; ++k) {
    const fs::path p = dir / ("input_" + std::to_string(k) + ".pb");
    if (!fs::exists(p)) break;
    std::string name;
    SLIM_ASSIGN_OR_RETURN(Tensor t, ReadTensorProtoFile(p.string(), &name));
    if (name.empty()) {
      if (k >= inputs.size()) return InvalidInput(p.string(), ": more inputs than the graph has");
      name = inputs[k];
    }
    (*feeds)[name] = AsDeclared(std::move(t), DeclaredType(g.inputs, name));
  }
  for (size_t k = 0;; ++k) {
    const fs::path p = dir / ("output_" + std::to_string(k) + ".pb");
    if (!fs::exists(p)) break;
    if (k >= g.outputs.size()) return InvalidInput(p.string(), ": more outputs than the graph has");
    SLIM_ASSIGN_OR_RETURN(Tensor t, ReadTensorProtoFile(p.string()));
    expected->emplace_back(g.outputs[k].name, AsDeclared(std::move(t), g.outputs[k].dtype));
  }
  return Status::Ok();
}

// Runs every data set of a case; "" on success, else the first problem.
std::string RunCase(const fs::path& dir) {
  Expected<Model> model = ReadOnnx((dir / "model.onnx").string());
  if (!model.ok()) return "read: " + model.status().message();
  Expected<std::unique_ptr<Interpreter>> interp = Interpreter::Create(model->graph);
  if (!interp.ok()) return "plan: " + interp.status().message();
  std::vector<fs::path> sets;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.is_directory() && e.path().filename().string().rfind("test_data_set_", 0) == 0) {
      sets.push_back(e.path());
    }
  }
  std::sort(sets.begin(), sets.end());
  if (sets.empty()) return "no test_data_set_* directory";
  for (const auto& set : sets) {
    const std::string where = set.filename().string() + ": ";
    std::map<std::string, Tensor> feeds;
    std::vector<std::pair<std::string, Tensor>> expected;
    Status st = LoadDataSet(set, model->graph, &feeds, &expected);
    if (!st.ok()) return where + "data: " + st.message();
    std::vector<std::string> names;
    for (const auto& [name, t] : expected) names.push_back(name);
    Expected<std::map<std::string, Tensor>> got = (*interp)->Run(feeds, names);
    if (!got.ok()) return where + "run: " + got.status().message();
    for (const auto& [name, want] : expected) {
      const std::string diff = Compare(got->at(name), want);
      if (!diff.empty()) return where + "output '" + name + "': " + diff;
    }
  }
  return "";
}

struct OpStats {
  int run = 0;
  int passed = 0;
};

}  // namespace

TEST_CASE("conformance comparison applies the stated tolerances", "[runtime][conformance]") {
  auto f32 = [](std::vector<float> v) {
    return Tensor::FromVector(DType::kFloat32, {static_cast<int64_t>(v.size())}, v);
  };
  CHECK(Compare(f32({1.0f, NAN, INFINITY}), f32({1.0f, NAN, INFINITY})).empty());
  CHECK(Compare(f32({1.0009f}), f32({1.0f})).empty());
  CHECK_THAT(Compare(f32({1.002f}), f32({1.0f})), Catch::Contains("element 0"));
  CHECK_FALSE(Compare(f32({NAN}), f32({1.0f})).empty());
  CHECK_FALSE(Compare(f32({-INFINITY}), f32({INFINITY})).empty());
  CHECK_FALSE(Compare(f32({1.0f}), f32({INFINITY})).empty());
  CHECK_THAT(Compare(f32({1, 2}), f32({1, 2, 3})), Catch::Contains("shape"));
  const Tensor i64 = Tensor::FromVector(DType::kInt64, {2}, std::vector<int64_t>{1, 2});
  const Tensor i64b = Tensor::FromVector(DType::kInt64, {2}, std::vector<int64_t>{1, 3});
  CHECK(Compare(i64, i64).empty());
  CHECK_THAT(Compare(i64b, i64), Catch::Contains("element 1 is 3, expected 2"));
  CHECK_THAT(Compare(f32({1, 2}), i64), Catch::Contains("dtype"));
  const Tensor h = Tensor::FromVector(DType::kFloat16, {1}, std::vector<uint16_t>{FloatToHalf(1.0f)});
  const Tensor h2 =
      Tensor::FromVector(DType::kFloat16, {1}, std::vector<uint16_t>{FloatToHalf(1.005f)});
  const Tensor h3 =
      Tensor::FromVector(DType::kFloat16, {1}, std::vector<uint16_t>{FloatToHalf(1.02f)});
  CHECK(Compare(h2, h).empty());
  CHECK_FALSE(Compare(h3, h).empty());
}

TEST_CASE("ONNX node tests pass for every claimed operator", "[runtime][conformance]") {
  if (!fs::is_directory(kNodeTests)) {
    FAIL("ONNX node test data not found at " << kNodeTests
                                             << ": install the Debian package libonnx-testdata "
                                                "(apt-get install libonnx-testdata); CI installs it");
  }
  const std::vector<std::string> filter = FilterFromEnv();
  std::vector<std::string> failures;
  const std::map<std::string, std::string> exclusions = ReadExclusions(&failures);

  std::vector<fs::path> cases;
  for (const auto& e : fs::directory_iterator(kNodeTests)) {
    if (e.is_directory() && Selected(e.path().filename().string(), filter)) {
      cases.push_back(e.path());
    }
  }
  std::sort(cases.begin(), cases.end());
  std::set<std::string> case_names;
  for (const auto& c : cases) case_names.insert(c.filename().string());
  for (const auto& [name, reason] : exclusions) {
    if (Selected(name, filter) && !case_names.count(name)) {
      failures.push_back("exclusion '" + name + "' names no test case in " + kNodeTests);
    }
  }

  std::map<std::string, OpStats> per_op;
  std::map<std::string, int> unclaimed;      // op -> cases that use it
  std::map<std::string, int> reader_refused;  // reason -> cases (claimed ops only)
  int run = 0, passed = 0, excluded = 0, not_claimed = 0;
  for (const auto& dir : cases) {
    const std::string name = dir.filename().string();
    Expected<std::vector<std::string>> ops = ReadOnnxOpTypes((dir / "model.onnx").string());
    if (!ops.ok()) {
      failures.push_back(name + ": " + ops.status().message());
      continue;
    }
    bool claimed = !ops->empty();
    for (const auto& op : *ops) {
      if (!Claimed(op)) {
        claimed = false;
        ++unclaimed[op];
      }
    }
    const auto excl = exclusions.find(name);
    if (!claimed) {
      ++not_claimed;
      continue;
    }
    std::string problem = RunCase(dir);
    // A model the reader refuses by policy (opset < 9, subgraphs, sequence
    // types) is not a runtime result: report it, do not count it.
    if (problem.rfind("read: ", 0) == 0) {
      Expected<Model> m = ReadOnnx((dir / "model.onnx").string());
      if (m.status().code() == StatusCode::kUnsupported) {
        std::string reason = m.status().message();
        reason = reason.substr(reason.find(": ") + 2);
        ++reader_refused[reason.substr(0, reason.find(';'))];
        continue;
      }
    }
    ++run;
    for (const auto& op : *ops) ++per_op[op].run;
    if (problem.empty()) {
      ++passed;
      for (const auto& op : *ops) ++per_op[op].passed;
      if (excl != exclusions.end()) {
        failures.push_back(name + ": passes but is listed in conformance_exclusions.txt (" +
                           excl->second + "); remove the stale exclusion");
      }
    } else if (excl != exclusions.end()) {
      ++excluded;
    } else {
      failures.push_back(name + ": " + problem);
    }
  }

  std::cout << "\nONNX node conformance (" << kNodeTests << ")";
  if (!filter.empty()) std::cout << " filter: " << std::getenv("SLIMPACK_CONFORMANCE_FILTER");
  std::cout << "\n  per operator: cases run / passed (a case counts for every op its model uses)\n";
  for (const auto& [op, s] : per_op) {
    std::cout << "    " << op << " " << s.run << " / " << s.passed << "\n";
  }
  std::cout << "  claimed operators: " << BuiltinOps().Names().size() << ", exercised here: "
            << per_op.size() << "\n";
  std::cout << "  cases: " << cases.size() << " total, " << run << " run, " << passed
            << " passed, " << excluded << " excluded (failing as listed), " << not_claimed
            << " not claimed\n";
  for (const auto& [reason, n] : reader_refused) {
    std::cout << "  claimed but refused by the reader: " << n << " x " << reason << "\n";
  }
  std::cout << "  ops in the test data that are not claimed (" << unclaimed.size() << "):";
  for (const auto& [op, n] : unclaimed) std::cout << " " << op << "(" << n << ")";
  std::cout << "\n";
  for (const auto& f : failures) std::cout << "  FAIL " << f << "\n";
  std::cout << std::flush;

  INFO(failures.size() << " conformance failure(s); first: "
                       << (failures.empty() ? "" : failures.front()));
  REQUIRE(failures.empty());
}
