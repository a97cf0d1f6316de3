// Uses every part of the public API on a bundled model:
//   consumer MODEL_DIR DATA_JSON OUT_DIR
// load, compress (int8 preset), write the packed file, open and run it,
// verify it against the original; a bad path must throw slimpack::Error
// with exit code 2. Prints what it measured; exit 0 only if all holds.
#include <slimpack/slimpack.h>

#include <cmath>
#include <cstdio>

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: consumer MODEL_DIR DATA_JSON OUT_DIR\n");
    return 2;
  }
  const std::string model_dir = argv[1], data = argv[2], out = std::string(argv[3]) + "/consumer.int8.slim";
  const std::string version = slimpack::Version();
  std::printf("slimpack %s\n", version.c_str());
  if (version.rfind("0.1.0 (git ", 0) != 0) return 1;
  try {
    slimpack::Model m = slimpack::Model::Load(model_dir);
    const uint64_t params = m.parameters();
    const std::string report = m.Compress("int8");
    m.WritePacked(out);

    slimpack::Model packed = slimpack::Model::Load(out);
    if (packed.format() != "packed" || !packed.is_decoder()) return 1;
    slimpack::Session s(packed);
    const std::vector<float> logits = s.Append({1, 2, 3});
    if (logits.size() != 3 * static_cast<size_t>(s.vocab_size()) || s.context_length() != 3) return 1;
    for (float v : logits)
      if (!std::isfinite(v)) return 1;

    const slimpack::VerifyResult v = slimpack::Verify(packed, slimpack::Model::Load(model_dir), data, 4);
    std::printf("parameters %llu, report %zu bytes, verify: %llu tokens, KL %.5f, top-1 %.4f, %llu bytes/token\n",
                static_cast<unsigned long long>(params), report.size(),
                static_cast<unsigned long long>(v.tokens_evaluated), v.kl_mean, v.top1_agreement,
                static_cast<unsigned long long>(v.bytes_per_token));
    if (v.tokens_evaluated == 0 || v.kl_mean > 0.01 || v.top1_agreement < 0.95 || v.bytes_per_token == 0) return 1;
  } catch (const slimpack::Error& e) {
    std::fprintf(stderr, "slimpack error (exit %d): %s\n", e.exit_code(), e.what());
    return 1;
  }
  try {
    slimpack::Model::Load(model_dir + "/no-such-model.onnx");
    return 1;
  } catch (const slimpack::Error& e) {
    if (e.exit_code() != 2) return 1;
    std::printf("bad path: exit code %d, \"%s\"\n", e.exit_code(), e.what());
  }
  return 0;
}
