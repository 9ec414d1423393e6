// Source files and spans.
//
// Every phase reports problems against byte ranges of the original text, so a span is (file, begin, end) in
// bytes, and line and column are computed only when a diagnostic is rendered. One SourceManager owns every
// file of a run: the files named on the command line, the modules they import, TOML grid files, and the
// pseudo-file that holds command-line overrides. Columns count code points, not bytes, so a caret under a
// line with `τ` in it still lands where the eye expects. A UTF-8 byte-order mark, which some editors write
// at the start of a file, is not part of the text: SourceFile drops it, so offsets, columns and the lexer all
// see the same bytes.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace fusec {

/// Index of a file in its SourceManager. Default-constructed ids are invalid.
struct FileId {
  static constexpr uint32_t kInvalid = UINT32_MAX;
  uint32_t value = kInvalid;

  bool valid() const { return value != kInvalid; }
  friend bool operator==(FileId a, FileId b) { return a.value == b.value; }
  friend auto operator<=>(FileId a, FileId b) { return a.value <=> b.value; }
};

/// A half-open byte range [begin, end) of one file. An invalid span (no file) means "no location".
struct SourceSpan {
  FileId file;
  uint32_t begin = 0;
  uint32_t end = 0;

  bool valid() const { return file.valid(); }
  /// The smallest span covering both; either may be invalid.
  static SourceSpan Cover(SourceSpan a, SourceSpan b);
  friend bool operator==(const SourceSpan&, const SourceSpan&) = default;
  friend auto operator<=>(const SourceSpan&, const SourceSpan&) = default;  // NOLINT(modernize-use-nullptr)
};

/// 1-based line and column; the column counts code points.
struct LineColumn {
  uint32_t line = 1;
  uint32_t column = 1;
};

class SourceFile {
 public:
  SourceFile(std::string display_name, std::string canonical_path, std::string text);

  /// The name diagnostics print: the path as the user wrote it, or `std/<module>.fuse` for the stdlib.
  const std::string& display_name() const { return display_name_; }
  /// Absolute, normalised path; empty for pseudo-files such as the command line.
  const std::string& canonical_path() const { return canonical_path_; }
  const std::string& text() const { return text_; }

  LineColumn Locate(uint32_t offset) const;
  /// The text of a 1-based line, without its line terminator.
  std::string_view Line(uint32_t line) const;
  uint32_t line_count() const { return static_cast<uint32_t>(line_starts_.size()); }
  /// Byte offset of a 1-based (line, column-in-code-points) position, clamped to the line.
  uint32_t OffsetOf(uint32_t line, uint32_t column) const;

 private:
  std::string display_name_;
  std::string canonical_path_;
  std::string text_;
  std::vector<uint32_t> line_starts_;
};

class SourceManager {
 public:
  /// Adds text under a display name. `canonical_path` identifies the file for FindByPath (may be empty).
  FileId Add(std::string display_name, std::string canonical_path, std::string text);
  /// Reads a file from disk. On failure returns nullopt and sets `error` to a lower-case reason.
  std::optional<FileId> Load(const std::string& path, std::string display_name, std::string* error);
  std::optional<FileId> FindByPath(const std::string& canonical_path) const;

  const SourceFile& file(FileId id) const { return *files_.at(id.value); }
  size_t file_count() const { return files_.size(); }
  std::string_view Text(SourceSpan span) const;

 private:
  std::vector<std::unique_ptr<SourceFile>> files_;
};

/// Files larger than this are refused: experiments are a few kilobytes, and a bound keeps every later
/// phase's work bounded too.
inline constexpr size_t kMaxSourceFileBytes = size_t{4} * 1024 * 1024;

/// Absolute, lexically normalised form of `path` (no symlink resolution, so it works for missing files).
std::string NormalizePath(const std::string& path);

/// Position of the first invalid UTF-8 sequence in `text`, or nullopt when it is valid (surrogates and
/// overlong forms are invalid).
std::optional<size_t> FindInvalidUtf8(std::string_view text);

/// The UTF-8 byte-order mark some editors (Notepad, Excel's CSV export) put at the start of a file; SourceFile
/// drops it (toml++, which parses the manifests from their text, skips it itself).
inline constexpr std::string_view kUtf8ByteOrderMark = "\xEF\xBB\xBF";

}  // namespace fusec
