// Black-box tests of the disk tier (issue 14), through HTTP and the process
// only: a conversation evicted from RAM is demoted to --prompt-cache-dir and
// continued from there (a hit, the same temperature-0 output as with the
// cache off); a restart finds it; a dir written by another model is ignored;
// kill -9 during heavy demotion, 20 times, never leaves a file that loads
// corrupt; a small disk bound holds, and a dir that disappears or cannot be
// used turns the tier off while serving goes on. The tiny model's
// vocabulary is byte-level, so a prompt of N ASCII characters is N tokens;
// its weights are Q8_0, so its KV is F16 (the outputs compared bit for bit
// below go through F16 blocks written to and read back from disk).
#include <dirent.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "server/server_test_util.h"
#include "testing/fixtures.h"

namespace reprise::server::testing {
namespace {

using reprise::testing::TempDir;

std::unique_ptr<ServerProcess> StartOrDie(const std::string& model, std::vector<std::string> args) {
  std::string error;
  auto s = ServerProcess::Start(model, args, &error);
  EXPECT_NE(s, nullptr) << error;
  return s;
}

// Printable text of exactly n bytes, different for each seed from its first byte.
std::string Text(int seed, size_t n) {
  static const char* kWords[] = {"amber", "birch", "cedar", "dune",  "ember", "fjord",
                                 "grove", "heath", "inlet", "jetty", "knoll", "larch"};
  std::string s = std::string(1, static_cast<char>('A' + seed % 26)) + std::to_string(seed) + ":";
  for (int i = 0; s.size() < n; ++i) {
    s += kWords[(seed * 5 + i * 7) % 12];
    s += ' ';
  }
  s.resize(n);
  return s;
}

Json Greedy(const std::string& prompt, int max_tokens) {
  return {{"prompt", prompt},
          {"max_tokens", max_tokens},
          {"temperature", 0},
          {"logprobs", 1},
          {"ignore_eos", true}};
}

int Cached(const HttpResult& r) {
  EXPECT_EQ(r.status, 200) << r.body;
  if (r.status != 200) return -1;
  return r.json["usage"]["prompt_tokens_details"]["cached_tokens"].get<int>();
}

int FromDisk(const HttpResult& r) {
  if (r.status != 200) return -1;
  return r.json["usage"]["prompt_tokens_details"]["cached_tokens_from_disk"].get<int>();
}

// Same tokens, same text, bit-identical log-probabilities.
void ExpectSameOutput(const HttpResult& a, const HttpResult& b) {
  ASSERT_EQ(a.status, 200) << a.body;
  ASSERT_EQ(b.status, 200) << b.body;
  EXPECT_EQ(a.json["choices"][0]["text"], b.json["choices"][0]["text"]);
  EXPECT_EQ(a.json["choices"][0]["logprobs"]["tokens"], b.json["choices"][0]["logprobs"]["tokens"]);
  EXPECT_EQ(a.json["choices"][0]["logprobs"]["token_logprobs"],
            b.json["choices"][0]["logprobs"]["token_logprobs"]);
}

std::string FreshDir(const std::string& name) {
  static int n = 0;
  return TempDir() + "/" + name + "_" + std::to_string(getpid()) + "_" + std::to_string(n++);
}

int CountBlockFiles(const std::string& dir) {
  int n = 0;
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      const std::string name = e->d_name;
      if (name.size() > 4 && name.compare(name.size() - 4, 4, ".kvb") == 0) ++n;
    }
    closedir(d);
  }
  return n;
}

double Disk(const ServerProcess& s, const std::string& metric) {
  return s.Metric(metric + "{tier=\"disk\"}");
}

TEST(PromptCacheDiskHttpTest, ConversationEvictedToDiskIsContinuedWithTheSameOutput) {
  const std::string dir = FreshDir("disk_evict");
  auto s = StartOrDie(TinyChatModel(), {"--prompt-cache-size", "1", "--prompt-cache-dir", dir,
                                        "--prompt-cache-disk-bytes", "16M"});
  auto ref = StartOrDie(TinyChatModel(), {"--prompt-cache-size", "0"});
  ASSERT_NE(s, nullptr);
  ASSERT_NE(ref, nullptr);
  EXPECT_EQ(Disk(*s, "reprise_kv_tier_bytes_limit"), 16 << 20);
  const std::string a = Text(1, 300);
  EXPECT_EQ(Cached(s->Post("/v1/completions", Greedy(a, 8))), 0);
  ASSERT_TRUE(s->WaitIdle());
  EXPECT_EQ(Disk(*s, "reprise_kv_tier_blocks"), 0);  // still in RAM: nothing written
  EXPECT_EQ(Cached(s->Post("/v1/completions", Greedy(Text(2, 200), 4))), 0);
  ASSERT_TRUE(s->WaitIdle());
  // a was pushed out of RAM (size 1): demoted, not forgotten.
  EXPECT_GE(Disk(*s, "reprise_kv_tier_demotions_total"), 9);
  EXPECT_GT(Disk(*s, "reprise_kv_tier_bytes"), 0);
  EXPECT_GT(s->Metric("reprise_kv_disk_bytes_written_total"), 0);
  // Demotions are written by the tier's writer thread: the files follow.
  for (int i = 0; i < 200 && CountBlockFiles(dir) != Disk(*s, "reprise_kv_tier_blocks"); ++i) {
    usleep(25000);
  }
  EXPECT_EQ(CountBlockFiles(dir), Disk(*s, "reprise_kv_tier_blocks"));

  const std::string next = a + Text(3, 60);
  HttpResult hit = s->Post("/v1/completions", Greedy(next, 12));
  HttpResult cold = ref->Post("/v1/completions", Greedy(next, 12));
  EXPECT_GE(Cached(hit), 9 * 32);  // a's 9 full blocks (its tail block holds generated tokens)
  EXPECT_EQ(FromDisk(hit), Cached(hit));
  EXPECT_EQ(Cached(cold), 0);
  ExpectSameOutput(hit, cold);
  ASSERT_TRUE(s->WaitIdle());
  EXPECT_GE(Disk(*s, "reprise_kv_tier_promotions_total"), 9);
  EXPECT_EQ(Disk(*s, "reprise_kv_tier_hits_total"), FromDisk(hit));
  EXPECT_GT(s->Metric("reprise_kv_disk_bytes_read_total"), 0);
  EXPECT_EQ(s->Metric("reprise_kv_disk_corrupt_files_discarded_total"), 0);
  EXPECT_NE(s->Log().find("from disk"), std::string::npos);
  HttpResult cache = s->Get("/v1/cache");
  ASSERT_EQ(cache.status, 200);
  EXPECT_GT(cache.json["tiers"]["disk"]["blocks"].get<int>(), 0) << cache.body;
  EXPECT_EQ(cache.json["tiers"]["disk"]["dir"], dir);
  ASSERT_EQ(cache.json["data"].size(), 1u) << cache.body;
  EXPECT_TRUE(cache.json["data"][0]["tiers"].contains("disk")) << cache.body;
  // At rest the RAM pool holds exactly the cached blocks.
  EXPECT_EQ(cache.json["kv_blocks_in_use"], cache.json["cached_blocks"]) << cache.body;
}

TEST(PromptCacheDiskHttpTest, RestartThenContinueHits) {
  const std::string dir = FreshDir("disk_restart");
  const std::string a = Text(4, 250);
  {
    auto s1 = StartOrDie(TinyChatModel(), {"--prompt-cache-dir", dir});
    ASSERT_NE(s1, nullptr);
    EXPECT_GT(Disk(*s1, "reprise_kv_tier_bytes_limit"), 0);  // the default: 10% of free space
    EXPECT_NE(s1->Log().find("10% of the"), std::string::npos) << s1->Log();
    ASSERT_EQ(Cached(s1->Post("/v1/completions", Greedy(a, 6))), 0);
    ASSERT_TRUE(s1->WaitIdle());
    EXPECT_EQ(s1->Stop(), 0);  // the RAM cache is written out at shutdown
    EXPECT_NE(s1->Log().find("at shutdown"), std::string::npos) << s1->Log();
  }
  EXPECT_GE(CountBlockFiles(dir), 8);
  auto s2 = StartOrDie(TinyChatModel(), {"--prompt-cache-dir", dir});
  auto ref = StartOrDie(TinyChatModel(), {"--prompt-cache-size", "0"});
  ASSERT_NE(s2, nullptr);
  ASSERT_NE(ref, nullptr);
  EXPECT_GE(Disk(*s2, "reprise_kv_tier_blocks"), 8);
  const std::string next = a + Text(5, 40);
  HttpResult hit = s2->Post("/v1/completions", Greedy(next, 10));
  EXPECT_GE(Cached(hit), 7 * 32);
  EXPECT_EQ(FromDisk(hit), Cached(hit));
  ExpectSameOutput(hit, ref->Post("/v1/completions", Greedy(next, 10)));
}

// The host-RAM tier between the pool and the disk (--prompt-cache-host-bytes;
// on a GPU it holds what GPU memory evicts, here it runs over the CPU pool):
// an evicted conversation lands in host memory first, what the host tier
// evicts sinks to disk, a follow-up is served from both with the output a
// cold run gives, each tier stays inside its bound, and at shutdown the host
// tier is written to disk so a restart finds it all.
int FromHost(const HttpResult& r) {
  if (r.status != 200) return -1;
  return r.json["usage"]["prompt_tokens_details"]["cached_tokens_from_host"].get<int>();
}

TEST(PromptCacheDiskHttpTest, HostTierBetweenThePoolAndTheDisk) {
  const std::string dir = FreshDir("host_tier");
  // 8 KiB blocks of 32 tokens: the host tier holds 6 of them.
  const std::vector<std::string> args = {"--prompt-cache-size",       "1",
                                         "--prompt-cache-host-bytes", "48K",
                                         "--prompt-cache-dir",        dir,
                                         "--prompt-cache-disk-bytes", "16M"};
  auto ref = StartOrDie(TinyChatModel(), {"--prompt-cache-size", "0"});
  ASSERT_NE(ref, nullptr);
  const std::string a = Text(11, 300);  // 300 + 8 positions: 9 full blocks and a partial one
  const std::string next = a + Text(12, 50);
  {
    auto s = StartOrDie(TinyChatModel(), args);
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(s->Metric("reprise_kv_tier_bytes_limit{tier=\"host\"}"), 48 * 1024);
    EXPECT_NE(s->Log().find("host tier"), std::string::npos) << s->Log();
    ASSERT_EQ(Cached(s->Post("/v1/completions", Greedy(a, 8))), 0);
    ASSERT_EQ(Cached(s->Post("/v1/completions", Greedy(Text(13, 100), 4))), 0);
    ASSERT_TRUE(s->WaitIdle());
    // a left the pool: 6 of its blocks in host memory, the 4 oldest sank to disk.
    EXPECT_EQ(s->Metric("reprise_kv_tier_blocks{tier=\"host\"}"), 6);
    EXPECT_EQ(Disk(*s, "reprise_kv_tier_blocks"), 4);
    EXPECT_LE(s->Metric("reprise_kv_tier_bytes{tier=\"host\"}"), 48 * 1024);
    HttpResult hit = s->Post("/v1/completions", Greedy(next, 10));
    EXPECT_EQ(Cached(hit), 9 * 32);
    EXPECT_GT(FromHost(hit), 0);
    EXPECT_GT(FromDisk(hit), 0);
    EXPECT_EQ(FromHost(hit) + FromDisk(hit), Cached(hit));
    ExpectSameOutput(hit, ref->Post("/v1/completions", Greedy(next, 10)));
    ASSERT_TRUE(s->WaitIdle());
    EXPECT_EQ(s->Metric("reprise_kv_tier_hits_total{tier=\"host\"}"), FromHost(hit));
    EXPECT_EQ(Disk(*s, "reprise_kv_tier_hits_total"), FromDisk(hit));
    HttpResult cache = s->Get("/v1/cache");
    ASSERT_EQ(cache.status, 200);
    EXPECT_EQ(cache.json["tiers"]["host"]["blocks"], 6) << cache.body;
    EXPECT_TRUE(cache.json["tiers"].contains("disk")) << cache.body;
    EXPECT_EQ(s->Stop(), 0);  // the pool and the host tier are written to disk
  }
  auto s2 = StartOrDie(TinyChatModel(), args);
  ASSERT_NE(s2, nullptr);
  HttpResult again = s2->Post("/v1/completions", Greedy(next + Text(14, 20), 6));
  EXPECT_GE(Cached(again), 10 * 32);  // all of next's turn: from disk after the restart
  EXPECT_EQ(FromDisk(again), Cached(again));
  ExpectSameOutput(again, ref->Post("/v1/completions", Greedy(next + Text(14, 20), 6)));
}

TEST(PromptCacheDiskHttpTest, ADirWrittenByAnotherModelIsIgnored) {
  const std::string dir = FreshDir("disk_foreign");
  const std::string a = Text(6, 200);
  {
    auto s1 = StartOrDie(TinyChatModel(), {"--prompt-cache-dir", dir});
    ASSERT_NE(s1, nullptr);
    ASSERT_EQ(Cached(s1->Post("/v1/completions", Greedy(a, 4))), 0);
    ASSERT_TRUE(s1->WaitIdle());
    ASSERT_EQ(s1->Stop(), 0);
  }
  const int files = CountBlockFiles(dir);
  ASSERT_GE(files, 6);
  // The same shape and weights, other metadata (context length): another model.
  auto s2 = StartOrDie(ChatModel("tiny_chat_ctx2048", 64, 2, 2048), {"--prompt-cache-dir", dir});
  ASSERT_NE(s2, nullptr);
  EXPECT_NE(s2->Log().find("ignored " + std::to_string(files) + " files of another model"),
            std::string::npos)
      << s2->Log();
  EXPECT_EQ(Disk(*s2, "reprise_kv_tier_blocks"), 0);
  HttpResult r = s2->Post("/v1/completions", Greedy(a + "more", 4));
  EXPECT_EQ(Cached(r), 0);
  EXPECT_EQ(FromDisk(r), 0);
  EXPECT_EQ(s2->Metric("reprise_kv_disk_corrupt_files_discarded_total"), 0);
  EXPECT_GE(CountBlockFiles(dir), files);  // left alone: not ours to delete
}

// Crash safety: SIGKILL while conversations are being demoted, 20 times;
// every restart starts cleanly, loads no corrupt block, and a conversation
// stored before the first crash still hits with the same output.
TEST(PromptCacheDiskHttpTest, KillDuringHeavyDemotionNeverLoadsACorruptBlock) {
  const std::string dir = FreshDir("disk_kill");
  const std::vector<std::string> args = {"--prompt-cache-size", "1",   "--prompt-cache-dir",
                                         dir,                   "--parallel", "2",
                                         "--prompt-cache-disk-bytes", "64M"};
  auto ref = StartOrDie(TinyChatModel(), {"--prompt-cache-size", "0"});
  ASSERT_NE(ref, nullptr);
  const std::string known = Text(7, 260);
  const std::string next = known + Text(8, 30);
  HttpResult want = ref->Post("/v1/completions", Greedy(next, 8));
  ASSERT_EQ(want.status, 200);
  {
    auto s = StartOrDie(TinyChatModel(), args);
    ASSERT_NE(s, nullptr);
    ASSERT_EQ(Cached(s->Post("/v1/completions", Greedy(known, 4))), 0);
    ASSERT_EQ(s->Stop(), 0);
  }
  int conversation = 100;
  double blocks_before = 0;
  for (int round = 0; round < 20; ++round) {
    auto s = StartOrDie(TinyChatModel(), args);
    ASSERT_NE(s, nullptr) << "round " << round;
    EXPECT_EQ(s->Metric("reprise_kv_disk_corrupt_files_discarded_total"), 0) << s->Log();
    const double blocks = Disk(*s, "reprise_kv_tier_blocks");
    EXPECT_GT(blocks, blocks_before) << "round " << round << ": no demotion since the last";
    blocks_before = blocks;
    HttpResult hit = s->Post("/v1/completions", Greedy(next, 8));
    EXPECT_GE(FromDisk(hit), 8 * 32) << "round " << round;
    ExpectSameOutput(hit, want);
    // Heavy demotion: every new conversation pushes the previous one to disk.
    std::atomic<bool> stop{false};
    std::vector<std::thread> clients;
    for (int c = 0; c < 2; ++c) {
      clients.emplace_back([&, c] {
        auto client = s->Client();
        for (int i = 0; !stop; ++i) {
          const int id = conversation + c * 1000 + i;
          auto r = client->Post("/v1/completions", Greedy(Text(id, 200 + (id % 5) * 40), 2).dump(),
                                "application/json");
          if (!r) break;  // killed
        }
      });
    }
    // Kill once demotion is under way and its writer thread has put new
    // files on disk (so every round tests a crash in the middle of it,
    // however slow the machine), at a varying moment.
    for (int waited = 0; waited < 20000; waited += 10) {
      if (Disk(*s, "reprise_kv_tier_demotions_total") >= 8 &&
          CountBlockFiles(dir) > blocks_before) {
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds((round * 37) % 80));
    s->Kill();
    stop = true;
    for (auto& t : clients) t.join();
    conversation += 5000;
    if (HasFailure()) break;
  }
  auto s = StartOrDie(TinyChatModel(), args);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->Metric("reprise_kv_disk_corrupt_files_discarded_total"), 0);
  EXPECT_GT(Disk(*s, "reprise_kv_tier_blocks"), 20);
  HttpResult hit = s->Post("/v1/completions", Greedy(next, 8));
  EXPECT_GE(FromDisk(hit), 8 * 32);
  ExpectSameOutput(hit, want);
  EXPECT_EQ(s->Metric("reprise_kv_disk_corrupt_files_discarded_total"), 0);
}

// Both bounds after every request of a stream of distinct conversations
// through a RAM pool of 20 blocks and a disk tier of 3 blocks.
TEST(PromptCacheDiskHttpTest, BothBoundsHoldUnderAStreamOfConversations) {
  const std::string dir = FreshDir("disk_bound");
  // 8 KiB blocks + a 64-byte header: 30K holds 3 block files.
  auto s = StartOrDie(TinyChatModel(),
                      {"--prompt-cache-bytes", "160K", "--prompt-cache-size", "3",
                       "--prompt-cache-dir", dir, "--prompt-cache-disk-bytes", "30K"});
  ASSERT_NE(s, nullptr);
  const double ram_limit = s->Metric("reprise_kv_tier_bytes_limit{tier=\"ram\"}");
  const double disk_limit = Disk(*s, "reprise_kv_tier_bytes_limit");
  ASSERT_EQ(disk_limit, 30 * 1024);
  for (int i = 0; i < 40; ++i) {
    const std::string prompt = i % 4 == 3 ? Text(200 + i - 3, 100) + Text(i, 40)  // a follow-up
                                          : Text(200 + i, 100 + (i % 3) * 30);
    ASSERT_GE(Cached(s->Post("/v1/completions", Greedy(prompt, 3))), 0);
    ASSERT_TRUE(s->WaitIdle());
    ASSERT_LE(s->Metric("reprise_kv_bytes_in_use"), ram_limit) << "request " << i;
    ASSERT_LE(Disk(*s, "reprise_kv_tier_bytes"), disk_limit) << "request " << i;
    ASSERT_LE(CountBlockFiles(dir), 3) << "request " << i;
    ASSERT_EQ(s->Metric("reprise_kv_blocks_in_use"), s->Metric("reprise_prompt_cache_blocks"));
  }
  EXPECT_GT(Disk(*s, "reprise_kv_tier_evictions_total"), 0);
  EXPECT_EQ(Disk(*s, "reprise_kv_tier_enabled"), 1);
}

TEST(PromptCacheDiskHttpTest, ADirThatGoesAwayTurnsTheTierOffAndServingGoesOn) {
  const std::string dir = FreshDir("disk_gone");
  auto s = StartOrDie(TinyChatModel(), {"--prompt-cache-size", "1", "--prompt-cache-dir", dir});
  ASSERT_NE(s, nullptr);
  ASSERT_EQ(Cached(s->Post("/v1/completions", Greedy(Text(30, 100), 2))), 0);
  int rc = 0;
  reprise::testing::RunShell("rm -rf " + reprise::testing::ShellQuote(dir), &rc);
  ASSERT_EQ(rc, 0);
  for (int i = 0; i < 3; ++i) {  // each evicts the previous: the writes fail
    EXPECT_GE(Cached(s->Post("/v1/completions", Greedy(Text(31 + i, 100), 2))), 0);
  }
  ASSERT_TRUE(s->WaitIdle());
  // The tier's writer thread sees the failure (and turns the tier off) just
  // after the demotion that queued the write.
  for (int i = 0; i < 200 && Disk(*s, "reprise_kv_tier_enabled") != 0; ++i) usleep(25000);
  EXPECT_EQ(Disk(*s, "reprise_kv_tier_enabled"), 0);
  EXPECT_NE(s->Log().find("disk tier turned off"), std::string::npos) << s->Log();
  EXPECT_EQ(s->Get("/health").status, 200);
  // The RAM cache still serves: the last prompt (100) is cached.
  EXPECT_EQ(Cached(s->Post("/v1/completions", Greedy(Text(33, 100) + "again", 2))), 100);
}

TEST(PromptCacheDiskHttpTest, AnUnusableDirIsLoggedAndTheServerRunsWithoutTheTier) {
  const std::string file = FreshDir("not_a_dir");
  std::ofstream(file) << "a file, not a directory";
  auto s = StartOrDie(TinyChatModel(), {"--prompt-cache-dir", file});
  ASSERT_NE(s, nullptr);
  EXPECT_NE(s->Log().find("disk tier off"), std::string::npos) << s->Log();
  const std::string a = Text(40, 120);
  EXPECT_EQ(Cached(s->Post("/v1/completions", Greedy(a, 2))), 0);
  EXPECT_EQ(Cached(s->Post("/v1/completions", Greedy(a + "x", 2))), 120);  // RAM cache works
  // A disk bound without a dir is a usage error.
  std::string error;
  auto bad = ServerProcess::Start(TinyChatModel(), {"--prompt-cache-disk-bytes", "1G"}, &error);
  EXPECT_EQ(bad, nullptr);
  EXPECT_NE(error.find("--prompt-cache-dir"), std::string::npos) << error;
}

}  // namespace
}  // namespace reprise::server::testing
