#include "libcompress/text/tokenizer.h"
#include "libcompress/common/file_util.h"

#include <utf8proc.h>

#include <functional>
#include <optional>
#include <unordered_map>
#include <unordered_set>

#include "libcompress/common/json_parse.h"
#include "libcompress/common/sha256.h"
#include "libcompress/text/bpe.h"
#include "libcompress/text/regex.h"
#include "libcompress/text/utf8.h"

namespace slim::text {

using nlohmann::json;

namespace {

using Pieces = std::vector<std::string>;
using NormalizeFn = std::function<std::string(std::string)>;
// One pre-tokenizer: every piece of `in` split further (section: the index of
// the text among the added-token sections, for Metaspace's "first" scheme).
using PreTokenizeFn = std::function<Pieces(const Pieces& in, size_t section)>;
using DecodeFn = std::function<Pieces(Pieces)>;

// GPT-2's byte-to-unicode table: printable Latin-1 bytes map to themselves,
// the rest to U+0100 onwards, so every byte string is a printable string.
struct ByteMap {
  char32_t to_char[256];
  std::unordered_map<char32_t, uint8_t> to_byte;
  std::string encoded[256];  // UTF-8 of to_char[b]
  ByteMap() {
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      to_char[b] = printable ? char32_t(b) : char32_t(256 + n++);
      to_byte[to_char[b]] = static_cast<uint8_t>(b);
      AppendUtf8(encoded[b], to_char[b]);
    }
  }
};
const ByteMap& Bytes() {
  static const ByteMap m;
  return m;
}

std::string ReplaceAllLiteral(std::string_view s, std::string_view from, std::string_view to) {
  if (from.empty()) return std::string(s);
  std::string out;
  size_t last = 0;
  for (size_t p = s.find(from); p != std::string_view::npos; p = s.find(from, last)) {
    out.append(s.substr(last, p - last));
    out.append(to);
    last = p + from.size();
  }
  out.append(s.substr(last));
  return out;
}

// Component configs are checked key by key: a key this code does not know
// could change the tokenisation, so it is refused rather than ignored.
Status CheckKeys(const json& j, std::initializer_list<const char*> known, const std::string& where) {
  SLIM_CHECK_INPUT(j.is_object(), where, " is not an object");
  for (const auto& [key, value] : j.items()) {
    bool ok = false;
    for (const char* k : known) ok = ok || key == k;
    if (!ok) return Unsupported(where, ".", key, " is not a supported option (value ", value.dump(), ")");
  }
  return Status::Ok();
}

Expected<std::string> StringAt(const json& j, const char* key, const std::string& where, const char* fallback) {
  if (!j.contains(key) || j[key].is_null()) {
    if (fallback) return std::string(fallback);
    return InvalidInput(where, ".", key, " is missing");
  }
  SLIM_CHECK_INPUT(j[key].is_string(), where, ".", key, " is not a string");
  return j[key].get<std::string>();
}

Expected<bool> BoolAt(const json& j, const char* key, const std::string& where, bool fallback) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  SLIM_CHECK_INPUT(j[key].is_boolean(), where, ".", key, " is not a boolean");
  return j[key].get<bool>();
}

std::string TypeOf(const json& j) { return j.is_object() && j.contains("type") && j["type"].is_string() ? j["type"].get<std::string>() : ""; }

// A {"String": s} or {"Regex": r} pattern (Replace, Split).
Expected<Regex> PatternAt(const json& j, const std::string& where) {
  SLIM_CHECK_INPUT(j.contains("pattern") && j["pattern"].is_object() && j["pattern"].size() == 1, where,
                   ".pattern is not {\"String\": ...} or {\"Regex\": ...}");
  const json& p = j["pattern"];
  if (p.contains("String") && p["String"].is_string()) return Regex::Literal(p["String"].get<std::string>(), where + ".pattern.String");
  if (p.contains("Regex") && p["Regex"].is_string()) return Regex::Compile(p["Regex"].get<std::string>(), where + ".pattern.Regex");
  return InvalidInput(where, ".pattern is not {\"String\": ...} or {\"Regex\": ...}");
}

Expected<std::string> UnicodeNormalize(std::string s, int options) {
  utf8proc_uint8_t* out = nullptr;
  const utf8proc_ssize_t n =
      utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data()), static_cast<utf8proc_ssize_t>(s.size()), &out,
                   static_cast<utf8proc_option_t>(UTF8PROC_STABLE | options));
  if (n < 0) return s;  // cannot happen on sanitized text; keep it as it is
  std::string r(reinterpret_cast<const char*>(out), static_cast<size_t>(n));
  std::free(out);
  return r;
}

Expected<NormalizeFn> MakeNormalizer(const json& j, const std::string& where) {
  if (j.is_null()) return NormalizeFn{};
  const std::string type = TypeOf(j);
  if (type == "Sequence") {
    SLIM_RETURN_IF_ERROR(CheckKeys(j, {"type", "normalizers"}, where));
    SLIM_CHECK_INPUT(j.contains("normalizers") && j["normalizers"].is_array(), where, ".normalizers is not an array");
    std::vector<NormalizeFn> parts;
    for (size_t i = 0; i < j["normalizers"].size(); ++i) {
      SLIM_ASSIGN_OR_RETURN(NormalizeFn f, MakeNormalizer(j["normalizers"][i], where + ".normalizers[" + std::to_string(i) + "]"));
      if (f) parts.push_back(std::move(f));
    }
    return NormalizeFn([parts](std::string s) {
      for (const auto& f : parts) s = f(std::move(s));
      return s;
    });
  }
  if (type == "NFC" || type == "NFD" || type == "NFKC" || type == "NFKD") {
    SLIM_RETURN_IF_ERROR(CheckKeys(j, {"type"}, where));
    int opts = type[2] == 'C' || type[3] == 'C' ? UTF8PROC_COMPOSE : UTF8PROC_DECOMPOSE;
    if (type[2] == 'K') opts |= UTF8PROC_COMPAT;
    return NormalizeFn([opts](std::string s) { return *UnicodeNormalize(std::move(s), opts); });
  }
  if (type == "Prepend") {
    SLIM_RETURN_IF_ERROR(CheckKeys(j, {"type", "prepend"}, where));
    SLIM_ASSIGN_OR_RETURN(const std::string prefix, StringAt(j, "prepend", where, nullptr));
    return NormalizeFn([prefix](std::string s) { return prefix + s; });
  }
  if (type == "Replace") {
    SLIM_RETURN_IF_ERROR(CheckKeys(j, {"type", "pattern", "content"}, where));
    SLIM_ASSIGN_OR_RETURN(const Regex re, PatternAt(j, where));
    SLIM_ASSIGN_OR_RETURN(const std::string content, StringAt(j, "content", where, ""));
    return NormalizeFn([re, content](std::string s) { return re.ReplaceAll(s, content); });
  }
  if (type == "Strip") {
    SLIM_RETURN_IF_ERROR(CheckKeys(j, {"type", "strip_left", "strip_right"}, where));
    SLIM_ASSIGN_OR_RETURN(const bool left, BoolAt(j, "strip_left", where, false));
    SLIM_ASSIGN_OR_RETURN(const bool right, BoolAt(j, "strip_right", where, false));
    return NormalizeFn([left, right](std::string s) {
      std::string_view v = s;
      if (left) v = TrimJsStart(v);
      if (right) v = TrimJsEnd(v);
      return std::string(v);
    });
  }
  return Unsupported(where, ".type ", json(type).dump(), " is not a supported normalizer (supported: Sequence, NFC, NFD, NFKC, NFKD, Prepend, Replace, Strip)");
}

Pieces SplitEach(const Pieces& in, const std::function<void(const std::string&, Pieces&)>& split) {
  Pieces out;
  for (const auto& p : in) split(p, out);
  return out;
}

Expected<PreTokenizeFn> MakePreTokenizer(const json& j, const std::string& where) {
  if (j.is_null()) return PreTokenizeFn{};
  const std::string type = TypeOf(j);
  if (type == "Sequence") {
    SLIM_RETURN_IF_ERROR(CheckKeys(j, {"type", "pretokenizers"}, where));
    SLIM_CHECK_INPUT(j.contains("pretokenizers") && j["pretokenizers"].is_array(), where, ".pretokenizers is not an array");
    std::vector<PreTokenizeFn> parts;
    for (size_t i = 0; i < j["pretokenizers"].size(); ++i) {
      SLIM_ASSIGN_OR_RETURN(PreTokenizeFn f,
                            MakePreTokenizer(j["pretokenizers"][i], where + ".pretokenizers[" + std::to_string(i) + "]"));
      if (f) parts.push_back(std::move(f));
    }
    return PreTokenizeFn([parts](const Pieces& in, size_t section) {
      Pieces p = in;
      for (const auto& f : parts) p = f(p, section);
      return p;
    });
  }
  if (type == "ByteLevel") {
    SLIM_RETURN_IF_ERROR(CheckKeys(j, {"type", "add_prefix_space", "trim_offsets", "use_regex"}, where));
    SLIM_ASSIGN_OR_RETURN(const bool prefix, BoolAt(j, "add_prefix_space", where, false));
    SLIM_ASSIGN_OR_RETURN(const bool use_regex, BoolAt(j, "use_regex", where, true));
    std::optional<Regex> re;
    if (use_regex) {
      // GPT-2's pattern, built into the ByteLevel pre-tokenizer.
      SLIM_ASSIGN_OR_RETURN(Regex r, Regex::Compile(R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)",
                                                    where + " (GPT-2 pattern)"));
      re = std::move(r);
    }
    return PreTokenizeFn([prefix, re](const Pieces& in, size_t) {
      return SplitEach(in, [&](const std::string& piece, Pieces& out) {
        const std::string text = prefix && piece.rfind(' ', 0) != 0 ? " " + piece : piece;
        auto emit = [&](size_t b, size_t e) {
          std::string mapped;
          for (size_t i = b; i < e; ++i) mapped += Bytes().encoded[static_cast<unsigned char>(text[i])];
          out.push_back(std::move(mapped));
        };
        if (!re) {
          if (!text.empty()) emit(0, text.size());
          return;
        }
        // The GPT-2 pattern matches every character; a gap can only follow a
        // PCRE2 resource limit, and is kept as a piece rather than lost.
        size_t last = 0;
        re->ForEachMatch(text, [&](size_t b, size_t e) {
          if (b > last) emit(last, b);
          emit(b, e);
          last = e;
        });
        if (last < text.size()) emit(last, text.size());
      });
    });
  }
  if (type == "Split") {
    SLIM_RETURN_IF_ERROR(CheckKeys(j, {"type", "pattern", "behavior", "invert"}, where));
    SLIM_ASSIGN_OR_RETURN(const Regex re, PatternAt(j, where));
    SLIM_ASSIGN_OR_RETURN(const bool invert, BoolAt(j, "invert", where, false));
    SLIM_ASSIGN_OR_RETURN(const std::string behavior, StringAt(j, "behavior", where, "Isolated"));
    // MergedWithPrevious/MergedWithNext/Contiguous: the reference runs them
    // as Isolated, the Rust crate does not; refused rather than guessed.
    SLIM_CHECK_INPUT(behavior == "Isolated" || behavior == "Removed", where, ".behavior ", json(behavior).dump(),
                     " is not supported (supported: Isolated, Removed)");
    const bool keep_matches = behavior == "Isolated";
    return PreTokenizeFn([re, invert, keep_matches](const Pieces& in, size_t) {
      return SplitEach(in, [&](const std::string& piece, Pieces& out) {
        size_t last = 0;
        re.ForEachMatch(piece, [&](size_t b, size_t e) {
          if (!invert && b > last) out.push_back(piece.substr(last, b - last));
          if (invert || keep_matches) out.push_back(piece.substr(b, e - b));
          last = e;
        });
        if (!invert && last < piece.size()) out.push_back(piece.substr(last));
      });
    });
  }
  if (type == "Metaspace") {
    SLIM_RETURN_IF_ERROR(CheckKeys(j, {"type", "replacement", "str_rep", "prepend_scheme", "add_prefix_space", "split"}, where));
    SLIM_ASSIGN_OR_RETURN(const std::string rep, StringAt(j, "replacement", where, "\u2581"));
    SLIM_ASSIGN_OR_RETURN(const bool legacy_prefix, BoolAt(j, "add_prefix_space", where, true));
    SLIM_ASSIGN_OR_RETURN(std::string scheme, StringAt(j, "prepend_scheme", where, legacy_prefix ? "always" : "never"));
    SLIM_CHECK_INPUT(scheme == "always" || scheme == "first" || scheme == "never", where, ".prepend_scheme ",
                     json(scheme).dump(), " is not always, first or never");
    SLIM_ASSIGN_OR_RETURN(const bool split, BoolAt(j, "split", where, false));
    return PreTokenizeFn([rep, scheme, split](const Pieces& in, size_t section) {
      return SplitEach(in, [&](const std::string& piece, Pieces& out) {
        std::string s = ReplaceAllLiteral(piece, " ", rep);
        if (s.rfind(rep, 0) != 0 && (scheme == "always" || (scheme == "first" && section == 0))) s = rep + s;
        if (!split) {
          out.push_back(std::move(s));
          return;
        }
        // split: a word starts at every replacement character (MergedWithNext).
        size_t start = 0;
        for (size_t p = s.find(rep, rep.size()); p != std::string::npos; p = s.find(rep, p + rep.size())) {
          if (p > start) out.push_back(s.substr(start, p - start));
          start = p;
        }
        if (start < s.size()) out.push_back(s.substr(start));
      });
    });
  }
  return Unsupported(where, ".type ", json(type).dump(), " is not a supported pre-tokenizer (supported: Sequence, ByteLevel, Split, Metaspace)");
}

Expected<DecodeFn> MakeDecoder(const json& j, const std::string& where,
                               const std::shared_ptr<const std::unordered_set<std::string>>& added) {
  if (j.is_null()) return DecodeFn{};
  const std::string type = TypeOf(j);
  if (type == "Sequence") {
    SLIM_RETURN_IF_ERROR(CheckKeys(j, {"type", "decoders"}, where));
    SLIM_CHECK_INPUT(j.contains("decoders") && j["decoders"].is_array(), where, ".decoders is not an array");
    std::vector<DecodeFn> parts;
    for (size_t i = 0; i < j["decoders"].size(); ++i) {
      SLIM_ASSIGN_OR_RETURN(DecodeFn f, MakeDecoder(j["decoders"][i], where + ".decoders[" + std::to_string(i) + "]", added));
      if (f) parts.push_back(std::move(f));
    }
    return DecodeFn([parts](Pieces t) {
      for (const auto& f : parts) t = f(std::move(t));
      return t;
    });
  }
  if (type == "ByteLevel") {
    SLIM_RETURN_IF_ERROR(CheckKeys(j, {"type", "add_prefix_space", "trim_offsets", "use_regex"}, where));
    // Runs of ordinary tokens become bytes, decoded with U+FFFD for broken
    // sequences; added tokens pass through as written.
    return DecodeFn([added](Pieces tokens) {
      Pieces out;
      std::string bytes;
      auto flush = [&] {
        if (!bytes.empty()) out.push_back(SanitizeUtf8(bytes));
        bytes.clear();
      };
      for (const auto& t : tokens) {
        if (added->count(t)) {
          flush();
          out.push_back(t);
          continue;
        }
        for (size_t i = 0; i < t.size();) {
          size_t len = 0;
          const char32_t c = DecodeAt(t, i, &len);
          const auto it = Bytes().to_byte.find(c);
          if (it != Bytes().to_byte.end()) bytes.push_back(static_cast<char>(it->second));
          else bytes.append(t, i, len);  // not a byte character: kept as it is
          i += len;
        }
      }
      flush();
      return out;
    });
  }
  if (type == "Metaspace") {
    SLIM_RETURN_IF_ERROR(CheckKeys(j, {"type", "replacement", "str_rep", "prepend_scheme", "add_prefix_space", "split"}, where));
    SLIM_ASSIGN_OR_RETURN(const std::string rep, StringAt(j, "replacement", where, "\u2581"));
    SLIM_ASSIGN_OR_RETURN(const std::string scheme, StringAt(j, "prepend_scheme", where, "always"));
    const bool strip_first = scheme != "never";
    return DecodeFn([rep, strip_first](Pieces tokens) {
      for (size_t i = 0; i < tokens.size(); ++i) {
        tokens[i] = ReplaceAllLiteral(tokens[i], rep, " ");
        if (i == 0 && strip_first && !tokens[i].empty() && tokens[i][0] == ' ') tokens[i].erase(0, 1);
      }
      return tokens;
    });
  }
  if (type == "Replace") {
    SLIM_RETURN_IF_ERROR(CheckKeys(j, {"type", "pattern", "content"}, where));
    SLIM_ASSIGN_OR_RETURN(const Regex re, PatternAt(j, where));
    SLIM_ASSIGN_OR_RETURN(const std::string content, StringAt(j, "content", where, ""));
    return DecodeFn([re, content](Pieces tokens) {
      for (auto& t : tokens) t = re.ReplaceAll(t, content);
      return tokens;
    });
  }
  if (type == "ByteFallback") {
    SLIM_RETURN_IF_ERROR(CheckKeys(j, {"type"}, where));
    return DecodeFn([](Pieces tokens) {
      Pieces out;
      std::string bytes;
      bool pending = false;
      for (const auto& t : tokens) {
        const bool is_byte = t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>' &&
                             std::isxdigit(static_cast<unsigned char>(t[3])) && std::isxdigit(static_cast<unsigned char>(t[4]));
        if (is_byte) {
          bytes.push_back(static_cast<char>(std::stoi(t.substr(3, 2), nullptr, 16)));
          pending = true;
          continue;
        }
        if (pending) out.push_back(SanitizeUtf8(bytes));
        bytes.clear();
        pending = false;
        out.push_back(t);
      }
      if (pending) out.push_back(SanitizeUtf8(bytes));
      return out;
    });
  }
  if (type == "Fuse") {
    SLIM_RETURN_IF_ERROR(CheckKeys(j, {"type"}, where));
    return DecodeFn([](Pieces tokens) {
      std::string all;
      for (const auto& t : tokens) all += t;
      return Pieces{all};
    });
  }
  if (type == "Strip") {
    SLIM_RETURN_IF_ERROR(CheckKeys(j, {"type", "content", "start", "stop"}, where));
    SLIM_ASSIGN_OR_RETURN(const std::string content, StringAt(j, "content", where, ""));
    SLIM_CHECK_INPUT(content.size() == 1, where, ".content must be one ASCII character");
    int64_t start = 0, stop = 0;
    if (j.contains("start")) {
      SLIM_CHECK_INPUT(j["start"].is_number_unsigned(), where, ".start is not a non-negative integer");
      start = j["start"].get<int64_t>();
    }
    if (j.contains("stop")) {
      SLIM_CHECK_INPUT(j["stop"].is_number_unsigned(), where, ".stop is not a non-negative integer");
      stop = j["stop"].get<int64_t>();
    }
    const char c = content[0];
    return DecodeFn([c, start, stop](Pieces tokens) {
      for (auto& t : tokens) {
        size_t b = 0, e = t.size();
        for (int64_t i = 0; i < start && b < e && t[b] == c; ++i) ++b;
        for (int64_t i = 0; i < stop && e > b && t[e - 1] == c; ++i) --e;
        t = t.substr(b, e - b);
      }
      return tokens;
    });
  }
  return Unsupported(where, ".type ", json(type).dump(),
                     " is not a supported decoder (supported: Sequence, ByteLevel, Metaspace, Replace, ByteFallback, Fuse, Strip)");
}

struct AddedToken {
  std::string content;
  int64_t id = -1;
  bool special = false, lstrip = false, rstrip = false, normalized = false;
};

// Longest match at the leftmost position, like the reference's trie.
struct Section {
  std::string text;
  const AddedToken* token = nullptr;  // set when the section is an added token
};
std::vector<Section> SplitOnAdded(std::string_view text, const std::vector<const AddedToken*>& tokens) {
  std::vector<Section> out;
  if (tokens.empty()) {
    out.push_back({std::string(text), nullptr});
    return out;
  }
  size_t start = 0, i = 0;
  while (i < text.size()) {
    const AddedToken* best = nullptr;
    for (const AddedToken* t : tokens)
      if ((!best || t->content.size() > best->content.size()) && text.compare(i, t->content.size(), t->content) == 0)
        best = t;
    if (!best) {
      ++i;
      continue;
    }
    if (i > start) out.push_back({std::string(text.substr(start, i - start)), nullptr});
    out.push_back({best->content, best});
    i += best->content.size();
    start = i;
  }
  if (start < text.size()) out.push_back({std::string(text.substr(start)), nullptr});
  // lstrip/rstrip: the token swallows the whitespace beside it.
  for (size_t k = 0; k < out.size(); ++k) {
    if (!out[k].token) continue;
    if (out[k].token->lstrip && k > 0 && !out[k - 1].token) out[k - 1].text = std::string(TrimJsEnd(out[k - 1].text));
    if (out[k].token->rstrip && k + 1 < out.size() && !out[k + 1].token)
      out[k + 1].text = std::string(TrimJsStart(out[k + 1].text));
  }
  return out;
}




}  // namespace

struct Tokenizer::Impl {
  std::string tokenizer_json, config_json, sha256;
  Bpe model;
  NormalizeFn normalizer;
  PreTokenizeFn pre_tokenizer;
  DecodeFn decoder;
  std::vector<AddedToken> added;
  std::unordered_map<int64_t, const AddedToken*> added_by_id;
  std::vector<const AddedToken*> split_raw, split_normalized;
  std::shared_ptr<std::unordered_set<std::string>> added_contents = std::make_shared<std::unordered_set<std::string>>();
  std::unordered_set<std::string> special_contents;
  std::vector<int64_t> prefix, suffix;  // what the post-processor adds around one sequence
  int64_t bos = -1, eos = -1, vocab_size = 0;
  bool cleanup = true;

  int64_t IdOf(const std::string& token) const {
    for (const auto& t : added)
      if (t.content == token) return t.id;
    return model.Lookup(token);
  }
  const std::string* TokenOf(int64_t id) const {
    const auto it = added_by_id.find(id);
    return it != added_by_id.end() ? &it->second->content : model.TokenOf(id);
  }
};

namespace {

Status ParsePostProcessor(const json& j, const std::string& where, Tokenizer::Impl& t) {
  if (j.is_null()) return Status::Ok();
  const std::string type = TypeOf(j);
  auto id_of = [&](const std::string& token, const std::string& key) -> Expected<int64_t> {
    const int64_t id = t.IdOf(token);
    SLIM_CHECK_INPUT(id >= 0, where, ".", key, ": token ", json(token).dump(), " is not in the vocabulary");
    return id;
  };
  if (type == "Sequence") {
    SLIM_RETURN_IF_ERROR(CheckKeys(j, {"type", "processors"}, where));
    SLIM_CHECK_INPUT(j.contains("processors") && j["processors"].is_array(), where, ".processors is not an array");
    for (size_t i = 0; i < j["processors"].size(); ++i)
      SLIM_RETURN_IF_ERROR(ParsePostProcessor(j["processors"][i], where + ".processors[" + std::to_string(i) + "]", t));
    return Status::Ok();
  }
  if (type == "ByteLevel") return CheckKeys(j, {"type", "add_prefix_space", "trim_offsets", "use_regex"}, where);
  if (type == "TemplateProcessing") {
    SLIM_RETURN_IF_ERROR(CheckKeys(j, {"type", "single", "pair", "special_tokens"}, where));
    SLIM_CHECK_INPUT(j.contains("single") && j["single"].is_array(), where, ".single is not an array");
    bool seen_sequence = false;
    for (size_t i = 0; i < j["single"].size(); ++i) {
      const json& item = j["single"][i];
      const std::string key = where + ".single[" + std::to_string(i) + "]";
      if (item.contains("Sequence")) {
        SLIM_CHECK_INPUT(!seen_sequence, key, ": a second Sequence in a single-sequence template");
        seen_sequence = true;
      } else if (item.contains("SpecialToken") && item["SpecialToken"].contains("id") &&
                 item["SpecialToken"]["id"].is_string()) {
        SLIM_ASSIGN_OR_RETURN(const int64_t id, id_of(item["SpecialToken"]["id"].get<std::string>(), key.substr(where.size() + 1)));
        (seen_sequence ? t.suffix : t.prefix).push_back(id);
      } else {
        return InvalidInput(key, " is neither {\"Sequence\": ...} nor {\"SpecialToken\": {\"id\": ...}}");
      }
    }
    return Status::Ok();
  }
  if (type == "RobertaProcessing" || type == "BertProcessing") {
    SLIM_RETURN_IF_ERROR(CheckKeys(j, {"type", "sep", "cls", "trim_offsets", "add_prefix_space"}, where));
    for (const char* k : {"cls", "sep"})
      SLIM_CHECK_INPUT(j.contains(k) && j[k].is_array() && j[k].size() == 2 && j[k][0].is_string(), where, ".", k,
                       " is not [token, id]");
    SLIM_ASSIGN_OR_RETURN(const int64_t cls, id_of(j["cls"][0].get<std::string>(), "cls"));
    SLIM_ASSIGN_OR_RETURN(const int64_t sep, id_of(j["sep"][0].get<std::string>(), "sep"));
    t.prefix.push_back(cls);
    t.suffix.push_back(sep);
    return Status::Ok();
  }
  return Unsupported(where, ".type ", json(type).dump(),
                     " is not a supported post-processor (supported: Sequence, ByteLevel, TemplateProcessing, RobertaProcessing, BertProcessing)");
}

// "<s>" or {"content": "<s>", ...} (tokenizer_config.json writes both).
std::string TokenName(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  return "";
}

}  // namespace

Expected<Tokenizer> Tokenizer::FromJson(std::string_view tokenizer_json, std::string_view config_json,
                                        const std::string& where) {
  auto impl = std::make_shared<Impl>();
  Impl& t = *impl;
  t.tokenizer_json = std::string(tokenizer_json);
  t.config_json = std::string(config_json);
  t.sha256 = Sha256Hex((t.tokenizer_json + t.config_json).data(), t.tokenizer_json.size() + t.config_json.size());

  // Duplicate keys: the last one wins, as in the reference (JSON.parse; serde maps).
  SLIM_ASSIGN_OR_RETURN(const json j, ParseJsonText(tokenizer_json, where, 0, DuplicateKeys::kLastWins));
  SLIM_RETURN_IF_ERROR(CheckKeys(j, {"version", "truncation", "padding", "added_tokens", "normalizer", "pre_tokenizer",
                                     "post_processor", "decoder", "model"},
                                 where));
  SLIM_CHECK_INPUT(j.contains("model") && j["model"].is_object(), where, ": no \"model\" object");
  const std::string model_type = TypeOf(j["model"]);
  if (model_type != "BPE" && !(model_type.empty() && j["model"].contains("merges")))
    return Unsupported(where, ": model.type ", json(model_type).dump(), " is not supported (supported: BPE)");
  SLIM_ASSIGN_OR_RETURN(t.model, Bpe::FromJson(j["model"], where));

  // Added tokens before the components: the post-processor names them.
  if (j.contains("added_tokens") && !j["added_tokens"].is_null()) {
    SLIM_CHECK_INPUT(j["added_tokens"].is_array(), where, ": added_tokens is not an array");
    for (size_t i = 0; i < j["added_tokens"].size(); ++i) {
      const json& a = j["added_tokens"][i];
      const std::string key = where + ": added_tokens[" + std::to_string(i) + "]";
      SLIM_RETURN_IF_ERROR(CheckKeys(a, {"id", "content", "single_word", "lstrip", "rstrip", "normalized", "special"}, key));
      SLIM_CHECK_INPUT(a.contains("id") && a["id"].is_number_unsigned() && a["id"].get<uint64_t>() < (uint64_t{1} << 24),
                       key, ".id is not an id below 2^24");
      SLIM_ASSIGN_OR_RETURN(const std::string content, StringAt(a, "content", key, nullptr));
      SLIM_CHECK_INPUT(!content.empty() && SanitizeUtf8(content) == content, key, ".content is empty or not UTF-8");
      AddedToken tok;
      tok.content = content;
      tok.id = static_cast<int64_t>(a["id"].get<uint64_t>());
      SLIM_ASSIGN_OR_RETURN(tok.special, BoolAt(a, "special", key, false));
      SLIM_ASSIGN_OR_RETURN(tok.lstrip, BoolAt(a, "lstrip", key, false));
      SLIM_ASSIGN_OR_RETURN(tok.rstrip, BoolAt(a, "rstrip", key, false));
      SLIM_ASSIGN_OR_RETURN(const bool single_word, BoolAt(a, "single_word", key, false));
      SLIM_CHECK_INPUT(!single_word, key, ".single_word = true is not supported");
      // The reference's default: an added token is normalized unless special.
      SLIM_ASSIGN_OR_RETURN(tok.normalized, BoolAt(a, "normalized", key, !tok.special));
      t.added.push_back(tok);
    }
  }
  SLIM_ASSIGN_OR_RETURN(t.normalizer, MakeNormalizer(j.value("normalizer", json()), where + ": normalizer"));
  // A normalized added token is matched in the normalized text (as its
  // normalized form); the others in the raw text.
  const size_t n_declared = t.added.size();
  for (size_t i = 0; i < n_declared; ++i) {
    if (!t.added[i].normalized || !t.normalizer) continue;
    AddedToken copy = t.added[i];
    copy.content = t.normalizer(copy.content);
    t.added.push_back(copy);
  }
  // Pointers into `added` only now that it stops growing.
  for (size_t i = 0; i < t.added.size(); ++i) {
    const AddedToken* a = &t.added[i];
    if (i >= n_declared) {
      t.split_normalized.push_back(a);
      continue;
    }
    if (!(a->normalized && t.normalizer)) t.split_raw.push_back(a);
    t.added_by_id.emplace(a->id, a);
    t.added_contents->insert(a->content);
    if (a->special) t.special_contents.insert(a->content);
  }
  SLIM_ASSIGN_OR_RETURN(t.pre_tokenizer, MakePreTokenizer(j.value("pre_tokenizer", json()), where + ": pre_tokenizer"));
  SLIM_ASSIGN_OR_RETURN(t.decoder, MakeDecoder(j.value("decoder", json()), where + ": decoder", t.added_contents));
  SLIM_RETURN_IF_ERROR(ParsePostProcessor(j.value("post_processor", json()), where + ": post_processor", t));

  t.vocab_size = t.model.max_id() + 1;
  for (const auto& a : t.added) t.vocab_size = std::max(t.vocab_size, a.id + 1);

  if (!config_json.empty()) {
    const std::string cwhere = where + " (tokenizer_config.json)";
    SLIM_ASSIGN_OR_RETURN(const json c, ParseJsonText(config_json, cwhere, 0, DuplicateKeys::kLastWins));
    SLIM_CHECK_INPUT(c.is_object(), cwhere, ": not a JSON object");
    if (c.contains("clean_up_tokenization_spaces") && c["clean_up_tokenization_spaces"].is_boolean())
      t.cleanup = c["clean_up_tokenization_spaces"].get<bool>();
    if (c.contains("bos_token")) t.bos = t.IdOf(TokenName(c["bos_token"]));
    if (c.contains("eos_token")) t.eos = t.IdOf(TokenName(c["eos_token"]));
    if (c.contains("additional_special_tokens") && c["additional_special_tokens"].is_array())
      for (const auto& s : c["additional_special_tokens"]) t.special_contents.insert(TokenName(s));
  }
  // Without a config, a template's first special token is the BOS.
  if (t.bos < 0 && !t.prefix.empty()) t.bos = t.prefix.front();
  Tokenizer tok;
  tok.impl_ = std::move(impl);
  return tok;
}

Expected<Tokenizer> Tokenizer::Load(const std::string& path) {
  std::string file = path;
  if (IsDirectory(path)) file = path + "/tokenizer.json";
  SLIM_CHECK_INPUT(IsRegularFile(file), file, ": no tokenizer.json here");
  SLIM_ASSIGN_OR_RETURN(const std::string body, ReadFileBytes(file));
  const size_t slash = file.rfind('/');
  const std::string config_path = (slash == std::string::npos ? std::string() : file.substr(0, slash + 1)) + "tokenizer_config.json";
  std::string config;
  if (IsRegularFile(config_path)) {
    SLIM_ASSIGN_OR_RETURN(config, ReadFileBytes(config_path));
  }
  return FromJson(body, config, file);
}

std::vector<int64_t> Tokenizer::Encode(std::string_view raw, bool add_special) const {
  const Impl& t = *impl_;
  const std::string text = SanitizeUtf8(raw);
  std::vector<int64_t> ids;
  if (add_special) ids = t.prefix;
  const std::vector<Section> sections = SplitOnAdded(text, t.split_raw);
  for (size_t s = 0; s < sections.size(); ++s) {
    const Section& sec = sections[s];
    if (sec.text.empty()) continue;
    if (sec.token) {
      ids.push_back(sec.token->id);
      continue;
    }
    const std::string normalized = t.normalizer ? t.normalizer(sec.text) : sec.text;
    if (normalized.empty()) continue;
    for (const Section& sub : SplitOnAdded(normalized, t.split_normalized)) {
      if (sub.text.empty()) continue;
      if (sub.token) {
        ids.push_back(sub.token->id);
        continue;
      }
      const Pieces words = t.pre_tokenizer ? t.pre_tokenizer(Pieces{sub.text}, s) : Pieces{sub.text};
      for (const auto& w : words) t.model.EncodeWord(w, ids);
    }
  }
  if (add_special) ids.insert(ids.end(), t.suffix.begin(), t.suffix.end());
  return ids;
}

Expected<std::string> Tokenizer::Decode(const std::vector<int64_t>& ids, bool skip_special) const {
  const Impl& t = *impl_;
  Pieces tokens;
  tokens.reserve(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    const std::string* tok = t.TokenOf(ids[i]);
    if (!tok && !t.model.unk_token().empty()) tok = &t.model.unk_token();
    SLIM_CHECK_INPUT(tok, "token id ", ids[i], " (position ", i, ") is not in the vocabulary of ", t.vocab_size, " ids");
    if (skip_special && t.special_contents.count(*tok)) continue;
    tokens.push_back(*tok);
  }
  std::string out;
  if (t.decoder) {
    for (const auto& p : t.decoder(std::move(tokens))) out += p;
  } else {
    for (size_t i = 0; i < tokens.size(); ++i) out += (i ? " " : "") + tokens[i];
  }
  if (t.cleanup) {
    // transformers' clean_up_tokenization, in its order.
    static const std::pair<const char*, const char*> kRules[] = {
        {" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"},
        {" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
    for (const auto& [from, to] : kRules) out = ReplaceAllLiteral(out, from, to);
  }
  return out;
}

int64_t Tokenizer::vocab_size() const { return impl_->vocab_size; }
int64_t Tokenizer::bos_id() const { return impl_->bos; }
int64_t Tokenizer::eos_id() const { return impl_->eos; }
bool Tokenizer::is_special(int64_t id) const {
  const std::string* tok = impl_->TokenOf(id);
  return tok && impl_->special_contents.count(*tok);
}
const std::string& Tokenizer::sha256() const { return impl_->sha256; }
const std::string& Tokenizer::tokenizer_json() const { return impl_->tokenizer_json; }
const std::string& Tokenizer::config_json() const { return impl_->config_json; }

std::string FindTokenizerFile(const std::string& model_path) {
  std::string dir = model_path;
  if (!IsDirectory(model_path)) {
    const size_t slash = model_path.rfind('/');
    dir = slash == std::string::npos ? "." : model_path.substr(0, slash);
  }
  const std::string file = dir + "/tokenizer.json";
  return IsRegularFile(file) ? file : std::string();
}

}  // namespace slim::text
