// Parsing JSON that comes from a file (config.json, safetensors headers,
// packed metadata, recipes, profiles, token data): untrusted text.
//
// nlohmann throws more than parse_error for hostile text (a number beyond
// double's range is out_of_range 406, for example), so every reader parses
// through this one function, which turns any of its exceptions into a bad
// input Status with the byte offset where nlohmann gives one. Nesting is
// capped: functions that walk a parsed value (dump, comparison) recurse
// once per level. A key that appears twice in one object is rejected by
// default: it is legal JSON, but nlohmann keeps the last one silently, so a
// recipe, config.json or safetensors header saying two things would mean
// whichever came last.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include <nlohmann/json.hpp>

#include "libcompress/common/status.h"

namespace slim {

// Far above any file slimpack reads (a packed graph nests about 6 levels).
inline constexpr int kMaxJsonDepth = 100;

enum class DuplicateKeys {
  kReject,    // InvalidInput naming the key and the object holding it
  kLastWins,  // nlohmann's behaviour (the tokenizer's reference keeps the last vocabulary entry too)
};

// `where` starts every message (a path, or "path: metadata (bytes a..b)");
// `base` is the file offset of text[0], so positions are bytes of the file.
inline Expected<nlohmann::json> ParseJsonText(std::string_view text, const std::string& where, uint64_t base = 0,
                                              DuplicateKeys duplicates = DuplicateKeys::kReject) {
  struct TooDeep {};
  struct Duplicate {
    std::string key, where;
  };
  // One entry per open object: its keys so far, and the last key read
  // before it opened (the key it or its enclosing array is under; "" at
  // the top level).
  struct Open {
    std::unordered_set<std::string> keys;
    std::string name;
  };
  std::vector<Open> open;
  std::string last_key;
  const nlohmann::json::parser_callback_t guard = [&](int depth, nlohmann::json::parse_event_t event,
                                                      nlohmann::json& parsed) {
    if (depth > kMaxJsonDepth) throw TooDeep{};
    if (duplicates == DuplicateKeys::kLastWins) return true;
    using Event = nlohmann::json::parse_event_t;
    if (event == Event::object_start) {
      open.push_back({{}, last_key});
    } else if (event == Event::object_end && !open.empty()) {
      last_key = open.back().name;  // a sibling object opens under the same key
      open.pop_back();
    } else if (event == Event::key && !open.empty() && parsed.is_string()) {
      last_key = parsed.get_ref<const std::string&>();
      if (!open.back().keys.insert(last_key).second) {
        throw Duplicate{last_key, depth == 1 ? "the top-level object"
                                  : open.back().name.empty() ? "an object"
                                                             : "an object under '" + open.back().name + "'"};
      }
    }
    return true;
  };
  try {
    return nlohmann::json::parse(text.begin(), text.end(), guard);
  } catch (const TooDeep&) {
    return InvalidInput(where, ": JSON nested deeper than ", kMaxJsonDepth, " levels");
  } catch (const Duplicate& d) {
    return InvalidInput(where, ": key '", d.key, "' appears twice in ", d.where);
  } catch (const nlohmann::json::parse_error& e) {
    // e.byte is the 1-based position of the offending character.
    return InvalidInput(where, ": not valid JSON at byte ", base + (e.byte > 0 ? e.byte - 1 : 0), ": ", e.what());
  } catch (const nlohmann::json::exception& e) {
    return InvalidInput(where, ": not valid JSON: ", e.what());
  }
}

}  // namespace slim
