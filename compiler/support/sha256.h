// SHA-256, for content hashes of graph nodes and checksums of cache entries.
//
// A strong hash because the stage cache trusts it: two nodes with equal hashes share their outputs, so a
// collision would silently reuse the wrong model. No Debian package the project installs provides one, and
// the algorithm is short; sha256_test.cpp checks it against the FIPS 180-4 test vectors.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace fusec {

class Sha256 {
 public:
  Sha256();
  Sha256& Update(std::string_view data);
  /// The digest as 64 lowercase hex digits. The object must not be updated afterwards.
  std::string HexDigest();

 private:
  void Compress(const uint8_t* block);

  std::array<uint32_t, 8> state_;
  std::array<uint8_t, 64> buffer_{};
  size_t buffered_ = 0;
  uint64_t total_bytes_ = 0;
};

/// SHA-256 of `data` as hex.
std::string Sha256Hex(std::string_view data);

/// SHA-256 of a file's contents as hex, streamed; nullopt-like empty string when it cannot be read.
std::string Sha256File(const std::string& path);

}  // namespace fusec
