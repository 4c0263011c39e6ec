// Content addresses of KV blocks: a 128-bit XXH3 hash chained over everything
// that determines a block's K/V bytes, so equal keys mean equal KV.
//
//   layout  = Hash(model identity, KV type, block size, block bytes)
//   root(ns) = Chain(layout, bytes of the cache namespace)
//   key(block i of a sequence) = Chain(key(block i-1) or root(ns), its tokens)
//
// so a block's key covers the model, the KV layout, the tenant and every token
// from the start of the sequence to the block's end (a partial block's key
// covers its own, fewer, tokens). Per-token determinism (ARCHITECTURE.md)
// makes the K/V of a prefix a function of exactly these inputs.
#pragma once

#include <cstdint>
#include <cstring>
#include <functional>
#include <span>
#include <string>
#include <string_view>

namespace reprise::kv {

struct BlockKey {
  uint64_t hi = 0;
  uint64_t lo = 0;
  bool operator==(const BlockKey&) const = default;
  bool empty() const { return hi == 0 && lo == 0; }
  std::string Hex() const;  // 32 lowercase hex digits, hi first
  // Parses Hex()'s form; false on anything else.
  static bool FromHex(std::string_view hex, BlockKey* key);
};

struct BlockKeyHasher {
  size_t operator()(const BlockKey& k) const {
    return static_cast<size_t>(k.lo ^ (k.hi * 0x9e3779b97f4a7c15ull));
  }
};

// XXH3-128 of raw bytes.
BlockKey HashBytes(std::span<const uint8_t> bytes);
// XXH3-128 of prev's 16 bytes followed by `data`.
BlockKey ChainKey(const BlockKey& prev, std::span<const uint8_t> data);
BlockKey ChainTokens(const BlockKey& prev, std::span<const int32_t> tokens);
BlockKey ChainString(const BlockKey& prev, std::string_view s);
// XXH3-64 (file checksums).
uint64_t Checksum64(std::span<const uint8_t> bytes, uint64_t seed = 0);

}  // namespace reprise::kv
