// Parsing JSON that comes from a file (config.json, safetensors headers,
// packed metadata, recipes, profiles, token data): untrusted text.
//
// nlohmann throws more than parse_error for hostile text (a number beyond
// double's range is out_of_range 406, for example), so every reader parses
// through this one function, which turns any of its exceptions into a bad
// input Status with the byte offset where nlohmann gives one. Nesting is
// capped: functions that walk a parsed value (dump, comparison) recurse
// once per level.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "libcompress/common/status.h"

namespace slim {

// Far above any file slimpack reads (a packed graph nests about 6 levels).
inline constexpr int kMaxJsonDepth = 100;

// `where` starts every message (a path, or "path: metadata (bytes a..b)");
// `base` is the file offset of text[0], so positions are bytes of the file.
// `callback` (optional) sees every event as nlohmann's parser_callback_t
// does, e.g. to find duplicate keys.
inline Expected<nlohmann::json> ParseJsonText(std::string_view text, const std::string& where, uint64_t base = 0,
                                              const nlohmann::json::parser_callback_t& callback = nullptr) {
  struct TooDeep {};
  const nlohmann::json::parser_callback_t guard = [&](int depth, nlohmann::json::parse_event_t event,
                                                      nlohmann::json& parsed) {
    if (depth > kMaxJsonDepth) throw TooDeep{};
    return callback ? callback(depth, event, parsed) : true;
  };
  try {
    return nlohmann::json::parse(text.begin(), text.end(), guard);
  } catch (const TooDeep&) {
    return InvalidInput(where, ": JSON nested deeper than ", kMaxJsonDepth, " levels");
  } catch (const nlohmann::json::parse_error& e) {
    // e.byte is the 1-based position of the offending character.
    return InvalidInput(where, ": not valid JSON at byte ", base + (e.byte > 0 ? e.byte - 1 : 0), ": ", e.what());
  } catch (const nlohmann::json::exception& e) {
    return InvalidInput(where, ": not valid JSON: ", e.what());
  }
}

}  // namespace slim
