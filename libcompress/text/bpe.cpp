#include "libcompress/text/bpe.h"

#include <algorithm>
#include <cstdio>
#include <queue>
#include <tuple>

#include "libcompress/text/utf8.h"

namespace slim::text {

namespace {

uint64_t PairKey(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }

// Keys of the model object and the values this code implements; any other
// key, or another value, is refused so no option is silently ignored.
Status CheckModelOptions(const nlohmann::json& m, const std::string& where) {
  for (const auto& [key, value] : m.items()) {
    if (key == "type" || key == "vocab" || key == "merges" || key == "unk_token" || key == "byte_fallback" ||
        key == "ignore_merges" || key == "fuse_unk")
      continue;
    // dropout: training-time randomness; prefixes/suffixes: word-piece style BPE.
    const bool neutral = value.is_null() || (value.is_string() && value.get<std::string>().empty()) ||
                         (key == "dropout" && value.is_number() && value.get<double>() == 0.0);
    if ((key == "dropout" || key == "continuing_subword_prefix" || key == "end_of_word_suffix") && neutral) continue;
    return Unsupported(where, ": model.", key, " = ", value.dump(), " is not supported");
  }
  return Status::Ok();
}

}  // namespace

Expected<Bpe> Bpe::FromJson(const nlohmann::json& m, const std::string& where) {
  SLIM_RETURN_IF_ERROR(CheckModelOptions(m, where));
  Bpe bpe;
  SLIM_CHECK_INPUT(m.contains("vocab") && m["vocab"].is_object(), where, ": model.vocab is not an object");
  const auto& vocab = m["vocab"];
  // Real vocabularies number their tokens 0..n-1; the cap (room for gaps,
  // never more than 2^24) keeps one hostile id in a small file from sizing
  // the id table.
  const int64_t kMaxId = std::min<int64_t>(int64_t{1} << 24, 2 * static_cast<int64_t>(vocab.size()) + 1024);
  for (const auto& [token, id] : vocab.items()) {
    SLIM_CHECK_INPUT(id.is_number_integer() && id.get<int64_t>() >= 0 && id.get<int64_t>() < kMaxId, where,
                     ": model.vocab[", nlohmann::json(token).dump(), "] is not an id in [0, ", kMaxId, ")");
    const int32_t i = static_cast<int32_t>(id.get<int64_t>());
    SLIM_CHECK_INPUT(SanitizeUtf8(token) == token, where, ": model.vocab has a token that is not valid UTF-8");
    if (static_cast<size_t>(i) >= bpe.id_to_token_.size()) bpe.id_to_token_.resize(i + 1);
    SLIM_CHECK_INPUT(bpe.id_to_token_[i].empty(), where, ": model.vocab gives id ", i, " to two tokens");
    bpe.id_to_token_[i] = token;
    bpe.vocab_.emplace(token, i);
  }
  SLIM_CHECK_INPUT(!bpe.vocab_.empty(), where, ": model.vocab is empty");

  SLIM_CHECK_INPUT(m.contains("merges") && m["merges"].is_array(), where, ": model.merges is not an array");
  const auto& merges = m["merges"];
  for (size_t r = 0; r < merges.size(); ++r) {
    // Two forms: "left right" (split at the first space) or ["left", "right"].
    std::string left, right;
    const auto& e = merges[r];
    if (e.is_string()) {
      const std::string s = e.get<std::string>();
      const size_t sp = s.find(' ');
      SLIM_CHECK_INPUT(sp != std::string::npos, where, ": model.merges[", r, "] = ", e.dump(),
                       " is not \"left right\"");
      left = s.substr(0, sp);
      right = s.substr(sp + 1);
    } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
      left = e[0].get<std::string>();
      right = e[1].get<std::string>();
    } else {
      return InvalidInput(where, ": model.merges[", r, "] is neither \"left right\" nor [left, right]");
    }
    const int64_t a = bpe.Lookup(left), b = bpe.Lookup(right), ab = bpe.Lookup(left + right);
    SLIM_CHECK_INPUT(a >= 0 && b >= 0 && ab >= 0, where, ": model.merges[", r, "] = ", e.dump(),
                     " names a token outside the vocabulary");
    // A repeated pair keeps its first (best) rank.
    bpe.merges_.emplace(PairKey(static_cast<int32_t>(a), static_cast<int32_t>(b)),
                        std::make_pair(static_cast<int32_t>(r), static_cast<int32_t>(ab)));
  }

  if (m.contains("byte_fallback")) {
    SLIM_CHECK_INPUT(m["byte_fallback"].is_boolean(), where, ": model.byte_fallback is not a boolean");
    bpe.byte_fallback_ = m["byte_fallback"].get<bool>();
  }
  if (m.contains("ignore_merges")) {
    SLIM_CHECK_INPUT(m["ignore_merges"].is_boolean(), where, ": model.ignore_merges is not a boolean");
    bpe.ignore_merges_ = m["ignore_merges"].get<bool>();
  }
  if (m.contains("unk_token") && !m["unk_token"].is_null()) {
    SLIM_CHECK_INPUT(m["unk_token"].is_string(), where, ": model.unk_token is not a string");
    bpe.unk_token_ = m["unk_token"].get<std::string>();
    const int64_t u = bpe.Lookup(bpe.unk_token_);
    SLIM_CHECK_INPUT(u >= 0, where, ": model.unk_token ", m["unk_token"].dump(), " is not in the vocabulary");
    bpe.unk_ = static_cast<int32_t>(u);
  }
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    bpe.byte_tokens_[b] = static_cast<int32_t>(bpe.Lookup(name));
  }
  return bpe;
}

int64_t Bpe::Lookup(std::string_view token) const {
  const auto it = vocab_.find(std::string(token));
  return it == vocab_.end() ? -1 : it->second;
}

const std::string* Bpe::TokenOf(int64_t id) const {
  if (id < 0 || id >= static_cast<int64_t>(id_to_token_.size())) return nullptr;
  const std::string& t = id_to_token_[static_cast<size_t>(id)];
  return t.empty() ? nullptr : &t;
}

// Merges by rank, lowest first and leftmost among equals, as the reference
// does (a heap of candidate pairs checked when popped, so a word of n code
// points costs O(n log n): SentencePiece-style files have no pre-tokenizer
// and hand whole lines to the model).
void Bpe::EncodeWord(std::string_view word, std::vector<int64_t>& ids) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    const int64_t whole = Lookup(word);
    if (whole >= 0) {
      ids.push_back(whole);
      return;
    }
  }
  const bool cacheable = word.size() < 256;
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_->mu);
    const auto it = cache_->words.find(std::string(word));
    if (it != cache_->words.end()) {
      ids.insert(ids.end(), it->second.begin(), it->second.end());
      return;
    }
  }

  struct Symbol {
    int32_t id;
    uint32_t begin, end;  // bytes of `word`
    int32_t prev, next;   // -1 at the ends
    bool alive;
  };
  std::vector<Symbol> sym;
  for (size_t i = 0; i < word.size();) {
    const size_t len = Utf8Length(static_cast<unsigned char>(word[i]));
    const int32_t n = static_cast<int32_t>(sym.size());
    sym.push_back({static_cast<int32_t>(Lookup(word.substr(i, len))), static_cast<uint32_t>(i),
                   static_cast<uint32_t>(i + len), n - 1, -1, true});
    if (n > 0) sym[n - 1].next = n;
    i += len;
  }
  // (rank, left symbol, left id, right id): stale entries fail the id check.
  using Cand = std::tuple<int32_t, int32_t, int32_t, int32_t>;
  std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> heap;
  auto push = [&](int32_t left) {
    if (left < 0) return;
    const int32_t right = sym[left].next;
    if (right < 0 || sym[left].id < 0 || sym[right].id < 0) return;
    const auto it = merges_.find(PairKey(sym[left].id, sym[right].id));
    if (it != merges_.end()) heap.emplace(it->second.first, left, sym[left].id, sym[right].id);
  };
  for (int32_t i = 0; i + 1 < static_cast<int32_t>(sym.size()); ++i) push(i);
  while (!heap.empty()) {
    const auto [rank, left, lid, rid] = heap.top();
    heap.pop();
    Symbol& l = sym[left];
    if (!l.alive || l.id != lid || l.next < 0) continue;
    Symbol& r = sym[l.next];
    if (r.id != rid) continue;
    l.id = merges_.at(PairKey(lid, rid)).second;
    l.end = r.end;
    r.alive = false;
    l.next = r.next;
    if (r.next >= 0) sym[r.next].prev = left;
    push(l.prev);
    push(left);
  }

  std::vector<int32_t> out;
  for (int32_t i = sym.empty() ? -1 : 0; i >= 0; i = sym[i].next) {
    const Symbol& s = sym[i];
    if (s.id >= 0) {
      out.push_back(s.id);
      continue;
    }
    bool fell_back = false;
    if (byte_fallback_) {
      fell_back = true;
      for (uint32_t b = s.begin; b < s.end; ++b)
        fell_back = fell_back && byte_tokens_[static_cast<unsigned char>(word[b])] >= 0;
      if (fell_back)
        for (uint32_t b = s.begin; b < s.end; ++b) out.push_back(byte_tokens_[static_cast<unsigned char>(word[b])]);
    }
    // Neither in the vocabulary nor expressible in bytes: the unknown token,
    // or nothing when the model has none (what the reference does).
    if (!fell_back && unk_ >= 0) out.push_back(unk_);
  }
  ids.insert(ids.end(), out.begin(), out.end());
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_->mu);
    if (cache_->words.size() >= 65536) cache_->words.clear();  // bounded memory on long inputs
    cache_->words.emplace(std::string(word), std::move(out));
  }
}

}  // namespace slim::text
