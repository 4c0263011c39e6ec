// `reprise make-model`: writes a random-weight Llama-shaped GGUF (benchmark
// models of any shape and type, and the demo model `make run` serves), or a
// scripted one (--script: greedy decoding replays the pieces, for tests).
#include <cstdio>
#include <fstream>
#include <functional>
#include <iterator>
#include <string>

#include "commands.h"
#include "core/timer.h"
#include "loader.h"
#include "model/synthetic.h"

namespace reprise::tools {
namespace {

struct MakeModelOptions {
  model::SyntheticModelSpec spec;
  std::string out;
  std::string type = "q8_0";
  std::string embd_type;
  std::string preset;
  std::string chat_template_file;
};

// `given(flag)`: whether the command line set that option (it then wins
// over the preset's value).
int RunMakeModel(MakeModelOptions o, const std::function<bool(const char*)>& given) {
  model::SyntheticModelSpec& s = o.spec;
  const model::SyntheticModelSpec flags = s;
  if (o.preset == "tinyllama") {
    s.n_embd = 2048, s.n_layers = 22, s.n_heads = 32, s.n_kv_heads = 4, s.n_ff = 5632;
    s.n_vocab = 32000;
    s.name = "random TinyLlama-1.1B shape";
  } else if (o.preset == "demo") {
    s.n_embd = 512, s.n_layers = 8, s.n_heads = 8, s.n_kv_heads = 4, s.n_ff = 1536;
    s.n_ctx = 8192;
    s.byte_level_vocab = true;
    s.name = "reprise-demo (random weights: its output is noise)";
  } else if (o.preset == "llama3-8b") {
    // The Llama-3-8B shape with a 32000-token vocabulary (7.24B parameters);
    // pass --vocab-from vocab/ggml-vocab-llama-spm.gguf for a real tokenizer.
    s.n_embd = 4096, s.n_layers = 32, s.n_heads = 32, s.n_kv_heads = 8, s.n_ff = 14336;
    s.n_vocab = 32000;
    s.n_ctx = 131072;
    s.rope_freq_base = 500000.0f;
    s.name = "random Llama-3-8B shape";
  } else if (!o.preset.empty()) {
    return ReportError(
        Errorf("unknown --preset '%s' (tinyllama, llama3-8b, demo)", o.preset.c_str()));
  }
  // A preset's shape with some explicit changes (e.g. --preset llama3-8b
  // --layers 4: the same layers, fewer of them).
  if (given("--dim")) s.n_embd = flags.n_embd;
  if (given("--layers")) s.n_layers = flags.n_layers;
  if (given("--heads")) s.n_heads = flags.n_heads;
  if (given("--kv-heads")) s.n_kv_heads = flags.n_kv_heads;
  if (given("--ffn")) s.n_ff = flags.n_ff;
  if (given("--vocab")) s.n_vocab = flags.n_vocab;
  if (given("--ctx")) s.n_ctx = flags.n_ctx;
  if (given("--name")) s.name = flags.name;
  auto t = ParseDType(o.type);
  if (!t) return ReportError(Errorf("unknown weight type '%s'", o.type.c_str()));
  s.weight_type = *t;
  s.embd_type = *t;
  if (!o.embd_type.empty()) {
    auto e = ParseDType(o.embd_type);
    if (!e) return ReportError(Errorf("unknown embedding type '%s'", o.embd_type.c_str()));
    s.embd_type = *e;
  }
  if (!o.chat_template_file.empty()) {
    std::ifstream in(o.chat_template_file, std::ios::binary);
    if (!in) {
      return ReportError(
          Errorf("cannot read --chat-template-file %s", o.chat_template_file.c_str()));
    }
    s.chat_template.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  Stopwatch sw;
  Status st = model::WriteSyntheticModel(s, o.out);
  if (!st.ok()) return ReportError(st);
  std::fprintf(stderr, "wrote %s (%s) in %.1f s\n", o.out.c_str(), s.name.c_str(),
               sw.ElapsedMs() / 1000.0);
  return 0;
}

}  // namespace

void AddMakeModelCommand(CLI::App& app, int& exit_code) {
  auto o = std::make_shared<MakeModelOptions>();
  auto* cmd = app.add_subcommand("make-model", "Write a random-weight Llama-shaped GGUF model");
  cmd->add_option("--out,-o", o->out, "Output GGUF path")->required();
  cmd->add_option("--preset", o->preset,
                  "tinyllama (TinyLlama-1.1B shape), llama3-8b (Llama-3-8B shape) or demo; "
                  "shape options given as well override it");
  cmd->add_option("--type", o->type, "Weight type: f32, f16, bf16, q8_0, q4_0, q4_k, q6_k");
  cmd->add_option("--embd-type", o->embd_type, "Token embedding/output type (default: --type)");
  cmd->add_option("--dim", o->spec.n_embd, "Embedding size");
  cmd->add_option("--layers", o->spec.n_layers, "Layers");
  cmd->add_option("--heads", o->spec.n_heads, "Attention heads");
  cmd->add_option("--kv-heads", o->spec.n_kv_heads, "KV heads");
  cmd->add_option("--ffn", o->spec.n_ff, "Feed-forward size");
  cmd->add_option("--vocab", o->spec.n_vocab, "Vocabulary size (without --vocab-from)");
  cmd->add_option("--ctx", o->spec.n_ctx, "Context length");
  cmd->add_option("--vocab-from", o->spec.vocab_gguf, "Copy the tokenizer from this vocab GGUF");
  cmd->add_flag("--byte-vocab", o->spec.byte_level_vocab, "Built-in byte-level tokenizer + ChatML template");
  cmd->add_option("--seed", o->spec.seed, "Weight seed");
  cmd->add_option("--script", o->spec.script,
                  "Scripted model: one token per piece, replayed greedily then EOS (repeatable; "
                  "F32, byte-level vocab, needs --dim >= 259 + pieces)");
  cmd->add_option("--reply-end", o->spec.reply_ends,
                  "Script position (0-based) whose piece ends a reply; the next piece starts a "
                  "reply only when a prompt ends with it (repeatable)");
  cmd->add_option("--chat-template-file", o->chat_template_file,
                  "tokenizer.chat_template for the byte-level vocab (default: ChatML)");
  cmd->add_option("--name", o->spec.name, "general.name");
  cmd->callback([o, cmd, &exit_code] {
    exit_code = RunMakeModel(*o, [cmd](const char* flag) { return cmd->count(flag) > 0; });
  });
}

}  // namespace reprise::tools
