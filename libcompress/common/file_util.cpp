#include "libcompress/common/file_util.h"

#include <sys/stat.h>

#include <fstream>
#include <sstream>

namespace slim {

bool PathExists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

bool IsDirectory(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool IsRegularFile(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

Expected<std::string> ReadFileBytes(const std::string& path, std::string_view what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return InvalidInput(path, ": cannot open", what.empty() ? "" : " ", what);
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return InvalidInput(path, ": read error");
  return ss.str();
}

}  // namespace slim
