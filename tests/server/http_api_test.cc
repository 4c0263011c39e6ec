// Black-box tests of the HTTP API: the real `reprise serve` on a free port
// with a tiny byte-vocabulary model; every endpoint, streaming and not, and
// every error case (each answered with OpenAI's JSON error envelope).
#include <gtest/gtest.h>

#include <string>
#include <thread>

#include "server/server_test_util.h"

namespace reprise::server::testing {
namespace {

class HttpApiTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::string error;
    server_ = ServerProcess::Start(TinyChatModel(), {"--parallel", "4"}, &error).release();
    ASSERT_NE(server_, nullptr) << error;
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override { ASSERT_NE(server_, nullptr); }

  static ServerProcess& S() { return *server_; }
  static ServerProcess* server_;
};
ServerProcess* HttpApiTest::server_ = nullptr;

// Forces output made of 'a'/'b' (byte tokens 97, 98): printable and
// deterministic at temperature 0, so text round-trips through the tokenizer.
Json AbBias() { return {{"97", 100}, {"98", 100}}; }

Json ChatBody(const std::string& user, int max_tokens) {
  return {{"messages", {{{"role", "user"}, {"content", user}}}},
          {"max_tokens", max_tokens},
          {"temperature", 0},
          {"logit_bias", AbBias()}};
}

void ExpectError(const HttpResult& r, int status, const std::string& param = "",
                 const std::string& code = "") {
  EXPECT_EQ(r.status, status) << r.body;
  ASSERT_TRUE(r.json.is_object()) << r.body;
  ASSERT_TRUE(r.json.contains("error")) << r.body;
  const Json& e = r.json["error"];
  for (const char* key : {"message", "type", "param", "code"}) {
    EXPECT_TRUE(e.contains(key)) << key << " missing in " << r.body;
  }
  EXPECT_TRUE(e["message"].is_string() && !e["message"].get<std::string>().empty());
  if (!param.empty()) {
    EXPECT_EQ(e["param"], param) << r.body;
  }
  if (!code.empty()) {
    EXPECT_EQ(e["code"], code) << r.body;
  }
}

TEST_F(HttpApiTest, ModelsListsTheModelAndSaysItsOutputIsNoise) {
  HttpResult r = S().Get("/v1/models");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.json["object"], "list");
  ASSERT_EQ(r.json["data"].size(), 1u);
  const Json& m = r.json["data"][0];
  EXPECT_EQ(m["object"], "model");
  EXPECT_NE(m["id"].get<std::string>().find("noise"), std::string::npos);
  EXPECT_EQ(m["output_is_noise"], true);
  EXPECT_NE(m["warning"].get<std::string>().find("built-in demo model"), std::string::npos);
  EXPECT_FALSE(m.contains("scripted"));
  EXPECT_NE(S().Log().find("this is a random-weight demo model"), std::string::npos);
}

// A scripted test model (model/synthetic.h) is labelled as one, not as the
// random-weight demo: in the log and in /v1/models.
TEST(ModelLabelTest, AScriptedTestModelIsNotLabelledAsTheRandomWeightDemo) {
  const std::string model = ScriptedChatModel("scripted_label", {"Hello", "!"}, "");
  ASSERT_FALSE(model.empty());
  std::string error;
  auto s = ServerProcess::Start(model, {}, &error);
  ASSERT_NE(s, nullptr) << error;
  HttpResult r = s->Get("/v1/models");
  ASSERT_EQ(r.status, 200) << r.body;
  const Json& m = r.json["data"][0];
  EXPECT_EQ(m["output_is_noise"], false) << r.body;
  EXPECT_EQ(m["scripted"], true) << r.body;
  EXPECT_EQ(m["id"], "scripted_label") << r.body;  // no "-random-weights-output-is-noise"
  EXPECT_NE(m["warning"].get<std::string>().find("scripted test model"), std::string::npos);
  EXPECT_EQ(m["warning"].get<std::string>().find("demo"), std::string::npos);
  const std::string log = s->Log();
  EXPECT_NE(log.find("this is a scripted test model"), std::string::npos) << log;
  EXPECT_EQ(log.find("random-weight demo"), std::string::npos) << log;
  // It still serves its script.
  HttpResult c =
      s->Post("/v1/chat/completions",
              {{"messages", {{{"role", "user"}, {"content", "hi"}}}}, {"temperature", 0}});
  ASSERT_EQ(c.status, 200) << c.body;
  EXPECT_EQ(c.json["choices"][0]["message"]["content"], "Hello!");
  EXPECT_EQ(s->Stop(), 0);
}

TEST_F(HttpApiTest, HealthIsOkWhileTheEngineRuns) {
  HttpResult r = S().Get("/health");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.json["status"], "ok");
}

TEST_F(HttpApiTest, ChatCompletionHasOpenAiShapeAndUsage) {
  HttpResult r = S().Post("/v1/chat/completions", ChatBody("Hello there", 6));
  ASSERT_EQ(r.status, 200) << r.body;
  const Json& j = r.json;
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["id"].get<std::string>().rfind("chatcmpl-", 0), 0u);
  const Json& choice = j["choices"][0];
  EXPECT_EQ(choice["index"], 0);
  EXPECT_EQ(choice["message"]["role"], "assistant");
  const std::string content = choice["message"]["content"];
  EXPECT_EQ(content.size(), 6u);
  EXPECT_EQ(content.find_first_not_of("ab"), std::string::npos) << content;
  EXPECT_EQ(choice["finish_reason"], "length");
  const Json& u = j["usage"];
  // "<|im_start|>" + "user\nHello there" + "<|im_end|>" + "\n" + "<|im_start|>" + "assistant\n"
  EXPECT_EQ(u["prompt_tokens"], 1 + 16 + 1 + 1 + 1 + 10);
  EXPECT_EQ(u["completion_tokens"], 6);
  EXPECT_EQ(u["total_tokens"], u["prompt_tokens"].get<int>() + 6);
  EXPECT_TRUE(u["prompt_tokens_details"]["cached_tokens"].is_number_integer());
}

TEST_F(HttpApiTest, ChatStreamMatchesNonStreamingAndEndsWithDone) {
  Json body = ChatBody("Stream me something", 8);
  HttpResult whole = S().Post("/v1/chat/completions", body);
  ASSERT_EQ(whole.status, 200) << whole.body;
  body["stream"] = true;
  HttpResult r = S().Post("/v1/chat/completions", body);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_NE(r.headers.find("Content-Type")->second.find("text/event-stream"), std::string::npos);
  bool done = false;
  std::vector<Json> chunks = ParseSse(r.body, &done);
  EXPECT_TRUE(done) << r.body;
  ASSERT_GE(chunks.size(), 3u) << r.body;
  for (const Json& c : chunks) {
    EXPECT_EQ(c["object"], "chat.completion.chunk");
    EXPECT_EQ(c["id"], chunks[0]["id"]);
    EXPECT_FALSE(c.contains("usage"));  // only with stream_options.include_usage
  }
  EXPECT_EQ(chunks[0]["choices"][0]["delta"]["role"], "assistant");
  for (size_t i = 0; i + 1 < chunks.size(); ++i) {
    EXPECT_TRUE(chunks[i]["choices"][0]["finish_reason"].is_null());
  }
  EXPECT_EQ(chunks.back()["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(StreamedText(chunks), whole.json["choices"][0]["message"]["content"]);
}

TEST_F(HttpApiTest, StreamIncludeUsageSendsAFinalUsageChunk) {
  Json body = ChatBody("usage please", 4);
  body["stream"] = true;
  body["stream_options"] = {{"include_usage", true}};
  HttpResult r = S().Post("/v1/chat/completions", body);
  ASSERT_EQ(r.status, 200);
  bool done = false;
  std::vector<Json> chunks = ParseSse(r.body, &done);
  ASSERT_TRUE(done);
  ASSERT_GE(chunks.size(), 2u);
  const Json& last = chunks.back();
  EXPECT_TRUE(last["choices"].empty());
  EXPECT_EQ(last["usage"]["completion_tokens"], 4);
  EXPECT_TRUE(last["usage"]["prompt_tokens_details"].contains("cached_tokens"));
  EXPECT_EQ(chunks[chunks.size() - 2]["choices"][0]["finish_reason"], "length");
}

TEST_F(HttpApiTest, CompletionsAcceptStringAndTokenPrompts) {
  const std::string prompt = "Once upon a time";
  HttpResult tok = S().Post("/tokenize", {{"content", prompt}});
  ASSERT_EQ(tok.status, 200) << tok.body;
  EXPECT_EQ(tok.json["tokens"].size(), prompt.size());  // byte-level vocabulary
  Json body = {{"prompt", prompt}, {"max_tokens", 5}, {"temperature", 0}, {"logit_bias", AbBias()}};
  HttpResult a = S().Post("/v1/completions", body);
  body["prompt"] = tok.json["tokens"];
  HttpResult b = S().Post("/v1/completions", body);
  ASSERT_EQ(a.status, 200) << a.body;
  ASSERT_EQ(b.status, 200) << b.body;
  EXPECT_EQ(a.json["object"], "text_completion");
  EXPECT_EQ(a.json["choices"][0]["text"], b.json["choices"][0]["text"]);
  EXPECT_EQ(a.json["usage"]["prompt_tokens"], static_cast<int>(prompt.size()));
  body["echo"] = true;
  HttpResult e = S().Post("/v1/completions", body);
  EXPECT_EQ(e.json["choices"][0]["text"], prompt + a.json["choices"][0]["text"].get<std::string>());
}

TEST_F(HttpApiTest, CompletionsStream) {
  Json body = {{"prompt", "abc"}, {"max_tokens", 5}, {"temperature", 0}, {"logit_bias", AbBias()}};
  HttpResult whole = S().Post("/v1/completions", body);
  body["stream"] = true;
  HttpResult r = S().Post("/v1/completions", body);
  bool done = false;
  std::vector<Json> chunks = ParseSse(r.body, &done);
  EXPECT_TRUE(done);
  ASSERT_FALSE(chunks.empty());
  EXPECT_EQ(chunks.back()["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(StreamedText(chunks), whole.json["choices"][0]["text"]);
}

TEST_F(HttpApiTest, StopStringIsStrippedNeverStreamedInPartAndEndsGeneration) {
  // Seeded sampling over 'a', 'b', 'c': varied text, identical on every run.
  Json body = {{"prompt", "xyz"},  {"max_tokens", 40},
               {"temperature", 1}, {"top_k", 0},
               {"top_p", 1},       {"min_p", 0},
               {"seed", 1234},     {"logit_bias", {{"97", 100}, {"98", 100}, {"99", 100}}}};
  HttpResult free_run = S().Post("/v1/completions", body);
  ASSERT_EQ(free_run.status, 200);
  const std::string full = free_run.json["choices"][0]["text"];
  ASSERT_EQ(full.size(), 40u);
  // The a/b mix must vary, or the stop string would trivially match at 0.
  ASSERT_NE(full.find_first_not_of(full[0]), std::string::npos) << full;
  // A 3-character stop string taken from the middle of the free run.
  const std::string stop = full.substr(10, 3);
  const size_t at = full.find(stop);
  ASSERT_GT(at, 0u) << full;
  body["stop"] = {stop, "this never appears"};
  HttpResult r = S().Post("/v1/completions", body);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.json["choices"][0]["text"], full.substr(0, at));
  EXPECT_EQ(r.json["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(r.json["usage"]["completion_tokens"], static_cast<int>(at + stop.size()));
  body["stream"] = true;
  HttpResult s = S().Post("/v1/completions", body);
  bool done = false;
  std::vector<Json> chunks = ParseSse(s.body, &done);
  EXPECT_TRUE(done);
  EXPECT_EQ(StreamedText(chunks), full.substr(0, at));
  EXPECT_EQ(chunks.back()["choices"][0]["finish_reason"], "stop");
}

TEST_F(HttpApiTest, ChatLogprobs) {
  Json body = ChatBody("logprobs", 3);
  body["logprobs"] = true;
  body["top_logprobs"] = 2;
  HttpResult r = S().Post("/v1/chat/completions", body);
  ASSERT_EQ(r.status, 200) << r.body;
  const Json& content = r.json["choices"][0]["logprobs"]["content"];
  ASSERT_EQ(content.size(), 3u);
  for (const Json& t : content) {
    EXPECT_TRUE(t["token"].is_string());
    EXPECT_LE(t["logprob"].get<double>(), 0.0);
    EXPECT_EQ(t["top_logprobs"].size(), 2u);
  }
}

TEST_F(HttpApiTest, TokenizeDetokenizeRoundTrip) {
  HttpResult t = S().Post("/tokenize", {{"content", "héllo <|im_end|>"}});
  ASSERT_EQ(t.status, 200);
  HttpResult d = S().Post("/detokenize", {{"tokens", t.json["tokens"]}});
  ASSERT_EQ(d.status, 200);
  EXPECT_EQ(d.json["content"], "héllo <|im_end|>");
  ExpectError(S().Post("/detokenize", {{"tokens", {1, 999999}}}), 400, "tokens");
  ExpectError(S().Post("/tokenize", {{"text", "x"}}), 400, "content");
}

TEST_F(HttpApiTest, MalformedJsonIs400) {
  ExpectError(S().PostRaw("/v1/chat/completions", "{\"messages\": ["), 400);
  ExpectError(S().PostRaw("/v1/completions", "[1,2]"), 400);
}

TEST_F(HttpApiTest, WrongTypesAndRangesAre400NamingTheParameter) {
  ExpectError(S().Post("/v1/chat/completions", {{"model", "x"}}), 400, "messages");
  Json body = ChatBody("x", 2);
  body["temperature"] = "warm";
  ExpectError(S().Post("/v1/chat/completions", body), 400, "temperature");
  body = ChatBody("x", 2);
  body["temperature"] = 3.5;
  ExpectError(S().Post("/v1/chat/completions", body), 400, "temperature");
  body = ChatBody("x", 2);
  body["top_p"] = 1.5;
  ExpectError(S().Post("/v1/chat/completions", body), 400, "top_p");
  body = ChatBody("x", 2);
  body["n"] = 3;
  ExpectError(S().Post("/v1/chat/completions", body), 400, "n");
  body = ChatBody("x", 2);
  body["logit_bias"] = {{"100000", 1}};
  ExpectError(S().Post("/v1/chat/completions", body), 400, "logit_bias");
  ExpectError(S().Post("/v1/completions", {{"prompt", {5, 100000}}}), 400, "prompt");
  ExpectError(S().Post("/v1/completions", {{"prompt", ""}}), 400, "prompt");
}

TEST_F(HttpApiTest, UnknownFieldsAreIgnored) {
  Json body = ChatBody("x", 2);
  body["frobnicate"] = {{"deeply", {1, 2}}};
  body["parallel_tool_calls"] = false;
  EXPECT_EQ(S().Post("/v1/chat/completions", body).status, 200);
}

// Agents ask for max_tokens 32000 whatever the context: the budget is clamped
// to what is left of the 1024-token context, and the reply ends with "length"
// there (or earlier with "stop"), never a 400.
TEST_F(HttpApiTest, AnOutputBudgetPastTheContextIsClamped) {
  Json body = {{"messages", {{{"role", "user"}, {"content", "hello"}}}},
               {"max_tokens", 32000},
               {"temperature", 0}};
  HttpResult r = S().Post("/v1/chat/completions", body);
  ASSERT_EQ(r.status, 200) << r.body;
  const std::string finish = r.json["choices"][0]["finish_reason"];
  EXPECT_TRUE(finish == "length" || finish == "stop") << finish;
  const int total = r.json["usage"]["total_tokens"];
  EXPECT_LE(total, 1024);
  if (finish == "length") {
    EXPECT_EQ(total, 1024);
  }
  Json completion = {{"prompt", "hello"}, {"max_tokens", 100000}, {"temperature", 0}};
  EXPECT_EQ(S().Post("/v1/completions", completion).status, 200);
}

TEST_F(HttpApiTest, ContextLengthExceeded) {
  // The tiny model's context is 1024 tokens: a prompt past it is refused.
  Json body = ChatBody(std::string(1100, 'z'), 5);
  ExpectError(S().Post("/v1/chat/completions", body), 400, "messages", "context_length_exceeded");
  Json long_prompt = {{"prompt", std::string(1100, 'z')}, {"max_tokens", 1}};
  ExpectError(S().Post("/v1/completions", long_prompt), 400, "prompt", "context_length_exceeded");
}

TEST_F(HttpApiTest, UnknownRouteIs404AndWrongMethodIs405) {
  ExpectError(S().Get("/v1/nothing"), 404, "", "not_found");
  ExpectError(S().Post("/v2/chat", {{"a", 1}}), 404, "", "not_found");
  HttpResult r = S().Get("/v1/chat/completions");
  ExpectError(r, 405, "", "method_not_allowed");
  EXPECT_EQ(r.headers.find("Allow")->second, "POST");
  ExpectError(S().Post("/v1/models", {{"a", 1}}), 405);
  auto del = S().Client()->Delete("/health");
  ASSERT_TRUE(del);
  EXPECT_EQ(del->status, 405);
  EXPECT_NE(del->body.find("\"error\""), std::string::npos);
}

TEST_F(HttpApiTest, OversizedBodyIs413WithJson) {
  std::string big = "{\"prompt\": \"" + std::string((32 << 20) + 16, 'a') + "\"}";
  ExpectError(S().PostRaw("/v1/completions", big), 413);
}

TEST_F(HttpApiTest, MetricsExposeEveryNamedSeries) {
  // ignore_eos: at the default temperature the test model sometimes samples
  // EOS early, and the counter below must see all 3 tokens.
  ASSERT_EQ(S().Post("/v1/completions",
                     {{"prompt", "metrics"}, {"max_tokens", 3}, {"ignore_eos", true}})
                .status,
            200);
  ASSERT_TRUE(S().WaitIdle());  // engine stats are refreshed after the response
  HttpResult r = S().Get("/metrics");
  ASSERT_EQ(r.status, 200);
  for (const char* name :
       {"reprise_requests_total", "reprise_prompt_tokens_total",
        "reprise_prompt_tokens_cached_total", "reprise_generated_tokens_total",
        "reprise_prompt_cache_entries", "reprise_prompt_cache_bytes",
        "reprise_prompt_cache_bytes_limit", "reprise_prompt_cache_hits_total",
        "reprise_prompt_cache_misses_total", "reprise_prompt_cache_evictions_total",
        "reprise_kv_bytes_in_use", "reprise_time_to_first_token_seconds_sum",
        "reprise_time_to_first_token_seconds_count", "reprise_time_per_output_token_seconds_sum",
        "reprise_time_per_output_token_seconds_count"}) {
    EXPECT_FALSE(std::isnan(MetricValue(r.body, name))) << name << " missing";
  }
  EXPECT_NE(r.body.find("reprise_time_to_first_token_seconds_bucket{le=\"+Inf\"}"),
            std::string::npos);
  EXPECT_NE(r.body.find("# TYPE reprise_time_per_output_token_seconds histogram"),
            std::string::npos);
  EXPECT_GE(MetricValue(r.body, "reprise_requests_total"), 1);
  EXPECT_GE(MetricValue(r.body, "reprise_generated_tokens_total"), 3);
  EXPECT_GE(MetricValue(r.body, "reprise_time_to_first_token_seconds_count"), 1);
  const double before = MetricValue(r.body, "reprise_prompt_tokens_total");
  ASSERT_EQ(S().Post("/v1/completions", {{"prompt", "12345"}, {"max_tokens", 1}}).status, 200);
  ASSERT_TRUE(S().WaitIdle());
  EXPECT_EQ(S().Metric("reprise_prompt_tokens_total"), before + 5);
}

TEST_F(HttpApiTest, CacheEndpointListsEntries) {
  ASSERT_EQ(S().Post("/v1/completions", {{"prompt", "cache endpoint"}, {"max_tokens", 2}}).status,
            200);
  ASSERT_TRUE(S().WaitIdle());
  HttpResult r = S().Get("/v1/cache");
  ASSERT_EQ(r.status, 200) << r.body;
  ASSERT_GE(r.json["data"].size(), 1u);
  for (const Json& e : r.json["data"]) {
    for (const char* key :
         {"tokens", "bytes", "blocks", "shared_blocks", "last_use_unix_ms", "hits"}) {
      EXPECT_TRUE(e.contains(key)) << key;
    }
    EXPECT_GT(e["tokens"].get<int>(), 0);
  }
  EXPECT_EQ(r.json["entries"], r.json["data"].size());
}

TEST(HttpApiAuthTest, ApiKeyIsRequiredExceptForHealth) {
  std::string error;
  auto s = ServerProcess::Start(TinyChatModel(), {"--api-key", "sekret"}, &error);
  ASSERT_NE(s, nullptr) << error;
  ExpectError(s->Get("/v1/models"), 401, "", "invalid_api_key");
  ExpectError(s->Get("/v1/models", {{"Authorization", "Bearer wrong"}}), 401);
  ExpectError(s->Post("/v1/completions", {{"prompt", "x"}}), 401);
  EXPECT_EQ(s->Get("/v1/models", {{"Authorization", "Bearer sekret"}}).status, 200);
  EXPECT_EQ(s->Post("/v1/completions", {{"prompt", "x"}, {"max_tokens", 1}},
                    {{"Authorization", "Bearer sekret"}})
                .status,
            200);
  EXPECT_EQ(s->Get("/health").status, 200);
  EXPECT_EQ(s->Stop(), 0) << s->Log();
}

TEST(HttpApiShutdownTest, SigtermStopsGracefullyDuringAStream) {
  std::string error;
  auto s = ServerProcess::Start(TinyChatModel(), {}, &error);
  ASSERT_NE(s, nullptr) << error;
  std::thread streamer([&] {
    s->Post("/v1/completions",
            {{"prompt", "long"}, {"max_tokens", 1000}, {"stream", true}, {"ignore_eos", true}});
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(s->Stop(), 0) << s->Log();
  streamer.join();
  EXPECT_NE(s->Log().find("shutting down"), std::string::npos);
}

TEST(HttpApiStartupTest, LogsModelContextKvBytesAndCacheLimits) {
  std::string error;
  auto s = ServerProcess::Start(TinyChatModel(),
                                {"--prompt-cache-bytes", "1M", "--prompt-cache-size", "3"}, &error);
  ASSERT_NE(s, nullptr) << error;
  const std::string log = s->Log();
  EXPECT_NE(log.find("context 1024 tokens"), std::string::npos) << log;
  EXPECT_NE(log.find("per token"), std::string::npos) << log;
  EXPECT_NE(log.find("at most 3 entries"), std::string::npos) << log;
  EXPECT_NE(log.find("1.0 MiB"), std::string::npos) << log;
  EXPECT_NE(log.find("output is noise"), std::string::npos) << log;
  EXPECT_EQ(s->Metric("reprise_prompt_cache_bytes_limit"), 1 << 20);
}

TEST(HttpApiStartupTest, BadFlagsFailWithAMessage) {
  std::string error;
  auto s = ServerProcess::Start(TinyChatModel(), {"--prompt-cache-bytes", "lots"}, &error);
  EXPECT_EQ(s, nullptr);
  EXPECT_NE(error.find("--prompt-cache-bytes"), std::string::npos) << error;
  s = ServerProcess::Start(TinyChatModel(), {"--prefill-chunk", "0"}, &error);
  EXPECT_EQ(s, nullptr);
  EXPECT_NE(error.find("--prefill-chunk"), std::string::npos) << error;
  s = ServerProcess::Start(TinyChatModel(), {"--prefill-order", "fastest"}, &error);
  EXPECT_EQ(s, nullptr);
  EXPECT_NE(error.find("--prefill-order must be arrival or shortest"), std::string::npos)
      << error;
}

// --prefill-chunk: the step budget for prompt tokens. A prompt prefilled 5
// tokens a step (shortest prompts first) answers exactly what it does in one
// step (the determinism contract), and the server says which budget and
// order it runs with.
TEST(HttpApiStartupTest, PrefillChunkChangesStepsNotAnswers) {
  std::string error;
  auto small = ServerProcess::Start(
      TinyChatModel(), {"--prefill-chunk", "5", "--prefill-order", "shortest"}, &error);
  ASSERT_NE(small, nullptr) << error;
  auto big = ServerProcess::Start(TinyChatModel(), {}, &error);
  ASSERT_NE(big, nullptr) << error;
  EXPECT_NE(small->Log().find("prefill chunk 5 tokens (shortest first)"), std::string::npos)
      << small->Log();
  EXPECT_NE(big->Log().find("prefill chunk 512 tokens (oldest first)"), std::string::npos)
      << big->Log();
  const Json body = {{"prompt", "Once upon a time there was a little girl who liked to play"},
                     {"max_tokens", 12},
                     {"temperature", 0}};
  HttpResult a = small->Post("/v1/completions", body);
  HttpResult b = big->Post("/v1/completions", body);
  ASSERT_EQ(a.status, 200) << a.body;
  ASSERT_EQ(b.status, 200) << b.body;
  EXPECT_GT(a.json["usage"]["prompt_tokens"].get<int>(), 10);
  EXPECT_EQ(a.json["choices"][0]["text"], b.json["choices"][0]["text"]);
}

}  // namespace
}  // namespace reprise::server::testing
