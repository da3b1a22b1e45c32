#include "fhir/datatypes.h"

namespace fhirgw::fhir {

Json Coding(JsonAlloc& a, absl::string_view system, absl::string_view code,
            absl::string_view display) {
  Json coding = Json::Object(a);
  coding.Str("system", system).Str("code", code).Str("display", display);
  return coding;
}

Json CodeableConcept(JsonAlloc& a, absl::string_view system, absl::string_view code,
                     absl::string_view display) {
  return CodeableConceptWithText(a, system, code, display, display);
}

Json CodeableConceptWithText(JsonAlloc& a, absl::string_view system, absl::string_view code,
                             absl::string_view display, absl::string_view text) {
  Json concept_json = Json::Object(a);
  if (!code.empty()) {
    concept_json.Put("coding", Json::Array(a).Push(Coding(a, system, code, display)));
  }
  concept_json.Str("text", text);
  return concept_json;
}

Json CodeableText(JsonAlloc& a, absl::string_view text) {
  Json concept_json = Json::Object(a);
  concept_json.Str("text", text);
  return concept_json;
}

Json Quantity(JsonAlloc& a, double value, absl::string_view unit, absl::string_view system,
              absl::string_view code) {
  Json quantity = Json::Object(a);
  quantity.Dec("value", value).Str("unit", unit).Str("system", system).Str("code", code);
  return quantity;
}

Json UcumQuantity(JsonAlloc& a, double value, absl::string_view ucum_code, absl::string_view unit) {
  return Quantity(a, value, unit.empty() ? ucum_code : unit, "http://unitsofmeasure.org",
                  ucum_code);
}

Json Identifier(JsonAlloc& a, absl::string_view system, absl::string_view value) {
  Json identifier = Json::Object(a);
  identifier.Str("system", system).Str("value", value);
  return identifier;
}

Json Reference(JsonAlloc& a, absl::string_view reference, absl::string_view display) {
  Json ref = Json::Object(a);
  ref.Str("reference", reference).Str("display", display);
  return ref;
}

Json IdentifierReference(JsonAlloc& a, absl::string_view type, absl::string_view system,
                         absl::string_view value, absl::string_view display) {
  Json ref = Json::Object(a);
  ref.Str("type", type);
  if (!value.empty()) ref.Put("identifier", Identifier(a, system, value));
  ref.Str("display", display);
  return ref;
}

Json Period(JsonAlloc& a, absl::string_view start, absl::string_view end) {
  Json period = Json::Object(a);
  period.Str("start", start).Str("end", end);
  return period;
}

Json Annotation(JsonAlloc& a, absl::string_view text) {
  Json note = Json::Object(a);
  note.Str("text", text);
  return note;
}

}  // namespace fhirgw::fhir
