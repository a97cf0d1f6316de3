// Packing of codes into the layouts specified in quant.h / docs/LAYOUTS.md,
// their validating reader, and dequantization.
#include "libcompress/kernels/quant.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "libcompress/common/half.h"

namespace slim {
namespace {
// The zero point of group (row, g): 0 for symmetric schemes.
inline int ZeroOf(const QuantizedMatrix& q, size_t idx) {
  return q.zeros.empty() ? 0 : q.zeros[idx];
}

// Unsigned 4-bit code stored for q: u = q + 8 (symmetric) or q (asym).
inline uint8_t Nibble(int q, bool symmetric) { return static_cast<uint8_t>(symmetric ? q + 8 : q); }
inline int CodeFromNibble(uint8_t u, bool symmetric) { return symmetric ? int{u} - 8 : int{u}; }

void PutU16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v & 0xff);
  p[1] = static_cast<uint8_t>(v >> 8);
}
uint16_t GetU16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }

Status CheckScale(float s, const std::string& layout, size_t offset) {
  if (!std::isfinite(s) || s < 0.0f) {
    return InvalidInput("layout ", layout, ": scale at byte offset ", offset, " is ", s,
                        " (scales must be finite and >= 0)");
  }
  return Status::Ok();
}

// The canonical kept positions of a quad of a 2:4 layout (Q4S24RowLayout):
// its nonzero codes, filled up to two with the lowest free positions.
// Returns false when the quad has more than two nonzero codes.
bool QuadPositions(const int8_t* codes4, int* p0, int* p1) {
  int pos[4], count = 0;
  for (int i = 0; i < 4; ++i) {
    if (codes4[i] != 0) {
      if (count == 2) return false;
      pos[count++] = i;
    }
  }
  for (int i = 0; i < 4 && count < 2; ++i) {
    if (count == 1 && pos[0] == i) continue;
    pos[count++] = i;
  }
  *p0 = std::min(pos[0], pos[1]);
  *p1 = std::max(pos[0], pos[1]);
  return true;
}

// Codes of quad j of row r (elements past k are 0).
void QuadCodes(const QuantizedMatrix& q, size_t r, size_t j, int8_t* out4) {
  for (size_t i = 0; i < 4; ++i) {
    const size_t e = 4 * j + i;
    out4[i] = e < q.cols ? q.codes[r * q.cols + e] : 0;
  }
}

}  // namespace

QuantizedMatrix EmptyQuantizedMatrix(const QuantScheme& scheme, size_t rows, size_t cols) {
  QuantizedMatrix q;
  q.scheme = scheme;
  q.rows = rows;
  q.cols = cols;
  q.group_size = scheme.bits == 8 ? cols : scheme.group_size;
  q.groups_per_row = CeilDiv(cols, q.group_size);
  q.codes.assign(rows * cols, 0);
  q.scales.assign(rows * q.groups_per_row, 0.0f);
  if (scheme.bits == 4 && !scheme.symmetric) q.zeros.assign(rows * q.groups_per_row, 0);
  return q;
}

QuantCodeRange CodeRangeOf(const QuantScheme& s) {
  if (s.bits == 8) return {-127, 127, false};
  return s.symmetric ? QuantCodeRange{-8, 7, true} : QuantCodeRange{0, 15, true};
}

Status ValidateQuantScheme(const QuantScheme& s) {
  if (s.bits == 8) {
    SLIM_CHECK_INPUT(s.symmetric, "int8 quantization is symmetric per row; asymmetric was requested");
    return Status::Ok();
  }
  SLIM_CHECK_INPUT(s.bits == 4, "quantization bits must be 4 or 8, got ", s.bits);
  SLIM_CHECK_INPUT(s.group_size == 32 || s.group_size == 64 || s.group_size == 128,
                   "int4 group_size must be 32, 64 or 128, got ", s.group_size);
  return Status::Ok();
}

void DequantizeMatrix(const QuantizedMatrix& q, float* out) {
  for (size_t r = 0; r < q.rows; ++r) {
    for (size_t k = 0; k < q.cols; ++k) {
      const size_t idx = r * q.groups_per_row + k / q.group_size;
      out[r * q.cols + k] =
          q.scales[idx] * static_cast<float>(q.codes[r * q.cols + k] - ZeroOf(q, idx));
    }
  }
}

// ---------------------------------------------------------------------------
// Layout names and sizes.

std::string QuantLayout::Name() const {
  if (kind == QuantLayoutKind::kQ8Row) return "q8_row";
  if (kind == QuantLayoutKind::kQ4S24Row) return StrCat("q4g", group_size, "_sym_s24_row");
  return StrCat("q4g", group_size, symmetric ? "_sym" : "_asym",
                kind == QuantLayoutKind::kQ4Row ? "_row" : "_x8");
}

size_t QuantLayout::PackedBytes(size_t rows, size_t cols) const {
  switch (kind) {
    case QuantLayoutKind::kQ8Row:
      return Q8RowLayout::Bytes(rows, cols);
    case QuantLayoutKind::kQ4Row:
      return Q4RowLayout::Bytes(rows, cols, group_size, symmetric);
    case QuantLayoutKind::kQ4X8:
      return Q4X8Layout::Bytes(rows, cols, group_size, symmetric);
    case QuantLayoutKind::kQ4S24Row:
      return Q4S24RowLayout::Bytes(rows, cols, group_size);
  }
  return 0;
}

QuantScheme QuantLayout::Scheme() const {
  if (kind == QuantLayoutKind::kQ8Row) return QuantScheme{8, 0, true};
  return QuantScheme{4, group_size, symmetric};
}

Expected<QuantLayout> ParseQuantLayout(std::string_view name) {
  for (const auto& list : {AllQuantLayouts(), AllSparseQuantLayouts()}) {
    for (const QuantLayout& l : list) {
      if (l.Name() == name) return l;
    }
  }
  return InvalidInput("unknown quantized layout '", std::string(name),
                      "' (known: q8_row, q4g{32,64,128}_{sym,asym}_{row,x8}, q4g{32,64,128}_sym_s24_row)");
}

std::vector<QuantLayout> AllSparseQuantLayouts() {
  std::vector<QuantLayout> out;
  for (size_t g : {32, 64, 128}) out.push_back({QuantLayoutKind::kQ4S24Row, g, true});
  return out;
}

std::vector<QuantLayout> AllQuantLayouts() {
  std::vector<QuantLayout> out = {{QuantLayoutKind::kQ8Row, 0, true}};
  for (QuantLayoutKind kind : {QuantLayoutKind::kQ4Row, QuantLayoutKind::kQ4X8}) {
    for (size_t g : {32, 64, 128}) {
      for (bool sym : {true, false}) out.push_back({kind, g, sym});
    }
  }
  return out;
}

double PackedBitsPerWeight(const QuantLayout& layout, size_t rows, size_t cols) {
  return 8.0 * static_cast<double>(layout.PackedBytes(rows, cols)) /
         static_cast<double>(rows * cols);
}

// ---------------------------------------------------------------------------
// Packing.

Expected<std::vector<uint8_t>> PackQuantized(const QuantizedMatrix& q, const QuantLayout& layout) {
  const QuantScheme ls = layout.Scheme();
  SLIM_CHECK_INPUT(q.scheme.bits == ls.bits && (ls.bits == 8 || (q.scheme.group_size == ls.group_size &&
                                                                 q.scheme.symmetric == ls.symmetric)),
                   "layout ", layout.Name(), " cannot store codes of scheme int", q.scheme.bits,
                   " group ", q.scheme.group_size, q.scheme.symmetric ? " symmetric" : " asymmetric");
  const size_t n = q.rows, k = q.cols;
  SLIM_CHECK_INPUT(q.codes.size() == n * k && q.scales.size() == n * q.groups_per_row &&
                       q.zeros.size() == (ls.bits == 4 && !ls.symmetric ? n * q.groups_per_row : 0),
                   "quantized matrix [", n, ", ", k, "] has inconsistent array sizes");
  const QuantCodeRange cr = CodeRangeOf(ls);
  for (size_t i = 0; i < q.codes.size(); ++i) {
    SLIM_CHECK_INPUT(q.codes[i] >= cr.lo && q.codes[i] <= cr.hi, "code at row ", i / k,
                     ", column ", i % k, " is ", int{q.codes[i]}, ", outside [", cr.lo, ", ",
                     cr.hi, "]");
  }
  for (size_t i = 0; i < q.scales.size(); ++i) {
    const float s = q.scales[i];
    SLIM_CHECK_INPUT(std::isfinite(s) && s >= 0.0f && (!cr.fp16_scale || HalfToFloat(FloatToHalf(s)) == s),
                     "scale ", i, " is ", s, " (must be finite, >= 0 and, for int4, an FP16 value)");
  }
  for (size_t i = 0; i < q.zeros.size(); ++i) {
    SLIM_CHECK_INPUT(q.zeros[i] <= 15, "zero point ", i, " is ", int{q.zeros[i]}, ", above 15");
  }

  std::vector<uint8_t> out(layout.PackedBytes(n, k), 0);
  const size_t groups = q.groups_per_row;
  if (layout.kind == QuantLayoutKind::kQ8Row) {
    std::memcpy(out.data(), q.codes.data(), n * k);
    const size_t so = Q8RowLayout::ScalesOffset(n, k);
    for (size_t r = 0; r < n; ++r) {
      uint32_t bits;
      std::memcpy(&bits, &q.scales[r], 4);
      for (int b = 0; b < 4; ++b) out[so + 4 * r + b] = static_cast<uint8_t>(bits >> (8 * b));
    }
    return out;
  }
  const size_t g = layout.group_size;
  const bool sym = layout.symmetric;
  // Nibble of (row, element) including padding: rows >= n and elements >= k
  // hold the zero code z (padded rows: z = 0 asym, 8 sym).
  auto nibble = [&](size_t r, size_t e) -> uint8_t {
    if (r >= n) return sym ? 8 : 0;
    const int z = sym ? 0 : q.zeros[r * groups + e / g];
    const int code = e < k ? q.codes[r * k + e] : z;
    return Nibble(code, sym);
  };
  if (layout.kind == QuantLayoutKind::kQ4S24Row) {
    const size_t quads = Q4S24RowLayout::Quads(k, g);
    const size_t io = Q4S24RowLayout::IndexOffset(n, k, g);
    for (size_t r = 0; r < n; ++r) {
      for (size_t j = 0; j < quads; ++j) {
        int8_t c[4];
        QuadCodes(q, r, j, c);
        int p0 = 0, p1 = 0;
        if (!QuadPositions(c, &p0, &p1)) {
          return InvalidInput("layout ", layout.Name(), " stores 2 of every 4 codes; row ", r, ", columns ", 4 * j,
                              "..", 4 * j + 3, " hold more than 2 nonzero codes");
        }
        out[r * quads + j] = static_cast<uint8_t>(Nibble(c[p0], true) | (Nibble(c[p1], true) << 4));
        out[io + r * quads / 2 + j / 2] |= static_cast<uint8_t>((p0 | (p1 << 2)) << (4 * (j & 1)));
      }
    }
    const size_t so = Q4S24RowLayout::ScalesOffset(n, k, g);
    for (size_t i = 0; i < n * groups; ++i) PutU16(&out[so + 2 * i], FloatToHalf(q.scales[i]));
    return out;
  }
  if (layout.kind == QuantLayoutKind::kQ4Row) {
    const size_t row_bytes = Q4RowLayout::RowBytes(k, g);
    for (size_t r = 0; r < n; ++r) {
      for (size_t j = 0; j < row_bytes; ++j) {
        out[r * row_bytes + j] =
            static_cast<uint8_t>(nibble(r, 2 * j) | (nibble(r, 2 * j + 1) << 4));
      }
    }
    const size_t so = Q4RowLayout::ScalesOffset(n, k, g);
    for (size_t i = 0; i < n * groups; ++i) PutU16(&out[so + 2 * i], FloatToHalf(q.scales[i]));
    if (!sym) {
      std::memcpy(&out[Q4RowLayout::ZerosOffset(n, k, g)], q.zeros.data(), n * groups);
    }
    return out;
  }
  const size_t tile_bytes = Q4X8Layout::TileBytes(g, sym);
  for (size_t b = 0; b < Q4X8Layout::Blocks(n); ++b) {
    for (size_t gi = 0; gi < groups; ++gi) {
      uint8_t* tile = &out[(b * groups + gi) * tile_bytes];
      for (size_t c = 0; c < g / 8; ++c) {
        for (size_t r = 0; r < 8; ++r) {
          for (size_t i = 0; i < 4; ++i) {
            const size_t e = gi * g + 8 * c + i;
            tile[32 * c + 4 * r + i] =
                static_cast<uint8_t>(nibble(8 * b + r, e) | (nibble(8 * b + r, e + 4) << 4));
          }
        }
      }
      uint8_t* scales = tile + Q4X8Layout::CodeBytesPerTile(g);
      for (size_t r = 0; r < 8; ++r) {
        const size_t row = 8 * b + r;
        PutU16(scales + 2 * r, row < n ? FloatToHalf(q.scales[row * groups + gi]) : 0);
      }
      if (!sym) {
        uint8_t* zeros = scales + 16;
        for (size_t j = 0; j < 4; ++j) {
          const size_t r0 = 8 * b + 2 * j, r1 = r0 + 1;
          const int z0 = r0 < n ? q.zeros[r0 * groups + gi] : 0;
          const int z1 = r1 < n ? q.zeros[r1 * groups + gi] : 0;
          zeros[j] = static_cast<uint8_t>(z0 | (z1 << 4));
        }
      }
    }
  }
  return out;
}

Expected<QuantizedMatrix> UnpackQuantized(const uint8_t* data, size_t size,
                                          const QuantLayout& layout, size_t rows, size_t cols) {
  const std::string name = layout.Name();
  SLIM_RETURN_IF_ERROR(ValidateQuantScheme(layout.Scheme()));
  SLIM_CHECK_INPUT(rows > 0 && cols > 0, "layout ", name, ": empty shape [", rows, ", ", cols, "]");
  const size_t expected = layout.PackedBytes(rows, cols);
  SLIM_CHECK_INPUT(size == expected, "layout ", name, " for [", rows, ", ", cols, "] needs ",
                   expected, " bytes, got ", size);
  QuantizedMatrix q = EmptyQuantizedMatrix(layout.Scheme(), rows, cols);
  const size_t n = rows, k = cols, groups = q.groups_per_row;

  if (layout.kind == QuantLayoutKind::kQ8Row) {
    for (size_t i = 0; i < n * k; ++i) {
      q.codes[i] = static_cast<int8_t>(data[i]);
      SLIM_CHECK_INPUT(q.codes[i] != -128, "layout ", name, ": code -128 at byte offset ", i,
                       " (codes are -127..127)");
    }
    const size_t so = Q8RowLayout::ScalesOffset(n, k);
    for (size_t i = n * k; i < so; ++i) {
      SLIM_CHECK_INPUT(data[i] == 0, "layout ", name, ": alignment padding at byte offset ", i,
                       " is not zero");
    }
    for (size_t r = 0; r < n; ++r) {
      uint32_t bits = 0;
      for (int b = 0; b < 4; ++b) bits |= uint32_t{data[so + 4 * r + b]} << (8 * b);
      std::memcpy(&q.scales[r], &bits, 4);
      SLIM_RETURN_IF_ERROR(CheckScale(q.scales[r], name, so + 4 * r));
    }
    return q;
  }

  const size_t g = layout.group_size;
  const bool sym = layout.symmetric;
  // Reads the nibble of (row, element) at byte `off`, high half when `high`;
  // checks padding against the zero code.
  auto take = [&](size_t r, size_t e, size_t off, bool high) -> Status {
    const uint8_t u = high ? static_cast<uint8_t>(data[off] >> 4) : static_cast<uint8_t>(data[off] & 0xf);
    if (r >= n || e >= k) {
      const int z = r >= n ? (sym ? 8 : 0) : (sym ? 8 : q.zeros[r * groups + e / g]);
      SLIM_CHECK_INPUT(u == z, "layout ", name, ": padding nibble at byte offset ", off,
                       high ? " (high)" : " (low)", " is ", int{u}, ", expected the zero code ", z);
      return Status::Ok();
    }
    q.codes[r * k + e] = static_cast<int8_t>(CodeFromNibble(u, sym));
    return Status::Ok();
  };

  if (layout.kind == QuantLayoutKind::kQ4S24Row) {
    const size_t quads = Q4S24RowLayout::Quads(k, g);
    const size_t io = Q4S24RowLayout::IndexOffset(n, k, g);
    const size_t so = Q4S24RowLayout::ScalesOffset(n, k, g);
    auto zero_gap = [&](size_t from, size_t to) -> Status {
      for (size_t i = from; i < to; ++i) {
        SLIM_CHECK_INPUT(data[i] == 0, "layout ", name, ": alignment padding at byte offset ", i, " is not zero");
      }
      return Status::Ok();
    };
    SLIM_RETURN_IF_ERROR(zero_gap(n * quads, io));
    SLIM_RETURN_IF_ERROR(zero_gap(io + n * quads / 2, so));
    for (size_t r = 0; r < n; ++r) {
      for (size_t j = 0; j < quads; ++j) {
        const size_t voff = r * quads + j, ioff = io + r * quads / 2 + j / 2;
        const int bits = (data[ioff] >> (4 * (j & 1))) & 0xf;
        const int p0 = bits & 3, p1 = bits >> 2;
        SLIM_CHECK_INPUT(p0 < p1, "layout ", name, ": quad ", j, " of row ", r, " at byte offset ", ioff,
                         " keeps positions ", p0, " and ", p1, " (the first must be lower)");
        int8_t c[4] = {0, 0, 0, 0};
        c[p0] = static_cast<int8_t>(CodeFromNibble(data[voff] & 0xf, true));
        c[p1] = static_cast<int8_t>(CodeFromNibble(data[voff] >> 4, true));
        int e0 = 0, e1 = 0;
        QuadPositions(c, &e0, &e1);  // at most two nonzero by construction
        SLIM_CHECK_INPUT(e0 == p0 && e1 == p1, "layout ", name, ": quad ", j, " of row ", r, " at byte offset ",
                         voff, " is not in canonical form (zero codes must take the lowest free positions)");
        for (int i = 0; i < 4; ++i) {
          const size_t e = 4 * j + static_cast<size_t>(i);
          if (e < k) {
            q.codes[r * k + e] = c[i];
          } else {
            SLIM_CHECK_INPUT(c[i] == 0, "layout ", name, ": padding element ", e, " of row ", r,
                             " at byte offset ", voff, " is not code 0");
          }
        }
      }
    }
    for (size_t i = 0; i < n * groups; ++i) {
      q.scales[i] = HalfToFloat(GetU16(&data[so + 2 * i]));
      SLIM_RETURN_IF_ERROR(CheckScale(q.scales[i], name, so + 2 * i));
    }
    return q;
  }
  if (layout.kind == QuantLayoutKind::kQ4Row) {
    const size_t row_bytes = Q4RowLayout::RowBytes(k, g);
    const size_t so = Q4RowLayout::ScalesOffset(n, k, g);
    // Zero points first: padding checks need them.
    if (!sym) {
      const size_t zo = Q4RowLayout::ZerosOffset(n, k, g);
      for (size_t i = 0; i < n * groups; ++i) {
        SLIM_CHECK_INPUT(data[zo + i] <= 15, "layout ", name, ": zero point at byte offset ",
                         zo + i, " is ", int{data[zo + i]}, ", above 15");
        q.zeros[i] = data[zo + i];
      }
      for (size_t i = so + 2 * n * groups; i < zo; ++i) {
        SLIM_CHECK_INPUT(data[i] == 0, "layout ", name, ": alignment padding at byte offset ", i,
                         " is not zero");
      }
    }
    for (size_t r = 0; r < n; ++r) {
      for (size_t j = 0; j < row_bytes; ++j) {
        const size_t off = r * row_bytes + j;
        SLIM_RETURN_IF_ERROR(take(r, 2 * j, off, false));
        SLIM_RETURN_IF_ERROR(take(r, 2 * j + 1, off, true));
      }
    }
    for (size_t i = n * row_bytes; i < so; ++i) {
      SLIM_CHECK_INPUT(data[i] == 0, "layout ", name, ": alignment padding at byte offset ", i,
                       " is not zero");
    }
    for (size_t i = 0; i < n * groups; ++i) {
      q.scales[i] = HalfToFloat(GetU16(&data[so + 2 * i]));
      SLIM_RETURN_IF_ERROR(CheckScale(q.scales[i], name, so + 2 * i));
    }
    return q;
  }

  const size_t tile_bytes = Q4X8Layout::TileBytes(g, sym);
  for (size_t b = 0; b < Q4X8Layout::Blocks(n); ++b) {
    for (size_t gi = 0; gi < groups; ++gi) {
      const size_t tile = (b * groups + gi) * tile_bytes;
      const size_t so = tile + Q4X8Layout::CodeBytesPerTile(g);
      if (!sym) {
        for (size_t r = 0; r < 8; ++r) {
          const size_t off = so + 16 + r / 2;
          const uint8_t z = (r & 1) ? static_cast<uint8_t>(data[off] >> 4) : static_cast<uint8_t>(data[off] & 0xf);
          const size_t row = 8 * b + r;
          if (row < n) {
            q.zeros[row * groups + gi] = z;
          } else {
            SLIM_CHECK_INPUT(z == 0, "layout ", name, ": zero point of padded row ", row,
                             " at byte offset ", off, " is ", int{z}, ", expected 0");
          }
        }
      }
      for (size_t r = 0; r < 8; ++r) {
        const size_t row = 8 * b + r;
        const float s = HalfToFloat(GetU16(&data[so + 2 * r]));
        SLIM_RETURN_IF_ERROR(CheckScale(s, name, so + 2 * r));
        if (row < n) {
          q.scales[row * groups + gi] = s;
        } else {
          SLIM_CHECK_INPUT(s == 0.0f, "layout ", name, ": scale of padded row ", row,
                           " at byte offset ", so + 2 * r, " is ", s, ", expected 0");
        }
      }
      for (size_t c = 0; c < g / 8; ++c) {
        for (size_t r = 0; r < 8; ++r) {
          for (size_t i = 0; i < 4; ++i) {
            const size_t off = tile + 32 * c + 4 * r + i;
            const size_t e = gi * g + 8 * c + i;
            SLIM_RETURN_IF_ERROR(take(8 * b + r, e, off, false));
            SLIM_RETURN_IF_ERROR(take(8 * b + r, e + 4, off, true));
          }
        }
      }
    }
  }
  return q;
}

Status DequantizePacked(const uint8_t* data, size_t size, const QuantLayout& layout,
                        size_t rows, size_t cols, float* out) {
  SLIM_ASSIGN_OR_RETURN(QuantizedMatrix q, UnpackQuantized(data, size, layout, rows, cols));
  DequantizeMatrix(q, out);
  return Status::Ok();
}

}  // namespace slim
