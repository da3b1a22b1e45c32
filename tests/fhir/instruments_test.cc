#include "fhir/instruments.h"

#include <climits>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fhirgw::fhir {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::EndsWith;
using ::testing::Values;

std::vector<std::string> Loincs(const Instrument& instrument) {
  std::vector<std::string> codes;
  for (const InstrumentItem& item : instrument.items) codes.push_back(item.loinc);
  return codes;
}

// The item numbers are 1-based and consecutive, and every item has a text.
void ExpectNumberedItemsWithText(const Instrument& instrument) {
  int expected = 1;
  for (const InstrumentItem& item : instrument.items) {
    EXPECT_EQ(item.number, expected) << instrument.name;
    ASSERT_NE(item.text, nullptr);
    EXPECT_NE(std::string(item.text), "") << instrument.name << " item " << item.number;
    ++expected;
  }
}

TEST(InstrumentTest, Phq9ItemsInLoincOrder) {
  const Instrument& phq9 = GetInstrument(InstrumentId::kPhq9);
  EXPECT_EQ(phq9.id, InstrumentId::kPhq9);
  EXPECT_STREQ(phq9.name, "PHQ-9");
  ASSERT_EQ(phq9.items.size(), 9u);
  EXPECT_THAT(Loincs(phq9), ElementsAre("44250-9", "44255-8", "44259-0", "44254-1", "44251-7",
                                        "44258-2", "44252-5", "44253-3", "44260-8"));
  ExpectNumberedItemsWithText(phq9);
}

TEST(InstrumentTest, Phq9Item9IsSuicidalIdeation) {
  const Instrument& phq9 = GetInstrument(InstrumentId::kPhq9);
  ASSERT_GE(phq9.items.size(), 9u);
  EXPECT_EQ(phq9.items[8].number, 9);
  EXPECT_STREQ(phq9.items[8].loinc, "44260-8");
  EXPECT_THAT(std::string(phq9.items[8].text), ::testing::HasSubstr("better off dead"));
}

TEST(InstrumentTest, Phq9PanelTotalAndDifficulty) {
  const Instrument& phq9 = GetInstrument(InstrumentId::kPhq9);
  EXPECT_STREQ(phq9.panel_loinc, "44249-1");
  EXPECT_STREQ(phq9.total_loinc, "44261-6");
  EXPECT_THAT(std::string(phq9.questionnaire_url), EndsWith("44249-1"));
  EXPECT_NE(std::string(phq9.panel_display), "");
  EXPECT_NE(std::string(phq9.total_display), "");
  EXPECT_TRUE(phq9.has_difficulty);
  EXPECT_EQ(phq9.max_total(), 27);
  EXPECT_STREQ(kLoincDifficulty, "69722-7");
}

TEST(InstrumentTest, Gad7ItemsInLoincOrder) {
  const Instrument& gad7 = GetInstrument(InstrumentId::kGad7);
  EXPECT_EQ(gad7.id, InstrumentId::kGad7);
  EXPECT_STREQ(gad7.name, "GAD-7");
  ASSERT_EQ(gad7.items.size(), 7u);
  EXPECT_THAT(Loincs(gad7), ElementsAre("69725-0", "68509-9", "69733-4", "69734-2", "69735-9",
                                        "69689-8", "69736-7"));
  ExpectNumberedItemsWithText(gad7);
  EXPECT_STREQ(gad7.panel_loinc, "69737-5");
  EXPECT_STREQ(gad7.total_loinc, "70274-6");
  EXPECT_THAT(std::string(gad7.questionnaire_url), EndsWith("69737-5"));
  EXPECT_FALSE(gad7.has_difficulty);
  EXPECT_EQ(gad7.max_total(), 21);
}

TEST(InstrumentTest, Phq2IsPhq9ItemsOneAndTwo) {
  const Instrument& phq2 = GetInstrument(InstrumentId::kPhq2);
  const Instrument& phq9 = GetInstrument(InstrumentId::kPhq9);
  EXPECT_EQ(phq2.id, InstrumentId::kPhq2);
  EXPECT_STREQ(phq2.name, "PHQ-2");
  ASSERT_EQ(phq2.items.size(), 2u);
  EXPECT_THAT(Loincs(phq2), ElementsAre("44250-9", "44255-8"));
  for (size_t i = 0; i < phq2.items.size(); ++i) {
    EXPECT_EQ(phq2.items[i].number, phq9.items[i].number);
    EXPECT_STREQ(phq2.items[i].loinc, phq9.items[i].loinc);
    EXPECT_STREQ(phq2.items[i].text, phq9.items[i].text);
  }
  EXPECT_STREQ(phq2.panel_loinc, "55757-9");
  EXPECT_STREQ(phq2.total_loinc, "55758-7");
  EXPECT_THAT(std::string(phq2.questionnaire_url), EndsWith("55757-9"));
  EXPECT_FALSE(phq2.has_difficulty);
  EXPECT_EQ(phq2.max_total(), 6);
}

TEST(InstrumentTest, ItemCodesAreUniqueAcrossPhq9AndGad7) {
  std::set<std::string> seen;
  for (InstrumentId id : {InstrumentId::kPhq9, InstrumentId::kGad7}) {
    const Instrument& instrument = GetInstrument(id);
    for (const InstrumentItem& item : instrument.items) {
      EXPECT_TRUE(seen.insert(item.loinc).second) << item.loinc << " repeated";
    }
    EXPECT_TRUE(seen.insert(instrument.panel_loinc).second) << instrument.panel_loinc;
    EXPECT_TRUE(seen.insert(instrument.total_loinc).second) << instrument.total_loinc;
  }
}

class BandsTest : public ::testing::TestWithParam<InstrumentId> {};

TEST_P(BandsTest, BandsAreContiguousNonOverlappingAndCoverTheRange) {
  const Instrument& instrument = GetInstrument(GetParam());
  ASSERT_FALSE(instrument.bands.empty());
  EXPECT_EQ(instrument.bands.front().min, 0) << instrument.name;
  EXPECT_EQ(instrument.bands.back().max, instrument.max_total()) << instrument.name;
  for (size_t i = 0; i < instrument.bands.size(); ++i) {
    const SeverityBand& band = instrument.bands[i];
    EXPECT_LE(band.min, band.max) << instrument.name << " " << band.code;
    if (i > 0) {
      EXPECT_EQ(band.min, instrument.bands[i - 1].max + 1) << instrument.name << " " << band.code;
    }
  }
}

TEST_P(BandsTest, EveryTotalIsInExactlyOneBandAndBandForFindsIt) {
  const Instrument& instrument = GetInstrument(GetParam());
  for (int total = 0; total <= instrument.max_total(); ++total) {
    const SeverityBand* holder = nullptr;
    int holders = 0;
    for (const SeverityBand& band : instrument.bands) {
      if (total >= band.min && total <= band.max) {
        holder = &band;
        ++holders;
      }
    }
    EXPECT_EQ(holders, 1) << instrument.name << " total " << total;
    EXPECT_EQ(&instrument.BandFor(total), holder) << instrument.name << " total " << total;
  }
}

TEST_P(BandsTest, BandCodesAreDistinctAndDisplaysSet) {
  const Instrument& instrument = GetInstrument(GetParam());
  std::set<std::string> codes;
  for (const SeverityBand& band : instrument.bands) {
    ASSERT_NE(band.code, nullptr);
    ASSERT_NE(band.display, nullptr);
    EXPECT_TRUE(codes.insert(band.code).second) << band.code;
    EXPECT_NE(std::string(band.display), "") << band.code;
  }
}

TEST_P(BandsTest, BandForClampsOutOfRangeTotals) {
  const Instrument& instrument = GetInstrument(GetParam());
  const SeverityBand& lowest = instrument.BandFor(0);
  const SeverityBand& highest = instrument.BandFor(instrument.max_total());
  EXPECT_EQ(&lowest, &instrument.bands.front());
  EXPECT_EQ(&highest, &instrument.bands.back());
  EXPECT_EQ(&instrument.BandFor(-1), &lowest);
  EXPECT_EQ(&instrument.BandFor(-100), &lowest);
  EXPECT_EQ(&instrument.BandFor(INT_MIN), &lowest);
  EXPECT_EQ(&instrument.BandFor(instrument.max_total() + 1), &highest);
  EXPECT_EQ(&instrument.BandFor(1000), &highest);
  EXPECT_EQ(&instrument.BandFor(INT_MAX), &highest);
}

INSTANTIATE_TEST_SUITE_P(AllInstruments, BandsTest,
                         Values(InstrumentId::kPhq9, InstrumentId::kGad7, InstrumentId::kPhq2),
                         [](const ::testing::TestParamInfo<InstrumentId>& info) {
                           switch (info.param) {
                             case InstrumentId::kPhq9:
                               return std::string("Phq9");
                             case InstrumentId::kGad7:
                               return std::string("Gad7");
                             case InstrumentId::kPhq2:
                               return std::string("Phq2");
                           }
                           return std::string("Unknown");
                         });

struct BandCase {
  int total;
  const char* code;
  int min;
  int max;
};

void ExpectBands(InstrumentId id, std::span<const BandCase> cases) {
  const Instrument& instrument = GetInstrument(id);
  for (const BandCase& c : cases) {
    const SeverityBand& band = instrument.BandFor(c.total);
    EXPECT_STREQ(band.code, c.code) << instrument.name << " total " << c.total;
    EXPECT_EQ(band.min, c.min) << instrument.name << " total " << c.total;
    EXPECT_EQ(band.max, c.max) << instrument.name << " total " << c.total;
  }
}

TEST(SeverityBandTest, Phq9Boundaries) {
  const BandCase cases[] = {
      {0, "minimal", 0, 4},
      {4, "minimal", 0, 4},
      {5, "mild", 5, 9},
      {9, "mild", 5, 9},
      {10, "moderate", 10, 14},
      {14, "moderate", 10, 14},
      {15, "moderately-severe", 15, 19},
      {19, "moderately-severe", 15, 19},
      {20, "severe", 20, 27},
      {27, "severe", 20, 27},
  };
  ExpectBands(InstrumentId::kPhq9, cases);
  EXPECT_EQ(GetInstrument(InstrumentId::kPhq9).bands.size(), 5u);
  // The example in instruments.h.
  EXPECT_STREQ(GetInstrument(InstrumentId::kPhq9).BandFor(12).code, "moderate");
}

TEST(SeverityBandTest, Gad7Boundaries) {
  const BandCase cases[] = {
      {0, "minimal", 0, 4},   {4, "minimal", 0, 4},     {5, "mild", 5, 9},
      {9, "mild", 5, 9},      {10, "moderate", 10, 14}, {14, "moderate", 10, 14},
      {15, "severe", 15, 21}, {21, "severe", 15, 21},
  };
  ExpectBands(InstrumentId::kGad7, cases);
  EXPECT_EQ(GetInstrument(InstrumentId::kGad7).bands.size(), 4u);
}

TEST(SeverityBandTest, Phq2Boundaries) {
  const BandCase cases[] = {
      {0, "negative", 0, 2},
      {2, "negative", 0, 2},
      {3, "positive", 3, 6},
      {6, "positive", 3, 6},
  };
  ExpectBands(InstrumentId::kPhq2, cases);
  EXPECT_EQ(GetInstrument(InstrumentId::kPhq2).bands.size(), 2u);
}

TEST(SeverityBandTest, CodeSystemUri) {
  EXPECT_STREQ(kFhirgwSeverityBand, "urn:fhirgw:code-system:severity-band");
}

TEST(AnswerTest, FrequencyAnswersAreIndexedByValue) {
  std::span<const AnswerOption> answers = FrequencyAnswers();
  ASSERT_EQ(answers.size(), 4u);
  std::vector<std::string> codes;
  for (size_t i = 0; i < answers.size(); ++i) {
    EXPECT_EQ(answers[i].value, static_cast<int>(i));
    EXPECT_NE(std::string(answers[i].display), "");
    codes.push_back(answers[i].la_code);
  }
  EXPECT_THAT(codes, ElementsAre("LA6568-5", "LA6569-3", "LA6570-1", "LA6571-9"));
  EXPECT_STREQ(answers[0].display, "Not at all");
}

TEST(AnswerTest, AnswerValueForFrequencyCodes) {
  std::span<const AnswerOption> answers = FrequencyAnswers();
  EXPECT_EQ(AnswerValueForCode(answers, "LA6568-5"), 0);
  EXPECT_EQ(AnswerValueForCode(answers, "LA6569-3"), 1);
  EXPECT_EQ(AnswerValueForCode(answers, "LA6570-1"), 2);
  EXPECT_EQ(AnswerValueForCode(answers, "LA6571-9"), 3);
}

TEST(AnswerTest, AnswerValueForUnknownCodesIsMinusOne) {
  std::span<const AnswerOption> answers = FrequencyAnswers();
  EXPECT_EQ(AnswerValueForCode(answers, "LA9999-9"), -1);
  EXPECT_EQ(AnswerValueForCode(answers, ""), -1);
  EXPECT_EQ(AnswerValueForCode(answers, "LA6568"), -1);     // a prefix
  EXPECT_EQ(AnswerValueForCode(answers, "LA6568-5 "), -1);  // trailing space
  EXPECT_EQ(AnswerValueForCode(answers, "LA6572-7"), -1);   // a difficulty answer
  EXPECT_EQ(AnswerValueForCode({}, "LA6568-5"), -1);
}

TEST(AnswerTest, DifficultyAnswersAreIndexedByValue) {
  std::span<const AnswerOption> answers = DifficultyAnswers();
  ASSERT_EQ(answers.size(), 4u);
  std::set<std::string> codes;
  for (size_t i = 0; i < answers.size(); ++i) {
    EXPECT_EQ(answers[i].value, static_cast<int>(i));
    EXPECT_TRUE(codes.insert(answers[i].la_code).second) << answers[i].la_code;
    EXPECT_EQ(AnswerValueForCode(answers, answers[i].la_code), static_cast<int>(i));
    EXPECT_EQ(AnswerValueForCode(FrequencyAnswers(), answers[i].la_code), -1);
  }
  EXPECT_STREQ(answers[0].la_code, "LA6572-7");
  EXPECT_STREQ(answers[0].display, "Not difficult at all");
  EXPECT_EQ(AnswerValueForCode(answers, "LA6568-5"), -1);
}

TEST(AnswerTest, AnswerValueForCodeRoundTripsEveryFrequencyOption) {
  std::vector<int> values;
  for (const AnswerOption& option : FrequencyAnswers()) {
    values.push_back(AnswerValueForCode(FrequencyAnswers(), option.la_code));
  }
  EXPECT_THAT(values, ElementsAreArray({0, 1, 2, 3}));
}

}  // namespace
}  // namespace fhirgw::fhir
