// `reprise logits`: one forward pass over the prompt; writes float32 logits
// [n_tokens, n_vocab] (little-endian, row-major), or the last N rows.
#include <cstdio>
#include <string>
#include <vector>

#include "commands.h"
#include "engine/session.h"
#include "loader.h"

namespace reprise::tools {
namespace {

struct LogitsOptions {
  std::string model;
  std::string prompt_tokens;
  std::string out;
  int last = 0;
  int threads = 0;
  std::string device = "auto";
  std::string kv_type = "auto";
};

int RunLogits(const LogitsOptions& o) {
  auto ids = ParseTokenList(o.prompt_tokens);
  if (!ids.ok()) return ReportError(ids.status());
  auto loaded = LoadModel(o.model, o.threads, false, o.device);
  if (!loaded.ok()) return ReportError(loaded.status());
  const model::ModelConfig& cfg = loaded->model->config();
  for (int32_t id : *ids) {
    if (id >= cfg.n_vocab) {
      return ReportError(Errorf("token id %d is out of range [0, %lld)", id,
                                static_cast<long long>(cfg.n_vocab)));
    }
  }
  auto kv_type = ParseKvType(o.kv_type, *loaded->model);
  if (!kv_type.ok()) return ReportError(kv_type.status());
  engine::SessionConfig sc;
  sc.kv_type = *kv_type;
  sc.ctx_size = std::max<int32_t>(static_cast<int32_t>(cfg.n_ctx_train),
                                  static_cast<int32_t>(ids->size()));
  sc.prefill_chunk = static_cast<int32_t>(ids->size());  // one forward pass
  if (static_cast<int64_t>(ids->size()) > cfg.n_ctx_train) {
    return ReportError(Errorf("the prompt has %zu tokens; the model's context is %lld",
                              ids->size(), static_cast<long long>(cfg.n_ctx_train)));
  }
  auto session = engine::Session::Create(*loaded->model, sc);
  if (!session.ok()) return ReportError(session.status());
  std::vector<float> logits(ids->size() * cfg.n_vocab);
  Status st = (*session)->AppendAll(*ids, logits.data());
  if (!st.ok()) return ReportError(st);
  int64_t rows = static_cast<int64_t>(ids->size());
  int64_t first = 0;
  if (o.last > 0 && o.last < rows) {
    first = rows - o.last;
    rows = o.last;
  }
  FILE* f = std::fopen(o.out.c_str(), "wb");
  if (f == nullptr) return ReportError(Errorf("cannot open %s for writing", o.out.c_str()));
  const size_t n = static_cast<size_t>(rows * cfg.n_vocab);
  const size_t written = std::fwrite(logits.data() + first * cfg.n_vocab, sizeof(float), n, f);
  const bool ok = std::fclose(f) == 0 && written == n;
  if (!ok) return ReportError(Errorf("failed writing %s", o.out.c_str()));
  std::fprintf(stderr, "wrote %lld x %lld logits to %s\n", static_cast<long long>(rows),
               static_cast<long long>(cfg.n_vocab), o.out.c_str());
  return 0;
}

}  // namespace

void AddLogitsCommand(CLI::App& app, int& exit_code) {
  auto opts = std::make_shared<LogitsOptions>();
  auto* cmd = app.add_subcommand("logits", "Write the logits of one forward pass over a prompt");
  cmd->add_option("--model,-m", opts->model, "GGUF model file")->required();
  cmd->add_option("--prompt-tokens", opts->prompt_tokens, "Token ids: 1,2,3")->required();
  cmd->add_option("--out,-o", opts->out, "Output file (float32 [n_tokens, n_vocab])")->required();
  cmd->add_option("--last", opts->last, "Keep only the last N rows");
  cmd->add_option("--threads,-t", opts->threads, "Threads (default: physical cores)");
  cmd->add_option("--device", opts->device, kDeviceHelp);
  cmd->add_option("--kv-type", opts->kv_type, "KV cache type: auto (default: f32 for F32 models, else f16), f16, f32 or q8_0");
  cmd->callback([opts, &exit_code] { exit_code = RunLogits(*opts); });
}

}  // namespace reprise::tools
