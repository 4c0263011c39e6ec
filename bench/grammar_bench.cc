// Constrained decoding cost per token on a large vocabulary, against the
// unconstrained sampling step it is added to.
//
// The vocabulary is Llama 3's (128,256 tokens, built from
// FIXTURES/hf-tokenizers/llama3.2-bpe) or the tokenizer of a GGUF given
// instead. A fixed JSON document valid under a fixed schema (nested object,
// uuid, integer range, enum, array of strings, a long free-text string) is
// tokenized; "decoding" it replays those tokens: per token the grammar mask
// is computed (Matcher::FillMask), applied to a logits row (ApplyMask), and
// the token accepted. Cold = a fresh TokenMasks (per-state token classes
// computed as states are first met, as for a schema seen the first time);
// warm = the same document again with those classes kept (a schema already
// seen: the server keeps compiled grammars). The baseline is
// engine::Sampler::Sample on the same rows (greedy, and temperature 1 with
// top_p 0.95), i.e. the step every token pays anyway.
// Usage: grammar_bench [FIXTURES_DIR | VOCAB.gguf] [RUNS]   (default ../shared/fixtures, 5)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "engine/sampler.h"
#include "gguf/gguf.h"
#include "grammar/json_schema.h"
#include "grammar/matcher.h"
#include "grammar/token_trie.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/vocab_convert.h"

namespace {

using reprise::tokenizer::Tokenizer;
using Clock = std::chrono::steady_clock;
namespace grammar = reprise::grammar;

const char* kSchema = R"({
  "type": "object",
  "properties": {
    "id": {"type": "string", "format": "uuid"},
    "name": {"type": "string"},
    "age": {"type": "integer", "minimum": 0, "maximum": 150},
    "status": {"enum": ["active", "inactive", "banned"]},
    "score": {"type": "number"},
    "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 10},
    "address": {
      "type": "object",
      "properties": {"street": {"type": "string"}, "city": {"type": "string"},
                     "zip": {"type": "string", "maxLength": 10}},
      "required": ["street", "city"]
    },
    "notes": {"type": "string"}
  },
  "required": ["id", "name", "age", "status", "notes"]
})";

const char* kDocument =
    R"({"id": "3f2b8c1e-9a4d-4e6b-8f0a-1c2d3e4f5a6b", "name": "Ada Lovelace", "age": 36, "status": "active", "score": 97.25, "tags": ["mathematics", "computing", "analytical engine", "poetry"], "address": {"street": "12 St James's Square", "city": "London", "zip": "SW1Y 4JH"}, "notes": "Augusta Ada King, Countess of Lovelace, was an English mathematician and writer, chiefly known for her work on Charles Babbage's proposed mechanical general-purpose computer, the Analytical Engine. She was the first to recognise that the machine had applications beyond pure calculation, and she published the first algorithm intended to be carried out by such a machine. As a result, she is often regarded as one of the first computer programmers. Her notes describe how codes could be created for the device to handle letters and symbols along with numbers."})";

// The worst case: a string with a large maxLength is spelled out as one
// automaton state per character count, so every position of a long string
// is a state met for the first time (one vocabulary walk each, when cold).
const char* kLongSchema =
    R"({"type": "object", "properties": {"text": {"type": "string", "maxLength": 4000}}, "required": ["text"]})";

std::unique_ptr<Tokenizer> LoadVocab(const std::string& arg) {
  auto from_file = [](const reprise::gguf::File& f) -> std::unique_ptr<Tokenizer> {
    auto tok = Tokenizer::FromGguf(f);
    return tok.ok() ? std::move(tok).value() : nullptr;
  };
  if (arg.size() > 5 && arg.substr(arg.size() - 5) == ".gguf") {
    auto file = reprise::gguf::File::Open(arg);
    return file.ok() ? from_file(**file) : nullptr;
  }
  auto writer = reprise::tokenizer::BuildBpeVocabGguf(
      {arg + "/hf-tokenizers/llama3.2-bpe/encoder.json",
       arg + "/hf-tokenizers/llama3.2-bpe/vocab.bpe", "llama-bpe"});
  if (!writer.ok()) return nullptr;
  auto file = reprise::gguf::File::FromBuffer(writer->WriteToBuffer());
  return file.ok() ? from_file(**file) : nullptr;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

double Us(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::micro>(b - a).count();
}

struct Pass {
  double mean_us = 0, p50_us = 0, p99_us = 0, max_us = 0;
};

Pass Summarize(std::vector<double> per_token) {
  Pass p;
  for (double v : per_token) p.mean_us += v;
  p.mean_us /= static_cast<double>(per_token.size());
  std::sort(per_token.begin(), per_token.end());
  p.p50_us = per_token[per_token.size() / 2];
  p.p99_us = per_token[per_token.size() * 99 / 100];
  p.max_us = per_token.back();
  return p;
}

// Replays `tokens` under the grammar; per-token mask + apply + accept times.
bool Replay(grammar::TokenMasks& masks, const std::vector<int32_t>& tokens, std::vector<float>& row,
            std::vector<double>* per_token) {
  grammar::Matcher m(masks.grammar_ptr());
  std::vector<uint64_t> bits(masks.words());
  const grammar::TokenTrie& trie = masks.trie();
  for (int32_t t : tokens) {
    const auto t0 = Clock::now();
    m.FillMask(masks, bits.data());
    grammar::ApplyMask(bits.data(), row.data(), trie.n_vocab());
    if ((bits[t >> 6] >> (t & 63) & 1) == 0 || !m.AcceptBytes(trie.bytes(t))) {
      std::fprintf(stderr, "token %d (%s) was masked out\n", t, trie.bytes(t).c_str());
      return false;
    }
    per_token->push_back(Us(t0, Clock::now()));
  }
  return m.IsComplete();
}

struct Scenario {
  const char* name;
  std::string schema;
  std::string document;
};

}  // namespace

int main(int argc, char** argv) {
  const std::string source = argc > 1 ? argv[1] : "../shared/fixtures";
  const int runs = argc > 2 ? std::max(1, std::atoi(argv[2])) : 5;
  std::unique_ptr<Tokenizer> tok = LoadVocab(source);
  if (tok == nullptr) {
    std::fprintf(stderr, "cannot load a vocabulary from %s\n", source.c_str());
    return 1;
  }
  auto t0 = Clock::now();
  std::shared_ptr<const grammar::TokenTrie> trie = grammar::TokenTrie::FromTokenizer(*tok);
  std::printf("vocabulary %d tokens, trie %u nodes (built in %.1f ms); %d runs, medians\n",
              tok->n_vocab(), trie->node_count(), Us(t0, Clock::now()) / 1000, runs);

  std::mt19937 rng(1);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  std::vector<float> logits(static_cast<size_t>(tok->n_vocab()));
  for (float& l : logits) l = normal(rng);
  std::vector<float> row = logits;

  // The unconstrained step every token pays anyway.
  std::vector<double> greedy, sampled;
  for (int r = 0; r < runs; ++r) {
    for (int mode = 0; mode < 2; ++mode) {
      reprise::engine::SamplingParams p;
      p.temperature = mode == 0 ? 0.0f : 1.0f;
      p.top_p = mode == 0 ? 1.0f : 0.95f;
      p.seed = 7;
      reprise::engine::Sampler sampler(p, tok->n_vocab());
      reprise::engine::SampleResult result;
      std::vector<double> per;
      for (int i = 0; i < 200; ++i) {
        const auto s0 = Clock::now();
        sampler.Sample(logits.data(), &result);
        per.push_back(Us(s0, Clock::now()));
      }
      (mode == 0 ? greedy : sampled).push_back(Summarize(per).mean_us);
    }
  }
  std::printf("%-52s %10s\n", "per token (us)", "");
  std::printf("%-52s %10.1f\n", "sampler, greedy (unconstrained)", Median(greedy));
  std::printf("%-52s %10.1f\n", "sampler, temperature 1 + top_p 0.95 (unconstrained)",
              Median(sampled));

  std::string prose = "";
  while (prose.size() < 1500) {
    prose +=
        "Augusta Ada King, Countess of Lovelace, was an English mathematician and writer, "
        "chiefly known for her work on the Analytical Engine. ";
  }
  const std::vector<Scenario> scenarios = {
      {"mixed object (uuid, ranges, enum, array, nested, free text)", kSchema, kDocument},
      {"one long string under maxLength 4000 (worst case)", kLongSchema,
       "{\"text\": \"" + prose + "\"}"},
  };
  for (const Scenario& sc : scenarios) {
    const nlohmann::ordered_json schema = nlohmann::ordered_json::parse(sc.schema);
    t0 = Clock::now();
    auto compiled = grammar::CompileJsonSchema(schema);
    const double compile_ms = Us(t0, Clock::now()) / 1000;
    if (!compiled.ok()) {
      std::fprintf(stderr, "schema: %s\n", compiled.status().message().c_str());
      return 1;
    }
    const std::vector<int32_t> tokens = tok->Encode(sc.document, false, false);
    std::vector<double> cold_mean, cold_max, warm_mean, warm_p50, warm_p99, states, classes_ms;
    size_t classes = 0;
    for (int r = 0; r < runs; ++r) {
      grammar::TokenMasks masks(*compiled, trie);
      // The server computes these on the HTTP thread with the grammar.
      const auto c0 = Clock::now();
      classes = masks.behaviour_classes();
      classes_ms.push_back(Us(c0, Clock::now()) / 1000);
      std::vector<double> cold, warm;
      if (!Replay(masks, tokens, row, &cold) || !Replay(masks, tokens, row, &warm)) {
        std::fprintf(stderr, "the document does not replay under its schema\n");
        return 1;
      }
      const Pass c = Summarize(cold), w = Summarize(warm);
      cold_mean.push_back(c.mean_us);
      cold_max.push_back(c.max_us);
      warm_mean.push_back(w.mean_us);
      warm_p50.push_back(w.p50_us);
      warm_p99.push_back(w.p99_us);
      states.push_back(static_cast<double>(masks.cached_states()));
    }
    std::printf(
        "\n%s: grammar %zu states in %zu behaviour classes (compiled in %.2f ms, "
        "classes in %.2f ms), document %zu bytes = %zu tokens, %.0f classes met\n",
        sc.name, (*compiled)->state_count(), classes, compile_ms, Median(classes_ms),
        sc.document.size(), tokens.size(), Median(states));
    std::printf("%-52s %10.1f\n", "  mask+apply+accept, cold (mean)", Median(cold_mean));
    std::printf("%-52s %10.1f\n", "  mask+apply+accept, cold (max)", Median(cold_max));
    std::printf("%-52s %10.1f\n", "  mask+apply+accept, warm (mean)", Median(warm_mean));
    std::printf("%-52s %10.1f\n", "  mask+apply+accept, warm (p50)", Median(warm_p50));
    std::printf("%-52s %10.1f\n", "  mask+apply+accept, warm (p99)", Median(warm_p99));
  }
  return 0;
}
