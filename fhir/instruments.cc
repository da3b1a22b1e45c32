#include "fhir/instruments.h"

#include <algorithm>

namespace fhirgw::fhir {
namespace {

constexpr InstrumentItem kPhq9Items[] = {
    {1, "44250-9", "Little interest or pleasure in doing things"},
    {2, "44255-8", "Feeling down, depressed, or hopeless"},
    {3, "44259-0", "Trouble falling or staying asleep, or sleeping too much"},
    {4, "44254-1", "Feeling tired or having little energy"},
    {5, "44251-7", "Poor appetite or overeating"},
    {6, "44258-2",
     "Feeling bad about yourself - or that you are a failure or have let yourself or your family "
     "down"},
    {7, "44252-5",
     "Trouble concentrating on things, such as reading the newspaper or watching television"},
    {8, "44253-3",
     "Moving or speaking so slowly that other people could have noticed. Or the opposite - being "
     "so "
     "fidgety or restless that you have been moving around a lot more than usual"},
    {9, "44260-8",
     "Thoughts that you would be better off dead, or of hurting yourself in some way"},
};

constexpr InstrumentItem kGad7Items[] = {
    {1, "69725-0", "Feeling nervous, anxious or on edge"},
    {2, "68509-9", "Not being able to stop or control worrying"},
    {3, "69733-4", "Worrying too much about different things"},
    {4, "69734-2", "Trouble relaxing"},
    {5, "69735-9", "Being so restless that it is hard to sit still"},
    {6, "69689-8", "Becoming easily annoyed or irritable"},
    {7, "69736-7", "Feeling afraid as if something awful might happen"},
};

constexpr SeverityBand kPhq9Bands[] = {
    {0, 4, "minimal", "Minimal depression"},
    {5, 9, "mild", "Mild depression"},
    {10, 14, "moderate", "Moderate depression"},
    {15, 19, "moderately-severe", "Moderately severe depression"},
    {20, 27, "severe", "Severe depression"},
};

constexpr SeverityBand kGad7Bands[] = {
    {0, 4, "minimal", "Minimal anxiety"},
    {5, 9, "mild", "Mild anxiety"},
    {10, 14, "moderate", "Moderate anxiety"},
    {15, 21, "severe", "Severe anxiety"},
};

constexpr SeverityBand kPhq2Bands[] = {
    {0, 2, "negative", "Negative depression screen"},
    {3, 6, "positive", "Positive depression screen"},
};

constexpr AnswerOption kFrequencyAnswers[] = {
    {0, "LA6568-5", "Not at all"},
    {1, "LA6569-3", "Several days"},
    {2, "LA6570-1", "More than half the days"},
    {3, "LA6571-9", "Nearly every day"},
};

constexpr AnswerOption kDifficultyAnswers[] = {
    {0, "LA6572-7", "Not difficult at all"},
    {1, "LA6573-5", "Somewhat difficult"},
    {2, "LA6575-0", "Very difficult"},
    {3, "LA6574-3", "Extremely difficult"},
};

const Instrument kPhq9 = {
    InstrumentId::kPhq9,
    "PHQ-9",
    "http://loinc.org/q/44249-1",
    "44249-1",
    "PHQ-9 quick depression assessment panel [Reported.PHQ]",
    "44261-6",
    "Patient Health Questionnaire 9 item (PHQ-9) total score [Reported]",
    kPhq9Items,
    kPhq9Bands,
    true,
};

const Instrument kGad7 = {
    InstrumentId::kGad7,
    "GAD-7",
    "http://loinc.org/q/69737-5",
    "69737-5",
    "Generalized anxiety disorder 7 item (GAD-7)",
    "70274-6",
    "Generalized anxiety disorder 7 item (GAD-7) total score [Reported.PHQ]",
    kGad7Items,
    kGad7Bands,
    false,
};

// PHQ-2 is PHQ-9 items 1 and 2.
const Instrument kPhq2 = {
    InstrumentId::kPhq2,
    "PHQ-2",
    "http://loinc.org/q/55757-9",
    "55757-9",
    "Patient Health Questionnaire 2 item (PHQ-2) [Reported]",
    "55758-7",
    "Patient Health Questionnaire 2 item (PHQ-2) total score [Reported]",
    std::span<const InstrumentItem>(kPhq9Items, 2),
    kPhq2Bands,
    false,
};

}  // namespace

const SeverityBand& Instrument::BandFor(int total) const {
  total = std::clamp(total, 0, max_total());
  for (const SeverityBand& band : bands) {
    if (total >= band.min && total <= band.max) return band;
  }
  return bands.back();
}

const Instrument& GetInstrument(InstrumentId id) {
  switch (id) {
    case InstrumentId::kPhq9:
      return kPhq9;
    case InstrumentId::kGad7:
      return kGad7;
    case InstrumentId::kPhq2:
      return kPhq2;
  }
  return kPhq9;
}

std::span<const AnswerOption> FrequencyAnswers() { return kFrequencyAnswers; }
std::span<const AnswerOption> DifficultyAnswers() { return kDifficultyAnswers; }

int AnswerValueForCode(std::span<const AnswerOption> options, absl::string_view la_code) {
  for (const AnswerOption& option : options) {
    if (la_code == option.la_code) return option.value;
  }
  return -1;
}

}  // namespace fhirgw::fhir
