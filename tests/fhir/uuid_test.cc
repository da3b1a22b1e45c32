#include "fhir/uuid.h"

#include <array>
#include <cstdint>
#include <set>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fhirgw::fhir {
namespace {

using ::testing::MatchesRegex;
using ::testing::StartsWith;

std::string Hex(const std::array<uint8_t, 20>& digest) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string text;
  for (uint8_t byte : digest) {
    text += kHex[byte >> 4];
    text += kHex[byte & 0x0f];
  }
  return text;
}

TEST(Sha1Test, FipsVectors) {
  EXPECT_EQ(Hex(Sha1("")), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
  EXPECT_EQ(Hex(Sha1("abc")), "a9993e364706816aba3e25717850c26c9cd0d89d");
  // The 56-byte FIPS 180 message (two blocks after padding).
  EXPECT_EQ(Hex(Sha1("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")),
            "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
  EXPECT_EQ(Hex(Sha1(std::string(1'000'000, 'a'))), "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
  EXPECT_EQ(Hex(Sha1("The quick brown fox jumps over the lazy dog")),
            "2fd4e1c67a2d28fced849ee1bb76e7391b93eb12");
}

// Lengths around the block (64) and padding (56) boundaries; expected values from Python's hashlib.
TEST(Sha1Test, PaddingBoundaries) {
  struct Case {
    size_t length;
    const char* expected;
  };
  const Case kCases[] = {
      {55, "c1c8bbdc22796e28c0e15163d20899b65621d65a"},
      {56, "c2db330f6083854c99d4b5bfb6e8f29f201be699"},
      {63, "03f09f5b158a7a8cdad920bddc29b81c18a551f5"},
      {64, "0098ba824b5c16427bd7a1122a5a442a25ec644d"},
      {65, "11655326c708d70319be2610e8a57d9a5b959d3b"},
      {119, "ee971065aaa017e0632a8ca6c77bb3bf8b1dfc56"},
      {120, "f34c1488385346a55709ba056ddd08280dd4c6d6"},
      {128, "ad5b3fdbcb526778c2839d2f151ea753995e26a0"},
  };
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.length);
    EXPECT_EQ(Hex(Sha1(std::string(c.length, 'a'))), c.expected);
  }
}

// Sha1 uses the CPU's SHA extensions where it has them; both ways must give the same digests.
TEST(Sha1Test, CpuExtensionsMatchPortable) {
  uint32_t seed = 12345;
  std::string data;
  for (size_t length = 0; length <= 300; ++length) {
    SCOPED_TRACE(length);
    EXPECT_EQ(Hex(Sha1(data)), Hex(Sha1Portable(data)));
    seed = seed * 1103515245u + 12345u;
    data.push_back(static_cast<char>(seed >> 16));
  }
  EXPECT_EQ(Hex(Sha1Portable("abc")), "a9993e364706816aba3e25717850c26c9cd0d89d");
  if (!Sha1UsesCpuExtensions()) GTEST_SKIP() << "this CPU has no SHA extensions";
}

TEST(Uuid5Test, KnownVectors) {
  EXPECT_EQ(FormatUuid(Uuid5(kDnsNamespace, "python.org")), "886313e1-3b8a-5372-9b90-0c9aee199e5d");
  EXPECT_EQ(FormatUuid(Uuid5(kDnsNamespace, "www.example.com")),
            "2ed6657d-e927-568b-95e1-2665a8aea6a2");
}

TEST(FormatUuidTest, WritesLowercase8_4_4_4_12) {
  EXPECT_EQ(FormatUuid(kDnsNamespace), "6ba7b810-9dad-11d1-80b4-00c04fd430c8");
  UuidBytes all_ones;
  all_ones.fill(0xff);
  EXPECT_EQ(FormatUuid(all_ones), "ffffffff-ffff-ffff-ffff-ffffffffffff");
  EXPECT_EQ(FormatUuid(UuidBytes{}), "00000000-0000-0000-0000-000000000000");
}

TEST(ResourceUrnTest, IsUuid5InTheFhirgwNamespace) {
  const UuidBytes fhirgw_namespace = Uuid5(kDnsNamespace, "fhirgw.v1");
  EXPECT_EQ(FormatUuid(fhirgw_namespace), "4b1f7f3d-890f-5856-8053-7eb0b7bb2a1c");
  EXPECT_EQ(ResourceUrn("clinic-a", "Patient", "p-123"),
            "urn:uuid:" + FormatUuid(Uuid5(fhirgw_namespace, "clinic-a\x1fPatient\x1fp-123")));
  // Pinned: golden Bundles depend on this value (checked against Python's uuid.uuid5).
  EXPECT_EQ(ResourceUrn("clinic-a", "Patient", "p-123"),
            "urn:uuid:770d79f2-ed7d-5d98-aa7f-2512c1116a43");
}

TEST(ResourceUrnTest, IsDeterministic) {
  EXPECT_EQ(ResourceUrn("clinic-a", "Patient", "p-123"),
            ResourceUrn("clinic-a", "Patient", "p-123"));
  EXPECT_EQ(ResourceUrn("", "", ""), ResourceUrn("", "", ""));
}

TEST(ResourceUrnTest, DiffersByEachArgument) {
  const std::string base = ResourceUrn("clinic-a", "Patient", "p-123");
  EXPECT_NE(ResourceUrn("clinic-b", "Patient", "p-123"), base);
  EXPECT_NE(ResourceUrn("clinic-a", "Observation", "p-123"), base);
  EXPECT_NE(ResourceUrn("clinic-a", "Patient", "p-124"), base);
}

TEST(ResourceUrnTest, PartBoundariesDoNotCollide) {
  const std::set<std::string> urns = {
      ResourceUrn("a|b", "c", "d"), ResourceUrn("a", "b|c", "d"), ResourceUrn("ab", "c", "d"),
      ResourceUrn("a", "bc", "d"),  ResourceUrn("a", "b", "cd"),  ResourceUrn("a", "", "bcd"),
      ResourceUrn("", "a", "bcd"),  ResourceUrn("abcd", "", ""),  ResourceUrn("", "", "abcd"),
  };
  EXPECT_EQ(urns.size(), 9u);
}

TEST(ResourceUrnTest, HasVersion5AndTheRfcVariant) {
  for (const std::string& urn : {ResourceUrn("clinic-a", "Patient", "p-123"),
                                 ResourceUrn("t", "Observation", "o-1"), ResourceUrn("", "", "")}) {
    SCOPED_TRACE(urn);
    EXPECT_THAT(urn, StartsWith("urn:uuid:"));
    ASSERT_EQ(urn.size(), 45u);
    EXPECT_THAT(urn, MatchesRegex("urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-"
                                  "[0-9a-f]{12}"));
  }
}

TEST(Uuid5Test, SetsVersionAndVariantBits) {
  for (const char* name : {"", "a", "python.org", "fhirgw.v1"}) {
    const UuidBytes uuid = Uuid5(kDnsNamespace, name);
    EXPECT_EQ(uuid[6] >> 4, 5) << name;
    EXPECT_EQ(uuid[8] >> 6, 2) << name;
  }
}

}  // namespace
}  // namespace fhirgw::fhir
