// Shared pieces of the fuzz targets (docs/FUZZING.md).
//
// The readers take paths and memory-map their files, so each target writes
// the input to files in a private directory and calls the reader on them,
// exactly as `slimpack` would. An input may stand for several files: its
// parts are separated by kPartSeparator. Every outcome other than a value
// or a Status meant for bad input (exit 2) is a finding: a sanitizer
// report, a crash, an exception escaping a reader (std::terminate), a hang,
// or a Status of kind internal (exit 3) for a file that is merely hostile.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "libcompress/common/status.h"

namespace slim::fuzz {

// Text, so JSON parts stay JSON for the mutator; in the dictionaries.
inline constexpr std::string_view kPartSeparator = "\n--slimfuzz-part--\n";

// Splits at kPartSeparator into at most max_parts parts; the last part keeps
// any further separators.
std::vector<std::string_view> SplitParts(const uint8_t* data, size_t size, size_t max_parts);

// An empty private directory for this input's files (one per process, under
// $TMPDIR or /tmp, emptied before every input and removed at exit).
const std::string& FreshWorkDir();

// Writes `bytes` to `dir/name` and returns the path.
std::string WriteFile(const std::string& dir, const std::string& name, std::string_view bytes);

// A reader's failure must be a bad-input Status with a message; aborts
// (a finding) otherwise, printing the status.
void ExpectInputError(const Status& status);

}  // namespace slim::fuzz

namespace slim {
struct Model;
}

namespace slim::fuzz {

// What `slimpack run` would do next with a model a reader accepted: shape
// inference, and for a decoder whose weights are small enough to be quick,
// a session (which validates every packed weight against its layout) and
// one step. Failures must be bad-input Statuses too.
void ExerciseModel(Model& model);

}  // namespace slim::fuzz
