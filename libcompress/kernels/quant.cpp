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

// Scales are finite and >= 0, except symmetric int4 ones (codes -8..7):
// those may be negative, so the sign picks the side that reaches -8.
Status CheckScale(float s, const std::string& layout, size_t offset, bool may_be_negative = false) {
  if (!std::isfinite(s) || (s < 0.0f && !may_be_negative)) {
    return InvalidInput("layout ", layout, ": scale at byte offset ", offset, " is ", s,
                        may_be_negative ? " (scales must be finite)" : " (scales must be finite and >= 0)");
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

void PutU32(uint8_t* p, uint32_t v) {
  for (int b = 0; b < 4; ++b) p[b] = static_cast<uint8_t>(v >> (8 * b));
}
uint32_t GetU32(const uint8_t* p) {
  return uint32_t{p[0]} | (uint32_t{p[1]} << 8) | (uint32_t{p[2]} << 16) | (uint32_t{p[3]} << 24);
}

Status CheckZeroGap(const uint8_t* data, size_t from, size_t to, const std::string& layout) {
  for (size_t i = from; i < to; ++i) {
    SLIM_CHECK_INPUT(data[i] == 0, "layout ", layout, ": alignment padding at byte offset ", i, " is not zero");
  }
  return Status::Ok();
}

// FP32 row scales at `so` (q8 layouts), validated.
Status ReadRowScales(const uint8_t* data, size_t so, const std::string& layout, QuantizedMatrix* q) {
  for (size_t r = 0; r < q->rows; ++r) {
    const uint32_t bits = GetU32(data + so + 4 * r);
    std::memcpy(&q->scales[r], &bits, 4);
    SLIM_RETURN_IF_ERROR(CheckScale(q->scales[r], layout, so + 4 * r));
  }
  return Status::Ok();
}

void WriteRowScales(const QuantizedMatrix& q, size_t so, uint8_t* out) {
  for (size_t r = 0; r < q.rows; ++r) {
    uint32_t bits;
    std::memcpy(&bits, &q.scales[r], 4);
    PutU32(out + so + 4 * r, bits);
  }
}

// Codes of quad j of row r (elements past k are 0).
void QuadCodes(const QuantizedMatrix& q, size_t r, size_t j, int8_t* out4) {
  for (size_t i = 0; i < 4; ++i) {
    const size_t e = 4 * j + i;
    out4[i] = e < q.cols ? q.codes[r * q.cols + e] : 0;
  }
}


// The quads of the 2:4 layouts (Q4S24RowLayout, Q4S24X8Layout,
// Q8S24RowLayout), N rows of `quads` quads each. PackQuads computes each
// quad's canonical positions and hands them to put_pos(r, j, p0, p1), then its
// two kept codes to store(r, j, c0, c1); UnpackQuads reads the positions from
// get_pos(r, j, &p0, &p1, &poff) and the two stored codes from kept(r, j,
// &c0, &c1, &voff) (poff, voff: the byte offsets messages name), and checks
// positions, canonical form and padding.
template <typename PutPos, typename Store>
Status PackQuads(const QuantizedMatrix& q, const std::string& name, size_t quads, PutPos put_pos, Store store) {
  for (size_t r = 0; r < q.rows; ++r) {
    for (size_t j = 0; j < quads; ++j) {
      int8_t c[4];
      QuadCodes(q, r, j, c);
      int p0 = 0, p1 = 0;
      if (!QuadPositions(c, &p0, &p1)) {
        return InvalidInput("layout ", name, " stores 2 of every 4 codes; row ", r, ", columns ", 4 * j, "..",
                            4 * j + 3, " hold more than 2 nonzero codes");
      }
      put_pos(r, j, p0, p1);
      store(r, j, c[p0], c[p1]);
    }
  }
  return Status::Ok();
}

template <typename GetPos, typename Kept>
Status UnpackQuads(const std::string& name, size_t quads, GetPos get_pos, Kept kept, QuantizedMatrix* q) {
  const size_t k = q->cols;
  for (size_t r = 0; r < q->rows; ++r) {
    for (size_t j = 0; j < quads; ++j) {
      int p0 = 0, p1 = 0;
      size_t poff = 0;
      get_pos(r, j, &p0, &p1, &poff);
      SLIM_CHECK_INPUT(p0 < p1, "layout ", name, ": quad ", j, " of row ", r, " at byte offset ", poff,
                       " keeps positions ", p0, " and ", p1, " (the first must be lower)");
      int8_t c[4] = {0, 0, 0, 0};
      size_t voff = 0;
      SLIM_RETURN_IF_ERROR(kept(r, j, &c[p0], &c[p1], &voff));
      int e0 = 0, e1 = 0;
      QuadPositions(c, &e0, &e1);  // at most two nonzero by construction
      SLIM_CHECK_INPUT(e0 == p0 && e1 == p1, "layout ", name, ": quad ", j, " of row ", r, " at byte offset ", voff,
                       " is not in canonical form (zero codes must take the lowest free positions)");
      for (int i = 0; i < 4; ++i) {
        const size_t e = 4 * j + static_cast<size_t>(i);
        if (e < k) {
          q->codes[r * k + e] = c[i];
        } else {
          SLIM_CHECK_INPUT(c[i] == 0, "layout ", name, ": padding element ", e, " of row ", r, " at byte offset ",
                           voff, " is not code 0");
        }
      }
    }
  }
  return Status::Ok();
}

// Position nibbles of the row-major 2:4 layouts: N rows of quads/2 bytes at
// `io`, quad 2i in the low 4 bits and 2i+1 in the high 4 (bits 0-1 the first
// position, 2-3 the second).
struct RowQuadIndex {
  size_t io, quads;
  size_t Offset(size_t r, size_t j) const { return io + r * quads / 2 + j / 2; }
  void Put(uint8_t* out, size_t r, size_t j, int p0, int p1) const {
    out[Offset(r, j)] |= static_cast<uint8_t>((p0 | (p1 << 2)) << (4 * (j & 1)));
  }
  void Get(const uint8_t* data, size_t r, size_t j, int* p0, int* p1, size_t* off) const {
    *off = Offset(r, j);
    const int bits = (data[*off] >> (4 * (j & 1))) & 0xf;
    *p0 = bits & 3;
    *p1 = bits >> 2;
  }
};

// Q4S24X8Layout addressing: quad j of row r, kept code `slot`.
struct S24X8Address {
  size_t groups, g;
  size_t Chunk(size_t r, size_t j) const {
    const size_t quads_per_group = g / 4;
    const size_t gi = j / quads_per_group, c = (j % quads_per_group) / 8;
    return (r / 8 * groups + gi) * Q4S24X8Layout::TileBytes(g) + c * Q4S24X8Layout::kChunkBytes;
  }
  Q4S24X8Layout::Slot At(size_t r, size_t j, size_t slot) const {
    return Q4S24X8Layout::SlotOf(r % 8, j % 8, slot);
  }
  void Put(uint8_t* out, size_t r, size_t j, int p0, int p1, int8_t c0, int8_t c1) const {
    const size_t base = Chunk(r, j);
    const int p[2] = {p0, p1};
    const int8_t c[2] = {c0, c1};
    for (size_t slot = 0; slot < 2; ++slot) {
      const Q4S24X8Layout::Slot s = At(r, j, slot);
      out[base + s.code_byte] |= static_cast<uint8_t>(Nibble(c[slot], true) << (s.high ? 4 : 0));
      out[base + s.pos_byte] |= static_cast<uint8_t>(p[slot] << s.pos_shift);
    }
  }
  // Position and code of one slot, with the byte offsets of each.
  void Get(const uint8_t* data, size_t r, size_t j, size_t slot, int* pos, int8_t* code, size_t* poff,
           size_t* voff) const {
    const size_t base = Chunk(r, j);
    const Q4S24X8Layout::Slot s = At(r, j, slot);
    *poff = base + s.pos_byte;
    *voff = base + s.code_byte;
    *pos = (data[*poff] >> s.pos_shift) & 3;
    *code = static_cast<int8_t>(CodeFromNibble(s.high ? data[*voff] >> 4 : data[*voff] & 0xf, true));
  }
};
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
    SLIM_CHECK_INPUT(!s.nl, "nl levels are an int4 scheme; int8 with nl was requested");
    return Status::Ok();
  }
  SLIM_CHECK_INPUT(s.bits == 4, "quantization bits must be 4 or 8, got ", s.bits);
  SLIM_CHECK_INPUT(s.group_size == 32 || s.group_size == 64 || s.group_size == 128,
                   "int4 group_size must be 32, 64 or 128, got ", s.group_size);
  SLIM_CHECK_INPUT(!s.nl || s.symmetric, "int4 nl levels have no zero point; asymmetric nl was requested");
  return Status::Ok();
}

void DequantizeMatrix(const QuantizedMatrix& q, float* out) {
  for (size_t r = 0; r < q.rows; ++r) {
    for (size_t k = 0; k < q.cols; ++k) {
      const size_t idx = r * q.groups_per_row + k / q.group_size;
      out[r * q.cols + k] =
          q.scales[idx] * static_cast<float>(CodeLevel(q.scheme, q.codes[r * q.cols + k], ZeroOf(q, idx)));
    }
  }
}

// ---------------------------------------------------------------------------
// Layout names and sizes.

std::string QuantLayout::Name() const {
  if (kind == QuantLayoutKind::kQ8Row) return "q8_row";
  if (kind == QuantLayoutKind::kQ8S24Row) return "q8_s24_row";
  if (kind == QuantLayoutKind::kQ8BmRow) return "q8_bm_row";
  if (kind == QuantLayoutKind::kQ4S24Row) return StrCat("q4g", group_size, "_sym_s24_row");
  if (kind == QuantLayoutKind::kQ4S24X8) return StrCat("q4g", group_size, "_sym_s24_x8");
  if (kind == QuantLayoutKind::kQ4NlX8) return StrCat("q4g", group_size, "_nl_x8");
  return StrCat("q4g", group_size, symmetric ? "_sym" : "_asym",
                kind == QuantLayoutKind::kQ4Row ? "_row" : "_x8");
}

size_t QuantLayout::PackedBytes(size_t rows, size_t cols, size_t nnz) const {
  switch (kind) {
    case QuantLayoutKind::kQ8Row:
      return Q8RowLayout::Bytes(rows, cols);
    case QuantLayoutKind::kQ8S24Row:
      return Q8S24RowLayout::Bytes(rows, cols);
    case QuantLayoutKind::kQ8BmRow:
      return Q8BitmaskRowLayout::Bytes(rows, cols, nnz);
    case QuantLayoutKind::kQ4Row:
      return Q4RowLayout::Bytes(rows, cols, group_size, symmetric);
    case QuantLayoutKind::kQ4X8:
      return Q4X8Layout::Bytes(rows, cols, group_size, symmetric);
    case QuantLayoutKind::kQ4NlX8:
      return Q4X8Layout::Bytes(rows, cols, group_size, true);
    case QuantLayoutKind::kQ4S24Row:
      return Q4S24RowLayout::Bytes(rows, cols, group_size);
    case QuantLayoutKind::kQ4S24X8:
      return Q4S24X8Layout::Bytes(rows, cols, group_size);
  }
  return 0;
}

QuantScheme QuantLayout::Scheme() const {
  if (kind == QuantLayoutKind::kQ8Row || kind == QuantLayoutKind::kQ8S24Row || kind == QuantLayoutKind::kQ8BmRow) {
    return QuantScheme{8, 0, true};
  }
  if (kind == QuantLayoutKind::kQ4NlX8) return QuantScheme{4, group_size, true, true};
  return QuantScheme{4, group_size, symmetric};
}

Expected<QuantLayout> ParseQuantLayout(std::string_view name) {
  for (const auto& list : {AllQuantLayouts(), AllSparseQuantLayouts(), AllNlQuantLayouts()}) {
    for (const QuantLayout& l : list) {
      if (l.Name() == name) return l;
    }
  }
  return InvalidInput("unknown quantized layout '", std::string(name),
                      "' (known: q8_row, q4g{32,64,128}_{sym,asym}_{row,x8}, q4g{32,64,128}_sym_s24_{row,x8}, q4g{32,64,128}_nl_x8, q8_s24_row, q8_bm_row)");
}

std::vector<QuantLayout> AllSparseQuantLayouts() {
  std::vector<QuantLayout> out;
  for (QuantLayoutKind kind : {QuantLayoutKind::kQ4S24Row, QuantLayoutKind::kQ4S24X8}) {
    for (size_t g : {32, 64, 128}) out.push_back({kind, g, true});
  }
  out.push_back({QuantLayoutKind::kQ8S24Row, 0, true});
  out.push_back({QuantLayoutKind::kQ8BmRow, 0, true});
  return out;
}

std::vector<QuantLayout> AllNlQuantLayouts() {
  std::vector<QuantLayout> out;
  for (size_t g : {32, 64, 128}) out.push_back({QuantLayoutKind::kQ4NlX8, g, true});
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

double PackedBitsPerWeight(const QuantLayout& layout, size_t rows, size_t cols, size_t nnz) {
  return 8.0 * static_cast<double>(layout.PackedBytes(rows, cols, nnz)) / static_cast<double>(rows * cols);
}

double PackedBitsPerWeight(const QuantLayout& layout, size_t rows, size_t cols) {
  return PackedBitsPerWeight(layout, rows, cols, rows * cols);
}

Expected<size_t> ExpectedPackedBytes(const QuantLayout& layout, size_t rows, size_t cols, const uint8_t* data,
                                     size_t size) {
  // Shapes come from files: keep every product of the size formulas in range
  // (2^40 elements is far beyond any single weight matrix).
  constexpr size_t kMaxElements = size_t{1} << 40;
  SLIM_CHECK_INPUT(rows > 0 && cols > 0 && rows <= kMaxElements / cols, "layout ", layout.Name(), ": shape [",
                   rows, ", ", cols, "] is empty or too large");
  if (layout.kind != QuantLayoutKind::kQ8BmRow) return layout.PackedBytes(rows, cols);
  const size_t oo = Q8BitmaskRowLayout::OffsetsOffset(rows, cols);
  SLIM_CHECK_INPUT(size >= oo + 4 * (rows + 1), "layout ", layout.Name(), " for [", rows, ", ", cols,
                   "]: blob of ", size, " bytes ends before its row offsets (", oo + 4 * (rows + 1), " bytes)");
  return layout.PackedBytes(rows, cols, GetU32(data + oo + 4 * rows));
}

bool CodesFitLayout(const QuantizedMatrix& q, const QuantLayout& layout) {
  if (!Is24Layout(layout.kind)) return true;
  for (size_t r = 0; r < q.rows; ++r) {
    for (size_t j = 0; 4 * j < q.cols; ++j) {
      int8_t c[4];
      QuadCodes(q, r, j, c);
      int p0, p1;
      if (!QuadPositions(c, &p0, &p1)) return false;
    }
  }
  return true;
}

size_t NonzeroCodes(const QuantizedMatrix& q) {
  return static_cast<size_t>(std::count_if(q.codes.begin(), q.codes.end(), [](int8_t c) { return c != 0; }));
}

// ---------------------------------------------------------------------------
// Packing.

Expected<std::vector<uint8_t>> PackQuantized(const QuantizedMatrix& q, const QuantLayout& layout) {
  const QuantScheme ls = layout.Scheme();
  SLIM_CHECK_INPUT(q.scheme.bits == ls.bits && q.scheme.nl == ls.nl &&
                       (ls.bits == 8 || (q.scheme.group_size == ls.group_size && q.scheme.symmetric == ls.symmetric)),
                   "layout ", layout.Name(), " cannot store codes of scheme int", q.scheme.bits, " group ",
                   q.scheme.group_size, q.scheme.nl ? " nl" : q.scheme.symmetric ? " symmetric" : " asymmetric");
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
    SLIM_CHECK_INPUT(std::isfinite(s) && (s >= 0.0f || (ls.bits == 4 && ls.symmetric)) &&
                         (!cr.fp16_scale || HalfToFloat(FloatToHalf(s)) == s),
                     "scale ", i, " is ", s, " (must be finite, an FP16 value for int4, and >= 0 unless int4 symmetric)");
  }
  for (size_t i = 0; i < q.zeros.size(); ++i) {
    SLIM_CHECK_INPUT(q.zeros[i] <= 15, "zero point ", i, " is ", int{q.zeros[i]}, ", above 15");
  }

  const size_t nnz = layout.kind == QuantLayoutKind::kQ8BmRow ? NonzeroCodes(q) : n * k;
  SLIM_CHECK_INPUT(nnz <= UINT32_MAX, "layout ", layout.Name(), " counts nonzero codes in 32 bits; [", n, ", ",
                   k, "] has ", nnz);
  std::vector<uint8_t> out(layout.PackedBytes(n, k, nnz), 0);
  const size_t groups = q.groups_per_row;
  if (layout.kind == QuantLayoutKind::kQ8Row) {
    std::memcpy(out.data(), q.codes.data(), n * k);
    WriteRowScales(q, Q8RowLayout::ScalesOffset(n, k), out.data());
    return out;
  }
  if (layout.kind == QuantLayoutKind::kQ8S24Row) {
    const size_t quads = Q8S24RowLayout::Quads(k);
    const RowQuadIndex index{Q8S24RowLayout::IndexOffset(n, k), quads};
    SLIM_RETURN_IF_ERROR(PackQuads(
        q, layout.Name(), quads, [&](size_t r, size_t j, int p0, int p1) { index.Put(out.data(), r, j, p0, p1); },
        [&](size_t r, size_t j, int8_t c0, int8_t c1) {
          out[2 * (r * quads + j)] = static_cast<uint8_t>(c0);
          out[2 * (r * quads + j) + 1] = static_cast<uint8_t>(c1);
        }));
    WriteRowScales(q, Q8S24RowLayout::ScalesOffset(n, k), out.data());
    return out;
  }
  if (layout.kind == QuantLayoutKind::kQ8BmRow) {
    const size_t words = Q8BitmaskRowLayout::MaskWords(k);
    const size_t oo = Q8BitmaskRowLayout::OffsetsOffset(n, k);
    const size_t vo = Q8BitmaskRowLayout::ValuesOffset(n, k);
    size_t off = 0;
    for (size_t r = 0; r < n; ++r) {
      PutU32(&out[oo + 4 * r], static_cast<uint32_t>(off));
      for (size_t e = 0; e < k; ++e) {
        const int8_t c = q.codes[r * k + e];
        if (c == 0) continue;
        out[8 * (r * words + e / 64) + (e % 64) / 8] |= static_cast<uint8_t>(1u << (e % 8));
        out[vo + off++] = static_cast<uint8_t>(c);
      }
    }
    PutU32(&out[oo + 4 * n], static_cast<uint32_t>(off));
    WriteRowScales(q, Q8BitmaskRowLayout::ScalesOffset(n, k, nnz), out.data());
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
    const RowQuadIndex index{Q4S24RowLayout::IndexOffset(n, k, g), quads};
    SLIM_RETURN_IF_ERROR(PackQuads(
        q, layout.Name(), quads, [&](size_t r, size_t j, int p0, int p1) { index.Put(out.data(), r, j, p0, p1); },
        [&](size_t r, size_t j, int8_t c0, int8_t c1) {
          out[r * quads + j] = static_cast<uint8_t>(Nibble(c0, true) | (Nibble(c1, true) << 4));
        }));
    const size_t so = Q4S24RowLayout::ScalesOffset(n, k, g);
    for (size_t i = 0; i < n * groups; ++i) PutU16(&out[so + 2 * i], FloatToHalf(q.scales[i]));
    return out;
  }
  if (layout.kind == QuantLayoutKind::kQ4S24X8) {
    const size_t quads = groups * g / 4;
    const S24X8Address at{groups, g};
    // The positions arrive before the codes of the same quad (PackQuads).
    int pos[2] = {0, 1};
    SLIM_RETURN_IF_ERROR(PackQuads(
        q, layout.Name(), quads,
        [&](size_t, size_t, int p0, int p1) {
          pos[0] = p0;
          pos[1] = p1;
        },
        [&](size_t r, size_t j, int8_t c0, int8_t c1) { at.Put(out.data(), r, j, pos[0], pos[1], c0, c1); }));
    // Padded rows: every quad all-zero codes, canonical positions (0, 1).
    for (size_t r = n; r < 8 * Q4S24X8Layout::Blocks(n); ++r) {
      for (size_t j = 0; j < quads; ++j) at.Put(out.data(), r, j, 0, 1, 0, 0);
    }
    for (size_t b = 0; b < Q4S24X8Layout::Blocks(n); ++b) {
      for (size_t gi = 0; gi < groups; ++gi) {
        uint8_t* scales = &out[(b * groups + gi) * Q4S24X8Layout::TileBytes(g) + Q4S24X8Layout::ScalesOffsetInTile(g)];
        for (size_t r = 0; r < 8; ++r) {
          const size_t row = 8 * b + r;
          PutU16(scales + 2 * r, row < n ? FloatToHalf(q.scales[row * groups + gi]) : 0);
        }
      }
    }
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
  SLIM_ASSIGN_OR_RETURN(const size_t expected, ExpectedPackedBytes(layout, rows, cols, data, size));
  SLIM_CHECK_INPUT(size == expected, "layout ", name, " for [", rows, ", ", cols, "] needs ",
                   expected, " bytes, got ", size);
  QuantizedMatrix q = EmptyQuantizedMatrix(layout.Scheme(), rows, cols);
  const size_t n = rows, k = cols, groups = q.groups_per_row;
  auto code8 = [&](size_t off) -> Expected<int8_t> {
    const auto c = static_cast<int8_t>(data[off]);
    SLIM_CHECK_INPUT(c != -128, "layout ", name, ": code -128 at byte offset ", off, " (codes are -127..127)");
    return c;
  };

  if (layout.kind == QuantLayoutKind::kQ8Row) {
    for (size_t i = 0; i < n * k; ++i) {
      SLIM_ASSIGN_OR_RETURN(q.codes[i], code8(i));
    }
    const size_t so = Q8RowLayout::ScalesOffset(n, k);
    SLIM_RETURN_IF_ERROR(CheckZeroGap(data, n * k, so, name));
    SLIM_RETURN_IF_ERROR(ReadRowScales(data, so, name, &q));
    return q;
  }
  if (layout.kind == QuantLayoutKind::kQ8S24Row) {
    const size_t quads = Q8S24RowLayout::Quads(k);
    const size_t io = Q8S24RowLayout::IndexOffset(n, k);
    const size_t so = Q8S24RowLayout::ScalesOffset(n, k);
    SLIM_RETURN_IF_ERROR(CheckZeroGap(data, 2 * n * quads, io, name));
    SLIM_RETURN_IF_ERROR(CheckZeroGap(data, io + n * quads / 2, so, name));
    const RowQuadIndex index{io, quads};
    SLIM_RETURN_IF_ERROR(UnpackQuads(
        name, quads,
        [&](size_t r, size_t j, int* p0, int* p1, size_t* poff) { index.Get(data, r, j, p0, p1, poff); },
        [&](size_t r, size_t j, int8_t* c0, int8_t* c1, size_t* voff) -> Status {
          *voff = 2 * (r * quads + j);
          SLIM_ASSIGN_OR_RETURN(*c0, code8(*voff));
          SLIM_ASSIGN_OR_RETURN(*c1, code8(*voff + 1));
          return Status::Ok();
        },
        &q));
    SLIM_RETURN_IF_ERROR(ReadRowScales(data, so, name, &q));
    return q;
  }
  if (layout.kind == QuantLayoutKind::kQ8BmRow) {
    const size_t words = Q8BitmaskRowLayout::MaskWords(k);
    const size_t oo = Q8BitmaskRowLayout::OffsetsOffset(n, k);
    const size_t vo = Q8BitmaskRowLayout::ValuesOffset(n, k);
    const size_t nnz = GetU32(data + oo + 4 * n);
    size_t off = 0;
    for (size_t r = 0; r < n; ++r) {
      SLIM_CHECK_INPUT(GetU32(data + oo + 4 * r) == off, "layout ", name, ": row offset ", r, " at byte offset ",
                       oo + 4 * r, " is ", GetU32(data + oo + 4 * r), ", the masks of the rows before give ", off);
      for (size_t e = 0; e < words * 64; ++e) {
        const size_t byte = 8 * (r * words + e / 64) + (e % 64) / 8;
        if (((data[byte] >> (e % 8)) & 1) == 0) continue;
        SLIM_CHECK_INPUT(e < k, "layout ", name, ": mask bit of padding element ", e, " of row ", r,
                         " at byte offset ", byte, " is set");
        SLIM_CHECK_INPUT(off < nnz, "layout ", name, ": row ", r, "'s mask keeps more codes than offsets[N] = ",
                         nnz, " (byte offset ", byte, ")");
        SLIM_ASSIGN_OR_RETURN(q.codes[r * k + e], code8(vo + off));
        SLIM_CHECK_INPUT(q.codes[r * k + e] != 0, "layout ", name, ": stored code at byte offset ", vo + off,
                         " is 0 (only nonzero codes are stored)");
        ++off;
      }
    }
    SLIM_CHECK_INPUT(off == nnz, "layout ", name, ": offsets[N] at byte offset ", oo + 4 * n, " is ", nnz,
                     ", the masks keep ", off, " codes");
    SLIM_RETURN_IF_ERROR(CheckZeroGap(data, oo + 4 * (n + 1), vo, name));
    const size_t so = Q8BitmaskRowLayout::ScalesOffset(n, k, nnz);
    SLIM_RETURN_IF_ERROR(CheckZeroGap(data, vo + nnz, so, name));
    SLIM_RETURN_IF_ERROR(ReadRowScales(data, so, name, &q));
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
    SLIM_RETURN_IF_ERROR(CheckZeroGap(data, n * quads, io, name));
    SLIM_RETURN_IF_ERROR(CheckZeroGap(data, io + n * quads / 2, so, name));
    const RowQuadIndex index{io, quads};
    SLIM_RETURN_IF_ERROR(UnpackQuads(
        name, quads,
        [&](size_t r, size_t j, int* p0, int* p1, size_t* poff) { index.Get(data, r, j, p0, p1, poff); },
        [&](size_t r, size_t j, int8_t* c0, int8_t* c1, size_t* voff) -> Status {
          *voff = r * quads + j;
          *c0 = static_cast<int8_t>(CodeFromNibble(data[*voff] & 0xf, true));
          *c1 = static_cast<int8_t>(CodeFromNibble(data[*voff] >> 4, true));
          return Status::Ok();
        },
        &q));
    for (size_t i = 0; i < n * groups; ++i) {
      q.scales[i] = HalfToFloat(GetU16(&data[so + 2 * i]));
      SLIM_RETURN_IF_ERROR(CheckScale(q.scales[i], name, so + 2 * i, true));
    }
    return q;
  }
  if (layout.kind == QuantLayoutKind::kQ4S24X8) {
    const size_t quads = groups * g / 4;
    const S24X8Address at{groups, g};
    // Both slots of a quad, read once (the position callback runs first).
    int8_t codes[2] = {0, 0};
    size_t code_off = 0;
    SLIM_RETURN_IF_ERROR(UnpackQuads(
        name, quads,
        [&](size_t r, size_t j, int* p0, int* p1, size_t* poff) {
          size_t poff1 = 0;
          at.Get(data, r, j, 0, p0, &codes[0], poff, &code_off);
          at.Get(data, r, j, 1, p1, &codes[1], &poff1, &code_off);
        },
        [&](size_t, size_t, int8_t* c0, int8_t* c1, size_t* voff) -> Status {
          *c0 = codes[0];
          *c1 = codes[1];
          *voff = code_off;
          return Status::Ok();
        },
        &q));
    for (size_t r = n; r < 8 * Q4S24X8Layout::Blocks(n); ++r) {
      for (size_t j = 0; j < quads; ++j) {
        for (size_t slot = 0; slot < 2; ++slot) {
          int pos = 0;
          int8_t code = 0;
          size_t poff = 0, voff = 0;
          at.Get(data, r, j, slot, &pos, &code, &poff, &voff);
          SLIM_CHECK_INPUT(code == 0 && pos == static_cast<int>(slot), "layout ", name, ": padded row ", r,
                           " at byte offset ", code == 0 ? poff : voff,
                           " must hold code 0 at positions 0 and 1 of every quad");
        }
      }
    }
    for (size_t b = 0; b < Q4S24X8Layout::Blocks(n); ++b) {
      for (size_t gi = 0; gi < groups; ++gi) {
        const size_t so = (b * groups + gi) * Q4S24X8Layout::TileBytes(g) + Q4S24X8Layout::ScalesOffsetInTile(g);
        for (size_t r = 0; r < 8; ++r) {
          const size_t row = 8 * b + r;
          const float sc = HalfToFloat(GetU16(&data[so + 2 * r]));
          SLIM_RETURN_IF_ERROR(CheckScale(sc, name, so + 2 * r, true));
          if (row < n) {
            q.scales[row * groups + gi] = sc;
          } else {
            SLIM_CHECK_INPUT(sc == 0.0f, "layout ", name, ": scale of padded row ", row, " at byte offset ",
                             so + 2 * r, " is ", sc, ", expected 0");
          }
        }
      }
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
      SLIM_RETURN_IF_ERROR(CheckScale(q.scales[i], name, so + 2 * i, sym));
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
        SLIM_RETURN_IF_ERROR(CheckScale(s, name, so + 2 * r, sym));
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
