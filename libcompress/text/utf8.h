// UTF-8 helpers the tokenizer needs: decoding with the WHATWG replacement
// rule (what a browser's or Node's TextDecoder does, so text read here and
// text read by the reference implementation agree byte for byte), code
// point iteration and encoding.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace slim::text {

// `bytes` with every ill-formed sequence replaced by U+FFFD, one replacement
// per maximal subpart (WHATWG Encoding Standard, "UTF-8 decode"). Valid
// input comes back unchanged.
std::string SanitizeUtf8(std::string_view bytes);

// Length in bytes of the code point starting at s[i]; `s` must be valid UTF-8.
inline size_t Utf8Length(unsigned char lead) {
  return lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
}

// The code point at s[i] (valid UTF-8), and its length through `len`.
char32_t DecodeAt(std::string_view s, size_t i, size_t* len);

void AppendUtf8(std::string& out, char32_t cp);

// JavaScript's String.prototype.trimStart/trimEnd whitespace (WhiteSpace and
// LineTerminator: includes U+FEFF), which the reference uses for lstrip/rstrip
// of added tokens and the Strip normalizer.
bool IsJsWhitespace(char32_t cp);
std::string_view TrimJsStart(std::string_view s);
std::string_view TrimJsEnd(std::string_view s);

}  // namespace slim::text
