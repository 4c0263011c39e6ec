// Scripted synthetic models (model/synthetic.h): through the real tokenizer
// and forward pass, greedy decoding emits exactly the script, then EOS,
// whatever the prompt; repeated pieces are distinct tokens; bad specs are
// refused with a message.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "engine/session.h"
#include "gguf/gguf.h"
#include "model/model.h"
#include "model/synthetic.h"
#include "testing/fixtures.h"
#include "tokenizer/tokenizer.h"

namespace reprise::model {
namespace {

SyntheticModelSpec ScriptSpec(std::vector<std::string> script) {
  SyntheticModelSpec s;
  s.n_embd = 320;
  s.n_layers = 1;
  s.n_heads = 4;
  s.n_kv_heads = 2;
  s.n_ff = 64;
  s.n_ctx = 512;
  s.script = std::move(script);
  return s;
}

struct Loaded {
  std::unique_ptr<gguf::File> file;  // kept open: the model maps its tensors
  std::unique_ptr<Model> model;
  std::unique_ptr<tokenizer::Tokenizer> tok;
};

Loaded WriteAndLoad(const SyntheticModelSpec& spec, const std::string& name) {
  const std::string path = testing::TempDir() + "/" + name + ".gguf";
  Status st = WriteSyntheticModel(spec, path);
  EXPECT_TRUE(st.ok()) << st.message();
  Loaded l;
  auto f = gguf::File::Open(path);
  EXPECT_TRUE(f.ok());
  if (!f.ok()) return l;
  auto tok = tokenizer::Tokenizer::FromGguf(**f);
  EXPECT_TRUE(tok.ok()) << tok.status().message();
  if (!tok.ok()) return l;
  l.tok = std::move(tok).value();
  auto m = Model::Load(std::move(f).value(), ModelOptions{2});
  EXPECT_TRUE(m.ok()) << m.status().message();
  if (m.ok()) l.model = std::move(m).value();
  return l;
}

// Greedy generation from `prompt` until an end-of-generation token (or
// `max_tokens`); returns the decoded text and the generated ids.
std::string Generate(Loaded& l, const std::string& prompt, int max_tokens,
                     std::vector<int32_t>* ids, bool* stopped) {
  auto session = engine::Session::Create(*l.model, {});
  EXPECT_TRUE(session.ok());
  std::vector<float> logits(l.model->config().n_vocab);
  std::vector<int32_t> tokens = l.tok->Encode(prompt, /*add_special=*/false, true);
  EXPECT_TRUE((*session)->Append(tokens, logits.data()).ok());
  tokenizer::StreamDecoder decoder(*l.tok, /*skip_special=*/true, /*at_sequence_start=*/false);
  std::string text;
  *stopped = false;
  for (int i = 0; i < max_tokens; ++i) {
    const int32_t next =
        static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    if (l.tok->IsEog(next)) {
      *stopped = true;
      break;
    }
    ids->push_back(next);
    text += decoder.Feed(next);
    const int32_t one[1] = {next};
    EXPECT_TRUE((*session)->Append(one, logits.data()).ok());
  }
  return text + decoder.Flush();
}

TEST(ScriptedModel, GreedyDecodingEmitsTheScriptThenStops) {
  const std::vector<std::string> script = {"<tool_call>\n{\"name\": \"get_", "weather\", ",
                                           "\"arguments\": {\"city\": \"Paris\"}}",
                                           "\n</tool_call>"};
  Loaded l = WriteAndLoad(ScriptSpec(script), "scripted_call");
  ASSERT_NE(l.model, nullptr);
  for (const std::string prompt :
       {"<|im_start|>user\nWeather?<|im_end|>\n<|im_start|>assistant\n", "x", "<|im_end|>"}) {
    std::vector<int32_t> ids;
    bool stopped = false;
    const std::string text = Generate(l, prompt, 20, &ids, &stopped);
    EXPECT_EQ(text,
              "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n"
              "</tool_call>")
        << prompt;
    EXPECT_TRUE(stopped) << prompt;
    EXPECT_EQ(ids, (std::vector<int32_t>{259, 260, 261, 262})) << prompt;
  }
}

// reply_ends: a reply ends after the marked piece; the piece after it starts
// a reply only when the prompt ends with it (here a marker the prompt ends in).
TEST(ScriptedModel, ReplyEndsSplitTheScriptIntoRepliesChosenByThePromptsLastPiece) {
  SyntheticModelSpec spec =
      ScriptSpec({"<tool_call>{}", "</tool_call>", "[[after tool]]", "The answer", "."});
  spec.reply_ends = {1};
  Loaded l = WriteAndLoad(spec, "scripted_two_replies");
  ASSERT_NE(l.model, nullptr);
  std::vector<int32_t> ids;
  bool stopped = false;
  EXPECT_EQ(Generate(l, "<|im_start|>assistant\n", 20, &ids, &stopped),
            "<tool_call>{}</tool_call>");
  EXPECT_TRUE(stopped);
  ids.clear();
  EXPECT_EQ(Generate(l, "<tool_response>x</tool_response><|im_start|>assistant\n[[after tool]]", 20,
                     &ids, &stopped),
            "The answer.");
  EXPECT_TRUE(stopped);
  spec.reply_ends = {5};
  EXPECT_FALSE(WriteSyntheticModel(spec, testing::TempDir() + "/bad_ends.gguf").ok());
}

TEST(ScriptedModel, RepeatedPiecesAreDistinctTokensAndMetadataIsSet) {
  SyntheticModelSpec spec = ScriptSpec({"ab", "-", "ab", "-", "end"});
  spec.chat_template = "{{ messages[0].content }}";
  Loaded l = WriteAndLoad(spec, "scripted_repeat");
  ASSERT_NE(l.model, nullptr);
  std::vector<int32_t> ids;
  bool stopped = false;
  EXPECT_EQ(Generate(l, "hello", 20, &ids, &stopped), "ab-ab-end");
  EXPECT_TRUE(stopped);
  EXPECT_EQ(l.model->config().n_vocab, 259 + 5);
  auto f = gguf::File::Open(testing::TempDir() + "/scripted_repeat.gguf");
  ASSERT_TRUE(f.ok());
  EXPECT_TRUE(*(*f)->GetBoolOr("reprise.synthetic", false));
  EXPECT_TRUE(*(*f)->GetBoolOr("reprise.scripted", false));  // a test model, not the demo
  auto tmpl = (*f)->GetString("tokenizer.chat_template");
  ASSERT_TRUE(tmpl.ok());
  EXPECT_EQ(*tmpl, "{{ messages[0].content }}");
  auto types = (*f)->GetIntArray("tokenizer.ggml.token_type");
  ASSERT_TRUE(types.ok());
  ASSERT_EQ(types->size(), 264u);
  EXPECT_EQ((*types)[259], 4);  // USER_DEFINED
  EXPECT_EQ((*types)[263], 4);
}

TEST(ScriptedModel, RefusesAVocabularyLargerThanTheEmbedding) {
  SyntheticModelSpec spec = ScriptSpec({"a", "b"});
  spec.n_embd = 256;
  Status st = WriteSyntheticModel(spec, testing::TempDir() + "/scripted_small.gguf");
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("dim >= its vocabulary (261)"), std::string::npos) << st.message();
  spec = ScriptSpec({"a", ""});
  st = WriteSyntheticModel(spec, testing::TempDir() + "/scripted_empty.gguf");
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("must not be empty"), std::string::npos) << st.message();
}

}  // namespace
}  // namespace reprise::model
