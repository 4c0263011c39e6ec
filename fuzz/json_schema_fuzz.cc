// Fuzz target: a JSON Schema as a client sends it -> bounded JSON parse
// (server/json_body.h) -> the grammar compiler (grammar/json_schema.h), with
// small automaton limits -> a matcher fed the input's own bytes and, at each
// step, a token mask over a small vocabulary. Compile errors are fine;
// crashes, hangs and masks that allow a token the matcher then rejects are
// not. Built with libFuzzer by `make fuzz`, replayed with mutations by
// fuzz_replay in the test suite.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "grammar/json_schema.h"
#include "grammar/matcher.h"
#include "grammar/token_trie.h"
#include "server/json_body.h"

namespace {

std::shared_ptr<const reprise::grammar::TokenTrie> Vocabulary() {
  static std::shared_ptr<const reprise::grammar::TokenTrie> trie = [] {
    std::vector<std::string> tokens;
    for (int c = 0; c < 256; ++c) tokens.push_back(std::string(1, static_cast<char>(c)));
    for (const char* t : {"{\"", "\":", "\", \"", "\"}", "}]", "[{", "true", "null", "12", "-0.5",
                          "e+1", "\\u00e9", "\\n", "\xC3\xA9", "  ", "\n\t", "\"a", "2024-"}) {
      tokens.push_back(t);
    }
    tokens.push_back("");  // end of generation
    std::vector<bool> in(tokens.size(), true);
    in.back() = false;
    return std::make_shared<const reprise::grammar::TokenTrie>(
        tokens, in, std::vector<int32_t>{static_cast<int32_t>(tokens.size() - 1)});
  }();
  return trie;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace reprise;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  server::JsonParseResult parsed = server::ParseJsonBounded(text);
  if (!parsed.ok) return 0;
  grammar::GrammarLimits limits;
  limits.max_nfa_states = 20000;
  limits.max_dfa_states = 5000;
  grammar::JsonSchemaOptions options;
  options.max_unrolled = 300;
  options.max_literal_bytes = 4096;
  auto compiled = grammar::CompileJsonSchema(parsed.value, options, limits);
  if (!compiled.ok()) return 0;
  grammar::TokenMasks masks(*compiled, Vocabulary(), 1 << 20);
  grammar::Matcher m(*compiled);
  std::vector<uint64_t> bits(masks.words());
  const grammar::TokenTrie& trie = masks.trie();
  // Walk: at each step the mask, then a token chosen by the input's bytes
  // among the allowed ones (so the fuzzer steers the path).
  for (size_t i = 0; i < 64; ++i) {
    const int64_t allowed = m.FillMask(masks, bits.data());
    if (allowed == 0) std::abort();  // a trimmed grammar never dead-ends
    std::vector<int32_t> ids;
    for (int32_t t = 0; t < trie.n_vocab(); ++t) {
      if ((bits[t >> 6] >> (t & 63)) & 1) ids.push_back(t);
    }
    const int32_t t = ids[size == 0 ? 0 : data[i % size] % ids.size()];
    if (trie.bytes(t).empty()) {
      if (!m.IsComplete()) std::abort();  // end of generation only when complete
      break;
    }
    if (!m.AcceptBytes(trie.bytes(t))) std::abort();  // the mask allowed it
  }
  return 0;
}
