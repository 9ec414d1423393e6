#include "compiler/source/source.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <system_error>

namespace fusec {
namespace {

bool IsUtf8Continuation(unsigned char c) { return (c & 0xC0) == 0x80; }

}  // namespace

SourceSpan SourceSpan::Cover(SourceSpan a, SourceSpan b) {
  if (!a.valid()) return b;
  if (!b.valid() || a.file != b.file) return a;
  return SourceSpan{a.file, std::min(a.begin, b.begin), std::max(a.end, b.end)};
}

SourceFile::SourceFile(std::string display_name, std::string canonical_path, std::string text)
    : display_name_(std::move(display_name)),
      canonical_path_(std::move(canonical_path)),
      text_(std::move(text)) {
  if (text_.starts_with(kUtf8ByteOrderMark)) text_.erase(0, kUtf8ByteOrderMark.size());
  line_starts_.push_back(0);
  for (uint32_t i = 0; i < text_.size(); ++i) {
    if (text_[i] == '\n') line_starts_.push_back(i + 1);
  }
}

LineColumn SourceFile::Locate(uint32_t offset) const {
  offset = std::min<uint32_t>(offset, static_cast<uint32_t>(text_.size()));
  auto it = std::upper_bound(line_starts_.begin(), line_starts_.end(), offset);
  uint32_t line_index = static_cast<uint32_t>(it - line_starts_.begin()) - 1;
  uint32_t column = 1;
  for (uint32_t i = line_starts_[line_index]; i < offset; ++i) {
    if (!IsUtf8Continuation(static_cast<unsigned char>(text_[i]))) ++column;
  }
  return LineColumn{line_index + 1, column};
}

std::string_view SourceFile::Line(uint32_t line) const {
  if (line == 0 || line > line_starts_.size()) return {};
  uint32_t begin = line_starts_[line - 1];
  uint32_t end = line < line_starts_.size() ? line_starts_[line] : static_cast<uint32_t>(text_.size());
  std::string_view view(text_.data() + begin, end - begin);
  while (!view.empty() && (view.back() == '\n' || view.back() == '\r')) view.remove_suffix(1);
  return view;
}

uint32_t SourceFile::OffsetOf(uint32_t line, uint32_t column) const {
  if (line == 0) line = 1;
  if (line > line_starts_.size()) return static_cast<uint32_t>(text_.size());
  std::string_view text = Line(line);
  uint32_t offset = line_starts_[line - 1];
  uint32_t current = 1;
  size_t i = 0;
  while (i < text.size() && current < column) {
    ++i;
    while (i < text.size() && IsUtf8Continuation(static_cast<unsigned char>(text[i]))) ++i;
    ++current;
  }
  return offset + static_cast<uint32_t>(i);
}

FileId SourceManager::Add(std::string display_name, std::string canonical_path, std::string text) {
  files_.push_back(
      std::make_unique<SourceFile>(std::move(display_name), std::move(canonical_path), std::move(text)));
  return FileId{static_cast<uint32_t>(files_.size() - 1)};
}

std::optional<FileId> SourceManager::Load(const std::string& path, std::string display_name,
                                          std::string* error) {
  std::string canonical = NormalizePath(path);
  if (auto existing = FindByPath(canonical)) return existing;
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    *error = "no such file";
    return std::nullopt;
  }
  // Only regular files: a device such as /dev/zero would never end.
  if (!std::filesystem::is_regular_file(path, ec)) {
    *error = std::filesystem::is_directory(path, ec) ? "is a directory, not a file" : "is not a regular file";
    return std::nullopt;
  }
  auto size = std::filesystem::file_size(path, ec);
  if (ec) {
    *error = "cannot be read";
    return std::nullopt;
  }
  if (size > kMaxSourceFileBytes) {
    *error = "is larger than 4 MiB; .fuse files are expected to be small";
    return std::nullopt;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *error = "cannot be read";
    return std::nullopt;
  }
  std::string text(size, '\0');
  in.read(text.data(), static_cast<std::streamsize>(size));
  text.resize(static_cast<size_t>(in.gcount()));
  if (in.bad()) {
    *error = "cannot be read";
    return std::nullopt;
  }
  return Add(std::move(display_name), std::move(canonical), std::move(text));
}

std::optional<FileId> SourceManager::FindByPath(const std::string& canonical_path) const {
  if (canonical_path.empty()) return std::nullopt;
  for (uint32_t i = 0; i < files_.size(); ++i) {
    if (files_[i]->canonical_path() == canonical_path) return FileId{i};
  }
  return std::nullopt;
}

std::string_view SourceManager::Text(SourceSpan span) const {
  if (!span.valid()) return {};
  const std::string& text = file(span.file).text();
  uint32_t begin = std::min<uint32_t>(span.begin, static_cast<uint32_t>(text.size()));
  uint32_t end = std::clamp<uint32_t>(span.end, begin, static_cast<uint32_t>(text.size()));
  return std::string_view(text).substr(begin, end - begin);
}

std::string NormalizePath(const std::string& path) {
  std::error_code ec;
  std::filesystem::path absolute = std::filesystem::absolute(path, ec);
  if (ec) absolute = path;
  return absolute.lexically_normal().string();
}

std::optional<size_t> FindInvalidUtf8(std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t length = 0;
    uint32_t code_point = 0;
    if ((c & 0xE0) == 0xC0) {
      length = 2;
      code_point = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      length = 3;
      code_point = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      length = 4;
      code_point = c & 0x07;
    } else {
      return i;
    }
    if (i + length > text.size()) return i;
    for (size_t k = 1; k < length; ++k) {
      auto next = static_cast<unsigned char>(text[i + k]);
      if (!IsUtf8Continuation(next)) return i;
      code_point = (code_point << 6) | (next & 0x3F);
    }
    bool overlong = (length == 2 && code_point < 0x80) || (length == 3 && code_point < 0x800) ||
                    (length == 4 && code_point < 0x10000);
    bool surrogate = code_point >= 0xD800 && code_point <= 0xDFFF;
    if (overlong || surrogate || code_point > 0x10FFFF) return i;
    i += length;
  }
  return std::nullopt;
}

}  // namespace fusec
