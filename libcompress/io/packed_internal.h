// Pieces shared by the packed writer and reader (packed_format.cpp,
// packed_reader.cpp): the header codec, the checksum, and the JSON form of
// DecoderSpec / ByteVocab. io-internal; docs/FORMAT.md specifies the bytes.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "libcompress/common/status.h"
#include "libcompress/io/model.h"

namespace slim::packed {

// Header field offsets (bytes from the start of the file).
inline constexpr size_t kMagicAt = 0;
inline constexpr size_t kVersionAt = 8;
inline constexpr size_t kFlagsAt = 12;
inline constexpr size_t kMetadataOffsetAt = 16;
inline constexpr size_t kMetadataSizeAt = 24;
inline constexpr size_t kDataOffsetAt = 32;
inline constexpr size_t kDataSizeAt = 40;
inline constexpr size_t kMetadataChecksumAt = 48;
inline constexpr size_t kHeaderChecksumAt = 56;

struct Header {
  uint32_t version = 0;
  uint32_t flags = 0;
  uint64_t metadata_offset = 0;
  uint64_t metadata_size = 0;
  uint64_t data_offset = 0;
  uint64_t data_size = 0;
  uint64_t metadata_checksum = 0;
  uint64_t header_checksum = 0;
};

// XXH3-64 with seed 0: the checksum of the header, metadata and every tensor.
uint64_t Checksum64(const void* data, size_t size);
std::string ChecksumHex(uint64_t checksum);  // 16 lower-case hex digits

// Serialises the header into 64 bytes, computing header_checksum over bytes
// [0, 56) (the fields before it).
void EncodeHeader(const Header& h, uint8_t out[64]);
// Decodes the fields (no validation: the reader checks them in order).
Header DecodeHeader(const uint8_t in[64]);

uint32_t LoadLE32(const uint8_t* p);
uint64_t LoadLE64(const uint8_t* p);

nlohmann::json DecoderToJson(const DecoderSpec& d);
Expected<DecoderSpec> DecoderFromJson(const nlohmann::json& j, const std::string& where);

}  // namespace slim::packed
