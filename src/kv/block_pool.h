// The KV block pool: fixed-size blocks of KV memory, each holding the keys and
// values of `block_tokens` consecutive positions for every layer. A sequence
// is a list of block ids (SeqBlocks). Blocks are reference counted so the
// prompt cache and in-flight sequences can share them.
//
// Memory: on the host, one virtual reservation of capacity_blocks blocks
// (pages are touched only when a block is first used), so resident KV memory
// never exceeds (max blocks ever in use) * block_bytes <= the byte budget. On
// a device backend (a GPU), one allocation of capacity_blocks blocks in device
// memory, made through kernels::Backend: the pool itself stays plain logic and
// never touches the bytes except through the backend's copies. Accounting is
// exact either way: bytes_in_use() == used_blocks() * block_bytes().
//
// Layout of one block (dtype F16, F32 or Q8_0; a row is one position of one
// head, in kernels/kv_format.h's row format):
//   K: [n_layers, n_heads, block_tokens] rows of k_dim / n_heads values
//   then V: [n_layers, n_heads, block_tokens] rows of v_dim / n_heads values
// Head-major: one KV head's rows of a block are contiguous, so attention for
// one head streams 32 consecutive rows instead of a slice of each row.
// Not thread-safe: owned by the engine thread.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "core/dtype.h"
#include "core/status.h"
#include "kernels/backend.h"

namespace reprise::kv {

struct BlockPoolConfig {
  int n_layers = 0;
  int k_dim = 0;  // n_kv_heads * head_dim_k
  int v_dim = 0;  // n_kv_heads * head_dim_v
  int n_heads = 1;  // KV heads: rows are stored head by head (k_dim, v_dim divisible)
  int block_tokens = 32;
  DType dtype = DType::kF16;  // kF16, kF32 or kQ8_0
  int64_t max_bytes = 0;      // capacity = max_bytes / block_bytes (at least 1 block)
};

class BlockPool {
 public:
  // `device`: the backend whose memory holds the blocks (must outlive the
  // pool); null or a host-memory backend: host memory.
  static Result<std::unique_ptr<BlockPool>> Create(const BlockPoolConfig& config,
                                                   kernels::Backend* device = nullptr);
  // block_bytes() of a pool made with `config` (before making it: a tier
  // below the pool stores blocks of this size).
  static int64_t BlockBytesOf(const BlockPoolConfig& config);
  ~BlockPool();
  BlockPool(const BlockPool&) = delete;
  BlockPool& operator=(const BlockPool&) = delete;

  const BlockPoolConfig& config() const { return config_; }
  // The device backend holding the blocks, or null for host memory.
  kernels::Backend* device() const { return device_; }
  // Where the blocks are and how they are laid out (for the kernels).
  kernels::KvLayout layout() const;
  int block_tokens() const { return config_.block_tokens; }
  int64_t block_bytes() const { return block_bytes_; }
  int64_t bytes_per_token() const { return block_bytes_ / config_.block_tokens; }
  int32_t capacity_blocks() const { return capacity_; }
  int32_t used_blocks() const { return used_; }
  int32_t free_blocks() const { return capacity_ - used_; }
  int64_t bytes_in_use() const { return static_cast<int64_t>(used_) * block_bytes_; }
  int64_t capacity_bytes() const { return static_cast<int64_t>(capacity_) * block_bytes_; }

  // A fresh block with reference count 1, or -1 when the pool is full.
  int32_t Allocate();
  void Ref(int32_t block);
  // Drops one reference; the block returns to the free list at zero.
  void Unref(int32_t block);
  int32_t RefCount(int32_t block) const;

  // K of `layer` in `block`: [n_heads, block_tokens, k_dim / n_heads] elements.
  uint8_t* K(int32_t block, int layer);
  const uint8_t* K(int32_t block, int layer) const;
  // V of `layer` in `block`: [n_heads, block_tokens, v_dim / n_heads] elements.
  uint8_t* V(int32_t block, int layer);
  const uint8_t* V(int32_t block, int layer) const;
  // Copies the first n_tokens positions (all layers, K and V) of src into dst.
  void CopyTokens(int32_t src, int32_t dst, int n_tokens);
  // The whole block (block_bytes() bytes, the layout above) to / from host
  // memory. Tiers below the pool (host RAM, disk) move blocks only through
  // these, never through K()/V(): on a GPU the pool's memory is device memory.
  void ReadBlock(int32_t block, uint8_t* dst) const;
  void WriteBlock(int32_t block, const uint8_t* src);
  // WriteBlock from host memory the backend copies from by DMA (AllocHost:
  // a host-tier slot), asynchronously on a GPU (the backend's copy stream,
  // beside the compute stream): `src` must stay unchanged, and nothing may
  // use the block, until WritesDone(fence) for a fence taken after it. A
  // host pool copies at once.
  void WriteBlockAsync(int32_t block, const uint8_t* src);
  // A ticket covering every WriteBlockAsync so far.
  uint64_t WriteFence();
  bool WritesDone(uint64_t fence);  // without waiting
  void WaitWrites(uint64_t fence);
  // The block's bytes (block_bytes(), the layout above) when the pool is host
  // memory, else empty (device memory: only ReadBlock / WriteBlock reach it).
  // Lets a promotion read a block from its tier straight into the pool.
  std::span<uint8_t> HostBlock(int32_t block);
  // One block_bytes() buffer in the host memory the pool's copies move
  // fastest (pinned on a GPU: ReadBlock / WriteBlock through it are DMA
  // transfers, not staged through a pageable buffer). For the caller's
  // demotions and promotions; the pool never uses it itself.
  std::span<uint8_t> staging();

 private:
  BlockPool() = default;
  BlockPoolConfig config_;
  int64_t block_bytes_ = 0;
  int64_t k_layer_bytes_ = 0;  // block_tokens * k_dim * elem
  int64_t v_layer_bytes_ = 0;
  int32_t capacity_ = 0;
  int32_t used_ = 0;
  uint8_t* base_ = nullptr;
  size_t reserved_bytes_ = 0;
  kernels::Backend* device_ = nullptr;  // non-null: base_ is device memory
  uint64_t host_fences_ = 0;            // WriteFence of a host pool
  uint8_t* staging_ = nullptr;          // device_->AllocHost, made on first use
  std::vector<uint8_t> staging_vec_;    // host pools (or AllocHost failed)
  std::vector<int32_t> refcount_;
  std::vector<int32_t> free_list_;
};

// The blocks of one sequence: position p lives in blocks[p / block_tokens] at
// row p % block_tokens. n_tokens positions are filled.
struct SeqBlocks {
  std::vector<int32_t> blocks;
  int32_t n_tokens = 0;
};

}  // namespace reprise::kv
