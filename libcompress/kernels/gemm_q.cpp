// Scalar reference twins of the quantized GEMM kernels, the i8-dot
// activation quantizer both twins share, and the start-up dispatch. The refs
// define the numbers (see gemm_q.h for the order of every sum).
#include "libcompress/kernels/gemm_q.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "libcompress/common/half.h"
#include "libcompress/kernels/cpu_features.h"

namespace slim {
namespace {

inline uint16_t U16At(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }

// Unsigned code u of element e in a q4 row of `row` bytes.
inline int RowNibble(const uint8_t* row, size_t e) {
  const uint8_t b = row[e / 2];
  return (e & 1) ? b >> 4 : b & 0xf;
}

// Unsigned code u of (row r in block, element e in tile) of a q4x8 tile.
inline int TileNibble(const uint8_t* tile, size_t r, size_t e) {
  const uint8_t b = tile[32 * (e / 8) + 4 * r + (e % 8) % 4];
  return (e % 8) < 4 ? b & 0xf : b >> 4;
}

inline int TileZero(const uint8_t* tile, size_t g, bool symmetric, size_t r) {
  if (symmetric) return 8;
  const uint8_t b = tile[Q4X8Layout::CodeBytesPerTile(g) + 16 + r / 2];
  return (r & 1) ? b >> 4 : b & 0xf;
}

inline float TileScale(const uint8_t* tile, size_t g, size_t r) {
  return HalfToFloat(U16At(tile + Q4X8Layout::CodeBytesPerTile(g) + 2 * r));
}

// Round to nearest, ties to even, for |x| < 2^22 (see quant.cpp).
inline float RoundNearest(float x) {
  constexpr float kMagic = 12582912.0f;
  return (x + kMagic) - kMagic;
}

}  // namespace

const char* QComputePathName(QComputePath path) {
  return path == QComputePath::kI8Dot ? "i8-dot" : "f32-dequant-fma";
}

Expected<QComputePath> ParseQComputePath(std::string_view name) {
  if (name == "f32-dequant-fma") return QComputePath::kF32DequantFma;
  if (name == "i8-dot") return QComputePath::kI8Dot;
  return InvalidInput("unknown compute path '", std::string(name),
                      "' (known: f32-dequant-fma, i8-dot)");
}

QComputePath DefaultComputePath(const QuantLayout& layout) {
  return layout.kind == QuantLayoutKind::kQ4X8 || layout.kind == QuantLayoutKind::kQ4S24X8 ||
                 layout.kind == QuantLayoutKind::kQ4NlX8
             ? QComputePath::kI8Dot
             : QComputePath::kF32DequantFma;
}

void QuantizeActivationsI8(const float* x, size_t k, size_t group_size, int8_t* xq, float* xs,
                           int32_t* xsum) {
  const size_t groups = CeilDiv(k, group_size);
  for (size_t gi = 0; gi < groups; ++gi) {
    const size_t k0 = gi * group_size;
    const size_t k1 = std::min(k, k0 + group_size);
    float amax = 0.0f;
    for (size_t e = k0; e < k1; ++e) amax = std::max(amax, std::fabs(x[e]));
    const float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
    int32_t sum = 0;
    for (size_t e = k0; e < k0 + group_size; ++e) {
      int q = 0;
      if (e < k1) {
        q = static_cast<int>(RoundNearest(x[e] * inv));
        q = std::min(std::max(q, -127), 127);
      }
      xq[e] = static_cast<int8_t>(q);
      sum += q;
    }
    xs[gi] = amax / 127.0f;
    xsum[gi] = sum;
  }
}

void gemm_q8_row_f32_ref(const QGemmArgs& a, const float* x, const uint8_t* w, float* y) {
  const size_t so = Q8RowLayout::ScalesOffset(a.n, a.k);
  for (size_t r = a.n_begin; r < std::min(a.n, a.n_end); ++r) {
    const int8_t* codes = reinterpret_cast<const int8_t*>(w + r * a.k);
    float scale;
    std::memcpy(&scale, w + so + 4 * r, 4);
    for (size_t i = 0; i < a.m; ++i) {
      const float* xi = x + i * a.k;
      float sum = 0.0f;
      for (size_t e = 0; e < a.k; ++e) sum += xi[e] * static_cast<float>(codes[e]);
      y[i * a.n + r] = scale * sum;
    }
  }
}

void gemm_q8_row_i8_ref(const QGemmArgs& a, const float* x, const uint8_t* w, float* y) {
  const size_t blocks = CeilDiv(a.k, kQ8DotBlock);
  const size_t kp = blocks * kQ8DotBlock;
  const size_t so = Q8RowLayout::ScalesOffset(a.n, a.k);
  std::vector<int8_t> xq(a.m * kp);
  std::vector<float> xs(a.m * blocks);
  std::vector<int32_t> xsum(a.m * blocks);
  for (size_t i = 0; i < a.m; ++i) {
    QuantizeActivationsI8(x + i * a.k, a.k, kQ8DotBlock, &xq[i * kp], &xs[i * blocks], &xsum[i * blocks]);
  }
  for (size_t r = a.n_begin; r < std::min(a.n, a.n_end); ++r) {
    const int8_t* codes = reinterpret_cast<const int8_t*>(w + r * a.k);
    float scale;
    std::memcpy(&scale, w + so + 4 * r, 4);
    for (size_t i = 0; i < a.m; ++i) {
      float acc = 0.0f;
      for (size_t bi = 0; bi < blocks; ++bi) {
        int32_t isum = 0;
        for (size_t e = bi * kQ8DotBlock; e < std::min(a.k, (bi + 1) * kQ8DotBlock); ++e) {
          isum += int32_t{codes[e]} * int32_t{xq[i * kp + e]};
        }
        acc = std::fma(static_cast<float>(isum), xs[i * blocks + bi], acc);
      }
      y[i * a.n + r] = scale * acc;
    }
  }
}

void gemm_q4_row_f32_ref(const QGemmArgs& a, const float* x, const uint8_t* w, float* y) {
  const size_t g = a.group_size;
  const size_t groups = Q4RowLayout::Groups(a.k, g);
  const size_t row_bytes = Q4RowLayout::RowBytes(a.k, g);
  const uint8_t* scales = w + Q4RowLayout::ScalesOffset(a.n, a.k, g);
  const uint8_t* zeros = w + Q4RowLayout::ZerosOffset(a.n, a.k, g);
  for (size_t r = a.n_begin; r < std::min(a.n, a.n_end); ++r) {
    const uint8_t* row = w + r * row_bytes;
    for (size_t i = 0; i < a.m; ++i) {
      const float* xi = x + i * a.k;
      float acc = 0.0f;
      for (size_t gi = 0; gi < groups; ++gi) {
        const int z = a.symmetric ? 8 : zeros[r * groups + gi];
        const float s = HalfToFloat(U16At(scales + 2 * (r * groups + gi)));
        float sum = 0.0f;
        for (size_t e = gi * g; e < std::min(a.k, (gi + 1) * g); ++e) {
          sum += xi[e] * static_cast<float>(RowNibble(row, e) - z);
        }
        acc += s * sum;
      }
      y[i * a.n + r] = acc;
    }
  }
}

void gemm_q4x8_f32_ref(const QGemmArgs& a, const float* x, const uint8_t* w, float* y) {
  const size_t g = a.group_size;
  const size_t groups = Q4X8Layout::Groups(a.k, g);
  const size_t tile_bytes = Q4X8Layout::TileBytes(g, a.symmetric);
  for (size_t r = a.n_begin; r < std::min(a.n, a.n_end); ++r) {
    const size_t b = r / 8, rb = r % 8;
    for (size_t i = 0; i < a.m; ++i) {
      const float* xi = x + i * a.k;
      float acc = 0.0f;
      for (size_t gi = 0; gi < groups; ++gi) {
        const uint8_t* tile = w + (b * groups + gi) * tile_bytes;
        const int z = TileZero(tile, g, a.symmetric, rb);
        float sum = 0.0f;
        for (size_t e = gi * g; e < std::min(a.k, (gi + 1) * g); ++e) {
          sum += xi[e] * static_cast<float>(TileNibble(tile, rb, e - gi * g) - z);
        }
        acc += TileScale(tile, g, rb) * sum;
      }
      y[i * a.n + r] = acc;
    }
  }
}

namespace {

// The activations of an 8-row-tile i8-dot ref, quantized per weight group
// (xq [m, kp], xs and xsum [m, groups]), as the SIMD twins' RunI8Tiles does.
struct RefQuantizedX {
  std::vector<int8_t> xq;
  std::vector<float> xs;
  std::vector<int32_t> xsum;
  RefQuantizedX(const QGemmArgs& a, const float* x) {
    const size_t g = a.group_size, groups = CeilDiv(a.k, g), kp = groups * g;
    xq.resize(a.m * kp);
    xs.resize(a.m * groups);
    xsum.resize(a.m * groups);
    for (size_t i = 0; i < a.m; ++i) {
      QuantizeActivationsI8(x + i * a.k, a.k, g, &xq[i * kp], &xs[i * groups], &xsum[i * groups]);
    }
  }
};

// q4x8 tiles on the i8-dot path: corr = sum(l * xq) per group, where l is
// u - z for the uniform layouts and kNl4Levels[u] for nl (kNl).
template <bool kNl>
void Q4x8I8Ref(const QGemmArgs& a, const float* x, const uint8_t* w, float* y) {
  const size_t g = a.group_size;
  const size_t groups = Q4X8Layout::Groups(a.k, g);
  const size_t kp = groups * g;
  const size_t tile_bytes = Q4X8Layout::TileBytes(g, a.symmetric);
  const RefQuantizedX q(a, x);
  const std::vector<int8_t>& xq = q.xq;
  const std::vector<float>& xs = q.xs;
  const std::vector<int32_t>& xsum = q.xsum;
  for (size_t r = a.n_begin; r < std::min(a.n, a.n_end); ++r) {
    const size_t b = r / 8, rb = r % 8;
    for (size_t i = 0; i < a.m; ++i) {
      float acc = 0.0f;
      for (size_t gi = 0; gi < groups; ++gi) {
        const uint8_t* tile = w + (b * groups + gi) * tile_bytes;
        const int8_t* xg = &xq[i * kp + gi * g];
        int32_t isum = 0;
        for (size_t e = 0; e < g; ++e) {
          const int u = TileNibble(tile, rb, e);
          isum += (kNl ? kNl4Levels[u] : u) * int32_t{xg[e]};
        }
        const int32_t corr = kNl ? isum : isum - TileZero(tile, g, a.symmetric, rb) * xsum[i * groups + gi];
        const float sx = TileScale(tile, g, rb) * xs[i * groups + gi];
        acc = std::fma(static_cast<float>(corr), sx, acc);
      }
      y[i * a.n + r] = acc;
    }
  }
}

}  // namespace

void gemm_q4x8_i8_ref(const QGemmArgs& a, const float* x, const uint8_t* w, float* y) { Q4x8I8Ref<false>(a, x, w, y); }

void gemm_q4nlx8_i8_ref(const QGemmArgs& a, const float* x, const uint8_t* w, float* y) { Q4x8I8Ref<true>(a, x, w, y); }

void gemm_q4s24_row_f32_ref(const QGemmArgs& a, const float* x, const uint8_t* w, float* y) {
  const size_t g = a.group_size;
  const size_t groups = Q4S24RowLayout::Groups(a.k, g);
  const size_t quads = Q4S24RowLayout::Quads(a.k, g);
  const uint8_t* index = w + Q4S24RowLayout::IndexOffset(a.n, a.k, g);
  const uint8_t* scales = w + Q4S24RowLayout::ScalesOffset(a.n, a.k, g);
  for (size_t r = a.n_begin; r < std::min(a.n, a.n_end); ++r) {
    const uint8_t* vals = w + r * quads;
    const uint8_t* idx = index + r * quads / 2;
    for (size_t i = 0; i < a.m; ++i) {
      const float* xi = x + i * a.k;
      float acc = 0.0f;
      for (size_t gi = 0; gi < groups; ++gi) {
        const float s = HalfToFloat(U16At(scales + 2 * (r * groups + gi)));
        float sum = 0.0f;
        for (size_t j = gi * g / 4; j < (gi + 1) * g / 4; ++j) {
          const int bits = (idx[j / 2] >> (4 * (j & 1))) & 0xf;
          const size_t e0 = 4 * j + static_cast<size_t>(bits & 3), e1 = 4 * j + static_cast<size_t>(bits >> 2);
          // Padding elements (e >= K) hold code 0: they add nothing.
          if (e0 < a.k) sum += xi[e0] * static_cast<float>((vals[j] & 0xf) - 8);
          if (e1 < a.k) sum += xi[e1] * static_cast<float>((vals[j] >> 4) - 8);
        }
        acc += s * sum;
      }
      y[i * a.n + r] = acc;
    }
  }
}

void gemm_q4s24x8_i8_ref(const QGemmArgs& a, const float* x, const uint8_t* w, float* y) {
  const size_t g = a.group_size;
  const size_t groups = Q4S24X8Layout::Groups(a.k, g);
  const size_t kp = groups * g;
  const size_t tile_bytes = Q4S24X8Layout::TileBytes(g);
  const RefQuantizedX q(a, x);
  const std::vector<int8_t>& xq = q.xq;
  const std::vector<float>& xs = q.xs;
  for (size_t r = a.n_begin; r < std::min(a.n, a.n_end); ++r) {
    const size_t b = r / 8, rb = r % 8;
    for (size_t i = 0; i < a.m; ++i) {
      float acc = 0.0f;
      for (size_t gi = 0; gi < groups; ++gi) {
        const uint8_t* tile = w + (b * groups + gi) * tile_bytes;
        const int8_t* xg = &xq[i * kp + gi * g];
        int32_t corr = 0;
        for (size_t c = 0; c < g / Q4S24X8Layout::kChunkElements; ++c) {
          const uint8_t* chunk = tile + c * Q4S24X8Layout::kChunkBytes;
          for (size_t qc = 0; qc < 8; ++qc) {
            for (size_t slot = 0; slot < 2; ++slot) {
              const Q4S24X8Layout::Slot sl = Q4S24X8Layout::SlotOf(rb, qc, slot);
              const int u = sl.high ? chunk[sl.code_byte] >> 4 : chunk[sl.code_byte] & 0xf;
              const size_t e = Q4S24X8Layout::kChunkElements * c + 4 * qc + ((chunk[sl.pos_byte] >> sl.pos_shift) & 3);
              corr += (u - 8) * int32_t{xg[e]};
            }
          }
        }
        const float s = HalfToFloat(U16At(tile + Q4S24X8Layout::ScalesOffsetInTile(g) + 2 * rb));
        acc = std::fma(static_cast<float>(corr), s * xs[i * groups + gi], acc);
      }
      y[i * a.n + r] = acc;
    }
  }
}

void gemm_q8s24_row_f32_ref(const QGemmArgs& a, const float* x, const uint8_t* w, float* y) {
  const size_t quads = Q8S24RowLayout::Quads(a.k);
  const uint8_t* index = w + Q8S24RowLayout::IndexOffset(a.n, a.k);
  const size_t so = Q8S24RowLayout::ScalesOffset(a.n, a.k);
  for (size_t r = a.n_begin; r < std::min(a.n, a.n_end); ++r) {
    const auto* vals = reinterpret_cast<const int8_t*>(w + 2 * r * quads);
    const uint8_t* idx = index + r * quads / 2;
    float scale;
    std::memcpy(&scale, w + so + 4 * r, 4);
    for (size_t i = 0; i < a.m; ++i) {
      const float* xi = x + i * a.k;
      float sum = 0.0f;
      for (size_t j = 0; j < quads; ++j) {
        const int bits = (idx[j / 2] >> (4 * (j & 1))) & 0xf;
        const size_t e0 = 4 * j + static_cast<size_t>(bits & 3), e1 = 4 * j + static_cast<size_t>(bits >> 2);
        if (e0 < a.k) sum += xi[e0] * static_cast<float>(vals[2 * j]);
        if (e1 < a.k) sum += xi[e1] * static_cast<float>(vals[2 * j + 1]);
      }
      y[i * a.n + r] = scale * sum;
    }
  }
}

void gemm_q8bm_row_f32_ref(const QGemmArgs& a, const float* x, const uint8_t* w, float* y) {
  const size_t words = Q8BitmaskRowLayout::MaskWords(a.k);
  const size_t oo = Q8BitmaskRowLayout::OffsetsOffset(a.n, a.k);
  const auto* vals = reinterpret_cast<const int8_t*>(w + Q8BitmaskRowLayout::ValuesOffset(a.n, a.k));
  uint32_t nnz;
  std::memcpy(&nnz, w + oo + 4 * a.n, 4);
  const size_t so = Q8BitmaskRowLayout::ScalesOffset(a.n, a.k, nnz);
  for (size_t r = a.n_begin; r < std::min(a.n, a.n_end); ++r) {
    const uint8_t* mask = w + 8 * r * words;
    uint32_t start;
    std::memcpy(&start, w + oo + 4 * r, 4);
    float scale;
    std::memcpy(&scale, w + so + 4 * r, 4);
    for (size_t i = 0; i < a.m; ++i) {
      const float* xi = x + i * a.k;
      float sum = 0.0f;
      size_t off = start;
      for (size_t e = 0; e < a.k; ++e) {
        if (((mask[e / 8] >> (e % 8)) & 1) == 0) continue;
        const float c = off < nnz ? static_cast<float>(vals[off]) : 0.0f;
        ++off;
        sum += xi[e] * c;
      }
      y[i * a.n + r] = scale * sum;
    }
  }
}

bool QGemmTableRuns(const QGemmKernels& table) {
  const CpuFeatures& cpu = HostCpuFeatures();
  if (&table == &kQGemmKernelsAvx512) return cpu.has_x86_avx512_vnni();
  if (&table == &kQGemmKernelsAvx2) return cpu.has_x86_avx2();
  return true;
}

const QGemmKernels& QGemmForHost() {
  static const QGemmKernels* table = [] {
    const QGemmKernels* best = &kQGemmKernelsRef;
    for (const QGemmKernels* t : kQGemmTables) {
      if (QGemmTableRuns(*t)) best = t;
    }
    return best;
  }();
  return *table;
}

Expected<QGemmPlan> SelectQGemm(const QuantLayout& layout, QComputePath path,
                                const QGemmKernels& table) {
  QGemmPlan plan;
  plan.path = path;
  const char* base = nullptr;
  if (path == QComputePath::kI8Dot) {
    if (layout.kind == QuantLayoutKind::kQ4X8) {
      plan.fn = table.q4x8_i8;
      base = "q4x8_i8";
    } else if (layout.kind == QuantLayoutKind::kQ4S24X8) {
      plan.fn = table.q4s24x8_i8;
      base = "q4s24x8_i8";
    } else if (layout.kind == QuantLayoutKind::kQ4NlX8) {
      plan.fn = table.q4nlx8_i8;
      base = "q4nlx8_i8";
    } else if (layout.kind == QuantLayoutKind::kQ8Row) {
      plan.fn = table.q8_row_i8;
      base = "q8_row_i8";
    } else {
      return Unsupported("layout ", layout.Name(),
                         " has no i8-dot kernel (only q8_row and the q4*_x8 layouts do)");
    }
  } else {
    if (layout.kind == QuantLayoutKind::kQ4S24X8) {
      return Unsupported("layout ", layout.Name(),
                         " has only the i8-dot path (its float twin is q4g*_sym_s24_row: select_layout int4_layout=row)");
    }
    if (layout.kind == QuantLayoutKind::kQ4NlX8) {
      return Unsupported("layout ", layout.Name(), " has only the i8-dot path (int4 nl has no float kernel)");
    }
    switch (layout.kind) {
      case QuantLayoutKind::kQ8Row:
        plan.fn = table.q8_row_f32;
        base = "q8_row_f32";
        break;
      case QuantLayoutKind::kQ4Row:
        plan.fn = table.q4_row_f32;
        base = "q4_row_f32";
        break;
      case QuantLayoutKind::kQ4X8:
        plan.fn = table.q4x8_f32;
        base = "q4x8_f32";
        break;
      case QuantLayoutKind::kQ4S24Row:
        plan.fn = table.q4s24_row_f32;
        base = "q4s24_row_f32";
        break;
      case QuantLayoutKind::kQ8S24Row:
        plan.fn = table.q8s24_row_f32;
        base = "q8s24_row_f32";
        break;
      case QuantLayoutKind::kQ8BmRow:
        plan.fn = table.q8bm_row_f32;
        base = "q8bm_row_f32";
        break;
      case QuantLayoutKind::kQ4S24X8:
      case QuantLayoutKind::kQ4NlX8:
        break;  // refused above
    }
  }
  plan.kernel_name = StrCat(base, "_", table.isa);
  return plan;
}

Expected<QGemmPlan> PlanQGemm(const QuantLayout& layout, QComputePath path, size_t k, const uint8_t* w,
                              size_t w_bytes, size_t n) {
  SLIM_RETURN_IF_ERROR(ValidateQuantScheme(layout.Scheme()));
  SLIM_CHECK_INPUT(n > 0 && k > 0, "quantized matmul: weight shape [", n, ", ", k,
                   "] must be non-empty");
  auto expected_or = ExpectedPackedBytes(layout, n, k, w, w_bytes);
  if (!expected_or.ok()) return expected_or.status().WithContext("quantized matmul");
  const size_t expected = *expected_or;
  SLIM_CHECK_INPUT(w_bytes == expected, "quantized matmul: layout ", layout.Name(), " for [", n,
                   ", ", k, "] needs ", expected, " bytes, got ", w_bytes);
  return SelectQGemm(layout, path);
}

Status QGemm(const QuantLayout& layout, QComputePath path, const float* x, size_t m, size_t k,
             const uint8_t* w, size_t w_bytes, size_t n, float* y) {
  SLIM_ASSIGN_OR_RETURN(QGemmPlan plan, PlanQGemm(layout, path, k, w, w_bytes, n));
  if (m == 0) return Status::Ok();
  QGemmArgs args;
  args.m = m;
  args.n = n;
  args.k = k;
  args.group_size = layout.group_size;
  args.symmetric = layout.symmetric;
  plan.fn(args, x, w, y);
  return Status::Ok();
}

}  // namespace slim
