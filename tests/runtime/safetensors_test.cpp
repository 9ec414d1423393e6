#include "runtime/model/safetensors.h"

#include <gtest/gtest.h>

#include <random>

#include "tests/runtime/test_support.h"

namespace fusec::rt {
namespace {

using testing::ReadFile;
using testing::ScratchDir;
using testing::WriteFile;

/// A safetensors file from a header text and `data_bytes` zero bytes of data.
std::string FileWithHeader(const std::string& header, size_t data_bytes) {
  std::string out(8, '\0');
  uint64_t length = header.size();
  for (int i = 0; i < 8; ++i) out[static_cast<size_t>(i)] = static_cast<char>((length >> (8 * i)) & 0xFF);
  return out + header + std::string(data_bytes, '\0');
}

std::optional<SafetensorsHeader> Parse(const std::string& file, std::string* error) {
  return ParseSafetensorsHeader(file, file.size(), error);
}

TEST(Safetensors, RoundTripsEveryDtypeAndMetadata) {
  ScratchDir dir("safetensors");
  std::vector<float> f32 = {1.5F, -2.0F, 3.25F, 0.0F, 1e-20F, -7.0F};
  std::vector<uint16_t> bf16 = {0x3F80, 0xC000, 0x7F80};
  std::vector<uint16_t> f16 = {0x3C00, 0x0001};
  std::string path = dir / "t.safetensors";
  std::string error;
  ASSERT_TRUE(WriteSafetensors(path,
                               {{"w.f32", DType::F32, {2, 3}, f32.data()},
                                {"w.bf16", DType::BF16, {3}, bf16.data()},
                                {"w.f16", DType::F16, {1, 2}, f16.data()},
                                {"empty", DType::F32, {0, 4}, nullptr}},
                               {{"format", "pt"}}, &error))
      << error;
  auto file = SafetensorsFile::Open(path, &error);
  ASSERT_TRUE(file) << error;
  EXPECT_EQ(file->metadata().at("format"), "pt");
  ASSERT_EQ(file->tensors().size(), 4U);
  const TensorInfo* a = file->Find("w.f32");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(std::memcmp(file->Data(*a), f32.data(), f32.size() * 4), 0);
  const TensorInfo* b = file->Find("w.bf16");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->dtype, DType::BF16);
  EXPECT_EQ(std::memcmp(file->Data(*b), bf16.data(), bf16.size() * 2), 0);
  EXPECT_EQ(file->Find("w.f16")->dtype, DType::F16);
  EXPECT_EQ(file->Find("empty")->numel(), 0U);
  EXPECT_EQ(file->Find("missing"), nullptr);
  // The data region starts 8-byte aligned, as the reference writer makes it.
  auto bytes = ReadFile(path);
  EXPECT_EQ(ParseSafetensorsHeader(bytes, bytes.size(), &error)->data_offset % 8, 0U);
}

struct HostileCase {
  const char* name;
  std::string file;
  const char* expected;  // a substring of the error
};

TEST(Safetensors, RejectsHostileHeadersWithAClearError) {
  const std::string tensor = R"("t": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]})";
  std::string huge_length(8, '\xFF');
  std::string claims_more = FileWithHeader("{}", 0);
  claims_more[0] = 100;  // header longer than the file
  std::vector<HostileCase> cases = {
      {"empty file", "", "too short"},
      {"five bytes", "abcde", "too short"},
      {"length beyond 100 MiB", huge_length + "{}", "100 MiB"},
      {"length beyond the file", claims_more, "truncated"},
      {"not JSON", FileWithHeader("{\"t\": [", 0), "not a JSON object"},
      {"a list", FileWithHeader("[]", 0), "not a JSON object"},
      {"entry not an object", FileWithHeader(R"({"t": 3})", 0), "not an object"},
      {"no dtype", FileWithHeader(R"({"t": {"shape": [1], "data_offsets": [0, 4]}})", 4), "no `dtype`"},
      {"integer dtype", FileWithHeader(R"({"t": {"dtype": "I64", "shape": [1], "data_offsets": [0, 8]}})", 8),
       "I64 is not supported"},
      {"negative dimension", FileWithHeader(R"({"t": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}})", 4),
       "not a size"},
      {"fractional dimension", FileWithHeader(R"({"t": {"dtype": "F32", "shape": [1.5], "data_offsets": [0, 4]}})", 4),
       "not a size"},
      {"overflowing shape",
       FileWithHeader(R"({"t": {"dtype": "F32", "shape": [4294967296, 4294967296, 16], "data_offsets": [0, 4]}})", 4),
       "too many elements"},
      {"offsets past the end", FileWithHeader("{" + tensor + "}", 4), "outside the file"},
      {"offsets reversed", FileWithHeader(R"({"t": {"dtype": "F32", "shape": [0], "data_offsets": [8, 0]}})", 8),
       "outside the file"},
      {"size does not match the shape",
       FileWithHeader(R"({"t": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}})", 8), "shape and dtype need 12"},
      {"negative offsets", FileWithHeader(R"({"t": {"dtype": "F32", "shape": [1], "data_offsets": [-4, 0]}})", 4),
       "not two offsets"},
      {"one offset", FileWithHeader(R"({"t": {"dtype": "F32", "shape": [1], "data_offsets": [0]}})", 4),
       "not two offsets"},
      {"overlapping tensors",
       FileWithHeader(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                          "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
                      12),
       "overlap"},
      {"metadata not strings", FileWithHeader(R"({"__metadata__": {"format": 1}})", 0), "not a string"},
  };
  for (const HostileCase& c : cases) {
    std::string error;
    EXPECT_FALSE(Parse(c.file, &error)) << c.name;
    EXPECT_NE(error.find(c.expected), std::string::npos) << c.name << ": " << error;
  }
}

TEST(Safetensors, OpeningAMissingOrTruncatedFileIsAnError) {
  ScratchDir dir("safetensors_open");
  std::string error;
  EXPECT_FALSE(SafetensorsFile::Open(dir / "none.safetensors", &error));
  EXPECT_NE(error.find("none.safetensors"), std::string::npos) << error;
  std::vector<float> values(64, 1.0F);
  ASSERT_TRUE(WriteSafetensors(dir / "t.safetensors", {{"t", DType::F32, {64}, values.data()}}, {}, &error));
  std::string bytes = ReadFile(dir / "t.safetensors");
  WriteFile(dir / "cut.safetensors", bytes.substr(0, bytes.size() - 10));
  EXPECT_FALSE(SafetensorsFile::Open(dir / "cut.safetensors", &error));
  EXPECT_NE(error.find("outside the file"), std::string::npos) << error;
  EXPECT_FALSE(SafetensorsFile::Open(dir.path().string(), &error));  // a directory
}

// Mutated and truncated files: parsing never crashes, and whatever it accepts lies inside the file. Under the
// dev preset this runs with AddressSanitizer, which turns any out-of-bounds read into a failure.
TEST(Safetensors, MutatedFilesNeverReadOutOfBounds) {
  ScratchDir dir("safetensors_fuzz");
  std::vector<float> a(12, 0.5F);
  std::vector<uint16_t> b(7, 0x3F80);
  std::string error;
  ASSERT_TRUE(WriteSafetensors(dir / "t.safetensors",
                               {{"model.a", DType::F32, {3, 4}, a.data()}, {"model.b", DType::BF16, {7}, b.data()}},
                               {{"format", "pt"}}, &error));
  const std::string original = ReadFile(dir / "t.safetensors");
  std::mt19937 rng(1234);
  int accepted = 0;
  for (int round = 0; round < 20000; ++round) {
    std::string file = original;
    int mutations = 1 + static_cast<int>(rng() % 4);
    for (int m = 0; m < mutations; ++m) {
      size_t at = rng() % file.size();
      switch (rng() % 4) {
        case 0:
          file[at] = static_cast<char>(rng());
          break;
        case 1:
          file[at] = "0123456789[]{},:\"-e"[rng() % 19];
          break;
        case 2:
          file.resize(at);
          break;
        case 3:
          file.insert(at, 1, static_cast<char>(rng()));
          break;
      }
      if (file.empty()) file = "x";
    }
    // A heap copy of exactly the file's size, so reading past it is caught by ASan.
    std::unique_ptr<char[]> exact(new char[file.size()]);
    std::memcpy(exact.get(), file.data(), file.size());
    auto header = ParseSafetensorsHeader(std::string_view(exact.get(), file.size()), file.size(), &error);
    if (!header) continue;
    ++accepted;
    for (const TensorInfo& tensor : header->tensors) {
      ASSERT_LE(header->data_offset + tensor.end, file.size());
      ASSERT_EQ(tensor.end - tensor.begin, tensor.numel() * DTypeSize(tensor.dtype));
    }
  }
  EXPECT_GT(accepted, 0);  // some mutations (of data bytes) leave a valid file: the check above ran
}

}  // namespace
}  // namespace fusec::rt
