// Weight-only quantized matrix products for the runtime:
//   Y[M, N] = X[M, K] * W^T
// X float32 row-major [M, K] (row stride K), Y float32 row-major [M, N]
// (overwritten), W [N, K] packed in one of the layouts of quant.h. Every
// layout runs on every host through its scalar reference; the AVX2 twin is
// picked once from HostCpuFeatures() (QGemmForHost / SelectQGemm).
//
// Compute paths (QComputePathName gives the string the runtime reports and
// the packed file records):
//  "f32-dequant-fma"  w' = s * (u - z) in float, multiplied with float X.
//      All layouts. Per output: for each group in order, the group's sum of
//      x * (u - z), then acc += s * group_sum. The refs sum each group in
//      element order (mul, then add); the AVX2 twins keep 8 lanes of partial
//      sums and use FMA, so twins agree with refs within
//      |y_avx2 - y_ref| <= 2 (K + 8) 2^-24 sum_k |x_k| |w'_k|
//      (for the 2:4 layout the sums run over the kept elements only)
//      (the classical bound for reordered float sums, tested). q8_row has one
//      group per row. q4*_row_f32_ref and q4x8_f32_ref are the same function
//      of (X, codes, scales, zeros): bit-identical.
//  "i8-dot"  x8 layouts (and q8_row, below). Each X row is quantized per
//      weight group: xs = max|x| / 127, xq = round-half-even(x / xs) in
//      [-127, 127] (QuantizeActivationsI8 and its bit-identical AVX2 twin,
//      so xq is the same in every kernel).
//      Per output and group: isum = sum u * xq (exact int32), corr = isum -
//      z * sum(xq) (exact), acc = fma((float)corr, s * xs, acc), groups in
//      order. Every step is an exact integer or the same rounded float op in
//      every twin, so i8-dot ref, AVX2 and AVX-512 are bit-identical (tested). Against
//      f32-dequant-fma it differs by X's rounding: at most
//      sum_k 0.5 * xs_group(k) * |w'_k| plus the float bound above.
//      q8_row too: X is quantized the same way in blocks of kQ8DotBlock
//      elements; per output and block, isum = sum c * xq (exact int32),
//      acc = fma((float)isum, xs, acc), blocks in order, then y = s * acc:
//      bit-identical twins as well.
// Kernels are single-threaded and deterministic: an output depends only on
// its X row and W row (not on M, N, the column range of the call or any
// thread count), so the runtime spreads a product over threads by giving
// each thread a column range (QGemmArgs::n_begin/n_end) of the same Y.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "libcompress/common/status.h"
#include "libcompress/kernels/quant.h"

namespace slim {

enum class QComputePath : uint8_t {
  kF32DequantFma,  // "f32-dequant-fma"
  kI8Dot,          // "i8-dot"
};
const char* QComputePathName(QComputePath path);
Expected<QComputePath> ParseQComputePath(std::string_view name);
// The path a layout is packed for: i8-dot for x8 layouts, f32-dequant-fma else.
QComputePath DefaultComputePath(const QuantLayout& layout);

// Shape and layout parameters of one call. group_size and symmetric are
// ignored by the q8_row kernels.
struct QGemmArgs {
  size_t m = 0;  // rows of X and Y
  size_t n = 0;  // rows of W (output features), columns of Y
  size_t k = 0;  // columns of X and W (input features)
  size_t group_size = 32;
  bool symmetric = true;
  // Columns of Y (rows of W) this call computes: [n_begin, min(n_end, n)).
  // Other columns of Y are not touched, so calls on disjoint ranges may run
  // concurrently on one Y. n_begin must be a multiple of kQGemmColumnAlign.
  size_t n_begin = 0;
  size_t n_end = SIZE_MAX;
};

// The x8 layouts' row block: a column range must start on a block.
inline constexpr size_t kQGemmColumnAlign = Q4X8Layout::kRowsPerBlock;

// Activation block of the q8_row i8-dot path: the 32 elements of one AVX2
// register and llama.cpp's Q8_0 block, small enough that an outlier channel
// coarsens only its own block's rounding.
inline constexpr size_t kQ8DotBlock = 32;

// x: [m, k]; w: the packed blob (ExpectedPackedBytes bytes, no alignment
// required); y: [m, n]. Arguments are not validated: QGemm is
// the checked entry point.
using QGemmFn = void (*)(const QGemmArgs& args, const float* x, const uint8_t* w, float* y);

void gemm_q8_row_f32_ref(const QGemmArgs& args, const float* x, const uint8_t* w, float* y);
void gemm_q8_row_i8_ref(const QGemmArgs& args, const float* x, const uint8_t* w, float* y);
void gemm_q4_row_f32_ref(const QGemmArgs& args, const float* x, const uint8_t* w, float* y);
void gemm_q4x8_f32_ref(const QGemmArgs& args, const float* x, const uint8_t* w, float* y);
void gemm_q4x8_i8_ref(const QGemmArgs& args, const float* x, const uint8_t* w, float* y);
// 2:4 sparse int4 (q4g{G}_sym_s24_row): per group, sum over quads in order of
// x[first] * (u0 - 8) + x[second] * (u1 - 8), then acc += s * group_sum; it
// reads the two kept codes per quad only (3/8 of a byte per weight).
void gemm_q4s24_row_f32_ref(const QGemmArgs& args, const float* x, const uint8_t* w, float* y);
// 2:4 sparse int4 in 8-row tiles (q4g{G}_sym_s24_x8), i8-dot: X quantized
// per group as for q4x8; per output and group corr = sum over the kept codes
// of (u - 8) * xq (exact int32), acc = fma((float)corr, s * xs, acc), groups
// in order. Twins are bit-identical; against q4s24_row_f32 on the same codes
// it differs by X's rounding, as q4x8_i8 does from q4x8_f32.
void gemm_q4s24x8_i8_ref(const QGemmArgs& args, const float* x, const uint8_t* w, float* y);
// int4 nl in x8 tiles (q4g{G}_nl_x8), i8-dot: as q4x8_i8 with corr = sum of
// kNl4Levels[u] * xq per group (exact int32, no zero-point term). Twins are
// bit-identical.
void gemm_q4nlx8_i8_ref(const QGemmArgs& args, const float* x, const uint8_t* w, float* y);
// 2:4 sparse int8 (q8_s24_row): sum over quads in order of x[first] * c0 +
// x[second] * c1, then y = s * sum: bit-identical to gemm_q8_row_f32_ref on
// the same codes (it adds the same products in the same order and skips
// exact zeros).
void gemm_q8s24_row_f32_ref(const QGemmArgs& args, const float* x, const uint8_t* w, float* y);
// Bitmask sparse int8 (q8_bm_row): sum over the kept elements in column
// order of x * c, then y = s * sum; bit-identical to gemm_q8_row_f32_ref.
// A row whose offsets or masks point past the stored codes reads zeros there
// (the reader rejects such blobs; the kernel still never reads outside its
// blob).
void gemm_q8bm_row_f32_ref(const QGemmArgs& args, const float* x, const uint8_t* w, float* y);

// Require AVX2, FMA and F16C (CpuFeatures::has_x86_avx2()).
void gemm_q8_row_f32_avx2(const QGemmArgs& args, const float* x, const uint8_t* w, float* y);
void gemm_q8_row_i8_avx2(const QGemmArgs& args, const float* x, const uint8_t* w, float* y);
void gemm_q4_row_f32_avx2(const QGemmArgs& args, const float* x, const uint8_t* w, float* y);
void gemm_q4x8_f32_avx2(const QGemmArgs& args, const float* x, const uint8_t* w, float* y);
void gemm_q4x8_i8_avx2(const QGemmArgs& args, const float* x, const uint8_t* w, float* y);
void gemm_q4s24_row_f32_avx2(const QGemmArgs& args, const float* x, const uint8_t* w, float* y);
void gemm_q4s24x8_i8_avx2(const QGemmArgs& args, const float* x, const uint8_t* w, float* y);
void gemm_q4nlx8_i8_avx2(const QGemmArgs& args, const float* x, const uint8_t* w, float* y);
void gemm_q8s24_row_f32_avx2(const QGemmArgs& args, const float* x, const uint8_t* w, float* y);
void gemm_q8bm_row_f32_avx2(const QGemmArgs& args, const float* x, const uint8_t* w, float* y);

// Require AVX-512 F/BW/VL, VNNI and VBMI as well (CpuFeatures::has_x86_avx512_vnni()):
// 512-bit twins of the int8 f32 kernel and of the int4 i8-dot kernels
// (vpdpbusd, bit-identical to the refs).
void gemm_q8_row_f32_avx512(const QGemmArgs& args, const float* x, const uint8_t* w, float* y);
void gemm_q4x8_i8_avx512(const QGemmArgs& args, const float* x, const uint8_t* w, float* y);
void gemm_q4s24x8_i8_avx512(const QGemmArgs& args, const float* x, const uint8_t* w, float* y);
void gemm_q4nlx8_i8_avx512(const QGemmArgs& args, const float* x, const uint8_t* w, float* y);

struct QGemmKernels {
  const char* isa;  // "ref", "avx2" or "avx512"
  QGemmFn q8_row_f32;
  QGemmFn q8_row_i8;
  QGemmFn q4_row_f32;
  QGemmFn q4x8_f32;
  QGemmFn q4x8_i8;
  QGemmFn q4s24_row_f32;
  QGemmFn q4s24x8_i8;
  QGemmFn q4nlx8_i8;
  QGemmFn q8s24_row_f32;
  QGemmFn q8bm_row_f32;
};

inline constexpr QGemmKernels kQGemmKernelsRef = {
    "ref",                  gemm_q8_row_f32_ref,    gemm_q8_row_i8_ref,     gemm_q4_row_f32_ref,
    gemm_q4x8_f32_ref,      gemm_q4x8_i8_ref,       gemm_q4s24_row_f32_ref, gemm_q4s24x8_i8_ref,
    gemm_q4nlx8_i8_ref,     gemm_q8s24_row_f32_ref, gemm_q8bm_row_f32_ref};
inline constexpr QGemmKernels kQGemmKernelsAvx2 = {
    "avx2",                  gemm_q8_row_f32_avx2,    gemm_q8_row_i8_avx2,     gemm_q4_row_f32_avx2,
    gemm_q4x8_f32_avx2,      gemm_q4x8_i8_avx2,       gemm_q4s24_row_f32_avx2, gemm_q4s24x8_i8_avx2,
    gemm_q4nlx8_i8_avx2,     gemm_q8s24_row_f32_avx2, gemm_q8bm_row_f32_avx2};

// 512-bit kernels exist for the default packings' paths (int4 x8 i8-dot,
// dense and 2:4; int8 f32); the other entries reuse their AVX2 twins.
inline constexpr QGemmKernels kQGemmKernelsAvx512 = {
    "avx512",                gemm_q8_row_f32_avx512,  gemm_q8_row_i8_avx2,     gemm_q4_row_f32_avx2,
    gemm_q4x8_f32_avx2,      gemm_q4x8_i8_avx512,     gemm_q4s24_row_f32_avx2, gemm_q4s24x8_i8_avx512,
    gemm_q4nlx8_i8_avx512,   gemm_q8s24_row_f32_avx2, gemm_q8bm_row_f32_avx2};

// Every table of this build, lowest first, and whether this host (as capped
// by SLIMPACK_ISA, cpu_features.h) runs it; tests check every table that runs.
inline constexpr const QGemmKernels* kQGemmTables[] = {&kQGemmKernelsRef, &kQGemmKernelsAvx2,
                                                       &kQGemmKernelsAvx512};
bool QGemmTableRuns(const QGemmKernels& table);

// The highest table this host runs, chosen once.
const QGemmKernels& QGemmForHost();

// A kernel bound to a layout and compute path, for the runtime to call and
// report ("q4x8_i8_avx2", path "i8-dot").
struct QGemmPlan {
  QGemmFn fn = nullptr;
  QComputePath path = QComputePath::kF32DequantFma;
  std::string kernel_name;  // e.g. "q4x8_i8_avx2"
};

// Unsupported when the layout has no kernel for the path (i8-dot on a row
// layout, f32-dequant-fma on q4g*_sym_s24_x8).
Expected<QGemmPlan> SelectQGemm(const QuantLayout& layout, QComputePath path,
                                const QGemmKernels& table = QGemmForHost());

// The checks of QGemm (layout, sizes, w_bytes == ExpectedPackedBytes) and
// its kernel choice, for callers that run plan.fn themselves on column
// ranges (the runtime's threads).
Expected<QGemmPlan> PlanQGemm(const QuantLayout& layout, QComputePath path, size_t k, const uint8_t* w,
                              size_t w_bytes, size_t n);

// Checked entry point: validates the layout, the sizes and w_bytes ==
// ExpectedPackedBytes (quant.h), then runs the host's kernel for the path on
// all columns.
Status QGemm(const QuantLayout& layout, QComputePath path, const float* x, size_t m, size_t k,
             const uint8_t* w, size_t w_bytes, size_t n, float* y);

// i8-dot activation quantization of one X row (the refs run it):
// for each group of group_size elements (the last one partial), xs[g] =
// max|x| / 127 (0 for an all-zero group), xq[e] = round-half-even(x[e] *
// (127 / max|x|)) and xsum[g] = sum of the group's xq. xq has
// ceil(k / group_size) * group_size entries; those past k are 0.
void QuantizeActivationsI8(const float* x, size_t k, size_t group_size, int8_t* xq, float* xs,
                           int32_t* xsum);

// Its AVX2 twin (which the AVX2 and AVX-512 i8-dot kernels run), bit-identical:
// max and the integer steps are exact in any order, x * (127 / max|x|) is
// the same single multiply, and rounding is one round-half-even instruction
// (no add a compiler could fuse with the multiply).
void QuantizeActivationsI8Avx2(const float* x, size_t k, size_t group_size, int8_t* xq, float* xs,
                               int32_t* xsum);

}  // namespace slim
