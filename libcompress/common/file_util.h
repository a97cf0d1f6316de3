// Small filesystem queries and whole-file reads shared by the readers and
// the tools (stat-based, no exceptions).
#pragma once

#include <string>
#include <string_view>

#include "libcompress/common/status.h"

namespace slim {

bool PathExists(const std::string& path);
bool IsDirectory(const std::string& path);    // follows symlinks
bool IsRegularFile(const std::string& path);  // follows symlinks

// The file's bytes. Bad input naming the path when it cannot be opened
// ("PATH: cannot open" + " " + what, e.g. "recipe") or read.
Expected<std::string> ReadFileBytes(const std::string& path, std::string_view what = "");

}  // namespace slim
