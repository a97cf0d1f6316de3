// Runs a user's command (an argument vector, no shell) and waits for it,
// with extra environment variables and a timeout: the external fine-tuning
// hook (passes/hook_external.h).
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "libcompress/common/status.h"

namespace slim {

// Exit status of the command (0..255). A command that cannot be started,
// is killed by a signal, or runs past `timeout_s` (it is then killed, with
// its process group) is kInvalidInput naming argv[0].
Expected<int> RunCommand(const std::vector<std::string>& argv,
                         const std::vector<std::pair<std::string, std::string>>& env, double timeout_s);

}  // namespace slim
