// SHA-256 against the FIPS 180-4 / NIST test vectors, including the padding boundaries.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "compiler/support/sha256.h"

namespace fusec {
namespace {

TEST(Sha256, MatchesTheStandardVectors) {
  EXPECT_EQ(Sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Sha256Hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(Sha256Hex(std::string(1000000, 'a')), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256, IncrementalUpdatesEqualOneShot) {
  std::string text(200, 'x');
  for (size_t split = 0; split <= text.size(); split += 7) {
    Sha256 hash;
    hash.Update(std::string_view(text).substr(0, split)).Update(std::string_view(text).substr(split));
    EXPECT_EQ(hash.HexDigest(), Sha256Hex(text)) << "split at " << split;
  }
  // 55, 56 and 64 bytes straddle the length field's block.
  EXPECT_NE(Sha256Hex(std::string(55, 'a')), Sha256Hex(std::string(56, 'a')));
}

TEST(Sha256, HashesFiles) {
  auto path = std::filesystem::temp_directory_path() / "fusec_sha_test.bin";
  std::ofstream(path, std::ios::binary) << "abc";
  EXPECT_EQ(Sha256File(path.string()), Sha256Hex("abc"));
  EXPECT_EQ(Sha256File("/nonexistent/file"), "");
}

}  // namespace
}  // namespace fusec
