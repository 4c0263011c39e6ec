// What demoting KV blocks to the disk tier costs the engine thread: bursts of
// 16 DiskBlockStore::Put (a conversation's blocks evicted at once), 200 ms
// apart (the engine computing meanwhile), written inline (write_queue_bytes
// 0: file, fdatasync and rename on the caller's thread) and queued for the
// writer thread (the default). Prints the median caller time per burst.
// Usage: demotion_bench [dir=/tmp/reprise-demotion-bench]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "kv/disk_block_store.h"

int main(int argc, char** argv) {
  using reprise::kv::BlockKey;
  using reprise::kv::DiskBlockStore;
  using reprise::kv::DiskBlockStoreConfig;
  const std::string dir = argc > 1 ? argv[1] : "/tmp/reprise-demotion-bench";
  for (const int64_t block : {int64_t{256} << 10, int64_t{2} << 20}) {
    for (const int64_t queue : {int64_t{0}, DiskBlockStoreConfig().write_queue_bytes}) {
      std::filesystem::remove_all(dir);
      DiskBlockStoreConfig c;
      c.dir = dir;
      c.layout = {1, 2};
      c.block_bytes = block;
      c.bytes_limit = 1000 * (block + DiskBlockStore::kHeaderBytes);
      c.write_queue_bytes = queue;
      auto s = DiskBlockStore::Open(c);
      if (!s.ok()) {
        std::fprintf(stderr, "%s\n", s.status().message().c_str());
        return 1;
      }
      std::vector<uint8_t> data(static_cast<size_t>(block), 7);
      std::vector<double> bursts;
      uint64_t key = 1;
      for (int b = 0; b < 9; ++b) {
        const auto t0 = std::chrono::steady_clock::now();
        for (int i = 0; i < 16; ++i, ++key) {
          data[0] = static_cast<uint8_t>(key);
          data[1] = static_cast<uint8_t>(key >> 8);
          (*s)->Put(BlockKey{key, 9}, data);
        }
        bursts.push_back(
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
      }
      std::sort(bursts.begin(), bursts.end());
      std::printf("block %4lld KiB, %s: 16 demotions cost the caller %.2f ms (median of 9 bursts; "
                  "min %.2f, max %.2f)\n",
                  static_cast<long long>(block >> 10), queue > 0 ? "queued" : "inline", bursts[4],
                  bursts[0], bursts[8]);
    }
  }
  std::filesystem::remove_all(dir);
  return 0;
}
