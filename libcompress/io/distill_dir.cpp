#include "libcompress/io/distill_dir.h"

#include <sys/stat.h>

#include <cerrno>
#include <cmath>
#include <cstring>

#include <dirent.h>
#include <nlohmann/json.hpp>

#include "libcompress/common/half.h"
#include "libcompress/common/sha256.h"
#include "libcompress/io/atomic_file.h"
#include "libcompress/io/safetensors.h"

namespace slim {
namespace {

using Json = nlohmann::json;

Tensor ToF32(const Tensor& t) {
  if (t.dtype() == DType::kFloat32) return t;
  return Tensor::FromVector(DType::kFloat32, t.shape(), t.ToFloatVector());
}

// FP32 values stored in `dtype` (round to nearest even for 16-bit types).
Tensor FromF32(const Tensor& f32, DType dtype) {
  if (dtype == DType::kFloat32) return f32.Clone();
  const float* p = f32.data<float>();
  const size_t n = static_cast<size_t>(f32.numel());
  Tensor out(dtype, f32.shape());
  switch (dtype) {
    case DType::kFloat16: {
      auto* q = out.MutableData<uint16_t>();
      for (size_t i = 0; i < n; ++i) q[i] = FloatToHalf(p[i]);
      break;
    }
    case DType::kBFloat16: {
      auto* q = out.MutableData<uint16_t>();
      for (size_t i = 0; i < n; ++i) q[i] = FloatToBFloat16(p[i]);
      break;
    }
    case DType::kFloat64: {
      auto* q = out.MutableData<double>();
      for (size_t i = 0; i < n; ++i) q[i] = p[i];
      break;
    }
    default:
      break;
  }
  return out;
}

Status EnsureEmptyDir(const std::string& dir) {
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0) {
    if (errno != ENOENT) return InvalidInput(dir, ": ", std::strerror(errno));
    if (::mkdir(dir.c_str(), 0777) != 0) return InvalidInput(dir, ": cannot create the directory: ", std::strerror(errno));
    return Status::Ok();
  }
  SLIM_CHECK_INPUT(S_ISDIR(st.st_mode), dir, ": exists and is not a directory");
  DIR* d = ::opendir(dir.c_str());
  if (!d) return InvalidInput(dir, ": ", std::strerror(errno));
  bool empty = true;
  while (const dirent* e = ::readdir(d)) {
    if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) empty = false;
  }
  ::closedir(d);
  SLIM_CHECK_INPUT(empty, dir, ": is not empty (a distillation directory is written into a new or empty one)");
  return Status::Ok();
}

}  // namespace

Status WriteDistillDir(const std::string& dir, const DistillContents& c) {
  SLIM_RETURN_IF_ERROR(EnsureEmptyDir(dir));
  Json manifest;
  manifest["format"] = "slimpack-distill";
  manifest["version"] = 1;
  manifest["producer"] = c.producer;
  manifest["reimport"] = c.reimport;
  std::vector<std::pair<std::string, Tensor>> student;
  Json tensors = Json::array();
  for (const auto& [name, t] : c.student) {
    student.push_back({name, ToF32(t)});
    tensors.push_back({{"name", name}, {"shape", t.shape()}, {"dtype", DTypeName(t.dtype())},
                       {"exported_dtype", "float32"}, {"masked", c.masks.count(name) != 0}});
  }
  manifest["tensors"] = tensors;
  manifest["frozen"] = c.frozen;
  std::vector<std::pair<std::string, Tensor>> masks(c.masks.begin(), c.masks.end());
  Json files = Json::object();
  auto write = [&](const std::string& file, const std::vector<std::pair<std::string, Tensor>>& list) -> Status {
    const std::string path = dir + "/" + file;
    SLIM_RETURN_IF_ERROR(WriteSafetensors(path, list, {{"format", "pt"}}));
    SLIM_ASSIGN_OR_RETURN(std::string hash, Sha256File(path));
    files[file] = {{"sha256", hash}, {"tensors", list.size()}};
    return Status::Ok();
  };
  SLIM_RETURN_IF_ERROR(write("student.safetensors", student));
  SLIM_RETURN_IF_ERROR(write("masks.safetensors", masks));
  if (!c.teacher.empty()) SLIM_RETURN_IF_ERROR(write("teacher.safetensors", c.teacher));
  manifest["files"] = files;
  return WriteFileAtomic(dir + "/manifest.json", manifest.dump(2) + "\n");
}

Expected<std::vector<std::pair<std::string, Tensor>>> ReadDistillStudent(const std::string& dir,
                                                                         const DistillContents& expected) {
  const std::string path = dir + "/student.safetensors";
  SLIM_ASSIGN_OR_RETURN(auto got, ReadSafetensors(path));
  std::map<std::string, const Tensor*> by_name;
  for (const auto& [name, t] : got) by_name[name] = &t;
  for (const auto& [name, t] : got) {
    bool known = false;
    for (const auto& e : expected.student) known |= e.first == name;
    SLIM_CHECK_INPUT(known, path, ": tensor '", name, "' was not exported (a fine-tuner may not add tensors)");
  }
  std::vector<std::pair<std::string, Tensor>> out;
  for (const auto& [name, before] : expected.student) {
    auto it = by_name.find(name);
    SLIM_CHECK_INPUT(it != by_name.end(), path, ": tensor '", name, "' is missing (a fine-tuner may not drop tensors)");
    const Tensor& t = *it->second;
    SLIM_CHECK_INPUT(t.dtype() == DType::kFloat32, path, ": tensor '", name, "' has dtype ", DTypeName(t.dtype()),
                     ", exported as float32");
    SLIM_CHECK_INPUT(t.shape() == before.shape(), path, ": tensor '", name, "' has shape ", ShapeToString(t.shape()),
                     ", exported as ", ShapeToString(before.shape()), " (shapes are fixed)");
    const float* p = t.data<float>();
    const size_t n = static_cast<size_t>(t.numel());
    for (size_t i = 0; i < n; ++i) {
      SLIM_CHECK_INPUT(std::isfinite(p[i]), path, ": tensor '", name, "' element ", i, " is ", p[i],
                       " (values must be finite)");
    }
    auto mask = expected.masks.find(name);
    if (mask != expected.masks.end()) {
      const uint8_t* m = mask->second.data<uint8_t>();
      for (size_t i = 0; i < n; ++i) {
        SLIM_CHECK_INPUT(m[i] != 0 || p[i] == 0.0f, path, ": tensor '", name, "' element ", i, " is ", p[i],
                         " where the mask pruned it (pruned weights stay 0)");
      }
    }
    out.push_back({name, FromF32(t, before.dtype())});
  }
  return out;
}

}  // namespace slim
