#include "calib_data/text_dataset.h"
#include "libcompress/common/file_util.h"


#include "libcompress/common/json_parse.h"
#include "libcompress/common/sha256.h"

namespace slim {

namespace {

bool EndsWith(const std::string& s, const char* suffix) {
  const std::string x(suffix);
  return s.size() >= x.size() && s.compare(s.size() - x.size(), x.size(), x) == 0;
}

void AppendWindows(const std::vector<int64_t>& ids, const std::vector<int64_t>& prefix, int64_t seq_len,
                   std::vector<std::vector<int64_t>>* out) {
  const size_t body = static_cast<size_t>(seq_len) - prefix.size();
  for (size_t start = 0; start < ids.size(); start += body) {
    std::vector<int64_t> w = prefix;
    const size_t end = std::min(ids.size(), start + body);
    w.insert(w.end(), ids.begin() + static_cast<std::ptrdiff_t>(start), ids.begin() + static_cast<std::ptrdiff_t>(end));
    if (w.size() >= 2) out->push_back(std::move(w));
  }
}

}  // namespace

bool IsTextDataPath(const std::string& path) { return EndsWith(path, ".txt") || EndsWith(path, ".jsonl"); }

Expected<TokenDataset> ReadDataset(const std::string& path, const text::Tokenizer* tok, int64_t seq_len) {
  if (!IsTextDataPath(path)) return ReadTokenDataset(path);
  SLIM_CHECK_INPUT(tok, path, ": text data needs the model's tokenizer (tokenizer.json beside the model, "
                   "or inside a packed file compiled from such a model); token-id JSON needs none");
  SLIM_ASSIGN_OR_RETURN(const std::string bytes, ReadFileBytes(path));
  // A special prefix as long as the window leaves no room for text.
  const std::vector<int64_t> prefix = tok->Encode("", /*add_special=*/true);
  SLIM_CHECK_INPUT(seq_len > static_cast<int64_t>(prefix.size()) + 1, path, ": --seq-len ", seq_len,
                   " leaves no room for text after the ", prefix.size(), " special token(s) of each window");
  TokenDataset ds;
  ds.vocab_size = tok->vocab_size();
  ds.bos = tok->bos_id();
  ds.sha256 = Sha256Hex(bytes.data(), bytes.size());
  ds.tokenizer_sha256 = tok->sha256();
  if (EndsWith(path, ".txt")) {
    ds.kind = "text";
    AppendWindows(tok->Encode(bytes), prefix, seq_len, &ds.sequences);
  } else {
    ds.kind = "jsonl";
    size_t start = 0, line_no = 0;
    while (start < bytes.size()) {
      size_t nl = bytes.find('\n', start);
      if (nl == std::string::npos) nl = bytes.size();
      const std::string_view line(bytes.data() + start, nl - start);
      ++line_no;
      start = nl + 1;
      if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;  // blank lines
      const std::string where = path + ":" + std::to_string(line_no);
      SLIM_ASSIGN_OR_RETURN(const nlohmann::json rec, ParseJsonText(line, where));
      SLIM_CHECK_INPUT(rec.is_object() && rec.contains("text") && rec["text"].is_string(), where,
                       ": expected an object with a string \"text\"");
      AppendWindows(tok->Encode(rec["text"].get<std::string>()), prefix, seq_len, &ds.sequences);
    }
  }
  SLIM_CHECK_INPUT(!ds.sequences.empty(), path, ": no window of at least 2 tokens in the text");
  return ds;
}

Expected<std::optional<text::Tokenizer>> ModelTokenizer(const Model& model) {
  if (!model.tokenizer) return std::optional<text::Tokenizer>();
  SLIM_ASSIGN_OR_RETURN(text::Tokenizer t,
                        text::Tokenizer::FromJson(model.tokenizer->json, model.tokenizer->config,
                                                  model.path + " (tokenizer.json)"));
  return std::optional<text::Tokenizer>(std::move(t));
}

}  // namespace slim
