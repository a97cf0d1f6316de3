// FP16/BF16 scalar conversions: exhaustive over all 16-bit patterns.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>

#include "libcompress/ir/dtype.h"

using namespace slim;

TEST_CASE("every fp16 pattern survives half -> float -> half", "[ir][dtype]") {
  for (uint32_t h = 0; h <= 0xffff; ++h) {
    const float f = HalfToFloat(static_cast<uint16_t>(h));
    const uint16_t back = FloatToHalf(f);
    if (std::isnan(f)) {
      REQUIRE((back & 0x7c00u) == 0x7c00u);
      REQUIRE((back & 0x3ffu) != 0);
    } else {
      REQUIRE(back == h);
    }
  }
}

TEST_CASE("float -> fp16 rounds to nearest even, saturates to inf", "[ir][dtype]") {
  CHECK(FloatToHalf(1.0f) == 0x3c00);
  CHECK(FloatToHalf(65504.0f) == 0x7bff);
  CHECK(FloatToHalf(65520.0f) == 0x7c00);  // halfway to the next power rounds up to inf
  CHECK(FloatToHalf(65519.0f) == 0x7bff);
  CHECK(FloatToHalf(-INFINITY) == 0xfc00);
  // 1 + 2^-11 is halfway between 1 and 1 + 2^-10: ties to even (1.0).
  CHECK(FloatToHalf(1.0f + std::ldexp(1.0f, -11)) == 0x3c00);
  // 1 + 3 * 2^-11 is halfway between 1+2^-10 (odd) and 1+2^-9 (even).
  CHECK(FloatToHalf(1.0f + 3 * std::ldexp(1.0f, -11)) == 0x3c02);
  // Smallest subnormal 2^-24, and half of it rounds to zero (even).
  CHECK(FloatToHalf(std::ldexp(1.0f, -24)) == 0x0001);
  CHECK(FloatToHalf(std::ldexp(1.0f, -25)) == 0x0000);
  CHECK(FloatToHalf(std::ldexp(1.5f, -25)) == 0x0001);
  CHECK(HalfToFloat(0x0001) == std::ldexp(1.0f, -24));
}

TEST_CASE("float -> fp16 matches exact nearest for random values", "[ir][dtype]") {
  // Compare against brute-force nearest representable half (ties to even).
  uint32_t seed = 12345;
  for (int i = 0; i < 20000; ++i) {
    seed = seed * 1664525u + 1013904223u;
    const float f = std::ldexp(static_cast<float>(seed >> 8) / 16777216.0f, static_cast<int>(seed % 40) - 26) *
                    ((seed & 1) ? -1.0f : 1.0f);
    const uint16_t h = FloatToHalf(f);
    const float hf = HalfToFloat(h);
    const float up = HalfToFloat(static_cast<uint16_t>(h + 1));
    const float down = HalfToFloat(static_cast<uint16_t>(h - 1));
    if (std::isinf(hf) || (h & 0x7fff) == 0) continue;
    REQUIRE(std::fabs(hf - f) <= std::fabs(up - f));
    REQUIRE(std::fabs(hf - f) <= std::fabs(down - f));
  }
}

TEST_CASE("bfloat16 conversions", "[ir][dtype]") {
  for (uint32_t b = 0; b <= 0xffff; ++b) {
    const float f = BFloat16ToFloat(static_cast<uint16_t>(b));
    if (!std::isnan(f)) REQUIRE(FloatToBFloat16(f) == b);
  }
  CHECK(FloatToBFloat16(1.0f + std::ldexp(1.0f, -8)) == 0x3f80);  // tie -> even
  CHECK(FloatToBFloat16(1.0f + 3 * std::ldexp(1.0f, -8)) == 0x3f82);
}

TEST_CASE("dtype sizes and names follow ONNX codes", "[ir][dtype]") {
  CHECK(DTypeFromOnnx(10) == DType::kFloat16);
  CHECK(DTypeFromOnnx(16) == DType::kBFloat16);
  CHECK(DTypeFromOnnx(17) == DType::kUndefined);
  CHECK(DTypeSize(DType::kInt64) == 8);
  CHECK(DTypeSize(DType::kInt4Packed) == 0);
  CHECK(std::string(DTypeName(DType::kFloat16)) == "float16");
}
