// slimpack tokenize: a model's (or a tokenizer.json's) token ids for text,
// and with --decode the text of token ids.
#include <cctype>
#include <charconv>
#include <cstdio>

#include "calib_data/text_dataset.h"
#include "libcompress/common/file_util.h"
#include "libcompress/io/model_loader.h"
#include "libcompress/text/tokenizer.h"
#include "tools/cli.h"

namespace slim::cli {

namespace {

struct TokenizeOptions {
  std::string path, text, file, json;
  bool add_special = false;
  bool decode = false;
  bool skip_special = false;
};

// The ids of one --decode input line: integers separated by spaces, tabs or
// commas (so both "1 2 3" and a JSON array's "[1, 2, 3]" work). `where`
// names the line in errors.
Expected<std::vector<int64_t>> ParseIds(const std::string& line, const std::string& where) {
  std::vector<int64_t> ids;
  size_t i = 0;
  const auto separator = [](char c) {
    return c == ',' || c == '[' || c == ']' || std::isspace(static_cast<unsigned char>(c));
  };
  while (i < line.size()) {
    if (separator(line[i])) {
      ++i;
      continue;
    }
    size_t end = i;
    while (end < line.size() && !separator(line[end])) ++end;
    int64_t id = 0;
    const auto [ptr, ec] = std::from_chars(line.data() + i, line.data() + end, id);
    SLIM_CHECK_INPUT(ec == std::errc() && ptr == line.data() + end && id >= 0, where, ": '",
                     line.substr(i, end - i), "' (column ", i + 1, ") is not a token id");
    ids.push_back(id);
    i = end;
  }
  return ids;
}

// A tokenizer.json, a directory holding one, or any model that carries one
// (a packed file, an .onnx file with tokenizer.json beside it).
Expected<text::Tokenizer> FindTokenizer(const std::string& path, std::vector<std::string>* inputs) {
  const bool json_file = path.size() >= 5 && path.compare(path.size() - 5, 5, ".json") == 0;
  const std::string file = json_file ? path : text::FindTokenizerFile(path);
  if (!file.empty()) {
    inputs->push_back(file);
    return text::Tokenizer::Load(file);
  }
  SLIM_ASSIGN_OR_RETURN(const Model model, LoadModel(path));
  *inputs = model.files;
  SLIM_ASSIGN_OR_RETURN(std::optional<text::Tokenizer> tok, ModelTokenizer(model));
  SLIM_CHECK_INPUT(tok, path, ": the model has no tokenizer (no tokenizer.json beside it or inside it)");
  return std::move(*tok);
}

Status RunTokenize(const TokenizeOptions& opt) {
  std::vector<std::string> inputs{opt.file};
  SLIM_ASSIGN_OR_RETURN(const text::Tokenizer tok, FindTokenizer(opt.path, &inputs));
  SLIM_RETURN_IF_ERROR(CheckOutputs({opt.json}, inputs));
  std::vector<std::string> lines;
  if (!opt.file.empty()) {
    // One input per line ('\n'; a '\r' before it is text); a final newline
    // ends the last line rather than starting an empty one.
    SLIM_ASSIGN_OR_RETURN(const std::string all, ReadFileBytes(opt.file));
    size_t start = 0;
    while (start < all.size()) {
      size_t nl = all.find('\n', start);
      if (nl == std::string::npos) nl = all.size();
      lines.push_back(all.substr(start, nl - start));
      start = nl + 1;
    }
  } else {
    lines.push_back(opt.text);
  }
  if (opt.decode) {
    nlohmann::json texts = nlohmann::json::array();
    for (size_t l = 0; l < lines.size(); ++l) {
      const std::string where = opt.file.empty() ? std::string("--text") : StrCat(opt.file, ":", l + 1);
      SLIM_ASSIGN_OR_RETURN(const std::vector<int64_t> v, ParseIds(lines[l], where));
      // Decode maps an unknown id to the unknown token where there is one;
      // ids given by hand outside the vocabulary are a mistake.
      for (int64_t id : v) {
        SLIM_CHECK_INPUT(id < tok.vocab_size(), where, ": token id ", id, " is outside the vocabulary (",
                         tok.vocab_size(), " ids)");
      }
      auto text = tok.Decode(v, opt.skip_special);
      if (!text.ok()) return text.status().WithContext(where);
      if (HumanOutput(opt.json)) {
        std::fwrite(text->data(), 1, text->size(), stdout);  // byte-level text may hold NUL
        std::fputc('\n', stdout);
      }
      texts.push_back(*text);
    }
    return WriteJson(opt.json, nlohmann::json{{"texts", texts}});
  }
  nlohmann::json ids = nlohmann::json::array();
  for (const auto& line : lines) {
    const std::vector<int64_t> v = tok.Encode(line, opt.add_special);
    if (HumanOutput(opt.json)) {
      for (size_t i = 0; i < v.size(); ++i) std::printf(i ? " %lld" : "%lld", static_cast<long long>(v[i]));
      std::printf("\n");
    }
    ids.push_back(v);
  }
  return WriteJson(opt.json, nlohmann::json{{"ids", ids}});
}

}  // namespace

void AddTokenizeCommand(CLI::App& app, int& exit_code) {
  auto opt = std::make_shared<TokenizeOptions>();
  CLI::App* sub = app.add_subcommand(
      "tokenize",
      "Print the token ids of text with a model's Hugging Face tokenizer (tokenizer.json, and\n"
      "tokenizer_config.json beside it): one line of ids per input line. Special tokens (BOS)\n"
      "only with --add-special. With --decode the other way: each input line is token ids\n"
      "(separated by spaces or commas) and the output is their text (--json keeps texts that\n"
      "hold newlines exact).\n"
      "Example: slimpack tokenize path/to/model --text \"Hello world\"\n"
      "         slimpack tokenize tokenizer.json --file lines.txt --json ids.json\n"
      "         slimpack tokenize path/to/model --decode --text \"15496 995\"");
  sub->add_option("path", opt->path,
                  "A tokenizer.json, a directory holding one, or a model that carries one (a packed file\n"
                  "compiled from such a model, an .onnx file with tokenizer.json beside it)")
      ->required();
  auto* text = sub->add_option("--text", opt->text, "Tokenize this text");
  auto* file = sub->add_option("--file", opt->file, "Tokenize every line of FILE ('\\n'-separated)");
  text->excludes(file);
  auto* add_special = sub->add_flag("--add-special", opt->add_special, "Add the tokenizer's special tokens (BOS, EOS) as its post-processor says");
  sub->add_flag("--decode", opt->decode, "Input lines are token ids; print their text")->excludes(add_special);
  sub->add_flag("--skip-special", opt->skip_special, "With --decode: leave special tokens (BOS, EOS) out of the text")
      ->needs("--decode");
  sub->add_option("--json", opt->json,
                  "Write {\"ids\": [[...], ...]} (with --decode: {\"texts\": [...]}) to FILE ('-' = stdout)");
  sub->callback([opt, sub, &exit_code] {
    if (sub->count("--text") == 0 && sub->count("--file") == 0) {
      exit_code = ReportError(InvalidInput("tokenize: give --text TEXT or --file FILE"));
      return;
    }
    const Status st = RunTokenize(*opt);
    exit_code = st.ok() ? kExitOk : ReportError(st);
  });
}

}  // namespace slim::cli
