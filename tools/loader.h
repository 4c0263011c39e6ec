// Shared by the CLI subcommands: open a GGUF, load the model and (when the
// file has one) its tokenizer, and parse small flag formats.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "gguf/gguf.h"
#include "kv/block_key.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

namespace reprise::tools {

struct LoadedModel {
  std::shared_ptr<const gguf::File> file;
  std::unique_ptr<model::Model> model;
  std::unique_ptr<tokenizer::Tokenizer> tokenizer;  // null when the file has none
};

// `device`: --device auto|cpu|cuda (auto: CUDA when a GPU is visible).
Result<LoadedModel> LoadModel(const std::string& path, int n_threads, bool need_tokenizer,
                              const std::string& device = "cpu");

// The --device option's help text.
inline constexpr const char* kDeviceHelp =
    "Compute device: auto (CUDA when a GPU is visible), cpu or cuda (default auto)";

// "1,2,3" -> {1,2,3}; errors name the bad element.
Result<std::vector<int32_t>> ParseTokenList(const std::string& text);

// "f16" / "f32" / "auto" -> DType. auto keeps full precision for models whose
// weights are F32 (tiny and reference models) and uses F16 otherwise.
Result<DType> ParseKvType(const std::string& text, const model::Model& model);

// The identity of a model file for content-addressed KV (the disk tier): a
// hash of every metadata key and value, every tensor's name, type, shape
// and offset, and the first 4 KiB of each tensor's data (two files with the
// same layout but different weights differ there). Reads only those pages.
kv::BlockKey ModelIdentity(const gguf::File& file);

// Prints "error: <message>" to stderr and returns 1.
int ReportError(const Status& status);

}  // namespace reprise::tools
