// The standardized questionnaires fhirgw maps (PHQ-9, GAD-7, PHQ-2), as data in one place: item
// LOINC codes and texts, LOINC answer (LA) codes, totals and severity bands.
//
//   const Instrument& phq9 = GetInstrument(InstrumentId::kPhq9);
//   const SeverityBand& band = phq9.BandFor(12);  // band.code == "moderate"
//   phq9.items[8].loinc == "44260-8"              // item 9, suicidal ideation
#ifndef FHIRGW_FHIR_INSTRUMENTS_H_
#define FHIRGW_FHIR_INSTRUMENTS_H_

#include <span>

#include "absl/strings/string_view.h"

namespace fhirgw::fhir {

enum class InstrumentId { kPhq9, kGad7, kPhq2 };

struct InstrumentItem {
  int number;  // 1-based
  const char* loinc;
  const char* text;
};

// An answer on the four-point frequency scale shared by PHQ and GAD items (or the difficulty
// scale).
struct AnswerOption {
  int value;
  const char* la_code;
  const char* display;
};

struct SeverityBand {
  int min;
  int max;
  const char* code;     // "minimal", "mild", ... in kFhirgwSeverityBand
  const char* display;  // "Moderate depression"
};

struct Instrument {
  InstrumentId id;
  const char* name;               // "PHQ-9"
  const char* questionnaire_url;  // canonical of the LOINC form
  const char* panel_loinc;
  const char* panel_display;
  const char* total_loinc;
  const char* total_display;
  std::span<const InstrumentItem> items;
  std::span<const SeverityBand> bands;
  bool has_difficulty;  // PHQ-9's item 10

  int max_total() const { return static_cast<int>(items.size()) * 3; }
  // Returns the band holding `total` (clamped into 0..max_total()).
  const SeverityBand& BandFor(int total) const;
};

inline constexpr char kFhirgwSeverityBand[] = "urn:fhirgw:code-system:severity-band";
inline constexpr char kLoincDifficulty[] = "69722-7";
inline constexpr char kLoincDifficultyDisplay[] =
    "How difficult have these problems made it for you to do your work, take care of things at "
    "home, or get along with other people";

const Instrument& GetInstrument(InstrumentId id);

// The four frequency answers, indexed by value 0..3 (LA6568-5 "Not at all" ... LA6571-9).
std::span<const AnswerOption> FrequencyAnswers();
// The four difficulty answers, indexed by value 0..3 (LA6572-7 "Not difficult at all" ...).
std::span<const AnswerOption> DifficultyAnswers();

// Finds the value of an LA code in `options`; returns -1 when unknown.
int AnswerValueForCode(std::span<const AnswerOption> options, absl::string_view la_code);

}  // namespace fhirgw::fhir

#endif  // FHIRGW_FHIR_INSTRUMENTS_H_
