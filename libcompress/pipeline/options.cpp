// Option checking and formatting.
#include "libcompress/pipeline/options.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <sstream>

namespace slim {
namespace {

std::string JoinChoices(const std::vector<std::string>& c) {
  std::string s;
  for (const auto& v : c) s += (s.empty() ? "" : ", ") + v;
  return s;
}

std::string RangeText(const OptionSpec& spec) {
  if (!spec.choices.empty()) return "{" + JoinChoices(spec.choices) + "}";
  if (spec.type != OptionType::kInt && spec.type != OptionType::kFloat) return "";
  std::ostringstream os;
  os << "[";
  if (std::isinf(spec.min)) {
    os << "-inf";
  } else {
    os << spec.min;
  }
  os << ", ";
  if (std::isinf(spec.max)) {
    os << "inf";
  } else {
    os << spec.max;
  }
  os << "]";
  return os.str();
}

}  // namespace

std::string FormatOptionValue(const OptionValue& v) {
  if (const bool* b = std::get_if<bool>(&v)) return *b ? "true" : "false";
  if (const int64_t* i = std::get_if<int64_t>(&v)) return std::to_string(*i);
  if (const double* d = std::get_if<double>(&v)) {
    std::ostringstream os;
    os << *d;
    return os.str();
  }
  if (const StringList* l = std::get_if<StringList>(&v)) {
    std::string out = "[";
    for (size_t i = 0; i < l->size(); ++i) out += (i ? ", \"" : "\"") + (*l)[i] + "\"";
    return out + "]";
  }
  return std::get<std::string>(v);
}

Status CheckOptionValue(const std::string& pass, const OptionSpec& spec, const OptionValue& v) {
  const std::string where = StrCat("pass '", pass, "' option '", spec.key, "'");
  switch (spec.type) {
    case OptionType::kBool:
      SLIM_CHECK_INPUT(std::holds_alternative<bool>(v), where, ": expected a bool, got ",
                       FormatOptionValue(v));
      return Status::Ok();
    case OptionType::kInt: {
      SLIM_CHECK_INPUT(std::holds_alternative<int64_t>(v), where, ": expected an integer, got ",
                       FormatOptionValue(v));
      const int64_t x = std::get<int64_t>(v);
      if (!spec.choices.empty()) {
        SLIM_CHECK_INPUT(std::find(spec.choices.begin(), spec.choices.end(), std::to_string(x)) !=
                             spec.choices.end(),
                         where, ": ", x, " is not one of ", RangeText(spec));
      }
      SLIM_CHECK_INPUT(static_cast<double>(x) >= spec.min && static_cast<double>(x) <= spec.max,
                       where, ": ", x, " is outside ", RangeText(spec));
      return Status::Ok();
    }
    case OptionType::kFloat: {
      SLIM_CHECK_INPUT(std::holds_alternative<double>(v), where, ": expected a number, got ",
                       FormatOptionValue(v));
      const double x = std::get<double>(v);
      SLIM_CHECK_INPUT(std::isfinite(x) && x >= spec.min && x <= spec.max, where, ": ", x,
                       " is outside ", RangeText(spec));
      return Status::Ok();
    }
    case OptionType::kString:
      SLIM_CHECK_INPUT(std::holds_alternative<std::string>(v), where, ": expected a string, got ",
                       FormatOptionValue(v));
      return Status::Ok();
    case OptionType::kStringList:
      SLIM_CHECK_INPUT(std::holds_alternative<StringList>(v), where, ": expected a list of strings, got ",
                       FormatOptionValue(v));
      return Status::Ok();
    case OptionType::kEnum: {
      const std::string* s = std::get_if<std::string>(&v);
      SLIM_CHECK_INPUT(s != nullptr, where, ": expected one of ", RangeText(spec), ", got ",
                       FormatOptionValue(v));
      SLIM_CHECK_INPUT(std::find(spec.choices.begin(), spec.choices.end(), *s) != spec.choices.end(),
                       where, ": '", *s, "' is not one of ", RangeText(spec));
      return Status::Ok();
    }
  }
  return Internal(where, ": unknown option type");
}

Expected<OptionValue> ParseOptionText(const std::string& pass, const OptionSpec& spec,
                                      const std::string& text) {
  const std::string where = StrCat("pass '", pass, "' option '", spec.key, "'");
  OptionValue v;
  switch (spec.type) {
    case OptionType::kBool:
      if (text == "true" || text == "1") {
        v = true;
      } else if (text == "false" || text == "0") {
        v = false;
      } else {
        return InvalidInput(where, ": '", text, "' is not a bool (true/false)");
      }
      break;
    case OptionType::kInt: {
      errno = 0;
      char* end = nullptr;
      const long long x = std::strtoll(text.c_str(), &end, 10);
      SLIM_CHECK_INPUT(!text.empty() && end && *end == '\0' && errno == 0, where, ": '", text,
                       "' is not an integer");
      v = static_cast<int64_t>(x);
      break;
    }
    case OptionType::kFloat: {
      errno = 0;
      char* end = nullptr;
      const double x = std::strtod(text.c_str(), &end);
      SLIM_CHECK_INPUT(!text.empty() && end && *end == '\0' && errno == 0, where, ": '", text,
                       "' is not a number");
      v = x;
      break;
    }
    case OptionType::kString:
    case OptionType::kEnum:
      v = text;
      break;
    case OptionType::kStringList:
      return InvalidInput(where, ": a list of strings is set in a recipe (JSON array), not as text");
  }
  SLIM_RETURN_IF_ERROR(CheckOptionValue(pass, spec, v));
  return v;
}

Expected<Options> ResolveOptions(const Pass& pass, const Options& given) {
  const PassInfo& info = pass.info();
  for (const auto& [key, value] : given.values()) {
    const OptionSpec* spec = info.FindOption(key);
    if (!spec) {
      std::string known;
      for (const auto& o : info.options) known += (known.empty() ? "" : ", ") + o.key;
      return InvalidInput("pass '", info.name, "' has no option '", key, "' (options: ", known,
                          ")");
    }
    SLIM_RETURN_IF_ERROR(CheckOptionValue(info.name, *spec, value));
  }
  Options out;
  for (const auto& spec : info.options) {
    out.Set(spec.key, given.Has(spec.key) ? given.values().at(spec.key) : spec.default_value);
  }
  SLIM_RETURN_IF_ERROR(pass.ValidateOptions(out));
  return out;
}

Status CheckOverrideOptions(const Pass& pass, const Options& base, const Options& given,
                            const std::string& pattern) {
  const PassInfo& info = pass.info();
  Options merged = base;
  for (const auto& [key, value] : given.values()) {
    const OptionSpec* spec = info.FindOption(key);
    SLIM_CHECK_INPUT(spec != nullptr, "pass '", info.name, "' override '", pattern,
                     "': no option '", key, "'");
    SLIM_CHECK_INPUT(spec->per_tensor, "pass '", info.name, "' override '", pattern,
                     "': option '", key, "' applies to the whole pass, not per tensor");
    SLIM_RETURN_IF_ERROR(CheckOptionValue(info.name, *spec, value));
    merged.Set(key, value);
  }
  Status s = pass.ValidateOptions(merged);
  return s.WithContext(StrCat("pass '", info.name, "' override '", pattern, "'"));
}

std::string DescribePass(const PassInfo& info) {
  std::ostringstream os;
  os << info.name << ": " << info.summary << "\n";
  for (const auto& o : info.options) {
    os << "  " << o.key << " (" << OptionTypeName(o.type);
    const std::string range = RangeText(o);
    if (!range.empty()) os << " " << range;
    os << ", default " << FormatOptionValue(o.default_value);
    if (o.per_tensor) os << ", per tensor";
    os << "): " << o.help << "\n";
  }
  return os.str();
}

}  // namespace slim
