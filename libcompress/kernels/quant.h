// Quantized weights as the int8 / int4 weight-only matmul kernels (gemm_q.h)
// read them: schemes, unpacked codes, and the packed layouts. Pointers and
// sizes only. The quantizers that choose codes (scale search, GPTQ) are in
// libcompress/numerics/quantize.h.
//
// Schemes. Every dequantized weight is   w' = scale * (float)(q - zero)
// (one float multiply, the same expression the kernels and tests use):
//   int8 per row:       q in [-127, 127], zero = 0, one FP32 scale per row.
//   int4 symmetric:     q in [-8, 7], zero = 0, one scale per group of
//                       `group_size` consecutive elements of a row (32/64/128);
//                       the scale may be negative, so either side of a group
//                       can reach code -8 (all 16 codes in use).
//   int4 asymmetric:    q in [0, 15], integer zero in [0, 15] per group.
//   int4 nl:            q in [-8, 7] picks one of 16 non-uniform levels,
//                       w' = scale * (float)kNl4Levels[q + 8], one scale per
//                       group as int4 symmetric (which it is otherwise).
// int4 scales are FP16 values: the scale is rounded to FP16 *before* the codes
// are chosen, so what is stored dequantizes exactly to what was measured. A
// last group shorter than group_size (K % group_size != 0) is quantized from
// its real elements only; its storage is padded with the code of 0.0.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "libcompress/common/status.h"

namespace slim {

struct QuantScheme {
  int bits = 4;            // 8: per-row int8; 4: group-wise int4
  size_t group_size = 32;  // int4 only: 32, 64 or 128 elements along K
  bool symmetric = true;   // int8 must be symmetric
  bool nl = false;         // int4 symmetric only: the non-uniform levels below
};

// The 16 levels of int4 nl, ascending: those of llama.cpp's IQ4_NL (a fixed
// non-uniform grid, denser near 0 where trained weights are; Iwan Kawrakow,
// llama.cpp PR 5590). int8 values, so the i8-dot kernels multiply them
// exactly. There is no level 0: a weight of exactly 0 dequantizes to scale
// * 1, so masked (pruned) weights cannot use nl.
inline constexpr int8_t kNl4Levels[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                          1,    13,   25,  38,  53,  69,  89,  113};

// The integer level of code q: q - zero for the uniform schemes.
inline int CodeLevel(const QuantScheme& s, int q, int zero) { return s.nl ? kNl4Levels[q + 8] : q - zero; }

// Reconstruction error of one matrix against the FP32 weights it came from.
struct QuantErrorStats {
  double sq_error = 0.0;           // sum (w - w')^2
  double weighted_sq_error = 0.0;  // sum a*(w - w')^2 (equals sq_error without importance)
  double sum_sq = 0.0;             // sum w^2, so relative error = sq_error / sum_sq
  double max_abs_error = 0.0;      // max |w - w'|
  size_t count = 0;                // elements (rows * cols)
};

// Codes, scales and zero points of one matrix, unpacked (one entry per
// element / group); the input of PackQuantized and the output of
// UnpackQuantized.
struct QuantizedMatrix {
  QuantScheme scheme;
  size_t rows = 0;
  size_t cols = 0;
  size_t group_size = 0;        // elements per scale: cols for int8, scheme.group_size for int4
  size_t groups_per_row = 0;    // ceil(cols / group_size)
  std::vector<int8_t> codes;    // rows * cols, q as documented above
  std::vector<float> scales;    // rows * groups_per_row; int4 values are exact FP16 values
  std::vector<uint8_t> zeros;   // rows * groups_per_row, asymmetric int4 only (else empty)
  QuantErrorStats error;        // filled by QuantizeMatrix, zero after UnpackQuantized
};

// Code range and scale storage of a scheme: [-127, 127] FP32 (int8),
// [-8, 7] FP16 (int4 symmetric), [0, 15] FP16 (int4 asymmetric).
struct QuantCodeRange {
  int lo;
  int hi;
  bool fp16_scale;
};
QuantCodeRange CodeRangeOf(const QuantScheme& s);

// A matrix of the scheme's shape with every code 0 and every scale 0.
QuantizedMatrix EmptyQuantizedMatrix(const QuantScheme& scheme, size_t rows, size_t cols);

// Checks bits/group/symmetry (InvalidInput naming the field otherwise).
Status ValidateQuantScheme(const QuantScheme& scheme);

// w' for every element, row-major [rows, cols].
void DequantizeMatrix(const QuantizedMatrix& q, float* out);

// ---------------------------------------------------------------------------
// Packed layouts. docs/LAYOUTS.md is the full specification; the structs below
// give each layout's geometry as constexpr functions of (rows N, cols K).
// All multi-byte values are little-endian. Offsets are relative to the start
// of the tensor's blob; gaps introduced by 64-byte alignment are zero bytes.

inline constexpr size_t kQuantAlign = 64;
constexpr size_t AlignUp(size_t x, size_t a) { return (x + a - 1) / a * a; }
constexpr size_t CeilDiv(size_t x, size_t d) { return (x + d - 1) / d; }

// "q8_row": int8 codes row-major [N, K] (two's complement, -127..127), then
// at offset align64(N*K) the N row scales as FP32.
struct Q8RowLayout {
  static constexpr size_t CodeBytes(size_t n, size_t k) { return n * k; }
  static constexpr size_t ScalesOffset(size_t n, size_t k) {
    return AlignUp(CodeBytes(n, k), kQuantAlign);
  }
  static constexpr size_t Bytes(size_t n, size_t k) { return ScalesOffset(n, k) + 4 * n; }
};

// "q4g{G}_{sym,asym}_row": row r's codes are ceil(K/G) groups of G/2 bytes,
// rows back to back (row stride RowBytes). Byte j of a group holds element
// 2j in its low nibble and 2j+1 in its high nibble. A nibble is the unsigned
// code u: u = q + 8 (symmetric) or u = q (asymmetric), so w' = s * (u - z)
// with z = 8 (symmetric) or the stored zero. Padding nibbles past K hold z.
// Then at ScalesOffset the N * groups FP16 scales (row-major [N, groups]),
// and for asym at ZerosOffset the N * groups zero points, one uint8 each.
struct Q4RowLayout {
  static constexpr size_t Groups(size_t k, size_t g) { return CeilDiv(k, g); }
  static constexpr size_t RowBytes(size_t k, size_t g) { return Groups(k, g) * g / 2; }
  static constexpr size_t ScalesOffset(size_t n, size_t k, size_t g) {
    return AlignUp(n * RowBytes(k, g), kQuantAlign);
  }
  static constexpr size_t ZerosOffset(size_t n, size_t k, size_t g) {
    return AlignUp(ScalesOffset(n, k, g) + 2 * n * Groups(k, g), kQuantAlign);
  }
  static constexpr size_t Bytes(size_t n, size_t k, size_t g, bool symmetric) {
    return symmetric ? ScalesOffset(n, k, g) + 2 * n * Groups(k, g)
                     : ZerosOffset(n, k, g) + n * Groups(k, g);
  }
};

// "q4g{G}_{sym,asym}_x8": rows in blocks of 8 (N padded up to a multiple of
// 8; padded rows have scale 0, zero 0 and codes z). The blob is a sequence of
// tiles, block-major: tile (b, g) at offset (b * Groups + g) * TileBytes.
// A tile covers rows 8b..8b+7 and elements gG..gG+G-1 and is
//   codes:  G/8 chunks of 32 bytes; in chunk c, byte 4*r + i (r = row in
//           block 0..7, i = 0..3) holds u(row r, element 8c+i) in its low
//           nibble and u(row r, element 8c+4+i) in its high nibble, so one
//           32-byte load gives every row's 4+4 consecutive codes in its own
//           32-bit lane (one vpmaddubsw per half-chunk, see gemm_q.h);
//   scales: 8 FP16 (16 bytes), row 0 first;
//   zeros:  asym only, 4 bytes: byte j holds z(row 2j) low, z(row 2j+1) high.
// u and z are as in Q4RowLayout; padding elements past K hold z.
struct Q4X8Layout {
  static constexpr size_t kRowsPerBlock = 8;
  static constexpr size_t Blocks(size_t n) { return CeilDiv(n, kRowsPerBlock); }
  static constexpr size_t Groups(size_t k, size_t g) { return CeilDiv(k, g); }
  static constexpr size_t CodeBytesPerTile(size_t g) { return 4 * g; }
  static constexpr size_t TileBytes(size_t g, bool symmetric) {
    return CodeBytesPerTile(g) + 16 + (symmetric ? 0 : 4);
  }
  static constexpr size_t Bytes(size_t n, size_t k, size_t g, bool symmetric) {
    return Blocks(n) * Groups(k, g) * TileBytes(g, symmetric);
  }
};

// "q4g{G}_sym_s24_row": symmetric int4 codes of a 2:4-sparse matrix (at most
// two nonzero codes in every quad: 4 consecutive elements of a row, starting
// at a multiple of 4). Rows hold ceil(K/G) groups of G/4 quads (K padded to
// whole groups; padding elements are code 0). Three arrays:
//   values  [N, Quads] bytes at offset 0: quad j's two kept codes as nibbles
//           u = q + 8, the lower-positioned one in the low nibble;
//   indices [N, Quads/2] bytes at IndexOffset: quad 2i in the low 4 bits and
//           2i+1 in the high 4; of each 4 bits, bits 0-1 are the position
//           (0..3) of the first kept element and bits 2-3 of the second,
//           first < second;
//   scales  [N, Groups] FP16 at ScalesOffset (row-major).
// Canonical: the kept positions are the quad's nonzero codes, filled up to two
// with the lowest free positions (u = 8); readers reject anything else, so a
// matrix has one encoding. 3 bits per weight plus 16/G for the scale: 3.5 at
// G = 32, against 4.5 for the dense q4g32 layouts.
struct Q4S24RowLayout {
  static constexpr size_t Groups(size_t k, size_t g) { return CeilDiv(k, g); }
  static constexpr size_t Quads(size_t k, size_t g) { return Groups(k, g) * g / 4; }
  static constexpr size_t IndexOffset(size_t n, size_t k, size_t g) {
    return AlignUp(n * Quads(k, g), kQuantAlign);
  }
  static constexpr size_t ScalesOffset(size_t n, size_t k, size_t g) {
    return AlignUp(IndexOffset(n, k, g) + n * Quads(k, g) / 2, kQuantAlign);
  }
  static constexpr size_t Bytes(size_t n, size_t k, size_t g) {
    return ScalesOffset(n, k, g) + 2 * n * Groups(k, g);
  }
};

// "q4g{G}_sym_s24_x8": the codes of Q4S24RowLayout (same canonical form) in
// 8-row tiles for the i8-dot kernels. N is padded to a multiple of 8 (padded
// rows: all codes 0, positions (0, 1), scale 0), K to whole groups. Tile
// (b, g), rows 8b..8b+7 and elements gG..gG+G-1, at (b * Groups + g) *
// TileBytes, is G/32 chunks of kChunkBytes then the 8 rows' FP16 scales
// (row 0 first). A chunk covers 32 elements = 8 quads per row:
//   codes      64 bytes: byte 4 * (r + 8h) + i holds, in its low nibble, the
//              kept code `i & 1` (0 = the lower position) of quad 2h + i/2
//              and, in its high nibble, that of quad 4 + 2h + i/2 (u = q + 8;
//              h = 0, 1; i = 0..3), so 32-bit lane r + 8h of the low
//              nibbles is row r's 4 kept codes of elements 8h..8h+7;
//   positions  32 bytes: bits 2t..2t+1 of byte 4r + i, t = 2s + h, are the
//              position (0..3) in its quad of the code whose nibble is the
//              low (s = 0) or high (s = 1) one of code byte 4 * (r + 8h) + i.
// One vpermb (AVX-512 VBMI) or pshufb (AVX2) per 64 or 32 codes then picks
// the activations each lane meets (docs/LAYOUTS.md). Same bits per weight as
// the row layout: 3 + 16/G.
struct Q4S24X8Layout {
  static constexpr size_t kRowsPerBlock = 8;
  static constexpr size_t kChunkElements = 32;
  static constexpr size_t kChunkCodeBytes = 64;
  static constexpr size_t kChunkBytes = 96;
  static constexpr size_t Blocks(size_t n) { return CeilDiv(n, kRowsPerBlock); }
  static constexpr size_t Groups(size_t k, size_t g) { return CeilDiv(k, g); }
  static constexpr size_t ScalesOffsetInTile(size_t g) { return g / kChunkElements * kChunkBytes; }
  static constexpr size_t TileBytes(size_t g) { return ScalesOffsetInTile(g) + 16; }
  static constexpr size_t Bytes(size_t n, size_t k, size_t g) { return Blocks(n) * Groups(k, g) * TileBytes(g); }
  // Where kept code `slot` (0 = lower position) of quad `qc` (0..7) of row
  // `r` (0..7) of a chunk is stored, relative to the chunk.
  struct Slot {
    size_t code_byte;  // its nibble's byte
    bool high;         // high nibble
    size_t pos_byte;   // byte of its 2-bit position
    int pos_shift;     // bit of its position in pos_byte
  };
  static constexpr Slot SlotOf(size_t r, size_t qc, size_t slot) {
    const size_t s = qc / 4, h = (qc / 2) % 2, i = 2 * (qc % 2) + slot;
    return {4 * (r + 8 * h) + i, s == 1, kChunkCodeBytes + 4 * r + i, static_cast<int>(2 * (2 * s + h))};
  }
};

// "q8_s24_row": int8 codes of a 2:4-sparse matrix (quads as above). K is
// padded to a multiple of 8 (padding elements are code 0), so a row has an
// even number Quads of quads and whole index bytes. Three arrays:
//   values  [N, 2 * Quads] int8 at offset 0: quad j's two kept codes, the
//           lower-positioned one first;
//   indices [N, Quads/2] bytes at IndexOffset, coded as in Q4S24RowLayout;
//   scales  [N] FP32 at ScalesOffset.
// Canonical form as Q4S24RowLayout's (kept positions = the nonzero codes,
// filled with the lowest free positions, stored as code 0). 5 bits per
// weight plus 32/K for the scale, against 8 + 32/K for q8_row.
struct Q8S24RowLayout {
  static constexpr size_t Quads(size_t k) { return 2 * CeilDiv(k, 8); }
  static constexpr size_t IndexOffset(size_t n, size_t k) { return AlignUp(2 * n * Quads(k), kQuantAlign); }
  static constexpr size_t ScalesOffset(size_t n, size_t k) {
    return AlignUp(IndexOffset(n, k) + n * Quads(k) / 2, kQuantAlign);
  }
  static constexpr size_t Bytes(size_t n, size_t k) { return ScalesOffset(n, k) + 4 * n; }
};

// "q8_bm_row": int8 codes of an unstructured sparse matrix as a bitmask plus
// the nonzero codes. The size depends on the count `nnz` of nonzero codes:
//   masks   [N, MaskWords] uint64 (little-endian) at offset 0: bit e % 64 of
//           word e / 64 is set iff code (r, e) is nonzero; bits past K are 0;
//   offsets [N + 1] uint32 at OffsetsOffset: offsets[0] = 0, offsets[r + 1] =
//           offsets[r] + popcount(row r's mask), offsets[N] = nnz (< 2^32);
//   values  [nnz] int8 at ValuesOffset: the nonzero codes, row-major, in
//           column order (row r's at offsets[r]); never 0 or -128;
//   scales  [N] FP32 at ScalesOffset(n, k, nnz).
// Bits per weight 1 + 8 * density + 64/K: smaller than q8_row below a
// density of about 7/8.
struct Q8BitmaskRowLayout {
  static constexpr size_t MaskWords(size_t k) { return CeilDiv(k, 64); }
  static constexpr size_t OffsetsOffset(size_t n, size_t k) { return 8 * n * MaskWords(k); }
  static constexpr size_t ValuesOffset(size_t n, size_t k) {
    return AlignUp(OffsetsOffset(n, k) + 4 * (n + 1), kQuantAlign);
  }
  static constexpr size_t ScalesOffset(size_t n, size_t k, size_t nnz) {
    return AlignUp(ValuesOffset(n, k) + nnz, kQuantAlign);
  }
  static constexpr size_t Bytes(size_t n, size_t k, size_t nnz) { return ScalesOffset(n, k, nnz) + 4 * n; }
};

enum class QuantLayoutKind : uint8_t {
  kQ8Row,     // "q8_row"
  kQ4Row,     // "q4g{G}_{sym,asym}_row"
  kQ4X8,      // "q4g{G}_{sym,asym}_x8"
  kQ4S24Row,  // "q4g{G}_sym_s24_row" (2:4 sparse, symmetric only)
  kQ4S24X8,   // "q4g{G}_sym_s24_x8" (2:4 sparse, symmetric, 8-row tiles)
  kQ4NlX8,    // "q4g{G}_nl_x8" (int4 nl levels; the bytes of q4g{G}_sym_x8)
  kQ8S24Row,  // "q8_s24_row" (2:4 sparse int8)
  kQ8BmRow,   // "q8_bm_row" (unstructured sparse int8: bitmask + nonzero codes)
};

// A layout with its parameters; Name() is the stable string stored in the
// packed file and ParseQuantLayout its inverse.
struct QuantLayout {
  QuantLayoutKind kind = QuantLayoutKind::kQ8Row;
  size_t group_size = 0;  // int4 layouts: 32, 64 or 128; q8_row: 0
  bool symmetric = true;

  std::string Name() const;
  // Blob bytes for a matrix with `nnz` nonzero codes. Only q8_bm_row depends
  // on nnz; for the others it is ignored. The two-argument form is the size
  // at nnz = rows * cols (for q8_bm_row the largest possible).
  size_t PackedBytes(size_t rows, size_t cols, size_t nnz) const;
  size_t PackedBytes(size_t rows, size_t cols) const { return PackedBytes(rows, cols, rows * cols); }
  // Stores only the codes of a sparsity pattern (2:4 or bitmask layouts).
  bool IsSparse() const {
    return kind == QuantLayoutKind::kQ4S24Row || kind == QuantLayoutKind::kQ4S24X8 ||
           kind == QuantLayoutKind::kQ8S24Row || kind == QuantLayoutKind::kQ8BmRow;
  }
  // The quantization scheme whose codes this layout stores.
  QuantScheme Scheme() const;
  bool operator==(const QuantLayout& o) const {
    return kind == o.kind && group_size == o.group_size && symmetric == o.symmetric;
  }
};

Expected<QuantLayout> ParseQuantLayout(std::string_view name);
// Every dense layout (any codes pack into them; for listings and exhaustive
// tests).
std::vector<QuantLayout> AllQuantLayouts();
// The sparse layouts: they take only codes of their sparsity pattern.
std::vector<QuantLayout> AllSparseQuantLayouts();
// The layouts of int4 nl codes (QuantScheme::nl).
std::vector<QuantLayout> AllNlQuantLayouts();
// Packed bits per weight, scales and zero points included (at nnz nonzero
// codes for q8_bm_row).
double PackedBitsPerWeight(const QuantLayout& layout, size_t rows, size_t cols);
double PackedBitsPerWeight(const QuantLayout& layout, size_t rows, size_t cols, size_t nnz);

// The size a blob of `layout` for [rows, cols] must have, read from the blob
// where the layout's size depends on it (q8_bm_row: offsets[N]); fails when
// the blob is too short to hold what the size depends on. Reads nothing else.
Expected<size_t> ExpectedPackedBytes(const QuantLayout& layout, size_t rows, size_t cols, const uint8_t* data,
                                     size_t size);

// The 2:4 layouts (at most two nonzero codes per quad).
inline bool Is24Layout(QuantLayoutKind kind) {
  return kind == QuantLayoutKind::kQ4S24Row || kind == QuantLayoutKind::kQ4S24X8 ||
         kind == QuantLayoutKind::kQ8S24Row;
}

// Whether the codes of q fit the layout's sparsity pattern (always for dense
// layouts; 2:4 layouts: at most two nonzero codes per quad).
bool CodesFitLayout(const QuantizedMatrix& q, const QuantLayout& layout);
// Nonzero codes of q.
size_t NonzeroCodes(const QuantizedMatrix& q);

// Packs codes/scales/zeros into the layout's bytes (PackedBytes long). Fails
// when the scheme differs from the layout's or a value is out of range.
Expected<std::vector<uint8_t>> PackQuantized(const QuantizedMatrix& q, const QuantLayout& layout);

// Inverse of PackQuantized, validating everything a reader must: the size,
// finite non-negative scales, zero points in range, and that padding holds
// what the layout specifies (the message names the byte offset).
Expected<QuantizedMatrix> UnpackQuantized(const uint8_t* data, size_t size,
                                          const QuantLayout& layout, size_t rows, size_t cols);

// Unpack + dequantize into out [rows, cols].
Status DequantizePacked(const uint8_t* data, size_t size, const QuantLayout& layout,
                        size_t rows, size_t cols, float* out);

}  // namespace slim
