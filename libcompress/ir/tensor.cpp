#include "libcompress/ir/tensor.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>

namespace slim {

OwnedBuffer::OwnedBuffer(size_t size) : size_(size) {
  const size_t alloc = ((size + 63) / 64) * 64;
  data_ = static_cast<uint8_t*>(std::aligned_alloc(64, alloc == 0 ? 64 : alloc));
  if (!data_) throw std::bad_alloc();
  std::memset(data_, 0, alloc == 0 ? 64 : alloc);
}
OwnedBuffer::~OwnedBuffer() { std::free(data_); }

Expected<std::shared_ptr<MappedFile>> MappedFile::Open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return InvalidInput(path, ": cannot open: ", std::strerror(errno));
  struct stat st{};
  if (::fstat(fd, &st) != 0) {
    const int e = errno;
    ::close(fd);
    return InvalidInput(path, ": cannot stat: ", std::strerror(e));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return InvalidInput(path, ": not a regular file");
  }
  std::shared_ptr<MappedFile> f(new MappedFile());
  f->path_ = path;
  f->size_ = static_cast<size_t>(st.st_size);
  if (f->size_ > 0) {
    void* p = ::mmap(nullptr, f->size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      const int e = errno;
      ::close(fd);
      return Internal(path, ": mmap failed: ", std::strerror(e));
    }
    f->data_ = static_cast<const uint8_t*>(p);
  }
  ::close(fd);
  return f;
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
}

int64_t ShapeNumel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) return -1;
    if (d != 0 && n > std::numeric_limits<int64_t>::max() / d) return -1;
    n *= d;
  }
  return n;
}

std::string ShapeToString(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

Tensor::Tensor(DType dtype, std::vector<int64_t> shape)
    : dtype_(dtype), shape_(std::move(shape)) {
  nbytes_ = static_cast<size_t>(ShapeNumel(shape_)) * DTypeSize(dtype_);
  buffer_ = std::make_shared<OwnedBuffer>(nbytes_);
}

Tensor Tensor::View(std::shared_ptr<Buffer> buffer, size_t offset, size_t nbytes, DType dtype,
                    std::vector<int64_t> shape) {
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  t.buffer_ = std::move(buffer);
  t.offset_ = offset;
  t.nbytes_ = nbytes;
  return t;
}

Tensor Tensor::FromBytes(DType dtype, std::vector<int64_t> shape, const void* bytes,
                         size_t nbytes) {
  auto buf = std::make_shared<OwnedBuffer>(nbytes);
  if (nbytes) std::memcpy(buf->mutable_data(), bytes, nbytes);
  return View(std::move(buf), 0, nbytes, dtype, std::move(shape));
}

Tensor Tensor::Scalar(float v) { return FromBytes(DType::kFloat32, {}, &v, sizeof v); }

bool Tensor::is_mapped() const {
  return buffer_ && dynamic_cast<const MappedFile*>(buffer_.get()) != nullptr;
}

std::string Tensor::mapped_path() const {
  const auto* file = buffer_ ? dynamic_cast<const MappedFile*>(buffer_.get()) : nullptr;
  return file ? file->path() : std::string();
}

void* Tensor::MutableRaw() {
  if (!buffer_) return nullptr;
  if (buffer_->mutable_data() == nullptr || buffer_.use_count() > 1) {
    *this = Clone();
  }
  return buffer_->mutable_data() + offset_;
}

Tensor Tensor::Reshaped(std::vector<int64_t> shape) const {
  Tensor t = *this;
  t.shape_ = std::move(shape);
  return t;
}

float Tensor::FloatAt(int64_t i) const {
  const uint8_t* p = static_cast<const uint8_t*>(raw());
  switch (dtype_) {
    case DType::kFloat32: { float v; std::memcpy(&v, p + 4 * i, 4); return v; }
    case DType::kFloat16: { uint16_t v; std::memcpy(&v, p + 2 * i, 2); return HalfToFloat(v); }
    case DType::kBFloat16: { uint16_t v; std::memcpy(&v, p + 2 * i, 2); return BFloat16ToFloat(v); }
    case DType::kFloat64: { double v; std::memcpy(&v, p + 8 * i, 8); return static_cast<float>(v); }
    default: return static_cast<float>(IntAt(i));
  }
}

int64_t Tensor::IntAt(int64_t i) const {
  const uint8_t* p = static_cast<const uint8_t*>(raw());
  switch (dtype_) {
    case DType::kInt64: { int64_t v; std::memcpy(&v, p + 8 * i, 8); return v; }
    case DType::kInt32: { int32_t v; std::memcpy(&v, p + 4 * i, 4); return v; }
    case DType::kInt16: { int16_t v; std::memcpy(&v, p + 2 * i, 2); return v; }
    case DType::kInt8: return static_cast<int8_t>(p[i]);
    case DType::kUInt8: case DType::kBool: return p[i];
    case DType::kUInt16: { uint16_t v; std::memcpy(&v, p + 2 * i, 2); return v; }
    case DType::kUInt32: { uint32_t v; std::memcpy(&v, p + 4 * i, 4); return v; }
    case DType::kUInt64: { uint64_t v; std::memcpy(&v, p + 8 * i, 8); return static_cast<int64_t>(v); }
    default: return static_cast<int64_t>(FloatAt(i));
  }
}

std::vector<float> Tensor::ToFloatVector() const {
  const int64_t n = numel();
  std::vector<float> out(static_cast<size_t>(n));
  if (dtype_ == DType::kFloat32) {
    if (n) std::memcpy(out.data(), raw(), static_cast<size_t>(n) * 4);
    return out;
  }
  for (int64_t i = 0; i < n; ++i) out[static_cast<size_t>(i)] = FloatAt(i);
  return out;
}

std::vector<int64_t> Tensor::ToInt64Vector() const {
  const int64_t n = numel();
  std::vector<int64_t> out(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) out[static_cast<size_t>(i)] = IntAt(i);
  return out;
}

Tensor Tensor::Clone() const {
  Tensor t = FromBytes(dtype_, shape_, raw(), nbytes_);
  return t;
}

}  // namespace slim
