// Model loading errors (named tensors, shapes, types, architectures) and the
// invariant the prompt cache relies on: one-pass prefill, chunked prefill and
// token-by-token decoding give bitwise identical logits, for F32 and F16 KV.
#include <gtest/gtest.h>

#include <cstring>

#include "engine/session.h"
#include "gguf/gguf.h"
#include "kernels/ops.h"
#include "model/model.h"
#include "model/synthetic.h"
#include "testing/fixtures.h"
#include "tokenizer/tokenizer.h"

namespace reprise::model {
namespace {

std::string WriteTiny(const std::string& name, DType type) {
  SyntheticModelSpec s;
  s.n_embd = 256;  // K-quant blocks are 256 wide
  s.n_layers = 2;
  s.n_heads = 4;
  s.n_kv_heads = 2;
  s.n_ff = 256;
  s.n_vocab = 300;
  s.n_ctx = 256;
  s.weight_type = type;
  s.embd_type = type;
  s.byte_level_vocab = true;
  const std::string path = testing::TempDir() + "/" + name + ".gguf";
  Status st = WriteSyntheticModel(s, path);
  EXPECT_TRUE(st.ok()) << st.message();
  return path;
}

std::unique_ptr<Model> Load(const std::string& path, Status* error = nullptr) {
  auto f = gguf::File::Open(path);
  if (!f.ok()) {
    if (error) *error = f.status();
    return nullptr;
  }
  auto m = Model::Load(std::move(f).value(), ModelOptions{2});
  if (!m.ok()) {
    if (error) *error = m.status();
    return nullptr;
  }
  return std::move(m).value();
}

// Copies `src` into a new file, editing metadata/tensors through callbacks.
std::string Rewrite(const std::string& src, const std::string& name,
                    const std::function<void(gguf::Writer&)>& edit_meta,
                    const std::function<bool(const gguf::TensorInfo&, gguf::Writer&)>& edit_tensor) {
  auto f = gguf::File::Open(src);
  EXPECT_TRUE(f.ok());
  gguf::Writer w;
  w.CopyMetadata(**f);
  edit_meta(w);
  for (const auto& t : (*f)->tensors()) {
    if (edit_tensor(t, w)) continue;
    w.AddTensor(t.name, t.type, t.ne, std::vector<uint8_t>(t.data, t.data + t.n_bytes));
  }
  const std::string path = testing::TempDir() + "/" + name + ".gguf";
  EXPECT_TRUE(w.WriteFile(path).ok());
  return path;
}

TEST(ModelLoad, RejectsUnknownArchitecture) {
  std::string base = WriteTiny("base_arch", DType::kF32);
  std::string p = Rewrite(
      base, "bad_arch", [](gguf::Writer& w) { w.Set("general.architecture", gguf::Value::String("gptx")); },
      [](const gguf::TensorInfo&, gguf::Writer&) { return false; });
  Status err;
  EXPECT_EQ(Load(p, &err), nullptr);
  EXPECT_NE(err.message().find("unsupported architecture 'gptx'"), std::string::npos) << err.message();
}

TEST(ModelLoad, NamesMissingTensor) {
  std::string base = WriteTiny("base_missing", DType::kF32);
  std::string p = Rewrite(base, "missing", [](gguf::Writer&) {},
                          [](const gguf::TensorInfo& t, gguf::Writer&) {
                            return t.name == "blk.1.ffn_up.weight";
                          });
  Status err;
  EXPECT_EQ(Load(p, &err), nullptr);
  EXPECT_NE(err.message().find("missing tensor 'blk.1.ffn_up.weight'"), std::string::npos)
      << err.message();
}

TEST(ModelLoad, NamesMisShapedTensor) {
  std::string base = WriteTiny("base_shape", DType::kF32);
  std::string p = Rewrite(base, "shape", [](gguf::Writer&) {},
                          [](const gguf::TensorInfo& t, gguf::Writer& w) {
                            if (t.name != "blk.0.attn_k.weight") return false;
                            std::vector<uint8_t> d(256 * 256 * 4);
                            w.AddTensor(t.name, DType::kF32, {256, 256}, d);
                            return true;
                          });
  Status err;
  EXPECT_EQ(Load(p, &err), nullptr);
  EXPECT_NE(err.message().find("'blk.0.attn_k.weight' has shape {256, 256}, expected {256, 128}"),
            std::string::npos)
      << err.message();
}

TEST(ModelLoad, RejectsUnsupportedWeightType) {
  std::string base = WriteTiny("base_type", DType::kF32);
  std::string p = Rewrite(base, "type", [](gguf::Writer&) {},
                          [](const gguf::TensorInfo& t, gguf::Writer& w) {
                            if (t.name != "blk.0.attn_q.weight") return false;
                            std::vector<uint8_t> d(RowBytes(DType::kQ5_K, 256) * 256);
                            w.AddTensor(t.name, DType::kQ5_K, {256, 256}, d);
                            return true;
                          });
  Status err;
  EXPECT_EQ(Load(p, &err), nullptr);
  EXPECT_FALSE(err.message().empty());
}

TEST(ModelForward, RejectsOutOfRangeToken) {
  auto m = Load(WriteTiny("range", DType::kF32));
  ASSERT_NE(m, nullptr);
  auto s = engine::Session::Create(*m, {});
  ASSERT_TRUE(s.ok());
  std::vector<float> logits(m->config().n_vocab);
  const int32_t bad[2] = {1, 300};
  Status st = (*s)->Append(bad, logits.data());
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("token id 300 is out of range"), std::string::npos);
}

TEST(SyntheticModel, ByteLevelVocabEncodesOneTokenPerByteAndRoundTrips) {
  const std::string path = WriteTiny("bytevocab", DType::kF32);
  auto f = gguf::File::Open(path);
  ASSERT_TRUE(f.ok());
  auto synthetic = (*f)->GetBoolOr("reprise.synthetic", false);
  ASSERT_TRUE(synthetic.ok());
  EXPECT_TRUE(*synthetic);
  EXPECT_FALSE(*(*f)->GetBoolOr("reprise.scripted", false));  // random weights: the demo kind
  auto tok = tokenizer::Tokenizer::FromGguf(**f);
  ASSERT_TRUE(tok.ok()) << tok.status().message();
  const std::string text = "h\xc3\xa9llo <|im_end|>";
  std::vector<int32_t> ids = (*tok)->Encode(text, false, false);
  EXPECT_EQ(ids.size(), text.size());  // no merges: one token per byte
  std::vector<int32_t> special = (*tok)->Encode("<|im_start|>", false, true);
  ASSERT_EQ(special.size(), 1u);
  EXPECT_EQ(special[0], 257);
  auto back = (*tok)->Decode(ids);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, text);
}

class PrefillInvariance : public ::testing::TestWithParam<std::tuple<DType, DType>> {};

// The prompt cache's determinism rests on this: logits do not depend on how
// the prompt was split into forward passes.
TEST_P(PrefillInvariance, ChunkedOnePassAndIncrementalAreBitwiseEqual) {
  const auto [weight_type, kv_type] = GetParam();
  auto m = Load(WriteTiny(std::string("inv_") + DTypeName(weight_type), weight_type));
  ASSERT_NE(m, nullptr);
  const int64_t V = m->config().n_vocab;
  std::vector<int32_t> prompt;
  for (int i = 0; i < 77; ++i) prompt.push_back((i * 37 + 11) % 256);
  auto run = [&](int chunk) {
    engine::SessionConfig sc;
    sc.kv_type = kv_type;
    sc.block_tokens = 16;
    sc.prefill_chunk = chunk;
    auto s = engine::Session::Create(*m, sc);
    EXPECT_TRUE(s.ok());
    std::vector<float> all(prompt.size() * V);
    EXPECT_TRUE((*s)->AppendAll(prompt, all.data()).ok());
    return all;
  };
  std::vector<float> one = run(1000);
  for (int chunk : {1, 7, 33}) {
    std::vector<float> other = run(chunk);
    ASSERT_EQ(0, std::memcmp(one.data(), other.data(), one.size() * sizeof(float)))
        << "chunk " << chunk;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Types, PrefillInvariance,
    ::testing::Combine(::testing::Values(DType::kF32, DType::kF16, DType::kQ8_0, DType::kQ4_0,
                                         DType::kQ4_K, DType::kQ6_K),
                       ::testing::Values(DType::kF32, DType::kF16, DType::kQ8_0)),
    [](const auto& info) {
      return std::string(DTypeName(std::get<0>(info.param))) + "_kv" +
             DTypeName(std::get<1>(info.param));
    });

}  // namespace
}  // namespace reprise::model
