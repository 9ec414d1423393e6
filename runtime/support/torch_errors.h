// LibTorch's errors as a user should read them. A failed allocation arrives as a generic c10::Error from the
// CPU allocator ("DefaultCPUAllocator: can't allocate memory: you tried to allocate 274877906944 bytes. Error
// code 12 ...") or as c10::OutOfMemoryError from CUDA's; both mean "this does not fit", not "fusec has a bug",
// and the size is the useful part.
#pragma once

#include <c10/util/Exception.h>

#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>

namespace fusec::rt {

/// "out of memory: ..." with the size that did not fit, when `error` is an allocation failure; nullopt for
/// any other LibTorch error.
inline std::optional<std::string> OutOfMemoryMessage(const c10::Error& error) {
  const std::string message = error.what_without_backtrace();
  if (dynamic_cast<const c10::OutOfMemoryError*>(&error) != nullptr) {  // CUDA: its first line says it all
    return "out of memory on the GPU: " + message.substr(0, message.find('\n'));
  }
  const std::string marker = "you tried to allocate ";
  const size_t at = message.find(marker);
  if (message.find("can't allocate memory") == std::string::npos || at == std::string::npos) return std::nullopt;
  double size = std::strtod(message.c_str() + at + marker.size(), nullptr);
  if (!(size >= 1)) return std::string("out of memory: an allocation failed (the machine's memory is exhausted)");
  const char* unit = "bytes";
  for (const char* larger : {"KiB", "MiB", "GiB", "TiB", "PiB"}) {
    if (size < 1024) break;
    size /= 1024;
    unit = larger;
  }
  char text[64];
  std::snprintf(text, sizeof text, unit[0] == 'b' ? "%.0f %s" : "%.1f %s", size, unit);
  return std::string("out of memory: an allocation of ") + text + " failed";
}

}  // namespace fusec::rt
