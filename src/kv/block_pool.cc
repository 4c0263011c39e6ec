#include "kv/block_pool.h"

#include <sys/mman.h>

#include <cstring>

#include "core/check.h"
#include "kernels/backend.h"
#include "kernels/kv_format.h"

namespace reprise::kv {

Result<std::unique_ptr<BlockPool>> BlockPool::Create(const BlockPoolConfig& config,
                                                     kernels::Backend* device) {
  if (config.n_layers <= 0 || config.k_dim <= 0 || config.v_dim <= 0 || config.block_tokens <= 0) {
    return Errorf("invalid KV block pool shape (layers %d, k_dim %d, v_dim %d, block %d)",
                  config.n_layers, config.k_dim, config.v_dim, config.block_tokens);
  }
  if (config.n_heads <= 0 || config.k_dim % config.n_heads != 0 ||
      config.v_dim % config.n_heads != 0) {
    return Errorf("KV block pool: %d heads do not divide k_dim %d and v_dim %d", config.n_heads,
                  config.k_dim, config.v_dim);
  }
  const int64_t hk = config.k_dim / config.n_heads, hv = config.v_dim / config.n_heads;
  if (std::string why = kernels::KvTypeUnsupported(config.dtype, hk, hv); !why.empty()) {
    return Errorf("%s", why.c_str());
  }
  if (device != nullptr) RETURN_IF_ERROR(device->CheckKvType(config.dtype));
  std::unique_ptr<BlockPool> pool(new BlockPool());
  pool->config_ = config;
  pool->k_layer_bytes_ = static_cast<int64_t>(config.block_tokens) * config.n_heads *
                         kernels::KvRowBytes(config.dtype, hk);
  pool->v_layer_bytes_ = static_cast<int64_t>(config.block_tokens) * config.n_heads *
                         kernels::KvRowBytes(config.dtype, hv);
  pool->block_bytes_ = config.n_layers * (pool->k_layer_bytes_ + pool->v_layer_bytes_);
  int64_t cap = config.max_bytes / pool->block_bytes_;
  if (cap < 1) {
    return Errorf("KV budget of %lld bytes is smaller than one block (%lld bytes)",
                  static_cast<long long>(config.max_bytes),
                  static_cast<long long>(pool->block_bytes_));
  }
  if (cap > (1 << 30)) cap = 1 << 30;
  pool->capacity_ = static_cast<int32_t>(cap);
  pool->reserved_bytes_ = static_cast<size_t>(cap) * static_cast<size_t>(pool->block_bytes_);
  if (device != nullptr && !device->host_memory()) {
    auto mem = device->Alloc(pool->reserved_bytes_, "the KV cache");
    if (!mem.ok()) return mem.status();
    pool->device_ = device;
    pool->base_ = static_cast<uint8_t*>(mem.value());
    pool->refcount_.assign(pool->capacity_, 0);
    pool->free_list_.reserve(pool->capacity_);
    for (int32_t i = pool->capacity_ - 1; i >= 0; --i) pool->free_list_.push_back(i);
    return pool;
  }
  void* p = mmap(nullptr, pool->reserved_bytes_, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) {
    return Errorf("cannot reserve %zu bytes of address space for the KV cache",
                  pool->reserved_bytes_);
  }
  pool->base_ = static_cast<uint8_t*>(p);
  pool->refcount_.assign(pool->capacity_, 0);
  pool->free_list_.reserve(pool->capacity_);
  // Lowest ids first, so touched pages stay dense.
  for (int32_t i = pool->capacity_ - 1; i >= 0; --i) pool->free_list_.push_back(i);
  return pool;
}

int64_t BlockPool::BlockBytesOf(const BlockPoolConfig& config) {
  const int64_t hk = config.k_dim / config.n_heads, hv = config.v_dim / config.n_heads;
  return static_cast<int64_t>(config.n_layers) * config.block_tokens * config.n_heads *
         (kernels::KvRowBytes(config.dtype, hk) + kernels::KvRowBytes(config.dtype, hv));
}

BlockPool::~BlockPool() {
  if (staging_ != nullptr) device_->FreeHost(staging_);
  if (base_ == nullptr) return;
  if (device_ != nullptr) {
    device_->Free(base_);
  } else {
    munmap(base_, reserved_bytes_);
  }
}

kernels::KvLayout BlockPool::layout() const {
  kernels::KvLayout l;
  l.base = base_;
  l.block_bytes = block_bytes_;
  l.k_layer_bytes = k_layer_bytes_;
  l.v_layer_bytes = v_layer_bytes_;
  l.n_layers = config_.n_layers;
  l.n_kv_heads = config_.n_heads;
  l.block_tokens = config_.block_tokens;
  l.head_dim_k = config_.k_dim / config_.n_heads;
  l.head_dim_v = config_.v_dim / config_.n_heads;
  l.type = config_.dtype;
  l.k_row_bytes = kernels::KvRowBytes(config_.dtype, l.head_dim_k);
  l.v_row_bytes = kernels::KvRowBytes(config_.dtype, l.head_dim_v);
  return l;
}

int32_t BlockPool::Allocate() {
  if (free_list_.empty()) return -1;
  int32_t id = free_list_.back();
  free_list_.pop_back();
  CHECK(refcount_[id] == 0);
  refcount_[id] = 1;
  ++used_;
  return id;
}

void BlockPool::Ref(int32_t block) {
  CHECK(block >= 0 && block < capacity_);
  CHECK_MSG(refcount_[block] > 0, "Ref of free block %d", block);
  ++refcount_[block];
}

void BlockPool::Unref(int32_t block) {
  CHECK(block >= 0 && block < capacity_);
  CHECK_MSG(refcount_[block] > 0, "Unref of free block %d", block);
  if (--refcount_[block] == 0) {
    free_list_.push_back(block);
    --used_;
  }
}

int32_t BlockPool::RefCount(int32_t block) const {
  CHECK(block >= 0 && block < capacity_);
  return refcount_[block];
}

uint8_t* BlockPool::K(int32_t block, int layer) {
  DCHECK(block >= 0 && block < capacity_ && layer >= 0 && layer < config_.n_layers);
  return base_ + block * block_bytes_ + layer * k_layer_bytes_;
}
const uint8_t* BlockPool::K(int32_t block, int layer) const {
  return const_cast<BlockPool*>(this)->K(block, layer);
}
uint8_t* BlockPool::V(int32_t block, int layer) {
  DCHECK(block >= 0 && block < capacity_ && layer >= 0 && layer < config_.n_layers);
  return base_ + block * block_bytes_ + config_.n_layers * k_layer_bytes_ + layer * v_layer_bytes_;
}
const uint8_t* BlockPool::V(int32_t block, int layer) const {
  return const_cast<BlockPool*>(this)->V(block, layer);
}

void BlockPool::CopyTokens(int32_t src, int32_t dst, int n_tokens) {
  CHECK(n_tokens >= 0 && n_tokens <= config_.block_tokens);
  const int64_t bt = config_.block_tokens, nh = config_.n_heads;
  const int64_t kh = kernels::KvRowBytes(config_.dtype, config_.k_dim / nh);  // bytes a row
  const int64_t vh = kernels::KvRowBytes(config_.dtype, config_.v_dim / nh);
  for (int l = 0; l < config_.n_layers; ++l) {
    for (int64_t h = 0; h < nh; ++h) {
      if (device_ != nullptr) {
        device_->CopyOnDevice(K(dst, l) + h * bt * kh, K(src, l) + h * bt * kh, n_tokens * kh);
        device_->CopyOnDevice(V(dst, l) + h * bt * vh, V(src, l) + h * bt * vh, n_tokens * vh);
      } else {
        std::memcpy(K(dst, l) + h * bt * kh, K(src, l) + h * bt * kh, n_tokens * kh);
        std::memcpy(V(dst, l) + h * bt * vh, V(src, l) + h * bt * vh, n_tokens * vh);
      }
    }
  }
}

void BlockPool::WriteBlockAsync(int32_t block, const uint8_t* src) {
  CHECK(block >= 0 && block < capacity_);
  if (device_ != nullptr) {
    device_->CopyToDeviceAsync(base_ + block * block_bytes_, src, static_cast<size_t>(block_bytes_));
  } else {
    std::memcpy(base_ + block * block_bytes_, src, static_cast<size_t>(block_bytes_));
  }
}

uint64_t BlockPool::WriteFence() {
  return device_ != nullptr ? device_->CopyFence() : ++host_fences_;
}

bool BlockPool::WritesDone(uint64_t fence) {
  return device_ == nullptr || device_->CopyDone(fence);
}

void BlockPool::WaitWrites(uint64_t fence) {
  if (device_ != nullptr) device_->WaitCopy(fence);
}

std::span<uint8_t> BlockPool::HostBlock(int32_t block) {
  CHECK(block >= 0 && block < capacity_);
  if (device_ != nullptr) return {};
  return {base_ + block * block_bytes_, static_cast<size_t>(block_bytes_)};
}

std::span<uint8_t> BlockPool::staging() {
  const size_t n = static_cast<size_t>(block_bytes_);
  if (staging_ == nullptr && device_ != nullptr && staging_vec_.empty()) {
    Result<void*> p = device_->AllocHost(n, "the KV staging block");
    if (p.ok()) staging_ = static_cast<uint8_t*>(p.value());
  }
  if (staging_ != nullptr) return {staging_, n};
  staging_vec_.resize(n);  // host memory pool, or no pinned memory: a plain buffer
  return {staging_vec_.data(), n};
}

void BlockPool::ReadBlock(int32_t block, uint8_t* dst) const {
  CHECK(block >= 0 && block < capacity_);
  if (device_ != nullptr) {
    device_->CopyToHost(dst, base_ + block * block_bytes_, block_bytes_);
  } else {
    std::memcpy(dst, base_ + block * block_bytes_, block_bytes_);
  }
}

void BlockPool::WriteBlock(int32_t block, const uint8_t* src) {
  CHECK(block >= 0 && block < capacity_);
  if (device_ != nullptr) {
    device_->CopyToDevice(base_ + block * block_bytes_, src, block_bytes_);
  } else {
    std::memcpy(base_ + block * block_bytes_, src, block_bytes_);
  }
}

}  // namespace reprise::kv
