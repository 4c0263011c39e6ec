// Black-box tests of `reprise template`: the prompt exactly on stdout (no
// trailing newline), errors on stderr with exit code 1; checked against the
// transformers renders in ../shared/fixtures/templates/renders.json.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "testing/fixtures.h"

namespace reprise::chat {
namespace {

using ::reprise::testing::BinaryPath;
using ::reprise::testing::CliResult;
using ::reprise::testing::FileExists;
using ::reprise::testing::FixturePath;
using ::reprise::testing::ReadFile;
using ::reprise::testing::RunReprise;
using ::reprise::testing::TempDir;
using Json = nlohmann::ordered_json;

void WriteFile(const std::string& path, const std::string& text) {
  FILE* f = fopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr) << path;
  fwrite(text.data(), 1, text.size(), f);
  fclose(f);
}

TEST(TemplateCli, PrintsExactlyWhatTransformersRenderedForToolConversations) {
  REQUIRE_REPRISE_BINARY();
  const std::string renders = FixturePath("templates/renders.json");
  REQUIRE_FIXTURE(renders);
  Json fixture = Json::parse(ReadFile(renders));
  const std::string now = fixture["info"]["clock_frozen_to"].get<std::string>().substr(0, 10);
  const Json& conv = fixture["conversations"]["5_tools"];
  const std::string messages = TempDir() + "/cli_messages.json";
  const std::string tools = TempDir() + "/cli_tools.json";
  WriteFile(messages, conv["messages"].dump());
  WriteFile(tools, conv["tools"].dump());
  int checked = 0;
  for (const auto& entry : fixture["templates"]) {
    for (const auto& r : entry["renders"]) {
      if (r["conversation"] != "5_tools") continue;
      std::vector<std::string> args = {"template", "--chat-template-file",
                                       FixturePath("templates/" + entry["file"].get<std::string>()),
                                       "--messages-file", messages, "--tools-file", tools, "--now", now};
      if (r["add_generation_prompt"].get<bool>()) args.push_back("--add-generation-prompt");
      for (const char* key : {"bos_token", "eos_token"}) {
        if (entry["template_kwargs"].contains(key)) {
          args.push_back(std::string("--") + (key[0] == 'b' ? "bos-token" : "eos-token"));
          args.push_back(entry["template_kwargs"][key].get<std::string>());
        }
      }
      CliResult got = RunReprise(args);
      const std::string label = entry["file"].get<std::string>();
      if (r["ok"].get<bool>()) {
        EXPECT_EQ(got.exit_code, 0) << label << ": " << got.err;
        EXPECT_EQ(got.out, r["output"].get<std::string>()) << label;
      } else {
        EXPECT_EQ(got.exit_code, 1) << label;
        EXPECT_TRUE(got.out.empty()) << label;
        EXPECT_FALSE(got.err.empty()) << label;
      }
      ++checked;
    }
  }
  EXPECT_GT(checked, 80);
}

TEST(TemplateCli, UsesTheModelTemplateAndTokensAndFailsClearlyWithoutOne) {
  REQUIRE_REPRISE_BINARY();
  const std::string phi3 = FixturePath("vocab/ggml-vocab-phi-3.gguf");
  const std::string gpt2 = FixturePath("vocab/ggml-vocab-gpt-2.gguf");
  REQUIRE_FIXTURE(phi3);
  REQUIRE_FIXTURE(gpt2);
  const std::string messages = TempDir() + "/cli_hello.json";
  WriteFile(messages, R"([{"role": "user", "content": "Hi"}])");
  CliResult r = RunReprise({"template", "--model", phi3, "--messages-file", messages});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "<s><|user|>\nHi<|end|>\n<|assistant|>\n");
  r = RunReprise({"template", "--model", gpt2, "--messages-file", messages});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(r.out.empty());
  EXPECT_NE(r.err.find("no chat template"), std::string::npos) << r.err;
  r = RunReprise({"template", "--model", phi3, "--messages-file", "/nonexistent.json"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("/nonexistent.json"), std::string::npos) << r.err;
}

TEST(TemplateCli, ContentAsTextPartsRendersLikeAStringAndOtherPartsFail) {
  REQUIRE_REPRISE_BINARY();
  const std::string phi3 = FixturePath("vocab/ggml-vocab-phi-3.gguf");
  REQUIRE_FIXTURE(phi3);
  const std::string parts = TempDir() + "/cli_parts.json";
  WriteFile(parts, R"([{"role": "user", "content": [{"type": "text", "text": "Hi "},
                                                     {"type": "text", "text": "there"}]}])");
  CliResult r = RunReprise({"template", "--model", phi3, "--messages-file", parts});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "<s><|user|>\nHi there<|end|>\n<|assistant|>\n");
  WriteFile(parts, R"([{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}])");
  r = RunReprise({"template", "--model", phi3, "--messages-file", parts});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(r.out.empty());
  EXPECT_NE(r.err.find("only text parts"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace reprise::chat
