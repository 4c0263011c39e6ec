// Shared by the CLI subcommands: open a GGUF, load the model and (when the
// file has one) its tokenizer, and parse small flag formats.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "gguf/gguf.h"
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

// Prints "error: <message>" to stderr and returns 1.
int ReportError(const Status& status);

}  // namespace reprise::tools
