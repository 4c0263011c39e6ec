// Exactness against transformers: every template and render recorded in
// ../shared/fixtures/templates/renders.json must come out byte-identical, and
// where transformers raised we must fail too (with the same text for the
// template's own raise_exception).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "chat/template.h"
#include "testing/fixtures.h"

namespace reprise::chat {
namespace {

using ::reprise::testing::FixturePath;
using ::reprise::testing::ReadFile;

// "<template file>|<conversation>|<add_generation_prompt>" renders we cannot
// match yet, with the reason. Keep empty unless a reason is written here.
const std::set<std::string>& KnownFailures() {
  static const std::set<std::string> kKnown = {};
  return kKnown;
}

TEST(TemplateRenders, MatchTransformersByteForByte) {
  const std::string path = FixturePath("templates/renders.json");
  REQUIRE_FIXTURE(path);
  nlohmann::ordered_json fixture = nlohmann::ordered_json::parse(ReadFile(path));
  const std::string now = fixture["info"]["clock_frozen_to"].get<std::string>();
  const auto& conversations = fixture["conversations"];
  int total = 0, matched = 0, known = 0;
  for (const auto& entry : fixture["templates"]) {
    const std::string file = entry["file"].get<std::string>();
    std::string source = ReadFile(FixturePath("templates/" + file));
    ASSERT_FALSE(source.empty()) << file;
    auto parsed = ChatTemplate::Parse(source);
    RenderOptions base;
    base.now = now;
    const auto& kw = entry["template_kwargs"];
    if (kw.contains("bos_token")) base.bos_token = kw["bos_token"].get<std::string>();
    if (kw.contains("eos_token")) base.eos_token = kw["eos_token"].get<std::string>();
    for (const auto& r : entry["renders"]) {
      ++total;
      const std::string conv_name = r["conversation"].get<std::string>();
      const bool agp = r["add_generation_prompt"].get<bool>();
      const std::string key = file + "|" + conv_name + "|" + (agp ? "true" : "false");
      const auto& conv = conversations[conv_name];
      RenderOptions options = base;
      options.add_generation_prompt = agp;
      const bool expect_ok = r["ok"].get<bool>();
      bool ok_match = false;
      std::string detail;
      if (!parsed.ok()) {
        ok_match = !expect_ok;
        detail = "parse failed: " + parsed.status().message();
      } else {
        RenderError error;
        auto out = parsed->Render(conv["messages"], conv.value("tools", nlohmann::ordered_json()), options, &error);
        if (expect_ok) {
          const std::string want = r["output"].get<std::string>();
          ok_match = out.ok() && *out == want;
          detail = out.ok() ? "got:\n" + *out + "\n--- want:\n" + want : "error: " + out.status().message();
        } else {
          const std::string want_error = r["error"].get<std::string>();
          ok_match = !out.ok();
          if (ok_match && want_error.rfind("TemplateError: ", 0) == 0) {
            ok_match = error.kind == RenderError::Kind::kRaised &&
                       error.message == want_error.substr(std::string("TemplateError: ").size());
          }
          detail = out.ok() ? "rendered but transformers raised " + want_error
                            : "error mismatch: " + out.status().message() + " vs " + want_error;
        }
      }
      if (ok_match) {
        ++matched;
        EXPECT_FALSE(KnownFailures().count(key)) << key << " now matches: drop it from KnownFailures";
      } else if (KnownFailures().count(key)) {
        ++known;
      } else {
        ADD_FAILURE() << key << "\n" << detail;
      }
    }
  }
  std::printf("renders matched: %d/%d (known failures: %d)\n", matched, total, known);
  EXPECT_GT(total, 600);
}

}  // namespace
}  // namespace reprise::chat

namespace reprise::chat {
namespace {

// Every prefix (sampled) of every real template either fails to parse or
// renders/fails cleanly: no crash, no hang, no exception escaping.
TEST(TemplateRenders, TruncatedTemplatesNeverCrash) {
  const std::string path = testing::FixturePath("templates/renders.json");
  REQUIRE_FIXTURE(path);
  nlohmann::ordered_json fixture = nlohmann::ordered_json::parse(testing::ReadFile(path));
  const auto& conv = fixture["conversations"]["5_tools"];
  int parsed = 0, attempts = 0;
  for (const auto& entry : fixture["templates"]) {
    std::string source = testing::ReadFile(testing::FixturePath("templates/" + entry["file"].get<std::string>()));
    for (size_t n = 0; n < source.size(); n += 53) {
      ++attempts;
      auto t = ChatTemplate::Parse(source.substr(0, n));
      if (!t.ok()) continue;
      ++parsed;
      RenderOptions o;
      o.now = "2024-07-26";
      (void)t->Render(conv["messages"], conv["tools"], o);
    }
  }
  EXPECT_GT(attempts, 1000);
  EXPECT_GT(parsed, 0);
}

}  // namespace
}  // namespace reprise::chat
