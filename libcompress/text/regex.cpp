#include "libcompress/text/regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

namespace slim::text {

struct Regex::Code {
  pcre2_code* code = nullptr;
  ~Code() { pcre2_code_free(code); }
};

namespace {

Expected<std::string> TranslateOniguruma(const std::string& p, const std::string& where) {
  std::string out;
  out.reserve(p.size() + 32);
  for (size_t i = 0; i < p.size(); ++i) {
    const char c = p[i];
    if (c != '\\') {
      // (?>...) atomic groups and X*+ possessive forms backtrack differently
      // in the reference implementation; nothing supported uses them.
      if (c == '(' && p.compare(i, 3, "(?>") == 0)
        return Unsupported(where, ": atomic group (?>...) in the pattern is not supported");
      out.push_back(c);
      continue;
    }
    if (i + 1 >= p.size()) return InvalidInput(where, ": pattern ends in a lone backslash");
    const char e = p[++i];
    switch (e) {
      case 's': out += "\\p{White_Space}"; break;
      case 'S': out += "\\P{White_Space}"; break;
      case 'w': case 'W': case 'b': case 'B': case 'h': case 'H': case 'G':
        return Unsupported(where, ": \\", e, " in the pattern is not supported (its Oniguruma meaning differs from PCRE2's)");
      default:
        out.push_back('\\');
        out.push_back(e);
    }
  }
  return out;
}

}  // namespace

Expected<Regex> Regex::Compile(const std::string& oniguruma_pattern, const std::string& where) {
  SLIM_ASSIGN_OR_RETURN(const std::string pcre, TranslateOniguruma(oniguruma_pattern, where));
  int err = 0;
  PCRE2_SIZE offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pcre.data()), pcre.size(),
                                   PCRE2_UTF | PCRE2_UCP, &err, &offset, nullptr);
  if (!code) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof(msg));
    return InvalidInput(where, ": pattern does not compile at offset ", offset, ": ",
                        reinterpret_cast<const char*>(msg));
  }
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // speed only; the interpreter runs if JIT is unavailable
  Regex r;
  r.code_ = std::make_shared<Code>();
  r.code_->code = code;
  return r;
}

Expected<Regex> Regex::Literal(std::string_view text, const std::string& where) {
  std::string quoted = "\\Q";
  for (size_t i = 0; i < text.size(); ++i) {
    // \E inside \Q...\E would end the quote: split it.
    if (text[i] == '\\' && i + 1 < text.size() && text[i + 1] == 'E') {
      quoted += "\\E\\\\\\Q";
      continue;
    }
    quoted.push_back(text[i]);
  }
  quoted += "\\E";
  // Not through TranslateOniguruma: the text is literal.
  int err = 0;
  PCRE2_SIZE offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(quoted.data()), quoted.size(),
                                   PCRE2_UTF | PCRE2_UCP, &err, &offset, nullptr);
  if (!code) return InvalidInput(where, ": string pattern is not valid UTF-8");
  Regex r;
  r.code_ = std::make_shared<Code>();
  r.code_->code = code;
  return r;
}

void Regex::ForEachMatch(std::string_view subject, const std::function<void(size_t, size_t)>& fn) const {
  pcre2_match_data* md = pcre2_match_data_create_from_pattern(code_->code, nullptr);
  const auto* s = reinterpret_cast<PCRE2_SPTR>(subject.data());
  size_t pos = 0;
  while (pos <= subject.size()) {
    const int rc = pcre2_match(code_->code, s, subject.size(), pos, PCRE2_NO_UTF_CHECK, md, nullptr);
    // No further match, or a PCRE2 resource limit (match steps, JIT stack)
    // on a pathological pattern: callers keep the unmatched rest as text.
    if (rc < 0) break;
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    const size_t b = ov[0], e = ov[1];
    if (e > b) {
      fn(b, e);
      pos = e;
    } else {
      // An empty match: step over one code point (as String.matchAll does).
      if (b >= subject.size()) break;
      size_t step = 1;
      while (b + step < subject.size() && (static_cast<unsigned char>(subject[b + step]) & 0xC0) == 0x80) ++step;
      pos = b + step;
    }
  }
  pcre2_match_data_free(md);
}

std::string Regex::ReplaceAll(std::string_view subject, std::string_view with) const {
  std::string out;
  size_t last = 0;
  ForEachMatch(subject, [&](size_t b, size_t e) {
    out.append(subject.substr(last, b - last));
    out.append(with);
    last = e;
  });
  out.append(subject.substr(last));
  return out;
}

}  // namespace slim::text
