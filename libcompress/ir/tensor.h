// Tensors: dtype + shape + bytes that are either owned or memory-mapped.
//
// A Tensor is a cheap handle (shared_ptr to a Buffer plus an offset), so
// graphs, sessions and passes can pass weights around without copying. A
// reader that memory-maps a model file hands out views into the mapping;
// opening a multi-GB model therefore costs address space, not RSS. Mapped
// bytes are read-only: code that wants to modify a tensor calls
// MutableData(), which copies a mapped view into owned memory first.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "libcompress/common/status.h"
#include "libcompress/ir/dtype.h"

namespace slim {

// Raw bytes behind one or more tensors.
class Buffer {
 public:
  virtual ~Buffer() = default;
  virtual const uint8_t* data() const = 0;
  virtual size_t size() const = 0;
  // nullptr when the bytes are read-only (a memory map).
  virtual uint8_t* mutable_data() { return nullptr; }
};

// Heap bytes, 64-byte aligned (SIMD loads and packed-format alignment).
class OwnedBuffer final : public Buffer {
 public:
  explicit OwnedBuffer(size_t size);  // zero-initialised
  ~OwnedBuffer() override;
  OwnedBuffer(const OwnedBuffer&) = delete;
  OwnedBuffer& operator=(const OwnedBuffer&) = delete;
  const uint8_t* data() const override { return data_; }
  uint8_t* mutable_data() override { return data_; }
  size_t size() const override { return size_; }

 private:
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// A whole file mapped read-only. Open() fails with a message naming the path.
class MappedFile final : public Buffer {
 public:
  static Expected<std::shared_ptr<MappedFile>> Open(const std::string& path);
  ~MappedFile() override;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  const uint8_t* data() const override { return data_; }
  size_t size() const override { return size_; }
  const std::string& path() const { return path_; }

 private:
  MappedFile() = default;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::string path_;
};

// Number of elements of a shape; -1 if a dim is negative or the product
// overflows int64 (readers use this to reject hostile shapes).
int64_t ShapeNumel(const std::vector<int64_t>& shape);
std::string ShapeToString(const std::vector<int64_t>& shape);

class Tensor {
 public:
  Tensor() = default;
  // New zero-filled owned tensor.
  Tensor(DType dtype, std::vector<int64_t> shape);
  // View of `nbytes` bytes at `offset` inside `buffer` (no copy). The caller
  // has validated offset + nbytes <= buffer->size().
  static Tensor View(std::shared_ptr<Buffer> buffer, size_t offset, size_t nbytes,
                     DType dtype, std::vector<int64_t> shape);
  // Owned copy of raw bytes (nbytes must match dtype and shape).
  static Tensor FromBytes(DType dtype, std::vector<int64_t> shape, const void* bytes,
                          size_t nbytes);
  template <typename T>
  static Tensor FromVector(DType dtype, std::vector<int64_t> shape, const std::vector<T>& v) {
    return FromBytes(dtype, std::move(shape), v.data(), v.size() * sizeof(T));
  }
  static Tensor Scalar(float v);  // float32, rank 0

  bool defined() const { return buffer_ != nullptr; }
  DType dtype() const { return dtype_; }
  const std::vector<int64_t>& shape() const { return shape_; }
  int64_t dim(size_t i) const { return shape_[i]; }
  size_t rank() const { return shape_.size(); }
  int64_t numel() const { return ShapeNumel(shape_); }
  size_t nbytes() const { return nbytes_; }
  bool is_mapped() const;  // bytes live in a read-only memory map
  // Path of the mapped file the bytes live in; empty for owned storage.
  // (Writers use it to refuse an output that is one of the inputs.)
  std::string mapped_path() const;

  const void* raw() const { return buffer_ ? buffer_->data() + offset_ : nullptr; }
  template <typename T>
  const T* data() const { return static_cast<const T*>(raw()); }
  // Writable bytes; copies mapped (or shared) storage into an owned buffer
  // first so other holders of the old bytes never see the change.
  void* MutableRaw();
  template <typename T>
  T* MutableData() { return static_cast<T*>(MutableRaw()); }

  // Same bytes, different shape (numel must match).
  Tensor Reshaped(std::vector<int64_t> shape) const;
  // Element i converted to float / int64 (any numeric dtype). Slow; for
  // tests, small tensors and shape computations.
  float FloatAt(int64_t i) const;
  int64_t IntAt(int64_t i) const;
  // All elements as float32 / int64 (copies; converts fp16/bf16/ints).
  std::vector<float> ToFloatVector() const;
  std::vector<int64_t> ToInt64Vector() const;
  // Deep copy into an owned buffer.
  Tensor Clone() const;

 private:
  DType dtype_ = DType::kUndefined;
  std::vector<int64_t> shape_;
  std::shared_ptr<Buffer> buffer_;
  size_t offset_ = 0;
  size_t nbytes_ = 0;
};

}  // namespace slim
