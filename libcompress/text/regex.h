// The regular expressions tokenizer.json files carry are written for
// Oniguruma (the Rust tokenizers crate). PCRE2 in UTF + UCP mode (Debian's
// libpcre2: Unicode properties, lookahead, inline (?i:...) groups) runs them
// after one translation: Oniguruma's \s is the Unicode White_Space property,
// where PCRE2's also takes U+180E, so \s and \S become \p{White_Space} and
// \P{White_Space}. Constructs whose meaning differs and that no supported
// tokenizer uses (\w, \b, \h, \G, possessive and atomic forms) are refused.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "libcompress/common/status.h"

namespace slim::text {

class Regex {
 public:
  // `where` names the pattern's place in errors (file and JSON key).
  static Expected<Regex> Compile(const std::string& oniguruma_pattern, const std::string& where);
  // A literal string (a "String" pattern), matched as is.
  static Expected<Regex> Literal(std::string_view text, const std::string& where);

  // fn(begin, end) for every non-empty match, left to right, without
  // overlap. `subject` must be valid UTF-8 (the tokenizer sanitizes first).
  void ForEachMatch(std::string_view subject, const std::function<void(size_t, size_t)>& fn) const;
  // Every match replaced by `with`.
  std::string ReplaceAll(std::string_view subject, std::string_view with) const;

 private:
  struct Code;
  std::shared_ptr<Code> code_;
};

}  // namespace slim::text
