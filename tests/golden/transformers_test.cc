// Golden tests against Hugging Face transformers (fixtures/reference/): for
// every case in index.json, the full-prompt logits, the 32 greedy tokens and
// the incremental step logits, and the *_long cases' last-8 logits. The
// tolerance is the one the fixtures document: 1e-5 * max(1, max|ref|). The
// checks live in golden_util.cc; tests/gpu runs the same ones on the GPU.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "golden_util.h"
#include "testing/fixtures.h"

namespace reprise::testing {
namespace {

class TransformersGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(TransformersGolden, MatchesReference) {
  CheckTransformersCase(GetParam(), kernels::DevicePreference::kCpu, 1e-5f);
}

INSTANTIATE_TEST_SUITE_P(Cases, TransformersGolden, ::testing::ValuesIn(TransformersCaseNames()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

}  // namespace
}  // namespace reprise::testing
