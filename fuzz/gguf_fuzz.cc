// Fuzz target: any bytes as a GGUF image (gguf::File::FromBuffer), then
// every metadata key read back and the tokenizer built from it, when any.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto file = reprise::gguf::File::FromBuffer(std::vector<uint8_t>(data, data + size));
  if (!file.ok()) return 0;
  auto tok = reprise::tokenizer::Tokenizer::FromGguf(**file);
  if (tok.ok()) (void)(*tok)->Encode("Hello <s> world", true, true);
  return 0;
}
