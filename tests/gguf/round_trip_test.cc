// Writer -> reader round trips: every value type (nested and string arrays
// included), tensors of several types and alignments, typed getters and
// their errors. Owns no fixture tests (fixtures_test.cc) or hostile input
// (hostile_input_test.cc).
#include <gtest/gtest.h>

#include <cstring>
#include <limits>

#include "gguf/gguf.h"
#include "testing/fixtures.h"

namespace reprise::gguf {
namespace {

std::vector<uint8_t> Bytes(size_t n, uint8_t seed) {
  std::vector<uint8_t> out(n);
  for (size_t k = 0; k < n; ++k) out[k] = static_cast<uint8_t>(seed + k * 7);
  return out;
}

std::unique_ptr<File> MustRead(const Writer& w) {
  auto file = File::FromBuffer(w.WriteToBuffer());
  EXPECT_TRUE(file.ok()) << file.status().message();
  if (!file.ok()) return nullptr;
  return std::move(file).value();
}

TEST(GgufRoundTripTest, EveryScalarTypeKeepsTypeAndValue) {
  Writer w;
  w.Set("u8", Value::Uint8(250));
  w.Set("i8", Value::Int8(-120));
  w.Set("u16", Value::Uint16(65000));
  w.Set("i16", Value::Int16(-32000));
  w.Set("u32", Value::Uint32(4000000000u));
  w.Set("i32", Value::Int32(-2000000000));
  w.Set("u64", Value::Uint64(std::numeric_limits<uint64_t>::max()));
  w.Set("i64", Value::Int64(std::numeric_limits<int64_t>::min()));
  w.Set("f32", Value::Float32(1.5f));
  w.Set("f64", Value::Float64(-2.25e300));
  w.Set("b", Value::Bool(true));
  w.Set("s", Value::String(std::string("h\0llo \xc3\xa9", 8)));
  w.Set("empty", Value::String(""));
  auto f = MustRead(w);
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->version(), 3u);
  ASSERT_EQ(f->metadata().size(), 13u);
  EXPECT_EQ(f->metadata()[0].first, "u8");
  EXPECT_EQ(f->metadata()[12].first, "empty");
  EXPECT_EQ(f->Find("u8")->type, ValueType::kUint8);
  EXPECT_EQ(f->Find("u8")->u, 250u);
  EXPECT_EQ(f->Find("i8")->type, ValueType::kInt8);
  EXPECT_EQ(f->Find("i8")->i, -120);
  EXPECT_EQ(f->Find("u16")->u, 65000u);
  EXPECT_EQ(f->Find("i16")->i, -32000);
  EXPECT_EQ(f->Find("u32")->u, 4000000000u);
  EXPECT_EQ(f->Find("i32")->i, -2000000000);
  EXPECT_EQ(f->Find("u64")->u, std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(f->Find("i64")->i, std::numeric_limits<int64_t>::min());
  EXPECT_EQ(f->Find("f32")->type, ValueType::kFloat32);
  EXPECT_EQ(f->Find("f32")->f, 1.5);
  EXPECT_EQ(f->Find("f64")->type, ValueType::kFloat64);
  EXPECT_EQ(f->Find("f64")->f, -2.25e300);
  EXPECT_EQ(f->Find("b")->type, ValueType::kBool);
  EXPECT_EQ(f->GetBool("b").value(), true);
  EXPECT_EQ(f->GetString("s").value(), std::string("h\0llo \xc3\xa9", 8));
  EXPECT_EQ(f->GetString("empty").value(), "");
  EXPECT_EQ(f->GetInt("u32").value(), 4000000000);
  EXPECT_EQ(f->GetInt("i8").value(), -120);
  EXPECT_EQ(f->GetFloat("u16").value(), 65000.0);
  EXPECT_EQ(f->GetFloat("f32").value(), 1.5);
  EXPECT_TRUE(f->tensors().empty());
}

TEST(GgufRoundTripTest, ArraysOfEveryTypeIncludingNestedAndStrings) {
  Writer w;
  std::vector<Value> u8s = {Value::Uint8(0), Value::Uint8(255)};
  w.Set("a.u8", Value::Array(ValueType::kUint8, u8s));
  w.Set("a.i64", Value::Array(ValueType::kInt64, {Value::Int64(-5), Value::Int64(1LL << 40)}));
  w.Set("a.bool", Value::Array(ValueType::kBool, {Value::Bool(false), Value::Bool(true)}));
  w.Set("a.f64", Value::Array(ValueType::kFloat64, {Value::Float64(0.125)}));
  const float floats[] = {0.5f, -1.0f, 3.25f};
  w.Set("a.f32", Value::Float32Array(floats));
  const int32_t ints[] = {7, -8, 9};
  w.Set("a.i32", Value::Int32Array(ints));
  w.Set("a.str", Value::StringArray({"<s>", "", "\xe2\x96\x81the"}));
  w.Set("a.empty", Value::Array(ValueType::kUint32, {}));
  Value inner1 = Value::Array(ValueType::kString, {Value::String("x"), Value::String("yz")});
  Value inner2 = Value::Array(ValueType::kString, {});
  Value nested = Value::Array(ValueType::kArray, {inner1, inner2});
  w.Set("a.nested", Value::Array(ValueType::kArray, {nested}));
  auto f = MustRead(w);
  ASSERT_NE(f, nullptr);
  const Value* u8 = f->Find("a.u8");
  ASSERT_NE(u8, nullptr);
  EXPECT_EQ(u8->type, ValueType::kArray);
  EXPECT_EQ(u8->elem_type, ValueType::kUint8);
  ASSERT_EQ(u8->items.size(), 2u);
  EXPECT_EQ(u8->items[1].u, 255u);
  EXPECT_EQ(f->GetIntArray("a.i64").value(), (std::vector<int64_t>{-5, 1LL << 40}));
  EXPECT_EQ(f->Find("a.bool")->items[1].u, 1u);
  EXPECT_EQ(f->GetFloatArray("a.f64").value(), std::vector<float>{0.125f});
  EXPECT_EQ(f->GetFloatArray("a.f32").value(), (std::vector<float>{0.5f, -1.0f, 3.25f}));
  EXPECT_EQ(f->GetIntArray("a.i32").value(), (std::vector<int64_t>{7, -8, 9}));
  EXPECT_EQ(f->GetStringArray("a.str").value(),
            (std::vector<std::string>{"<s>", "", "\xe2\x96\x81the"}));
  EXPECT_TRUE(f->GetIntArray("a.empty").value().empty());
  const Value* n = f->Find("a.nested");
  ASSERT_NE(n, nullptr);
  EXPECT_EQ(n->elem_type, ValueType::kArray);
  ASSERT_EQ(n->items.size(), 1u);
  ASSERT_EQ(n->items[0].elem_type, ValueType::kArray);
  ASSERT_EQ(n->items[0].items.size(), 2u);
  EXPECT_EQ(n->items[0].items[0].elem_type, ValueType::kString);
  ASSERT_EQ(n->items[0].items[0].items.size(), 2u);
  EXPECT_EQ(n->items[0].items[0].items[1].s, "yz");
  EXPECT_TRUE(n->items[0].items[1].items.empty());
}

TEST(GgufRoundTripTest, TensorsOfSeveralTypesKeepShapeTypeAndBytes) {
  Writer w;
  w.Set("general.architecture", Value::String("test"));
  w.AddTensor("f32", DType::kF32, {3, 2}, Bytes(24, 1));
  w.AddTensor("f16", DType::kF16, {5}, Bytes(10, 2));
  w.AddTensor("q8", DType::kQ8_0, {64, 3}, Bytes(2 * 34 * 3, 3));
  w.AddTensor("q4k", DType::kQ4_K, {256, 1, 2, 1}, Bytes(144 * 2, 4));
  w.AddTensor("bf16", DType::kBF16, {1, 1, 7}, Bytes(14, 5));
  auto f = MustRead(w);
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(f->tensors().size(), 5u);
  const TensorInfo* q8 = f->FindTensor("q8");
  ASSERT_NE(q8, nullptr);
  EXPECT_EQ(q8->type, DType::kQ8_0);
  EXPECT_EQ(q8->ne, (std::vector<int64_t>{64, 3}));
  EXPECT_EQ(q8->n_elements(), 192);
  EXPECT_EQ(q8->n_bytes, 204u);
  EXPECT_EQ(std::vector<uint8_t>(q8->data, q8->data + q8->n_bytes), Bytes(204, 3));
  const TensorInfo* q4k = f->FindTensor("q4k");
  ASSERT_NE(q4k, nullptr);
  EXPECT_EQ(q4k->ne, (std::vector<int64_t>{256, 1, 2, 1}));
  EXPECT_EQ(q4k->n_bytes, 288u);
  EXPECT_EQ(std::vector<uint8_t>(q4k->data, q4k->data + 288), Bytes(288, 4));
  for (const TensorInfo& t : f->tensors()) {
    EXPECT_EQ(t.offset % 32, 0u) << t.name;
    EXPECT_EQ(
        reinterpret_cast<uintptr_t>(t.data) - reinterpret_cast<uintptr_t>(f->tensors()[0].data),
        t.offset);
  }
  EXPECT_EQ(f->tensors()[1].name, "f16");
  EXPECT_EQ(f->FindTensor("missing"), nullptr);
  EXPECT_FALSE(f->Has("general.alignment"));
}

TEST(GgufRoundTripTest, NonDefaultAlignmentIsWrittenAndUsed) {
  Writer w;
  w.SetAlignment(256);
  w.AddTensor("a", DType::kF32, {3}, Bytes(12, 1));
  w.AddTensor("b", DType::kF32, {5}, Bytes(20, 2));
  auto f = MustRead(w);
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->alignment(), 256u);
  EXPECT_EQ(f->Find("general.alignment")->type, ValueType::kUint32);
  EXPECT_EQ(f->GetInt("general.alignment").value(), 256);
  EXPECT_EQ(f->FindTensor("b")->offset, 256u);
  EXPECT_EQ(std::vector<uint8_t>(f->FindTensor("b")->data, f->FindTensor("b")->data + 20),
            Bytes(20, 2));
}

TEST(GgufRoundTripTest, SetReplacesKeepingPositionAndCopyMetadataFilters) {
  Writer w;
  w.Set("a.x", Value::Uint32(1));
  w.Set("b.y", Value::String("b"));
  w.Set("a.x", Value::String("replaced"));
  w.SetAlignment(64);
  auto f = MustRead(w);
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->metadata()[0].first, "a.x");
  EXPECT_EQ(f->GetString("a.x").value(), "replaced");

  Writer copy;
  copy.CopyMetadata(*f, "b.");
  auto g = MustRead(copy);
  ASSERT_NE(g, nullptr);
  ASSERT_EQ(g->metadata().size(), 1u);
  EXPECT_EQ(g->GetString("b.y").value(), "b");

  Writer all;  // alignment is not copied: the copy is laid out at 32
  all.CopyMetadata(*f);
  auto h = MustRead(all);
  ASSERT_NE(h, nullptr);
  EXPECT_EQ(h->metadata().size(), 2u);
  EXPECT_EQ(h->alignment(), 32u);
}

TEST(GgufRoundTripTest, GettersNameTheKeyOnMissingOrWrongType) {
  Writer w;
  w.Set("s", Value::String("x"));
  w.Set("big", Value::Uint64(std::numeric_limits<uint64_t>::max()));
  w.Set("f", Value::Float32(2.0f));
  w.Set("arr", Value::Int32Array(std::vector<int32_t>{1}));
  auto f = MustRead(w);
  ASSERT_NE(f, nullptr);
  auto missing = f->GetInt("nope");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("'nope' is missing"), std::string::npos);
  auto wrong = f->GetInt("s");
  ASSERT_FALSE(wrong.ok());
  EXPECT_NE(wrong.status().message().find("'s' is string, expected an integer"), std::string::npos);
  auto too_big = f->GetInt("big");
  ASSERT_FALSE(too_big.ok());
  EXPECT_NE(too_big.status().message().find("does not fit"), std::string::npos);
  EXPECT_FALSE(f->GetInt("f").ok());  // floats are not integers
  EXPECT_FALSE(f->GetString("arr").ok());
  auto wrong_arr = f->GetStringArray("arr");
  ASSERT_FALSE(wrong_arr.ok());
  EXPECT_NE(wrong_arr.status().message().find("array of int32"), std::string::npos);
  EXPECT_EQ(f->GetIntOr("nope", 7).value(), 7);
  EXPECT_EQ(f->GetFloatOr("nope", 0.5).value(), 0.5);
  EXPECT_EQ(f->GetBoolOr("nope", true).value(), true);
  EXPECT_EQ(f->GetStringOr("nope", "d").value(), "d");
  EXPECT_FALSE(f->GetIntOr("s", 7).ok());  // present with the wrong type
  EXPECT_EQ(f->GetStringOr("s", "d").value(), "x");
}

TEST(GgufRoundTripTest, WriteFileThenOpenMapsTheSameContent) {
  Writer w;
  w.Set("general.architecture", Value::String("llama"));
  w.AddTensor("t", DType::kQ4_0, {32, 2}, Bytes(36, 9));
  const std::string path = testing::TempDir() + "/round_trip.gguf";
  ASSERT_TRUE(w.WriteFile(path).ok());
  EXPECT_FALSE(testing::FileExists(path + ".tmp"));
  auto f = File::Open(path);
  ASSERT_TRUE(f.ok()) << f.status().message();
  EXPECT_EQ((*f)->path(), path);
  EXPECT_EQ((*f)->GetString("general.architecture").value(), "llama");
  const TensorInfo* t = (*f)->FindTensor("t");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(std::vector<uint8_t>(t->data, t->data + t->n_bytes), Bytes(36, 9));
  const std::string bytes = testing::ReadFile(path);
  const std::vector<uint8_t> buf = w.WriteToBuffer();
  EXPECT_EQ(bytes, std::string(buf.begin(), buf.end()));
  EXPECT_EQ((*f)->file_size(), buf.size());
}

TEST(GgufRoundTripTest, OpenNamesThePathOnMissingFile) {
  auto f = File::Open("/nonexistent/dir/model.gguf");
  ASSERT_FALSE(f.ok());
  EXPECT_NE(f.status().message().find("/nonexistent/dir/model.gguf: cannot open"),
            std::string::npos);
}

}  // namespace
}  // namespace reprise::gguf
