// `reprise tokenize`, `reprise detokenize` and `reprise convert-vocab`.
//   tokenize --model F (--text TEXT | --text-file F) [--special] [--no-bos]
//       -> {"tokens":[...]}
//   detokenize --model F --tokens 1,2,3 [--skip-special]  -> {"text":"..."}
//   convert-vocab --encoder-json F --vocab-bpe F [--pre llama-bpe] --out X.gguf
//       -> {"out":"X.gguf","n_vocab":N}
// Any GGUF with tokenizer.* keys works as --model, vocab-only files included.
// JSON goes to stdout; errors go to stderr with a non-zero exit code.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "commands.h"
#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/vocab_convert.h"

namespace reprise::tools {
namespace {

using nlohmann::json;

int Fail(const std::string& message) {
  std::fprintf(stderr, "error: %s\n", message.c_str());
  return 1;
}

void PrintJson(const json& j) {
  // Decoded text need not be valid UTF-8: replace bad bytes, never throw.
  std::printf("%s\n", j.dump(-1, ' ', false, json::error_handler_t::replace).c_str());
}

Result<std::unique_ptr<tokenizer::Tokenizer>> LoadTokenizer(const std::string& path) {
  ASSIGN_OR_RETURN(auto file, gguf::File::Open(path));
  auto tok = tokenizer::Tokenizer::FromGguf(*file);
  if (!tok.ok()) return tok.status().WithContext(path);
  return std::move(tok).value();
}

Result<std::string> ReadText(const std::string& path) {
  std::ostringstream ss;
  if (path == "-") {
    ss << std::cin.rdbuf();
    return ss.str();
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return Errorf("cannot open --text-file %s", path.c_str());
  ss << in.rdbuf();
  return ss.str();
}

// "1,2,3", "1 2 3" or "[1, 2, 3]".
Result<std::vector<int32_t>> ParseIds(const std::string& s) {
  std::vector<int32_t> ids;
  std::string cur;
  const auto flush = [&]() -> Status {
    if (cur.empty()) return Status::Ok();
    size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(cur, &used);
    } catch (...) {
      used = 0;
    }
    if (used != cur.size() || v < INT32_MIN || v > INT32_MAX) {
      return Errorf("--tokens: '%s' is not a token id", cur.c_str());
    }
    ids.push_back(static_cast<int32_t>(v));
    cur.clear();
    return Status::Ok();
  };
  for (char c : s) {
    if (c == ',' || c == ' ' || c == '\t' || c == '\n' || c == '[' || c == ']') {
      RETURN_IF_ERROR(flush());
    } else {
      cur.push_back(c);
    }
  }
  RETURN_IF_ERROR(flush());
  return ids;
}

void AddTokenize(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("tokenize", "Text to token ids: prints {\"tokens\":[...]}");
  struct Options {
    std::string model, text, text_file;
    bool special = false, no_bos = false;
  };
  auto opts = std::make_shared<Options>();
  cmd->add_option("--model,-m", opts->model, "GGUF file (a vocab-only GGUF is fine)")->required();
  auto* text = cmd->add_option("--text", opts->text, "Text to tokenize");
  auto* file = cmd->add_option("--text-file", opts->text_file, "File to tokenize ('-': stdin)");
  text->excludes(file);
  cmd->add_flag("--special", opts->special, "Match special-token texts (e.g. <|eot_id|>)");
  cmd->add_flag("--no-bos", opts->no_bos, "Do not add BOS even if the vocabulary asks for it");
  cmd->callback([opts, text, file, &exit_code] {
    if (text->count() == 0 && file->count() == 0) {
      exit_code = Fail("tokenize needs --text or --text-file");
      return;
    }
    auto tok = LoadTokenizer(opts->model);
    if (!tok.ok()) {
      exit_code = Fail(tok.status().message());
      return;
    }
    std::string input = opts->text;
    if (file->count() > 0) {
      auto r = ReadText(opts->text_file);
      if (!r.ok()) {
        exit_code = Fail(r.status().message());
        return;
      }
      input = std::move(r).value();
    }
    const auto& t = **tok;
    std::vector<int32_t> ids;
    if (!opts->no_bos && t.add_bos() && t.bos_id() >= 0) ids.push_back(t.bos_id());
    const auto body = t.Encode(input, /*add_special=*/false, opts->special);
    ids.insert(ids.end(), body.begin(), body.end());
    if (t.add_eos() && t.eos_id() >= 0) ids.push_back(t.eos_id());
    PrintJson(json{{"tokens", ids}});
    exit_code = 0;
  });
}

void AddDetokenize(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("detokenize", "Token ids to text: prints {\"text\":\"...\"}");
  struct Options {
    std::string model, tokens;
    bool skip_special = false;
  };
  auto opts = std::make_shared<Options>();
  cmd->add_option("--model,-m", opts->model, "GGUF file (a vocab-only GGUF is fine)")->required();
  cmd->add_option("--tokens", opts->tokens, "Token ids, e.g. 1,2,3")->required();
  cmd->add_flag("--skip-special", opts->skip_special, "Leave control tokens out");
  cmd->callback([opts, &exit_code] {
    auto ids = ParseIds(opts->tokens);
    if (!ids.ok()) {
      exit_code = Fail(ids.status().message());
      return;
    }
    auto tok = LoadTokenizer(opts->model);
    if (!tok.ok()) {
      exit_code = Fail(tok.status().message());
      return;
    }
    auto text = (*tok)->Decode(*ids, opts->skip_special);
    if (!text.ok()) {
      exit_code = Fail(text.status().message());
      return;
    }
    PrintJson(json{{"text", *text}});
    exit_code = 0;
  });
}

void AddConvertVocab(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand(
      "convert-vocab", "Build a vocab-only GGUF from encoder.json + vocab.bpe (GPT-2 format)");
  struct Options {
    tokenizer::BpeVocabSource source;
    std::string out;
  };
  auto opts = std::make_shared<Options>();
  cmd->add_option("--encoder-json", opts->source.encoder_json_path, "token -> id JSON")
      ->required();
  cmd->add_option("--vocab-bpe", opts->source.vocab_bpe_path, "merges, one per line")->required();
  cmd->add_option("--pre", opts->source.pre, "tokenizer.ggml.pre (default llama-bpe)");
  cmd->add_option("--out", opts->out, "GGUF file to write")->required();
  cmd->callback([opts, &exit_code] {
    auto writer = tokenizer::BuildBpeVocabGguf(opts->source);
    if (!writer.ok()) {
      exit_code = Fail(writer.status().message());
      return;
    }
    // Refuse to write a vocabulary the tokenizer would not load.
    auto image = gguf::File::FromBuffer(writer->WriteToBuffer());
    if (!image.ok()) {
      exit_code = Fail(image.status().message());
      return;
    }
    auto tok = tokenizer::Tokenizer::FromGguf(**image);
    if (!tok.ok()) {
      exit_code = Fail(tok.status().message());
      return;
    }
    const Status st = writer->WriteFile(opts->out);
    if (!st.ok()) {
      exit_code = Fail(st.message());
      return;
    }
    PrintJson(json{{"out", opts->out}, {"n_vocab", (*tok)->n_vocab()}, {"pre", (*tok)->pre()}});
    exit_code = 0;
  });
}

}  // namespace

void AddTokenizeCommands(CLI::App& app, int& exit_code) {
  AddTokenize(app, exit_code);
  AddDetokenize(app, exit_code);
  AddConvertVocab(app, exit_code);
}

}  // namespace reprise::tools
