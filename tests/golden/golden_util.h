// Helpers for golden tests: load a fixture model, read float32 references.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "engine/session.h"
#include "gguf/gguf.h"
#include "model/model.h"

namespace reprise::testing {

struct GoldenModel {
  std::shared_ptr<const gguf::File> file;
  std::unique_ptr<model::Model> model;
};

// Loads a GGUF model (ADD_FAILURE and returns empty on error).
GoldenModel LoadGoldenModel(
    const std::string& path, int n_threads = 2,
    kernels::DevicePreference device = kernels::DevicePreference::kCpu);

// The transformers reference case `name` (fixtures/reference/<name>): prompt
// logits in one pass, greedy tokens and step logits of incremental decoding
// (or the *_long cases' last-8 logits), each within rel_tol * max(1, max|ref|).
void CheckTransformersCase(const std::string& name, kernels::DevicePreference device,
                           float rel_tol);
// Names of the cases whose status is "ok" in fixtures/reference/index.json.
std::vector<std::string> TransformersCaseNames();

// Every stories260K greedy case of run.c, token for token.
void CheckStoriesCases(kernels::DevicePreference device, DType kv_type);

// Reads a little-endian float32 file.
std::vector<float> ReadF32(const std::string& path);

// max |a - b| over the whole arrays (sizes must match).
float MaxAbsDiff(const std::vector<float>& a, const std::vector<float>& b);
float MaxAbs(const std::vector<float>& a);

int32_t Argmax(const float* v, int64_t n);

}  // namespace reprise::testing
