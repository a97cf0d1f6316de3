// ParseJsonText, the one parser of untrusted JSON: duplicate keys are
// rejected (naming the key and where), except for the tokenizer's
// last-wins mode; nesting is capped; errors give file offsets.
#include <catch2/catch.hpp>

#include <string>

#include "libcompress/common/json_parse.h"
#include "libcompress/pipeline/recipe.h"

namespace slim {
namespace {

using Catch::Matchers::Contains;

TEST_CASE("json: a key twice in one object is an error naming it and its parent", "[io][json]") {
  auto top = ParseJsonText(R"({"a": 1, "b": 2, "a": 3})", "f.json");
  REQUIRE_FALSE(top.ok());
  CHECK(top.status().code() == StatusCode::kInvalidInput);
  CHECK_THAT(top.status().message(), Contains("f.json: key 'a' appears twice in the top-level object"));
  auto in_array = ParseJsonText(R"([{"a": 1}, {"b": 1, "b": 2}])", "f.json");
  REQUIRE_FALSE(in_array.ok());
  CHECK_THAT(in_array.status().message(), Contains("key 'b' appears twice in an object"));

  auto nested = ParseJsonText(R"({"passes": [{"pass": "x"}, {"pass": "y", "options": {"k": 1, "k": 2}}]})", "r.json");
  REQUIRE_FALSE(nested.ok());
  CHECK_THAT(nested.status().message(), Contains("key 'k' appears twice in an object under 'options'"));
  // The second element of an array is under the array's key, not under the
  // last key of the first element.
  auto sibling = ParseJsonText(R"({"passes": [{"pass": "a"}, {"pass": "b", "pass": "c"}]})", "r.json");
  REQUIRE_FALSE(sibling.ok());
  CHECK_THAT(sibling.status().message(), Contains("key 'pass' appears twice in an object under 'passes'"));

  // The same key in sibling objects, or in an object and its child, is fine.
  auto ok = ParseJsonText(R"({"a": {"a": 1}, "b": [{"a": 1}, {"a": 2}], "c": {"x": {"y": 1}, "y": 2}})", "f.json");
  REQUIRE(ok.ok());
  CHECK((*ok)["b"][1]["a"] == 2);

  auto last = ParseJsonText(R"({"a": 1, "a": 3})", "tokenizer.json", 0, DuplicateKeys::kLastWins);
  REQUIRE(last.ok());
  CHECK((*last)["a"] == 3);
}

TEST_CASE("json: depth cap and byte offsets", "[io][json]") {
  const std::string deep = std::string(kMaxJsonDepth + 2, '[') + std::string(kMaxJsonDepth + 2, ']');
  auto d = ParseJsonText(deep, "deep.json");
  REQUIRE_FALSE(d.ok());
  CHECK_THAT(d.status().message(), Contains("nested deeper than"));
  auto bad = ParseJsonText(R"({"a": tru})", "bad.json", 100);
  REQUIRE_FALSE(bad.ok());
  CHECK_THAT(bad.status().message(), Contains("bad.json: not valid JSON at byte 10"));  // 100 + a few
}

TEST_CASE("json: a recipe that sets an option twice is refused, not read as the last value", "[io][json]") {
  auto r = ParseRecipe(R"({"passes": [{"pass": "quantize_int4", "options": {"group_size": 32, "group_size": 128}}]})",
                       "twice.json");
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(), Contains("twice.json"));
  CHECK_THAT(r.status().message(), Contains("'group_size' appears twice"));
}

}  // namespace
}  // namespace slim
