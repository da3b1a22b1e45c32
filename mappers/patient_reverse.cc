// Patient -> PatientRef (for every record whose subject it is), and a Patient that nothing else in
// the input names -> a record with a PatientRecord body.
#include "absl/strings/str_cat.h"
#include "mappers/reverse_internal.h"

namespace fhirgw::mappers::reverse_internal {
namespace {

// The name to show: the official one, else the first that is not old, maiden or anonymous.
const JsonValue* ChooseName(const JsonValue* names) {
  const JsonValue* fallback = nullptr;
  for (const JsonValue& name : Elements(names)) {
    if (!name.IsObject()) continue;
    const absl::string_view use = StringMember(&name, "use");
    if (use == "official") return &name;
    if (fallback == nullptr && use != "old" && use != "maiden" && use != "anonymous") {
      fallback = &name;
    }
  }
  return fallback != nullptr ? fallback : FirstObject(names);
}

v1::PatientRef::Gender GenderOf(absl::string_view gender) {
  if (gender == "male") return v1::PatientRef::MALE;
  if (gender == "female") return v1::PatientRef::FEMALE;
  if (gender == "other") return v1::PatientRef::OTHER;
  if (gender == "unknown") return v1::PatientRef::UNKNOWN;
  return v1::PatientRef::GENDER_UNSPECIFIED;
}

}  // namespace

void FillPatient(const Mapping& m, const JsonValue* patient, ReverseRecord& out) {
  v1::PatientRef& ref = *out.record.mutable_patient();
  for (const JsonValue& identifier : Elements(Member(patient, "identifier"))) {
    const absl::string_view system = StringMember(&identifier, "system");
    const absl::string_view value = StringMember(&identifier, "value");
    if (value.empty()) continue;
    out.patient_identifiers.push_back(SystemValue(system, value));
    if (ref.clinic_patient_id().empty() && m.IsFhirgwSystem(system, SystemKind::kPatient)) {
      ref.set_clinic_patient_id(std::string(value));
      continue;
    }
    v1::Identifier& copy = *ref.add_identifiers();
    copy.set_system(std::string(system));
    copy.set_value(std::string(value));
  }
  const absl::string_view id = StringMember(patient, "id");
  if (out.patient_identifiers.empty() && !id.empty()) {
    out.patient_identifiers.push_back(absl::StrCat("Patient/", id));
  }
  const JsonValue* name = ChooseName(Member(patient, "name"));
  ref.set_family_name(std::string(StringMember(name, "family")));
  for (const JsonValue& given : Elements(Member(name, "given"))) {
    const absl::string_view text = String(&given);
    if (!text.empty()) ref.add_given_names(std::string(text));
  }
  ref.set_birth_date(std::string(StringMember(patient, "birthDate")));
  ref.set_gender(GenderOf(StringMember(patient, "gender")));
}

bool MapPatient(const Mapping& m, const Entry& entry, ReverseRecord& out) {
  FillRecordHeader(m, entry, SystemKind::kPatient, out);
  v1::PatientRecord& body = *out.record.mutable_patient_record();
  const JsonValue* active = Member(entry.resource, "active");
  if (active != nullptr && active->IsBool()) body.set_active(active->GetBool());
  const JsonValue* deceased = Member(entry.resource, "deceasedBoolean");
  if (deceased != nullptr && deceased->IsBool()) {
    body.set_deceased(deceased->GetBool());
  } else if (!StringMember(entry.resource, "deceasedDateTime").empty()) {
    body.set_deceased(true);
  }
  return true;
}

}  // namespace fhirgw::mappers::reverse_internal
