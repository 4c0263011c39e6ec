#include "kv/block_key.h"

#define XXH_STATIC_LINKING_ONLY  // XXH3_state_t on the stack
#include <xxhash.h>

#include <vector>

namespace reprise::kv {

std::string BlockKey::Hex() const {
  static const char* kDigits = "0123456789abcdef";
  std::string s(32, '0');
  for (int i = 0; i < 16; ++i) {
    s[15 - i] = kDigits[(hi >> (4 * i)) & 15];
    s[31 - i] = kDigits[(lo >> (4 * i)) & 15];
  }
  return s;
}

bool BlockKey::FromHex(std::string_view hex, BlockKey* key) {
  if (hex.size() != 32) return false;
  uint64_t parts[2] = {0, 0};
  for (int i = 0; i < 32; ++i) {
    const char c = hex[i];
    int v;
    if (c >= '0' && c <= '9') {
      v = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      v = c - 'a' + 10;
    } else {
      return false;
    }
    parts[i / 16] = (parts[i / 16] << 4) | static_cast<uint64_t>(v);
  }
  key->hi = parts[0];
  key->lo = parts[1];
  return true;
}

BlockKey HashBytes(std::span<const uint8_t> bytes) {
  const XXH128_hash_t h = XXH3_128bits(bytes.data(), bytes.size());
  return BlockKey{h.high64, h.low64};
}

BlockKey ChainKey(const BlockKey& prev, std::span<const uint8_t> data) {
  XXH3_state_t state;
  XXH3_128bits_reset(&state);
  uint8_t head[16];
  std::memcpy(head, &prev.hi, 8);
  std::memcpy(head + 8, &prev.lo, 8);
  XXH3_128bits_update(&state, head, sizeof(head));
  XXH3_128bits_update(&state, data.data(), data.size());
  const XXH128_hash_t h = XXH3_128bits_digest(&state);
  return BlockKey{h.high64, h.low64};
}

BlockKey ChainTokens(const BlockKey& prev, std::span<const int32_t> tokens) {
  return ChainKey(prev, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(tokens.data()),
                                                 tokens.size() * sizeof(int32_t)));
}

BlockKey ChainString(const BlockKey& prev, std::string_view s) {
  return ChainKey(prev,
                  std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size()));
}

uint64_t Checksum64(std::span<const uint8_t> bytes, uint64_t seed) {
  return XXH3_64bits_withSeed(bytes.data(), bytes.size(), seed);
}

}  // namespace reprise::kv
