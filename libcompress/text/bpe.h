// The BPE model of a tokenizer.json: a vocabulary, merges ranked by their
// order, optional byte fallback (<0xAB> tokens for characters outside the
// vocabulary) and an optional unknown token. Internal to libcompress/text.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "libcompress/common/status.h"

namespace slim::text {

class Bpe {
 public:
  // `model` is tokenizer.json's "model" object (type BPE); `where` prefixes errors.
  static Expected<Bpe> FromJson(const nlohmann::json& model, const std::string& where);

  // Appends the ids of one pre-tokenized word (valid UTF-8).
  void EncodeWord(std::string_view word, std::vector<int64_t>& ids) const;

  int64_t Lookup(std::string_view token) const;  // -1 when absent
  const std::string* TokenOf(int64_t id) const;  // nullptr when absent
  int64_t max_id() const { return static_cast<int64_t>(id_to_token_.size()) - 1; }
  const std::string& unk_token() const { return unk_token_; }

 private:
  std::unordered_map<std::string, int32_t> vocab_;
  std::vector<std::string> id_to_token_;     // "" for ids the vocabulary skips
  std::unordered_map<uint64_t, std::pair<int32_t, int32_t>> merges_;  // (left id, right id) -> (rank, merged id)
  bool byte_fallback_ = false;
  bool ignore_merges_ = false;
  int32_t unk_ = -1;
  std::string unk_token_;
  int32_t byte_tokens_[256] = {};  // id of <0xAB>, or -1

  // Words seen before (speed only: results do not depend on it).
  struct Cache {
    std::mutex mu;
    std::unordered_map<std::string, std::vector<int32_t>> words;
  };
  std::unique_ptr<Cache> cache_ = std::make_unique<Cache>();
};

}  // namespace slim::text
