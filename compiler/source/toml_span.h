// Where a TOML node or parse error is, as a SourceSpan: fusec.toml and sweep grids are TOML files loaded
// into the SourceManager, and their diagnostics point into them like any .fuse file's.
#pragma once

#include <toml++/toml.h>

#include <algorithm>
#include <cstdint>

#include "compiler/source/source.h"

namespace fusec {

/// The span of a toml++ source region in `source` (file `file`): at least one character, so a region
/// without an end (toml++ gives none for some errors) still points somewhere.
inline SourceSpan TomlSpan(const SourceFile& source, FileId file, const toml::source_region& region) {
  uint32_t begin = source.OffsetOf(region.begin.line, region.begin.column);
  uint32_t end = region.end.line > 0 ? source.OffsetOf(region.end.line, region.end.column) : begin + 1;
  return SourceSpan{file, begin, std::max(end, begin + 1)};
}

}  // namespace fusec
