#include "mappers/questionnaire_mapper.h"

#include <array>

#include "absl/strings/str_cat.h"
#include "fhir/codes.h"
#include "fhir/datatypes.h"
#include "fhir/instruments.h"
#include "google/protobuf/util/time_util.h"

namespace fhirgw::mappers {
namespace {

using fhir::Json;
using fhir::JsonAlloc;

const fhir::Instrument& InstrumentOf(v1::QuestionnaireRecord::Instrument instrument) {
  switch (instrument) {
    case v1::QuestionnaireRecord::GAD7:
      return fhir::GetInstrument(fhir::InstrumentId::kGad7);
    case v1::QuestionnaireRecord::PHQ2:
      return fhir::GetInstrument(fhir::InstrumentId::kPhq2);
    default:
      return fhir::GetInstrument(fhir::InstrumentId::kPhq9);
  }
}

struct TimingCode {
  const char* code;
  const char* display;
};

TimingCode Timing(v1::QuestionnaireRecord::Timing timing) {
  switch (timing) {
    case v1::QuestionnaireRecord::INTAKE:
      return {"intake", "At intake"};
    case v1::QuestionnaireRecord::PRE_INFUSION:
      return {"pre-infusion", "Before infusion"};
    case v1::QuestionnaireRecord::POST_INFUSION:
      return {"post-infusion", "After infusion"};
    case v1::QuestionnaireRecord::FOLLOW_UP:
      return {"follow-up", "Follow-up"};
    default:
      return {"", ""};
  }
}

// The extension fhirgw uses for a questionnaire's timing relative to the infusion (R4 has no
// element).
inline constexpr char kTimingExtension[] = "urn:fhirgw:extension:questionnaire-timing";

Json AnswerCoding(JsonAlloc& a, const fhir::AnswerOption& option) {
  return fhir::Coding(a, fhir::kLoinc, option.la_code, option.display);
}

Json ResponseItem(JsonAlloc& a, const char* link_id, const char* text,
                  const fhir::AnswerOption& option) {
  Json answer = Json::Object(a);
  answer.Put("valueCoding", AnswerCoding(a, option));
  Json item = Json::Object(a);
  item.Str("linkId", link_id).Str("text", text);
  item.Put("answer", Json::Array(a).Push(std::move(answer)));
  return item;
}

// The common frame of the survey Observations (total and items).
Json SurveyObservation(JsonAlloc& a, const MapContext& context, absl::string_view identifier,
                       absl::string_view status, Json code, absl::string_view patient_urn,
                       const v1::QuestionnaireRecord& q, absl::string_view response_urn) {
  Json obs = StartResource(a, "Observation", context.systems.observation, identifier);
  obs.Str("status", status);
  obs.Put("category",
          Json::Array(a).Push(fhir::CodeableConceptWithText(
              a, fhir::kObservationCategory, fhir::kCategorySurvey, "Survey", "Survey")));
  obs.Put("code", std::move(code));
  obs.Put("subject", fhir::Reference(a, patient_urn));
  if (!q.encounter_id().empty()) {
    obs.Put("encounter",
            fhir::IdentifierReference(a, "Encounter", context.systems.encounter, q.encounter_id()));
  }
  obs.Str("effectiveDateTime", Instant(q.authored()));
  obs.Put("derivedFrom", Json::Array(a).Push(fhir::Reference(a, response_urn)));
  return obs;
}

bool RaisedSuicidalIdeation(const PreviousVersion& previous) {
  for (const v1::Alert& alert : previous.alerts) {
    if (alert.kind() == v1::Alert::SUICIDAL_IDEATION) return true;
  }
  return false;
}

// The Flag.code text of a Flag that a later version of the record no longer supports: resolved by
// a correction, or retracted with the record.
std::string ResolvedFlagText(const fhir::Instrument& instrument, const fhir::AnswerOption& item9,
                             bool retracted) {
  if (retracted) {
    return "Entered in error with its questionnaire, whose earlier version answered PHQ-9 item 9 "
           "above 0";
  }
  if (instrument.id != fhir::InstrumentId::kPhq9) {
    return "Resolved: the questionnaire was corrected and no longer answers PHQ-9 item 9 above 0";
  }
  return absl::StrCat("Resolved: PHQ-9 item 9 corrected to \"", item9.display,
                      "\"; the earlier positive answer no longer stands");
}

// When a correction resolved the Flag: when it was recorded, but never before the questionnaire
// was authored (the Flag's period starts there).
std::string ResolvedAt(const v1::ClinicRecord& record) {
  const google::protobuf::Timestamp& authored = record.questionnaire().authored();
  const google::protobuf::Timestamp& recorded = record.recorded_at();
  return Instant(record.has_recorded_at() && recorded > authored ? recorded : authored);
}

}  // namespace

absl::Status QuestionnaireMapper::ToFhir(const v1::ClinicRecord& record,
                                         const PreviousVersion& previous, const MapContext& context,
                                         MapOutput& out) const {
  fhir::TransactionBundle& bundle = out.bundle;
  JsonAlloc& a = bundle.alloc();
  const v1::QuestionnaireRecord& q = record.questionnaire();
  const fhir::Instrument& instrument = InstrumentOf(q.instrument());
  const bool retracted = IsRetraction(record);
  const auto frequency = fhir::FrequencyAnswers();
  const std::string& record_id = record.record_id();

  // Validation guarantees each item exactly once with 0..3; index the answers by item.
  std::array<int, 10> value_of_item{};
  int total = 0;
  for (const v1::Answer& answer : q.answers()) {
    value_of_item[answer.item()] = answer.value();
    total += answer.value();
  }

  const std::string patient_urn = AddPatient(record, context, bundle);

  // QuestionnaireResponse, items in instrument order.
  const std::string& response_system = context.systems.questionnaire_response;
  const std::string response_urn = Urn(context, "QuestionnaireResponse", record_id);
  Json response =
      StartResourceWithOneIdentifier(a, "QuestionnaireResponse", response_system, record_id);
  const TimingCode timing = Timing(q.timing());
  if (timing.code[0] != '\0') {
    Json extension = Json::Object(a);
    extension.Str("url", kTimingExtension);
    extension.Put("valueCoding",
                  fhir::Coding(a, fhir::kFhirgwQuestionnaireTiming, timing.code, timing.display));
    response.Put("extension", Json::Array(a).Push(std::move(extension)));
  }
  response.Str("questionnaire", instrument.questionnaire_url);
  response.Str("status", retracted ? "entered-in-error" : "completed");
  response.Put("subject", fhir::Reference(a, patient_urn));
  if (!q.encounter_id().empty()) {
    response.Put("encounter", fhir::IdentifierReference(a, "Encounter", context.systems.encounter,
                                                        q.encounter_id()));
  }
  response.Str("authored", Instant(q.authored()));
  Json items = Json::Array(a);
  for (const fhir::InstrumentItem& item : instrument.items) {
    items.Push(ResponseItem(a, item.loinc, item.text, frequency[value_of_item[item.number]]));
  }
  if (q.has_difficulty()) {
    items.Push(ResponseItem(a, fhir::kLoincDifficulty, fhir::kLoincDifficultyDisplay,
                            fhir::DifficultyAnswers()[q.difficulty()]));
  }
  response.Put("item", std::move(items));
  bundle.AddConditionalUpdate(response_urn, std::move(response), "QuestionnaireResponse",
                              response_system, record_id);

  const char* obs_status = retracted ? "entered-in-error" : "final";
  const std::string& obs_system = context.systems.observation;

  // Item Observations, when configured, linked from the total by hasMember.
  Json members = Json::Array(a);
  if (context.item_observations) {
    for (const fhir::InstrumentItem& item : instrument.items) {
      const std::string id = absl::StrCat(record_id, "/item/", item.number);
      const std::string urn = Urn(context, "Observation", id);
      Json obs = SurveyObservation(a, context, id, obs_status,
                                   fhir::CodeableConcept(a, fhir::kLoinc, item.loinc, item.text),
                                   patient_urn, q, response_urn);
      Json value = Json::Object(a);
      const fhir::AnswerOption& option = frequency[value_of_item[item.number]];
      value.Put("coding", Json::Array(a).Push(AnswerCoding(a, option)));
      value.Str("text", option.display);
      obs.Put("valueCodeableConcept", std::move(value));
      bundle.AddConditionalUpdate(urn, std::move(obs), "Observation", obs_system, id);
      members.Push(fhir::Reference(a, urn));
    }
  }

  // The total score with its severity band.
  const fhir::SeverityBand& band = instrument.BandFor(total);
  const std::string total_id = absl::StrCat(record_id, "/total");
  Json total_obs = SurveyObservation(
      a, context, total_id, obs_status,
      fhir::CodeableConcept(a, fhir::kLoinc, instrument.total_loinc, instrument.total_display),
      patient_urn, q, response_urn);
  total_obs.Put("hasMember", std::move(members));
  total_obs.Put("valueQuantity", fhir::UcumQuantity(a, total, fhir::kUcumScore, "score"));
  total_obs.Put("interpretation", Json::Array(a).Push(fhir::CodeableConcept(
                                      a, fhir::kFhirgwSeverityBand, band.code, band.display)));
  bundle.AddConditionalUpdate(Urn(context, "Observation", total_id), std::move(total_obs),
                              "Observation", obs_system, total_id);

  // Suicidal ideation: PHQ-9 item 9 above 0 raises a Flag at the EHR and an alert to the caller. A
  // later version that no longer answers it above 0 resolves the Flag its previous version raised:
  // the same Flag (same identifier, so the same conditional update), inactive from when the
  // correction was recorded.
  const int item9 = instrument.id == fhir::InstrumentId::kPhq9 ? value_of_item[9] : 0;
  if (item9 > 0 || RaisedSuicidalIdeation(previous)) {
    const std::string flag_id = absl::StrCat(record_id, "/suicidal-ideation");
    Json flag = StartResource(a, "Flag", context.systems.flag, flag_id);
    const bool active = item9 > 0;
    flag.Str("status", retracted ? "entered-in-error" : active ? "active" : "inactive");
    flag.Put("category", Json::Array(a).Push(fhir::CodeableConcept(a, fhir::kFlagCategory,
                                                                   "clinical", "Clinical")));
    flag.Put("code",
             fhir::CodeableConceptWithText(
                 a, fhir::kSnomed, fhir::kSnomedSuicidalThoughts, "Suicidal thoughts",
                 active ? absl::StrCat("PHQ-9 item 9 positive (", frequency[item9].display,
                                       "): thoughts of being better off dead or of "
                                       "self-harm")
                        : ResolvedFlagText(instrument, frequency[value_of_item[9]], retracted)));
    flag.Put("subject", fhir::Reference(a, patient_urn));
    const std::string start = Instant(q.authored());
    flag.Put("period", fhir::Period(a, start, active || retracted ? "" : ResolvedAt(record)));
    if (!q.encounter_id().empty()) {
      flag.Put("encounter", fhir::IdentifierReference(a, "Encounter", context.systems.encounter,
                                                      q.encounter_id()));
    }
    bundle.AddConditionalUpdate(Urn(context, "Flag", flag_id), std::move(flag), "Flag",
                                context.systems.flag, flag_id);
  }
  return absl::OkStatus();
}

}  // namespace fhirgw::mappers
