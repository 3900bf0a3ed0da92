// Durations and sizes as written in the config.
#include "broker/config/units.hpp"

#include <gtest/gtest.h>

namespace zguard::config {
namespace {

using std::chrono::milliseconds;

TEST(ParseDuration, AcceptsEveryUnit) {
  EXPECT_EQ(ParseDuration("2500ms"), milliseconds(2500));
  EXPECT_EQ(ParseDuration("30s"), milliseconds(30'000));
  EXPECT_EQ(ParseDuration("5m"), milliseconds(300'000));
  EXPECT_EQ(ParseDuration("1h"), milliseconds(3'600'000));
  EXPECT_EQ(ParseDuration("3000us"), milliseconds(3));
  EXPECT_EQ(ParseDuration("0s"), milliseconds(0));
}

TEST(ParseDuration, RejectsWhatItDoesNotUnderstand) {
  for (const char* text : {"", "10", "ms", "-5s", "1.5s", "10 parsecs", "5sec", "1500us",
                           "99999999999999999999s", "1d"}) {
    EXPECT_FALSE(ParseDuration(text).has_value()) << text;
  }
}

TEST(ParseSize, AcceptsBinaryAndDecimalUnits) {
  EXPECT_EQ(ParseSize("1024"), 1024U);
  EXPECT_EQ(ParseSize("10B"), 10U);
  EXPECT_EQ(ParseSize("64KiB"), 65536U);
  EXPECT_EQ(ParseSize("1MiB"), 1048576U);
  EXPECT_EQ(ParseSize("2GiB"), 2147483648U);
  EXPECT_EQ(ParseSize("1kB"), 1000U);
  EXPECT_EQ(ParseSize("3MB"), 3000000U);
}

TEST(ParseSize, RejectsUnknownUnitsAndOverflow) {
  for (const char* text : {"", "MiB", "1 TiB", "1mib", "-1", "1.5MiB", "18446744073709551615GiB"}) {
    EXPECT_FALSE(ParseSize(text).has_value()) << text;
  }
}

TEST(Format, RoundTrips) {
  EXPECT_EQ(FormatDuration(milliseconds(2500)), "2500ms");
  EXPECT_EQ(FormatDuration(milliseconds(10'000)), "10s");
  EXPECT_EQ(FormatDuration(milliseconds(120'000)), "2m");
  EXPECT_EQ(FormatSize(1048576), "1MiB");
  EXPECT_EQ(FormatSize(1000), "1000B");
  for (const auto* text : {"7ms", "9s", "3m", "2h"}) {
    EXPECT_EQ(FormatDuration(*ParseDuration(text)), text);
  }
}

}  // namespace
}  // namespace zguard::config
