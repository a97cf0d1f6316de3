// A minimal external fine-tuner for `hook_external` (docs/DISTILL.md): it
// reads the student from $SLIMPACK_STUDENT, changes it as asked, and writes
// it back in place. Real fine-tuners do the same with PyTorch or JAX; this
// one needs no Python, so the tests and the worked example run anywhere.
//
//   slimpack_distill_hook none                 leave everything as it is
//   slimpack_distill_hook scale NAME FACTOR    multiply tensor NAME
//   slimpack_distill_hook revive NAME          set every element to 0.5
//                                              (revives pruned weights)
//   slimpack_distill_hook reshape NAME         flatten NAME to one dimension
//   slimpack_distill_hook drop NAME            remove NAME
// Exit 0 on success, 1 on a usage or file error.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "libcompress/io/safetensors.h"

int main(int argc, char** argv) {
  using namespace slim;
  const char* path = std::getenv("SLIMPACK_STUDENT");
  if (argc < 2 || !path) {
    std::fprintf(stderr, "usage: SLIMPACK_STUDENT=FILE %s none|scale NAME F|revive NAME|reshape NAME|drop NAME\n",
                 argv[0]);
    return 1;
  }
  const std::string mode = argv[1];
  if (mode == "none") return 0;
  if (argc < 3) return 1;
  const std::string target = argv[2];
  auto file = ReadSafetensorsFile(path);
  if (!file.ok()) {
    std::fprintf(stderr, "%s\n", file.status().message().c_str());
    return 1;
  }
  std::vector<std::pair<std::string, Tensor>> out;
  bool found = false;
  for (auto& [name, t] : file->tensors) {
    if (name != target) {
      out.push_back({name, t.Clone()});  // the file is rewritten below: no views into it
      continue;
    }
    found = true;
    if (mode == "drop") continue;
    std::vector<float> v = t.ToFloatVector();
    if (mode == "scale") {
      const float f = argc > 3 ? std::strtof(argv[3], nullptr) : 1.0f;
      for (float& e : v) e *= f;
      out.push_back({name, Tensor::FromVector(DType::kFloat32, t.shape(), v)});
    } else if (mode == "revive") {
      for (float& e : v) e = 0.5f;
      out.push_back({name, Tensor::FromVector(DType::kFloat32, t.shape(), v)});
    } else if (mode == "reshape") {
      out.push_back({name, Tensor::FromVector(DType::kFloat32, {t.numel()}, v)});
    } else {
      std::fprintf(stderr, "unknown mode %s\n", mode.c_str());
      return 1;
    }
  }
  if (!found) {
    std::fprintf(stderr, "%s: no tensor '%s'\n", path, target.c_str());
    return 1;
  }
  Status st = WriteSafetensors(path, out, file->metadata);
  if (!st.ok()) {
    std::fprintf(stderr, "%s\n", st.message().c_str());
    return 1;
  }
  return 0;
}
