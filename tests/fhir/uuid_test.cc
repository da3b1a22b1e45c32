#include "fhir/uuid.h"

#include <cstdint>
#include <set>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fhirgw::fhir {
namespace {

using ::testing::MatchesRegex;
using ::testing::StartsWith;

// SHA-1 itself is tested against known vectors in tests/base/digest_test.cc.

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
