// Shared helpers for tokenizer tests: loading fixture vocabularies, reading
// llama.cpp-style .inp/.out vector files, building the Llama 3 vocabulary.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace reprise::tokenizer::testing {

struct VectorCase {
  std::string text;
  std::vector<int32_t> ids;
};

// Loads a tokenizer from a GGUF path; nullptr (with a gtest failure) on error.
std::unique_ptr<Tokenizer> LoadTokenizer(const std::string& gguf_path);
// Parses NAME.gguf.inp / .out: texts separated by "\n__ggml_vocab_test__\n",
// one line of ids per text. Returns an empty list (with a failure) on mismatch.
std::vector<VectorCase> ReadVectorFiles(const std::string& inp_path, const std::string& out_path);
// Builds (once per process) the Llama 3 vocab GGUF from hf-tokenizers/llama3.2-bpe
// into TempDir() and returns its path; "" if the source files are missing.
std::string Llama3VocabPath();
// transformers' clean_up_tokenization (applied to decodes when a tokenizer's
// config sets clean_up_tokenization_spaces).
std::string CleanUpTokenizationSpaces(std::string text);
std::string IdsToString(const std::vector<int32_t>& ids);

}  // namespace reprise::tokenizer::testing
