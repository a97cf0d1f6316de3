// The pass registry: every pass slimpack knows, in one explicit list
// (registry.cpp), looked up by name.
#pragma once

#include <string>
#include <vector>

#include "libcompress/pipeline/pass.h"

namespace slim {

// Every pass, in the order `slimpack passes` lists them.
const std::vector<const Pass*>& AllPasses();
// nullptr when no pass has that name.
const Pass* FindPass(const std::string& name);

}  // namespace slim
