#include "calib_data/token_dataset.h"
#include "libcompress/common/file_util.h"
#include "libcompress/common/json_parse.h"

#include <nlohmann/json.hpp>

#include "libcompress/common/sha256.h"

namespace slim {

size_t TokenDataset::total_tokens() const {
  size_t n = 0;
  for (const auto& s : sequences) n += s.size();
  return n;
}

Expected<TokenDataset> ReadTokenDataset(const std::string& path) {
  SLIM_ASSIGN_OR_RETURN(const std::string bytes, ReadFileBytes(path, "token dataset"));
  SLIM_ASSIGN_OR_RETURN(const nlohmann::json j, ParseJsonText(bytes, path));
  SLIM_CHECK_INPUT(j.is_object(), path, ": expected a JSON object with \"sequences\"");
  TokenDataset ds;
  ds.sha256 = Sha256Hex(bytes.data(), bytes.size());
  if (j.contains("vocab_size")) {
    SLIM_CHECK_INPUT(j["vocab_size"].is_number_integer() && j["vocab_size"].get<int64_t>() > 0,
                     path, ": \"vocab_size\" must be a positive integer");
    ds.vocab_size = j["vocab_size"].get<int64_t>();
  }
  if (j.contains("bos") && j["bos"].is_number_integer()) ds.bos = j["bos"].get<int64_t>();
  SLIM_CHECK_INPUT(j.contains("sequences") && j["sequences"].is_array(), path,
                   ": missing key \"sequences\" (an array of token-id arrays)");
  const auto& seqs = j["sequences"];
  SLIM_CHECK_INPUT(!seqs.empty(), path, ": \"sequences\" is empty");
  for (size_t s = 0; s < seqs.size(); ++s) {
    SLIM_CHECK_INPUT(seqs[s].is_array() && !seqs[s].empty(), path, ": sequence ", s,
                     " is not a non-empty array of token ids");
    std::vector<int64_t> seq;
    seq.reserve(seqs[s].size());
    for (size_t t = 0; t < seqs[s].size(); ++t) {
      const auto& v = seqs[s][t];
      SLIM_CHECK_INPUT(v.is_number_integer(), path, ": sequence ", s, " position ", t,
                       ": token id is not an integer");
      const int64_t id = v.get<int64_t>();
      SLIM_CHECK_INPUT(id >= 0 && (ds.vocab_size == 0 || id < ds.vocab_size), path, ": sequence ",
                       s, " position ", t, ": token id ", id, " is outside the vocabulary [0, ",
                       ds.vocab_size, ")");
      seq.push_back(id);
    }
    ds.sequences.push_back(std::move(seq));
  }
  return ds;
}

}  // namespace slim
