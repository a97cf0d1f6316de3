// Option values: checking against a pass's declared OptionSpecs, parsing from
// text (command line), formatting, and the `slimpack passes` description.
// Every message names the pass and the option.
#pragma once

#include <string>

#include "libcompress/pipeline/pass.h"

namespace slim {

std::string FormatOptionValue(const OptionValue& v);

// Type, range and choices of one value.
Status CheckOptionValue(const std::string& pass, const OptionSpec& spec, const OptionValue& v);

// "64", "true"/"false", "int8", "0.5" according to spec.type.
Expected<OptionValue> ParseOptionText(const std::string& pass, const OptionSpec& spec,
                                      const std::string& text);

// The pass's options: every key of `given` must be declared and valid;
// undeclared keys are filled with defaults; then Pass::ValidateOptions.
Expected<Options> ResolveOptions(const Pass& pass, const Options& given);

// Options of a per-tensor override: declared, per_tensor, valid values, and
// valid in combination with `base` (the resolved pass options).
Status CheckOverrideOptions(const Pass& pass, const Options& base, const Options& given,
                            const std::string& pattern);

// Human description of a pass and its options (`slimpack passes`).
std::string DescribePass(const PassInfo& info);

}  // namespace slim
