// Truncated, corrupted and hand-crafted hostile GGUF images: each must give a
// Status naming the problem — never a crash, huge allocation or out-of-bounds
// read. Images are built byte by byte so absurd counts and lengths can be
// expressed exactly.
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "gguf/gguf.h"
#include "testing/fixtures.h"

namespace reprise::gguf {
namespace {

// Little-endian byte builder for raw GGUF images.
class Raw {
 public:
  Raw& U8(uint8_t v) { return Put(&v, 1); }
  Raw& U32(uint32_t v) { return Put(&v, 4); }
  Raw& U64(uint64_t v) { return Put(&v, 8); }
  Raw& Str(const std::string& s) {
    U64(s.size());
    return Put(s.data(), s.size());
  }
  Raw& Header(uint64_t n_tensors, uint64_t n_kv, uint32_t version = 3) {
    U32(0x46554747);
    U32(version);
    U64(n_tensors);
    return U64(n_kv);
  }
  // A key with a scalar u32 value.
  Raw& KvU32(const std::string& key, uint32_t v) {
    Str(key);
    U32(4);
    return U32(v);
  }
  Raw& Tensor(const std::string& name, std::vector<uint64_t> ne, uint32_t type, uint64_t offset) {
    Str(name);
    U32(static_cast<uint32_t>(ne.size()));
    for (uint64_t d : ne) U64(d);
    U32(type);
    return U64(offset);
  }
  Raw& PadTo(size_t alignment) {
    while (bytes_.size() % alignment != 0) U8(0);
    return *this;
  }
  Raw& Zeros(size_t n) {
    bytes_.resize(bytes_.size() + n, 0);
    return *this;
  }
  std::vector<uint8_t> bytes() const { return bytes_; }
  size_t size() const { return bytes_.size(); }

 private:
  Raw& Put(const void* p, size_t n) {
    const uint8_t* b = static_cast<const uint8_t*>(p);
    bytes_.insert(bytes_.end(), b, b + n);
    return *this;
  }
  std::vector<uint8_t> bytes_;
};

// Parses `bytes`, expects failure, and returns the message.
std::string ErrorOf(std::vector<uint8_t> bytes) {
  auto f = File::FromBuffer(std::move(bytes));
  EXPECT_FALSE(f.ok()) << "parsed a hostile image";
  return f.ok() ? std::string() : f.status().message();
}

#define EXPECT_ERROR_HAS(bytes, substr)                                     \
  do {                                                                      \
    const std::string msg_ = ErrorOf(bytes);                                \
    EXPECT_NE(msg_.find(substr), std::string::npos) << "message: " << msg_; \
  } while (0)

// A small valid image with every kind of section; its last tensor ends
// exactly at the end of the file (no trailing padding), so every strict
// prefix is invalid.
std::vector<uint8_t> SmallValidFile() {
  Writer w;
  w.Set("general.architecture", Value::String("llama"));
  w.Set("llama.block_count", Value::Uint32(2));
  w.Set("llama.rope.freq_base", Value::Float32(10000.0f));
  w.Set("tokenizer.ggml.tokens", Value::StringArray({"<unk>", "<s>", "a"}));
  w.Set("nested", Value::Array(ValueType::kArray, {Value::Int32Array(std::vector<int32_t>{1, 2}),
                                                   Value::Array(ValueType::kInt32, {})}));
  w.Set("flag", Value::Bool(true));
  w.AddTensor("q", DType::kQ8_0, {32, 2}, std::vector<uint8_t>(68, 0x11));
  w.AddTensor("f", DType::kF32, {8}, std::vector<uint8_t>(32, 0x22));
  return w.WriteToBuffer();
}

// Reads every byte a parsed File exposes, so ASan/valgrind see any bad pointer.
uint64_t TouchEverything(const File& f) {
  uint64_t sum = 0;
  for (const auto& [key, value] : f.metadata()) {
    sum += key.size() + value.s.size() + value.items.size();
  }
  for (const TensorInfo& t : f.tensors()) {
    for (uint64_t k = 0; k < t.n_bytes; ++k) sum += t.data[k];
  }
  return sum;
}

TEST(GgufHostileInputTest, SmallValidFileParses) {
  auto f = File::FromBuffer(SmallValidFile());
  ASSERT_TRUE(f.ok()) << f.status().message();
  EXPECT_EQ((*f)->tensors().size(), 2u);
  EXPECT_EQ((*f)->FindTensor("f")->data + 32, (*f)->FindTensor("q")->data + 96 + 32);
}

TEST(GgufHostileInputTest, EveryTruncationIsAnError) {
  const std::vector<uint8_t> full = SmallValidFile();
  for (size_t n = 0; n < full.size(); ++n) {
    auto f = File::FromBuffer(std::vector<uint8_t>(full.begin(), full.begin() + n));
    ASSERT_FALSE(f.ok()) << "prefix of " << n << " bytes parsed";
    EXPECT_NE(f.status().message().find("<buffer>: "), std::string::npos);
  }
}

TEST(GgufHostileInputTest, RandomByteFlipsNeverCrash) {
  const std::vector<uint8_t> full = SmallValidFile();
  // Header, metadata and tensor table: where corruption matters.
  const size_t table_end = full.size() - 128;
  std::mt19937 rng(20240531);
  int parsed = 0;
  for (int iter = 0; iter < 5000; ++iter) {
    std::vector<uint8_t> bytes = full;
    const int n_flips = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < n_flips; ++k) {
      const size_t pos = rng() % (rng() % 8 == 0 ? full.size() : table_end);
      switch (rng() % 3) {
        case 0:
          bytes[pos] ^= static_cast<uint8_t>(1u << (rng() % 8));
          break;
        case 1:
          bytes[pos] = static_cast<uint8_t>(rng());
          break;
        default:
          bytes[pos] = (rng() % 2) ? 0xff : 0x00;
          break;
      }
    }
    auto f = File::FromBuffer(std::move(bytes));
    if (f.ok()) {
      ++parsed;
      TouchEverything(**f);
    } else {
      EXPECT_FALSE(f.status().message().empty());
    }
  }
  // Some flips land in string bytes or values and still parse; most do not.
  EXPECT_GT(parsed, 0);
  EXPECT_LT(parsed, 5000);
}

TEST(GgufHostileInputTest, BadMagicAndVersions) {
  EXPECT_ERROR_HAS(Raw().U32(0x12345678).U32(3).U64(0).U64(0).bytes(), "not a GGUF file");
  EXPECT_ERROR_HAS(Raw().Header(0, 0, 1).bytes(), "GGUF version 1 is not supported");
  EXPECT_ERROR_HAS(Raw().Header(0, 0, 7).bytes(), "unsupported GGUF version 7");
  EXPECT_ERROR_HAS(Raw().Header(0, 0, 0x03000000).bytes(), "big-endian");
  EXPECT_ERROR_HAS(std::vector<uint8_t>{}, "truncated");
  EXPECT_TRUE(File::FromBuffer(Raw().Header(0, 0, 2).bytes()).ok());  // v2 is accepted
  EXPECT_TRUE(File::FromBuffer(Raw().Header(0, 0, 3).bytes()).ok());
}

TEST(GgufHostileInputTest, AbsurdCountsAreRejectedBeforeAllocating) {
  EXPECT_ERROR_HAS(Raw().Header(0, uint64_t{1} << 63).bytes(),
                   "metadata count 9223372036854775808 is impossible");
  EXPECT_ERROR_HAS(Raw().Header(uint64_t{1} << 63, 0).bytes(),
                   "tensor count 9223372036854775808 is impossible");
  EXPECT_ERROR_HAS(Raw().Header(1000, 0).Zeros(100).bytes(), "tensor count 1000 is impossible");
}

TEST(GgufHostileInputTest, AbsurdStringLengths) {
  EXPECT_ERROR_HAS(Raw().Header(0, 1).U64(uint64_t{1} << 62).Zeros(16).bytes(),
                   "metadata key length 4611686018427387904");
  EXPECT_ERROR_HAS(Raw().Header(0, 1).Str("k").U32(8).U64(uint64_t{1} << 62).Zeros(8).bytes(),
                   "string value length 4611686018427387904 at offset 37 extends past end of file");
  EXPECT_ERROR_HAS(Raw().Header(1, 0).U64(uint64_t{1} << 62).Zeros(40).bytes(),
                   "tensor name length 4611686018427387904");
}

TEST(GgufHostileInputTest, AbsurdArrayCountsAndNesting) {
  EXPECT_ERROR_HAS(
      Raw().Header(0, 1).Str("arr").U32(9).U32(0).U64(uint64_t{1} << 60).Zeros(64).bytes(),
      "metadata key 'arr': array of 1152921504606846976 uint8 elements");
  // Strings need 8 bytes each: 100 strings cannot fit in 400 bytes.
  EXPECT_ERROR_HAS(Raw().Header(0, 1).Str("arr").U32(9).U32(8).U64(100).Zeros(400).bytes(),
                   "array of 100 string elements needs at least 8 bytes per element");
  EXPECT_ERROR_HAS(Raw().Header(0, 1).Str("arr").U32(9).U32(99).U64(1).Zeros(8).bytes(),
                   "metadata key 'arr': unknown array element type 99");
  // 9 levels of arrays, each holding one array.
  Raw deep;
  deep.Header(0, 1).Str("deep").U32(9);
  for (int k = 0; k < 9; ++k) deep.U32(9).U64(1);
  deep.U32(0).U64(0);
  EXPECT_ERROR_HAS(deep.bytes(), "metadata key 'deep': arrays nested deeper than 8 levels");
  // 8 levels are fine.
  Raw ok;
  ok.Header(0, 1).Str("deep").U32(9);
  for (int k = 0; k < 7; ++k) ok.U32(9).U64(1);
  ok.U32(0).U64(0);
  EXPECT_TRUE(File::FromBuffer(ok.bytes()).ok());
}

TEST(GgufHostileInputTest, TotalArrayItemsAreCapped) {
  // 9M one-byte items fit the file but would cost ~1 GB as Values.
  const uint64_t n = 9u << 20;
  Raw r;
  r.Header(0, 1).Str("big").U32(9).U32(0).U64(n).Zeros(n);
  EXPECT_ERROR_HAS(r.bytes(), "exceeds the limit of 8388608 array items");
}

TEST(GgufHostileInputTest, BadValuesAndKeys) {
  EXPECT_ERROR_HAS(Raw().Header(0, 1).Str("k").U32(13).U32(0).bytes(),
                   "metadata key 'k': unknown value type 13");
  EXPECT_ERROR_HAS(Raw().Header(0, 2).KvU32("k", 1).KvU32("k", 2).bytes(),
                   "duplicate metadata key 'k'");
  EXPECT_ERROR_HAS(Raw().Header(0, 1).Str("b").U32(7).U8(2).bytes(), "bool value 2");
  EXPECT_ERROR_HAS(Raw().Header(0, 1).Str("").U32(4).U32(0).bytes(), "empty key");
}

TEST(GgufHostileInputTest, BadAlignment) {
  EXPECT_ERROR_HAS(Raw().Header(0, 1).KvU32("general.alignment", 0).bytes(),
                   "general.alignment 0 is not a non-zero power of two");
  EXPECT_ERROR_HAS(Raw().Header(0, 1).KvU32("general.alignment", 3).bytes(),
                   "general.alignment 3 is not a non-zero power of two");
  EXPECT_ERROR_HAS(Raw().Header(0, 1).Str("general.alignment").U32(8).Str("64").bytes(),
                   "general.alignment is string, expected uint32");
}

// A one-tensor image: the tensor entry, then padding, then `data_bytes`.
std::vector<uint8_t> OneTensor(std::vector<uint64_t> ne, uint32_t type, uint64_t offset,
                               size_t data_bytes, const std::string& name = "blk.0.attn_q.weight") {
  Raw r;
  r.Header(1, 0).Tensor(name, std::move(ne), type, offset).PadTo(32).Zeros(data_bytes);
  return r.bytes();
}

TEST(GgufHostileInputTest, BadTensorEntries) {
  EXPECT_TRUE(File::FromBuffer(OneTensor({4, 2}, 0, 0, 32)).ok());
  EXPECT_ERROR_HAS(OneTensor(std::vector<uint64_t>(100, 1), 0, 0, 32),
                   "tensor 'blk.0.attn_q.weight' (#0) has n_dims 100 (must be 1..4)");
  EXPECT_ERROR_HAS(OneTensor({}, 0, 0, 32), "has n_dims 0");
  EXPECT_ERROR_HAS(OneTensor({4, 0}, 0, 0, 32), "invalid dimension ne[1] = 0");
  EXPECT_ERROR_HAS(OneTensor({uint64_t{1} << 63, 1}, 0, 0, 32), "invalid dimension ne[0]");
  EXPECT_ERROR_HAS(OneTensor({uint64_t{1} << 40, uint64_t{1} << 40}, 0, 0, 32),
                   "element count overflows");
  EXPECT_ERROR_HAS(OneTensor({uint64_t{1} << 31, uint64_t{1} << 31}, 0, 0, 32),
                   "byte size overflows");
  EXPECT_ERROR_HAS(OneTensor({4, 2}, 77, 0, 32),
                   "tensor 'blk.0.attn_q.weight' has unknown type id 77");
  EXPECT_ERROR_HAS(OneTensor({33, 1}, 8, 0, 64),
                   "ne[0] = 33 is not a multiple of the Q8_0 block size 32");
}

TEST(GgufHostileInputTest, TensorDataOutsideTheFileOrMisaligned) {
  EXPECT_ERROR_HAS(OneTensor({1024, 1}, 0, 0, 100),
                   "tensor 'blk.0.attn_q.weight' data [offset 0, 4096 bytes] extends past end "
                   "of file");
  EXPECT_ERROR_HAS(OneTensor({4}, 0, uint64_t{1} << 62, 32),
                   "data [offset 4611686018427387904, 16 bytes] extends past end of file");
  EXPECT_ERROR_HAS(OneTensor({4}, 0, 0xffffffffffffffe0ull, 32), "extends past end of file");
  EXPECT_ERROR_HAS(
      OneTensor({4}, 0, 123, 256),
      "tensor 'blk.0.attn_q.weight': offset 123 is not a multiple of the alignment 32");
}

TEST(GgufHostileInputTest, DuplicateAndOverlappingTensors) {
  Raw dup;
  dup.Header(2, 0).Tensor("t", {4}, 0, 0).Tensor("t", {4}, 0, 32).PadTo(32).Zeros(64);
  EXPECT_ERROR_HAS(dup.bytes(), "duplicate tensor name 't'");
  Raw overlap;
  overlap.Header(2, 0).Tensor("a", {16}, 0, 0).Tensor("b", {4}, 0, 32).PadTo(32).Zeros(64);
  EXPECT_ERROR_HAS(overlap.bytes(), "tensor 'b' data [offset 32] overlaps tensor 'a'");
}

TEST(GgufHostileInputTest, OpenNamesTheFileInTheError) {
  const std::string path = testing::TempDir() + "/model.gguf";
  {
    const std::vector<uint8_t> bytes = OneTensor({1024, 1}, 0, 0, 100);
    std::FILE* f = std::fopen(path.c_str(), "wb");
    ASSERT_NE(f, nullptr);
    ASSERT_EQ(std::fwrite(bytes.data(), 1, bytes.size(), f), bytes.size());
    std::fclose(f);
  }
  auto f = File::Open(path);
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.status().message().rfind(path + ": tensor 'blk.0.attn_q.weight' data [offset 0, "
                                              "4096 bytes] extends past end of file (size ",
                                       0),
            0u)
      << f.status().message();
  // An empty file and a directory are errors too.
  const std::string empty = testing::TempDir() + "/empty.gguf";
  std::fclose(std::fopen(empty.c_str(), "wb"));
  auto e = File::Open(empty);
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.status().message().find("empty file"), std::string::npos);
  auto d = File::Open(testing::TempDir());
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.status().message().find("not a regular file"), std::string::npos);
}

}  // namespace
}  // namespace reprise::gguf
