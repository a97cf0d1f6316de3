// select_layout: see select_layout.h.
#include "passes/select_layout.h"

#include <chrono>
#include <set>

#include "libcompress/kernels/quant.h"

namespace slim {
namespace {

// Sequential calibration compresses one layer per step: only that step's
// weights are re-packed (other selections do not apply to this pass).
bool InStep(const PassContext& ctx, const std::string& weight) {
  return !ctx.selection.step_weights || ctx.selection.step_weights->count(weight) != 0;
}

class SelectLayoutPass final : public Pass {
 public:
  const PassInfo& info() const override {
    static const PassInfo kInfo = {
        "select_layout",
        "re-pack int4 weights into the layout family the target profile prefers; choose int8's compute path",
        {
            EnumOption("int4_layout", "target", {"target", "row", "x8"},
                       "int4 layout family: the target profile's choice (x8 without --target), "
                       "row-major rows, or 8-row interleaved tiles (AVX2 / AVX-512 / NEON "
                       "dot-product kernels); 2:4 sparse weights go to the family's 2:4 layout, "
                       "int4 nl weights stay in their x8 layout"),
            EnumOption("int8_path", "f32-dequant-fma", {"f32-dequant-fma", "i8-dot"},
                       "compute path of int8 (q8_row) matmuls: float activations, or activations "
                       "rounded to int8 per 32 elements (faster where the float path is "
                       "compute-bound; about 3x the int8 KL on kjv-byte)"),
        }};
    return kInfo;
  }

  Expected<PassReport> Run(Graph& graph, const PassContext& ctx) const override {
    const auto t0 = std::chrono::steady_clock::now();
    std::string family = ctx.options.GetString("int4_layout");
    // Without a target the file is packed for the fast path of any x86 or
    // ARM host this project meets: x8 tiles, whose i8-dot kernels are
    // bit-identical on every ISA (scalar ones included), so the output does
    // not depend on where it is compiled or run (docs/LAYOUTS.md).
    if (family == "target") family = ctx.target ? ctx.target->int4_layout : "x8";
    const QuantLayoutKind want = family == "x8" ? QuantLayoutKind::kQ4X8 : QuantLayoutKind::kQ4Row;

    struct Job {
      std::string name;
      QuantLayout from, to;
      std::vector<size_t> readers;
      TensorReport report;
    };
    std::vector<Job> jobs;
    std::set<std::string> seen;
    for (size_t i = 0; i < graph.nodes.size(); ++i) {
      const Node& n = graph.nodes[i];
      if (n.domain != "slimpack" || n.op_type != "MatMulQ") continue;
      const std::string& w = n.Input(1);
      const Tensor* t = graph.FindInitializer(w);
      if (!t || t->dtype() != DType::kInt4Packed || !seen.insert(w).second || !InStep(ctx, w)) continue;
      Job job;
      job.name = w;
      TensorReport& r = job.report;
      r.name = w;
      r.shape = t->shape();
      r.source_dtype = DTypeName(t->dtype());
      r.role = "packed-matmul-weight";
      r.bits = 4;
      r.params = t->numel();
      r.bytes_before = r.bytes_after = t->nbytes();
      r.layout = n.GetString("layout", "");
      auto from = ParseQuantLayout(r.layout);
      if (!from.ok()) return from.status().WithContext(StrCat(ctx.pass_name, ": ", n.Describe()));
      job.from = job.to = *from;
      // 2:4 weights keep their sparsity: their families are
      // q4g*_sym_s24_row and q4g*_sym_s24_x8.
      const bool s24 = from->kind == QuantLayoutKind::kQ4S24Row || from->kind == QuantLayoutKind::kQ4S24X8;
      if (s24) {
        job.to.kind = want == QuantLayoutKind::kQ4X8 ? QuantLayoutKind::kQ4S24X8 : QuantLayoutKind::kQ4S24Row;
      } else if (from->kind != QuantLayoutKind::kQ4NlX8) {
        job.to.kind = want;
      }  // nl codes have only the x8 layout; the row family keeps them (reason below)
      r.requested = job.to.Name();
      r.actual = r.layout;
      r.group_size = static_cast<int64_t>(from->group_size);
      r.symmetric = from->symmetric;
      r.requested_bits_per_weight =
          PackedBitsPerWeight(job.to, static_cast<size_t>(t->dim(0)), static_cast<size_t>(t->dim(1)));
      // Every reader must be a MatMulQ naming the same layout, or the
      // tensor stays as it is.
      for (size_t j = 0; j < graph.nodes.size(); ++j) {
        const Node& m = graph.nodes[j];
        for (size_t k = 0; k < m.inputs.size(); ++k) {
          if (m.inputs[k] != w) continue;
          if (m.domain == "slimpack" && m.op_type == "MatMulQ" && k == 1 &&
              m.GetString("layout", "") == r.layout) {
            job.readers.push_back(j);
          } else if (r.reason.empty()) {
            r.reason = StrCat("also read by ", m.Describe(), " input ", k);
          }
        }
      }
      if (!r.reason.empty()) {
        r.fallback = true;
      } else if (from->kind == QuantLayoutKind::kQ4NlX8 && want != QuantLayoutKind::kQ4X8) {
        r.reason = "int4 nl has only the x8 layout (i8-dot kernels)";
      } else if (job.from == job.to) {
        r.reason = "already in the requested layout";
      }
      jobs.push_back(std::move(job));
    }

    if (ctx.strict) {
      for (const Job& j : jobs) {
        if (j.report.fallback) {
          return InvalidInput(ctx.pass_name, ": strict mode: '", j.name, "' stays ",
                              j.report.actual, ": ", j.report.reason);
        }
      }
    }

    // Re-pack into new tensors first; the graph changes only after all
    // succeeded.
    std::vector<Tensor> packed(jobs.size());
    for (size_t i = 0; i < jobs.size(); ++i) {
      Job& j = jobs[i];
      if (j.report.fallback || j.from == j.to) continue;
      const Tensor& t = *graph.FindInitializer(j.name);
      const size_t n = static_cast<size_t>(t.dim(0)), k = static_cast<size_t>(t.dim(1));
      if (ctx.dry_run) {
        j.report.bytes_after = j.to.PackedBytes(n, k);
      } else {
        auto q = UnpackQuantized(t.data<uint8_t>(), t.nbytes(), j.from, n, k);
        if (!q.ok()) return q.status().WithContext(StrCat(ctx.pass_name, ": tensor '", j.name, "'"));
        auto blob = PackQuantized(*q, j.to);
        if (!blob.ok()) return blob.status().WithContext(StrCat(ctx.pass_name, ": tensor '", j.name, "'"));
        packed[i] = Tensor::FromBytes(DType::kInt4Packed, t.shape(), blob->data(), blob->size());
        j.report.bytes_after = blob->size();
      }
      j.report.actual = j.to.Name();
      j.report.layout = j.to.Name();
      ctx.Progress(i + 1, jobs.size(), j.name);
    }

    PassReport report;
    report.pass = ctx.pass_name;
    int64_t repacked = 0, fallbacks = 0;
    for (size_t i = 0; i < jobs.size(); ++i) {
      Job& j = jobs[i];
      if (packed[i].defined()) {
        graph.AddInitializer(j.name, packed[i]);
        for (size_t r : j.readers) graph.nodes[r].attrs["layout"] = Attribute::String(j.to.Name());
      }
      repacked += j.report.actual == j.to.Name() && !(j.from == j.to) ? 1 : 0;
      fallbacks += j.report.fallback ? 1 : 0;
      report.tensors.push_back(std::move(j.report));
    }
    // The int8 compute path: recorded on the node (the packed file keeps
    // node attributes), so every host runs the same arithmetic.
    int64_t int8_i8_dot = 0;
    if (ctx.options.GetString("int8_path") == "i8-dot") {
      for (Node& n : graph.nodes) {
        if (n.domain != "slimpack" || n.op_type != "MatMulQ" || n.GetString("layout", "") != "q8_row" ||
            !InStep(ctx, n.Input(1))) {
          continue;
        }
        n.attrs["compute_path"] = Attribute::String("i8-dot");
        ++int8_i8_dot;
      }
    }
    report.counters["int8_i8_dot"] = int8_i8_dot;
    report.counters["weights"] = static_cast<int64_t>(jobs.size());
    report.counters["repacked"] = repacked;
    report.counters["fallbacks"] = fallbacks;
    report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    ctx.Log(StrCat("int4 layout family '", family, "': ", repacked, " of ", jobs.size(),
                   " tensors re-packed"));
    return report;
  }
};

}  // namespace

std::unique_ptr<Pass> MakeSelectLayoutPass() { return std::make_unique<SelectLayoutPass>(); }

}  // namespace slim
