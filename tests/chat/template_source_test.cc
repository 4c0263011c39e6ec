// TemplateFromGguf / SpecialTokensFromGguf on in-memory GGUFs and on the real
// Phi-3 vocab file from the fixtures.
#include <gtest/gtest.h>

#include "chat/template.h"
#include "chat/template_source.h"
#include "testing/fixtures.h"

namespace reprise::chat {
namespace {

std::unique_ptr<gguf::File> MakeGguf(bool with_template) {
  gguf::Writer w;
  w.Set("tokenizer.ggml.tokens", gguf::Value::StringArray({"<unk>", "<s>", "</s>", "hi"}));
  w.Set("tokenizer.ggml.bos_token_id", gguf::Value::Uint32(1));
  w.Set("tokenizer.ggml.eos_token_id", gguf::Value::Uint32(2));
  if (with_template) {
    w.Set("tokenizer.chat_template", gguf::Value::String("{{ bos_token }}default"));
    w.Set("tokenizer.chat_template.tool_use", gguf::Value::String("tools"));
  }
  auto f = gguf::File::FromBuffer(w.WriteToBuffer());
  EXPECT_TRUE(f.ok()) << f.status().message();
  return std::move(f).value();
}

TEST(TemplateSource, ReadsDefaultAndNamedTemplates) {
  auto f = MakeGguf(true);
  auto def = TemplateFromGguf(*f);
  ASSERT_TRUE(def.ok()) << def.status().message();
  EXPECT_EQ(*def, "{{ bos_token }}default");
  auto named = TemplateFromGguf(*f, "tool_use");
  ASSERT_TRUE(named.ok());
  EXPECT_EQ(*named, "tools");
  EXPECT_EQ(TemplateNamesInGguf(*f), std::vector<std::string>{"tool_use"});
  auto missing = TemplateFromGguf(*f, "rag");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("tool_use"), std::string::npos);
}

TEST(TemplateSource, ModelWithoutTemplateIsAClearError) {
  auto f = MakeGguf(false);
  auto t = TemplateFromGguf(*f);
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("no chat template"), std::string::npos);
}

TEST(TemplateSource, SpecialTokenStringsComeFromTheVocab) {
  auto f = MakeGguf(true);
  auto st = SpecialTokensFromGguf(*f);
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->bos_token.value_or("?"), "<s>");
  EXPECT_EQ(st->eos_token.value_or("?"), "</s>");
}

TEST(TemplateSource, RendersThePhi3TemplateFromARealGguf) {
  const std::string path = testing::FixturePath("vocab/ggml-vocab-phi-3.gguf");
  REQUIRE_FIXTURE(path);
  auto f = gguf::File::Open(path);
  ASSERT_TRUE(f.ok()) << f.status().message();
  auto src = TemplateFromGguf(**f);
  ASSERT_TRUE(src.ok()) << src.status().message();
  auto st = SpecialTokensFromGguf(**f);
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->bos_token.value_or("?"), "<s>");
  auto t = ChatTemplate::Parse(*src);
  ASSERT_TRUE(t.ok()) << t.status().message();
  RenderOptions o;
  o.bos_token = st->bos_token;
  o.eos_token = st->eos_token;
  o.add_generation_prompt = true;
  auto out = t->Render(nlohmann::ordered_json::parse(R"([{"role": "user", "content": "Hello"}])"),
                       nlohmann::ordered_json(), o);
  ASSERT_TRUE(out.ok()) << out.status().message();
  EXPECT_NE(out->find("<|user|>"), std::string::npos) << *out;
  EXPECT_NE(out->find("Hello<|end|>"), std::string::npos) << *out;
}

}  // namespace
}  // namespace reprise::chat
