// slimpack export PACKED --format onnx -o OUT.onnx: ONNX that other runtimes
// execute (docs/EXPORT.md). Loads any model, lowers the slimpack ops
// (libcompress/export/onnx_export.h) and writes the graph with WriteOnnx
// (atomic: a temporary file renamed into place, so a failed export leaves
// nothing behind and never a partial OUT).
#include <cstdio>
#include <filesystem>
#include <system_error>

#include "libcompress/export/onnx_export.h"
#include "libcompress/io/hf_llama.h"
#include "libcompress/io/model_loader.h"
#include "libcompress/io/onnx.h"
#include "tools/cli.h"

namespace slim::cli {
namespace {

struct ExportCmdOptions {
  std::string model;
  std::string format = "onnx";
  std::string output;
  std::string int4 = "matmulnbits";
  size_t external_data_mb = 0;
  bool quiet = false;
  std::string json;
};

int RunExport(const ExportCmdOptions& opt) {
  ExportOptions options;
  auto mode = ParseInt4Mode(opt.int4);
  if (!mode.ok()) return ReportError(mode.status());
  options.int4 = *mode;
  auto model = LoadModel(opt.model);
  if (!model.ok()) return ReportError(model.status());
  if (opt.format == "hf") {
    if (Status st = CheckOutputs({opt.json}, model->files); !st.ok()) return ReportError(st);
    Status st = WriteHuggingFace(*model, opt.output, model->files);
    if (!st.ok()) return ReportError(st);
    nlohmann::json j{{"output", opt.output}, {"format", opt.format}};
    if (HumanOutput(opt.json)) {
      std::printf("wrote %s/config.json and %s/model.safetensors\n", opt.output.c_str(), opt.output.c_str());
    }
    st = WriteJson(opt.json, j);
    return st.ok() ? kExitOk : ReportError(st);
  }
  if (Status st = CheckOutputs({opt.output, opt.json}, model->files); !st.ok()) return ReportError(st);
  ExportStats stats;
  auto graph = LowerToOnnx(model->graph, options, &stats);
  if (!graph.ok()) return ReportError(graph.status().WithContext(opt.model));
  if (stats.slimpack_ops() == 0 && !opt.quiet) {
    std::fprintf(stderr, "slimpack: note: %s (%s) has no slimpack ops; writing its graph as plain ONNX\n",
                 opt.model.c_str(), model->format.c_str());
  }
  OnnxWriteOptions write;
  write.external_data_threshold = opt.external_data_mb << 20;
  Status st = WriteOnnx(*graph, opt.output, write);
  if (!st.ok()) return ReportError(st);
  std::error_code ec;
  const uintmax_t bytes = std::filesystem::file_size(opt.output, ec);
  nlohmann::json j{{"output", opt.output},
                   {"format", opt.format},
                   {"int4", Int4ModeName(options.int4)},
                   {"bytes", ec ? 0 : bytes},
                   {"opset", graph->onnx_opset()},
                   {"matmul_nbits", stats.matmul_nbits},
                   {"int4_dequantized", stats.int4_dequantized},
                   {"int8_matmuls", stats.int8_matmuls},
                   {"gathers", stats.gathers}};
  if (HumanOutput(opt.json)) {
    std::printf("wrote %s (%s, ai.onnx opset %lld)\n", opt.output.c_str(), HumanBytes(static_cast<double>(bytes)).c_str(),
                static_cast<long long>(graph->onnx_opset()));
    std::printf("int4 MatMulQ -> com.microsoft.MatMulNBits  %lld\n", static_cast<long long>(stats.matmul_nbits));
    std::printf("int4 MatMulQ -> dense MatMul               %lld\n", static_cast<long long>(stats.int4_dequantized));
    std::printf("int8 MatMulQ -> DequantizeLinear + MatMul  %lld\n", static_cast<long long>(stats.int8_matmuls));
    std::printf("GatherQ      -> DequantizeLinear + Gather  %lld\n", static_cast<long long>(stats.gathers));
  }
  st = WriteJson(opt.json, j);
  return st.ok() ? kExitOk : ReportError(st);
}

}  // namespace

void AddExportCommand(CLI::App& app, int& exit_code) {
  auto opt = std::make_shared<ExportCmdOptions>();
  CLI::App* sub = app.add_subcommand(
      "export",
      "Write a model (normally a packed file) as ONNX that other runtimes execute. int4 weights\n"
      "become ONNX Runtime's com.microsoft.MatMulNBits (4-bit kept, any q4 layout re-packed), int8\n"
      "weights standard DequantizeLinear + MatMul/Gather; dequantized weights equal the packed\n"
      "model's bit for bit. --int4 dequantize writes dense float32 weights instead (standard ONNX\n"
      "only, no size win). A model without slimpack ops is written as it is. --format hf writes a\n"
      "float model read from a Hugging Face directory (for example after structured pruning) back\n"
      "as config.json + model.safetensors, for fine-tuning in any framework. See docs/EXPORT.md.\n"
      "Example:\n"
      "  slimpack compile models/kjv-byte -o kjv.slim --preset int4\n"
      "  slimpack export kjv.slim --format onnx -o kjv.int4.onnx");
  sub->add_option("PACKED", opt->model, "Packed file (or any model slimpack reads)")->required();
  sub->add_option("--format", opt->format, "Output format")->check(CLI::IsMember({"onnx", "hf"}))->capture_default_str();
  sub->add_option("-o,--output", opt->output,
                  "Output .onnx file, or with --format hf a directory (config.json + model.safetensors); written "
                  "atomically")
      ->required();
  sub->add_option("--int4", opt->int4, "int4 weights: matmulnbits (ONNX Runtime contrib op) or dequantize (dense)")
      ->check(CLI::IsMember({"matmulnbits", "dequantize"}))
      ->capture_default_str();
  sub->add_option("--external-data-mb", opt->external_data_mb,
                  "Tensors of at least this many MiB go to OUT.onnx.data (0 = all inline; needed past 2 GiB)")
      ->capture_default_str();
  sub->add_flag("--quiet", opt->quiet, "No notes on stderr");
  sub->add_option("--json", opt->json,
                  "Write output, bytes, opset and the counts of lowered ops to FILE ('-' = stdout)");
  sub->callback([opt, &exit_code] { exit_code = RunExport(*opt); });
}

}  // namespace slim::cli
