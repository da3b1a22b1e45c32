// Encounter -> EncounterRecord: the inverse of encounter_mapper.cc (kind from fhirgw's code
// system, or from words in the type), for any Encounter that no MedicationAdministration absorbed.
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "fhir/codes.h"
#include "mappers/reverse_internal.h"

namespace fhirgw::mappers::reverse_internal {
namespace {

v1::EncounterRecord::Kind KindFromCode(absl::string_view code) {
  if (code == "infusion-session") return v1::EncounterRecord::INFUSION_SESSION;
  if (code == "psychotherapy") return v1::EncounterRecord::PSYCHOTHERAPY;
  if (code == "medication-management") return v1::EncounterRecord::MEDICATION_MANAGEMENT;
  if (code == "intake-assessment") return v1::EncounterRecord::INTAKE_ASSESSMENT;
  if (code == "follow-up") return v1::EncounterRecord::FOLLOW_UP;
  return v1::EncounterRecord::KIND_UNSPECIFIED;
}

v1::EncounterRecord::Kind KindFromWords(absl::string_view words) {
  const std::string text = absl::AsciiStrToLower(words);
  if (absl::StrContains(text, "infusion")) return v1::EncounterRecord::INFUSION_SESSION;
  if (absl::StrContains(text, "psychotherapy")) return v1::EncounterRecord::PSYCHOTHERAPY;
  if (absl::StrContains(text, "medication management")) {
    return v1::EncounterRecord::MEDICATION_MANAGEMENT;
  }
  if (absl::StrContains(text, "intake")) return v1::EncounterRecord::INTAKE_ASSESSMENT;
  if (absl::StrContains(text, "follow-up") || absl::StrContains(text, "follow up") ||
      absl::StrContains(text, "followup")) {
    return v1::EncounterRecord::FOLLOW_UP;
  }
  return v1::EncounterRecord::KIND_UNSPECIFIED;
}

v1::EncounterRecord::Kind KindOf(const JsonValue* types) {
  for (const JsonValue& type : Elements(types)) {
    const v1::EncounterRecord::Kind kind =
        KindFromCode(CodeInSystem(&type, fhir::kFhirgwEncounterKind));
    if (kind != v1::EncounterRecord::KIND_UNSPECIFIED) return kind;
  }
  for (const JsonValue& type : Elements(types)) {
    v1::EncounterRecord::Kind kind = KindFromWords(StringMember(&type, "text"));
    if (kind != v1::EncounterRecord::KIND_UNSPECIFIED) return kind;
    for (const JsonValue& coding : Elements(Member(&type, "coding"))) {
      kind = KindFromWords(StringMember(&coding, "display"));
      if (kind != v1::EncounterRecord::KIND_UNSPECIFIED) return kind;
    }
  }
  return v1::EncounterRecord::KIND_UNSPECIFIED;
}

}  // namespace

bool MapEncounter(const Mapping& m, const Entry& entry, ReverseRecord& out) {
  const JsonValue* resource = entry.resource;
  FillRecordHeader(m, entry, SystemKind::kEncounter, out);
  v1::EncounterRecord& encounter = *out.record.mutable_encounter();
  encounter.set_encounter_id(EncounterIdOf(m, resource));
  if (encounter.encounter_id().empty()) encounter.set_encounter_id(out.record.record_id());

  const absl::string_view status = StringMember(resource, "status");
  if (status == "planned") {
    encounter.set_status(v1::EncounterRecord::PLANNED);
  } else if (status == "in-progress" || status == "arrived" || status == "triaged" ||
             status == "onleave") {
    encounter.set_status(v1::EncounterRecord::IN_PROGRESS);
  } else if (status == "finished") {
    encounter.set_status(v1::EncounterRecord::FINISHED);
  } else if (status == "cancelled") {
    encounter.set_status(v1::EncounterRecord::CANCELLED);
  } else if (status == "entered-in-error") {
    out.record.set_action(v1::ClinicRecord::ENTERED_IN_ERROR);
  } else if (status.empty()) {
    m.Warning(entry.path.Field("status"), "is absent; the status is left unset");
  } else if (status != "unknown") {
    m.Warning(entry.path.Field("status"),
              absl::StrCat("'", status, "' is not an R4 Encounter status; left unset"));
  }

  encounter.set_kind(KindOf(Member(resource, "type")));

  const JsonValue* period = Member(resource, "period");
  const Path period_path = entry.path.Field("period");
  ReadOptionalTimestamp(m, StringMember(period, "start"), period_path.Field("start"),
                        [&] { return encounter.mutable_start_time(); });
  ReadOptionalTimestamp(m, StringMember(period, "end"), period_path.Field("end"),
                        [&] { return encounter.mutable_end_time(); });

  // The practitioner: the first participant with an NPI, else the first named one.
  v1::Practitioner named;
  for (const JsonValue& participant : Elements(Member(resource, "participant"))) {
    v1::Practitioner practitioner =
        PractitionerFromReference(m, entry, Member(&participant, "individual"));
    if (!practitioner.npi().empty()) {
      *encounter.mutable_practitioner() = std::move(practitioner);
      break;
    }
    if (named.name().empty()) named = std::move(practitioner);
  }
  if (!encounter.has_practitioner() && !named.name().empty()) {
    *encounter.mutable_practitioner() = std::move(named);
  }

  const JsonValue* location = FirstObject(Member(resource, "location"));
  const JsonValue* location_ref = Member(location, "location");
  std::string location_name(StringMember(location_ref, "display"));
  if (location_name.empty()) {
    const Target target = m.input().ResolveReference(entry, location_ref);
    if (target.found()) location_name = std::string(StringMember(target.resource, "name"));
  }
  encounter.set_location(location_name);

  AppendCodes(Member(resource, "reasonCode"), fhir::kSnomed, encounter.mutable_reasons());
  return true;
}

}  // namespace fhirgw::mappers::reverse_internal
