// Reads the real GGUF files in ../shared/fixtures (stories260K, llama.cpp's
// vocab-only files, the transformers reference models) and checks metadata
// and tensor tables we know from their sources.
#include "testing/fixtures.h"

#include <gtest/gtest.h>

#include <cstring>

#include "gguf/gguf.h"

namespace reprise::gguf {
namespace {

using testing::FixturePath;

TEST(GgufFixturesTest, Stories260KHasLlamaMetadataAndTensorTable) {
  const std::string path = FixturePath("stories260K/stories260K.gguf");
  REQUIRE_FIXTURE(path);
  auto f = File::Open(path);
  ASSERT_TRUE(f.ok()) << f.status().message();
  const File& file = **f;
  EXPECT_EQ(file.version(), 3u);
  EXPECT_EQ(file.alignment(), 32u);
  EXPECT_EQ(file.GetString("general.architecture").value(), "llama");
  EXPECT_EQ(file.GetString("tokenizer.ggml.model").value(), "llama");
  EXPECT_EQ(file.GetInt("llama.embedding_length").value(), 64);
  EXPECT_EQ(file.GetInt("llama.feed_forward_length").value(), 172);
  EXPECT_EQ(file.GetInt("llama.block_count").value(), 5);
  EXPECT_EQ(file.GetInt("llama.attention.head_count").value(), 8);
  EXPECT_EQ(file.GetInt("llama.attention.head_count_kv").value(), 4);
  EXPECT_EQ(file.GetInt("tokenizer.ggml.bos_token_id").value(), 1);
  EXPECT_NEAR(file.GetFloat("llama.attention.layer_norm_rms_epsilon").value(), 1e-5, 1e-12);
  auto tokens = file.GetStringArray("tokenizer.ggml.tokens");
  ASSERT_TRUE(tokens.ok()) << tokens.status().message();
  ASSERT_EQ(tokens->size(), 512u);
  EXPECT_EQ((*tokens)[1], "<s>");
  EXPECT_EQ(file.GetFloatArray("tokenizer.ggml.scores")->size(), 512u);
  EXPECT_EQ(file.GetIntArray("tokenizer.ggml.token_type")->size(), 512u);

  // 2 embedding/output + output_norm + 9 per layer * 5 layers.
  EXPECT_EQ(file.tensors().size(), 48u);
  const TensorInfo* embd = file.FindTensor("token_embd.weight");
  ASSERT_NE(embd, nullptr);
  EXPECT_EQ(embd->type, DType::kF32);
  EXPECT_EQ(embd->ne, (std::vector<int64_t>{64, 512}));
  EXPECT_EQ(embd->n_bytes, 64u * 512u * 4u);
  const TensorInfo* down = file.FindTensor("blk.4.ffn_down.weight");
  ASSERT_NE(down, nullptr);
  EXPECT_EQ(down->ne, (std::vector<int64_t>{172, 64}));
  // The norm weights of a trained model are finite and mostly near 1.
  const TensorInfo* norm = file.FindTensor("output_norm.weight");
  ASSERT_NE(norm, nullptr);
  ASSERT_EQ(norm->ne, std::vector<int64_t>{64});
  float w0;
  std::memcpy(&w0, norm->data, 4);
  EXPECT_GT(w0, 0.0f);
  EXPECT_LT(w0, 10.0f);
  uint64_t total = 0;
  for (const TensorInfo& t : file.tensors()) total += t.n_bytes;
  EXPECT_LE(total, file.file_size());
}

TEST(GgufFixturesTest, VocabOnlyFilesHaveTokenizerMetadataAndNoTensors) {
  struct Case {
    const char* name;
    const char* model;
    size_t n_vocab;
  };
  const Case cases[] = {
      {"llama-spm", "llama", 32000},     {"phi-3", "llama", 32064},        {"gpt-2", "gpt2", 50257},
      {"deepseek-coder", "gpt2", 32256}, {"deepseek-llm", "gpt2", 102400}, {"starcoder", "gpt2", 0},
  };
  for (const Case& c : cases) {
    const std::string path = FixturePath(std::string("vocab/ggml-vocab-") + c.name + ".gguf");
    REQUIRE_FIXTURE(path);
    auto f = File::Open(path);
    ASSERT_TRUE(f.ok()) << f.status().message();
    EXPECT_TRUE((*f)->tensors().empty()) << c.name;
    EXPECT_EQ((*f)->GetString("tokenizer.ggml.model").value(), c.model) << c.name;
    auto tokens = (*f)->GetStringArray("tokenizer.ggml.tokens");
    ASSERT_TRUE(tokens.ok()) << tokens.status().message();
    if (c.n_vocab != 0) {
      EXPECT_EQ(tokens->size(), c.n_vocab) << c.name;
    }
    EXPECT_GT(tokens->size(), 1000u);
    if (std::string(c.model) == "gpt2") {
      auto merges = (*f)->GetStringArray("tokenizer.ggml.merges");
      ASSERT_TRUE(merges.ok()) << c.name << ": " << merges.status().message();
      EXPECT_GT(merges->size(), 1000u);
    }
  }
}

TEST(GgufFixturesTest, ReferenceModelsOpenWithTheirArchitecture) {
  struct Case {
    const char* dir;
    const char* arch;
  };
  const Case cases[] = {{"llama_gqa", "llama"},       {"qwen2", "qwen2"},
                        {"qwen3", "qwen3"},           {"qwen3_moe", "qwen3moe"},
                        {"minimax_m2", "minimax-m2"}, {"mistral", "llama"},
                        {"llama_rope3", "llama"}};
  for (const Case& c : cases) {
    const std::string path = FixturePath(std::string("reference/") + c.dir + "/" + c.dir + ".gguf");
    REQUIRE_FIXTURE(path);
    auto f = File::Open(path);
    ASSERT_TRUE(f.ok()) << f.status().message();
    EXPECT_EQ((*f)->GetString("general.architecture").value(), c.arch) << c.dir;
    EXPECT_EQ((*f)->GetStringArray("tokenizer.ggml.tokens")->size(), 512u) << c.dir;
    const std::string arch = c.arch;
    const int64_t n_embd = (*f)->GetInt(arch + ".embedding_length").value();
    const int64_t n_layer = (*f)->GetInt(arch + ".block_count").value();
    const TensorInfo* embd = (*f)->FindTensor("token_embd.weight");
    ASSERT_NE(embd, nullptr) << c.dir;
    EXPECT_EQ(embd->ne, (std::vector<int64_t>{n_embd, 512})) << c.dir;
    EXPECT_NE((*f)->FindTensor("blk." + std::to_string(n_layer - 1) + ".attn_norm.weight"), nullptr)
        << c.dir;
  }
}

TEST(GgufFixturesTest, Qwen3MoeExpertTensorsAreThreeDimensional) {
  const std::string path = FixturePath("reference/qwen3_moe/qwen3_moe.gguf");
  REQUIRE_FIXTURE(path);
  auto f = File::Open(path);
  ASSERT_TRUE(f.ok()) << f.status().message();
  EXPECT_EQ((*f)->GetInt("qwen3moe.expert_count").value(), 8);
  EXPECT_EQ((*f)->GetInt("qwen3moe.expert_used_count").value(), 2);
  const TensorInfo* gate = (*f)->FindTensor("blk.0.ffn_gate_exps.weight");
  ASSERT_NE(gate, nullptr);
  EXPECT_EQ(gate->ne, (std::vector<int64_t>{128, 64, 8}));
  EXPECT_EQ(gate->n_bytes, 128u * 64u * 8u * 4u);
}

TEST(GgufFixturesTest, RewritingAFixtureReproducesItsContent) {
  const std::string path = FixturePath("stories260K/stories260K.gguf");
  REQUIRE_FIXTURE(path);
  auto f = File::Open(path);
  ASSERT_TRUE(f.ok()) << f.status().message();
  Writer w;
  w.CopyMetadata(**f);
  for (const TensorInfo& t : (*f)->tensors()) {
    w.AddTensor(t.name, t.type, t.ne, std::vector<uint8_t>(t.data, t.data + t.n_bytes));
  }
  auto g = File::FromBuffer(w.WriteToBuffer());
  ASSERT_TRUE(g.ok()) << g.status().message();
  ASSERT_EQ((*g)->metadata().size(), (*f)->metadata().size());
  for (size_t k = 0; k < (*f)->metadata().size(); ++k) {
    EXPECT_EQ((*g)->metadata()[k].first, (*f)->metadata()[k].first);
  }
  EXPECT_EQ((*g)->GetStringArray("tokenizer.ggml.tokens").value(),
            (*f)->GetStringArray("tokenizer.ggml.tokens").value());
  ASSERT_EQ((*g)->tensors().size(), (*f)->tensors().size());
  for (size_t k = 0; k < (*f)->tensors().size(); ++k) {
    const TensorInfo& a = (*f)->tensors()[k];
    const TensorInfo& b = (*g)->tensors()[k];
    EXPECT_EQ(a.name, b.name);
    EXPECT_EQ(a.ne, b.ne);
    EXPECT_EQ(a.offset, b.offset);  // same layout rules as the original writer
    EXPECT_EQ(0, std::memcmp(a.data, b.data, a.n_bytes)) << a.name;
  }
  // The original was written by llama.cpp-compatible tooling with the same layout.
  EXPECT_EQ((*g)->file_size(), (*f)->file_size());
}

}  // namespace
}  // namespace reprise::gguf
