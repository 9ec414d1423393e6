// Helpers shared by the runtime tests: scratch directories, files, and the independent references (the
// JavaScript tokenizer and Jinja engine in tests/js/, the Python model in reference_llama.py) run as
// child processes.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <string_view>

namespace fusec::rt::testing {

/// A directory removed when the test ends.
class ScratchDir {
 public:
  explicit ScratchDir(const std::string& name)
      : path_(std::filesystem::temp_directory_path() / ("fusec_" + name + "_" + std::to_string(::getpid()))) {
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

inline void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

/// Runs `command` through the shell; its exit status.
inline int RunCommand(const std::string& command) {
  int status = std::system(command.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/// Sends `request` to tests/js/reference.mjs and returns its answer. Fails the test (and returns null) when
/// Node.js or the packages are missing: `make test` installs them (scripts/install-js-deps.sh).
inline nlohmann::json AskJavaScriptReference(const nlohmann::json& request) {
  ScratchDir dir("js_reference");
  WriteFile(dir / "request.json", request.dump());
  std::string js = FUSEC_TESTS_JS_DIR;
  if (!std::filesystem::exists(js + "/node_modules/@huggingface/jinja")) {
    ADD_FAILURE() << "the JavaScript references are not installed: run scripts/install-js-deps.sh";
    return nullptr;
  }
  int status = RunCommand("node " + js + "/reference.mjs < " + (dir / "request.json") + " > " + (dir / "answer.json"));
  if (status != 0) {
    ADD_FAILURE() << "node tests/js/reference.mjs failed with status " << status;
    return nullptr;
  }
  return nlohmann::json::parse(ReadFile(dir / "answer.json"));
}

/// Standard base64 (RFC 4648, padded), as tokenizer.json holds a Precompiled charsmap.
inline std::string EncodeBase64(std::string_view bytes) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (size_t i = 0; i < bytes.size(); i += 3) {
    uint32_t bits = static_cast<uint8_t>(bytes[i]) << 16;
    if (i + 1 < bytes.size()) bits |= static_cast<uint8_t>(bytes[i + 1]) << 8;
    if (i + 2 < bytes.size()) bits |= static_cast<uint8_t>(bytes[i + 2]);
    out += kAlphabet[(bits >> 18) & 63];
    out += kAlphabet[(bits >> 12) & 63];
    out += i + 1 < bytes.size() ? kAlphabet[(bits >> 6) & 63] : '=';
    out += i + 2 < bytes.size() ? kAlphabet[bits & 63] : '=';
  }
  return out;
}

}  // namespace fusec::rt::testing
