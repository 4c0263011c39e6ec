// ParseByteSize / FormatBytes: the size syntax of --prompt-cache-bytes.
#include "server/byte_size.h"

#include <gtest/gtest.h>

namespace reprise::server {
namespace {

int64_t Parse(const char* text) {
  auto r = ParseByteSize(text);
  EXPECT_TRUE(r.ok()) << text << ": " << r.status().message();
  return r.ok() ? *r : -1;
}

TEST(ByteSizeTest, PlainBytes) {
  EXPECT_EQ(Parse("0"), 0);
  EXPECT_EQ(Parse("4096"), 4096);
  EXPECT_EQ(Parse("123B"), 123);
  EXPECT_EQ(Parse(" 77 "), 77);
}

TEST(ByteSizeTest, BinaryUnitsInEverySpelling) {
  EXPECT_EQ(Parse("512M"), 512ll << 20);
  EXPECT_EQ(Parse("8G"), 8ll << 30);
  EXPECT_EQ(Parse("8GiB"), 8ll << 30);
  EXPECT_EQ(Parse("8gb"), 8ll << 30);
  EXPECT_EQ(Parse("8Gi"), 8ll << 30);
  EXPECT_EQ(Parse("64k"), 64ll << 10);
  EXPECT_EQ(Parse("2 MiB"), 2ll << 20);
  EXPECT_EQ(Parse("1T"), 1ll << 40);
}

TEST(ByteSizeTest, FractionalWithUnit) {
  EXPECT_EQ(Parse("1.5G"), 3ll << 29);
  EXPECT_EQ(Parse("0.5K"), 512);
}

TEST(ByteSizeTest, RejectsGarbage) {
  for (const char* bad : {"", "  ", "G", "12X", "-1", "1.2.3G", "1.5", "abc", "8 GG", "1e9",
                          "99999999999999999999"}) {
    EXPECT_FALSE(ParseByteSize(bad).ok()) << "'" << bad << "' parsed";
  }
}

TEST(ByteSizeTest, RejectsOverflow) { EXPECT_FALSE(ParseByteSize("9000000P").ok()); }

TEST(ByteSizeTest, FormatsHumanReadable) {
  EXPECT_EQ(FormatBytes(512), "512 B");
  EXPECT_EQ(FormatBytes(1536), "1.5 KiB");
  EXPECT_EQ(FormatBytes(8ll << 30), "8.0 GiB");
}

}  // namespace
}  // namespace reprise::server
