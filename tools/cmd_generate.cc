// `reprise generate`: prompt -> tokens on one sequence, greedy or sampled.
// JSON (with --json) or the text to stdout; logs and errors to stderr.
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "commands.h"
#include "core/timer.h"
#include "engine/sampler.h"
#include "engine/session.h"
#include "loader.h"

namespace reprise::tools {
namespace {

struct GenerateOptions {
  std::string model;
  std::string prompt;
  std::string prompt_tokens;
  int n_predict = 128;
  float temp = 0.8f;
  int top_k = 40;
  float top_p = 0.95f;
  float min_p = 0.05f;
  float repeat_penalty = 1.0f;
  int64_t seed = -1;
  int threads = 0;
  std::string device = "auto";
  int ctx_size = 0;
  std::string kv_type = "auto";
  bool ignore_eos = false;
  bool json = false;
};

int RunGenerate(const GenerateOptions& o) {
  const bool text_prompt = !o.prompt.empty();
  auto loaded = LoadModel(o.model, o.threads, text_prompt, o.device);
  if (!loaded.ok()) return ReportError(loaded.status());
  LoadedModel& lm = *loaded;
  const model::ModelConfig& cfg = lm.model->config();
  tokenizer::Tokenizer* tok = lm.tokenizer.get();

  std::vector<int32_t> prompt;
  if (!o.prompt_tokens.empty()) {
    auto ids = ParseTokenList(o.prompt_tokens);
    if (!ids.ok()) return ReportError(ids.status());
    prompt = *ids;
  } else if (text_prompt) {
    prompt = tok->Encode(o.prompt, /*add_special=*/true, /*parse_special=*/true);
  } else {
    int64_t bos = tok != nullptr ? tok->bos_id() : -1;
    if (bos < 0) {
      auto b = lm.file->GetIntOr("tokenizer.ggml.bos_token_id", 1);
      bos = b.ok() ? *b : 1;
    }
    prompt = {static_cast<int32_t>(bos)};
  }
  if (prompt.empty()) return ReportError(Errorf("the prompt is empty after tokenization"));
  for (int32_t id : prompt) {
    if (id < 0 || id >= cfg.n_vocab) {
      return ReportError(Errorf("prompt token id %d is out of range [0, %lld)", id,
                                static_cast<long long>(cfg.n_vocab)));
    }
  }
  auto kv_type = ParseKvType(o.kv_type, *lm.model);
  if (!kv_type.ok()) return ReportError(kv_type.status());
  engine::SessionConfig sc;
  sc.ctx_size = o.ctx_size;
  sc.kv_type = *kv_type;
  auto session = engine::Session::Create(*lm.model, sc);
  if (!session.ok()) return ReportError(session.status());
  engine::Session& s = **session;
  if (static_cast<int64_t>(prompt.size()) >= s.ctx_size()) {
    return ReportError(Errorf("the prompt has %zu tokens; the context holds %d", prompt.size(),
                              s.ctx_size()));
  }
  if (o.n_predict < 0) return ReportError(Errorf("--n-predict must be >= 0"));

  engine::SamplingParams sp;
  sp.temperature = o.temp;
  sp.top_k = o.top_k;
  sp.top_p = o.top_p;
  sp.min_p = o.min_p;
  sp.repetition_penalty = o.repeat_penalty;
  if (o.seed >= 0) sp.seed = static_cast<uint64_t>(o.seed);
  Status valid = engine::ValidateSamplingParams(sp, static_cast<int32_t>(cfg.n_vocab));
  if (!valid.ok()) return ReportError(valid);
  engine::Sampler sampler(sp, static_cast<int32_t>(cfg.n_vocab));
  for (int32_t id : prompt) sampler.Accept(id, true);

  kernels::HostFloats logits(&lm.model->backend(), cfg.n_vocab, "the logits");  // pinned on a GPU
  Stopwatch prompt_timer;
  Status st = s.Append(prompt, logits.data());
  if (!st.ok()) return ReportError(st);
  const double prompt_ms = prompt_timer.ElapsedMs();

  std::vector<int32_t> out;
  const int64_t room = s.ctx_size() - static_cast<int64_t>(prompt.size());
  const int64_t n_predict = std::min<int64_t>(o.n_predict, room);
  Stopwatch gen_timer;
  engine::SampleResult res;
  std::unique_ptr<tokenizer::StreamDecoder> stream;
  if (tok != nullptr && !o.json) {
    stream = std::make_unique<tokenizer::StreamDecoder>(*tok, /*skip_special=*/false,
                                                        /*at_sequence_start=*/false);
    auto pt = tok->Decode(prompt, /*skip_special=*/true);
    if (pt.ok()) std::fputs(pt->c_str(), stdout);
    std::fflush(stdout);
  }
  for (int64_t i = 0; i < n_predict; ++i) {
    sampler.Sample(logits.data(), &res);
    if (!o.ignore_eos && tok != nullptr && tok->IsEog(res.token)) break;
    out.push_back(res.token);
    sampler.Accept(res.token, false);
    if (stream) {
      std::string piece = stream->Feed(res.token);
      std::fwrite(piece.data(), 1, piece.size(), stdout);
      std::fflush(stdout);
    }
    if (i + 1 < n_predict) {
      const int32_t next[1] = {res.token};
      st = s.Append(next, logits.data());
      if (!st.ok()) return ReportError(st);
    }
  }
  const double gen_ms = gen_timer.ElapsedMs();
  const double prompt_tps = prompt_ms > 0 ? prompt.size() * 1000.0 / prompt_ms : 0;
  const double gen_tps = gen_ms > 0 && !out.empty() ? out.size() * 1000.0 / gen_ms : 0;

  if (o.json) {
    nlohmann::json j;
    j["prompt_tokens"] = prompt;
    j["tokens"] = out;
    std::string text;
    if (tok != nullptr) {
      // The continuation keeps its leading space (it follows the prompt).
      tokenizer::StreamDecoder dec(*tok, /*skip_special=*/false, /*at_sequence_start=*/false);
      for (int32_t id : out) text += dec.Feed(id);
      text += dec.Flush();
    }
    j["text"] = text;
    j["timings"] = {{"prompt_ms", prompt_ms},
                    {"prompt_tok_per_s", prompt_tps},
                    {"gen_ms", gen_ms},
                    {"gen_tok_per_s", gen_tps}};
    std::string dump = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    std::printf("%s\n", dump.c_str());
  } else {
    if (stream) {
      std::string rest = stream->Flush();
      std::fwrite(rest.data(), 1, rest.size(), stdout);
    }
    std::printf("\n");
  }
  std::fprintf(stderr, "prompt: %zu tokens in %.1f ms (%.1f tok/s); generated %zu tokens in %.1f ms (%.1f tok/s)\n",
               prompt.size(), prompt_ms, prompt_tps, out.size(), gen_ms, gen_tps);
  return 0;
}

}  // namespace

void AddGenerateCommand(CLI::App& app, int& exit_code) {
  auto opts = std::make_shared<GenerateOptions>();
  auto* cmd = app.add_subcommand("generate", "Generate tokens from a prompt");
  cmd->add_option("--model,-m", opts->model, "GGUF model file")->required();
  auto* p = cmd->add_option("--prompt,-p", opts->prompt, "Prompt text (tokenized with the model's tokenizer)");
  auto* pt = cmd->add_option("--prompt-tokens", opts->prompt_tokens, "Prompt as token ids: 1,2,3");
  p->excludes(pt);
  cmd->add_option("--n-predict,-n", opts->n_predict, "Tokens to generate (default 128)");
  cmd->add_option("--temp", opts->temp, "Temperature; 0 = greedy (default 0.8)");
  cmd->add_option("--top-k", opts->top_k, "Top-k; 0 = off (default 40)");
  cmd->add_option("--top-p", opts->top_p, "Top-p; 1 = off (default 0.95)");
  cmd->add_option("--min-p", opts->min_p, "Min-p; 0 = off (default 0.05)");
  cmd->add_option("--repeat-penalty", opts->repeat_penalty, "Repetition penalty (default 1 = off)");
  cmd->add_option("--seed", opts->seed, "RNG seed (default random)");
  cmd->add_option("--threads,-t", opts->threads, "Threads (default: physical cores)");
  cmd->add_option("--device", opts->device, kDeviceHelp);
  cmd->add_option("--ctx-size,-c", opts->ctx_size, "Context size (default: the model's)");
  cmd->add_option("--kv-type", opts->kv_type, "KV cache type: auto (default: f32 for F32 models, else f16), f16, f32 or q8_0");
  cmd->add_flag("--ignore-eos", opts->ignore_eos, "Keep generating past end-of-sequence tokens");
  cmd->add_flag("--json", opts->json, "Print one JSON object with tokens, text and timings");
  cmd->callback([opts, &exit_code] { exit_code = RunGenerate(*opts); });
}

}  // namespace reprise::tools
