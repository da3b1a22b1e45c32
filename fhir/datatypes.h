// Builders for the FHIR R4 datatypes fhirgw writes: Coding, CodeableConcept, Quantity, Identifier,
// Reference, Period, Annotation. Each returns a `Json` ready to `Put` into a resource; empty inputs
// give empty (and therefore omitted) elements.
//
//   r.Put("code", CodeableConcept(a, kLoinc, "8867-4", "Heart rate"));
//   r.Put("valueQuantity", UcumQuantity(a, 72, kUcumPerMin, "beats/minute"));
#ifndef FHIRGW_FHIR_DATATYPES_H_
#define FHIRGW_FHIR_DATATYPES_H_

#include "absl/strings/string_view.h"
#include "fhir/json.h"

namespace fhirgw::fhir {

Json Coding(JsonAlloc& a, absl::string_view system, absl::string_view code,
            absl::string_view display);

// A CodeableConcept with one coding (when `code` is set) and `text` (the display, by default).
Json CodeableConcept(JsonAlloc& a, absl::string_view system, absl::string_view code,
                     absl::string_view display);
Json CodeableConceptWithText(JsonAlloc& a, absl::string_view system, absl::string_view code,
                             absl::string_view display, absl::string_view text);
// A CodeableConcept with text only.
Json CodeableText(JsonAlloc& a, absl::string_view text);

Json Quantity(JsonAlloc& a, double value, absl::string_view unit, absl::string_view system,
              absl::string_view code);
// A UCUM quantity; `unit` is the human-readable form and defaults to `ucum_code`.
Json UcumQuantity(JsonAlloc& a, double value, absl::string_view ucum_code,
                  absl::string_view unit = {});

Json Identifier(JsonAlloc& a, absl::string_view system, absl::string_view value);

// A literal reference (a urn:uuid fullUrl within the Bundle, or Type/id).
Json Reference(JsonAlloc& a, absl::string_view reference, absl::string_view display = {});
// A logical reference by identifier, for resources not in the Bundle (e.g. a Practitioner by NPI).
Json IdentifierReference(JsonAlloc& a, absl::string_view type, absl::string_view system,
                         absl::string_view value, absl::string_view display = {});

// A Period; either end may be empty.
Json Period(JsonAlloc& a, absl::string_view start, absl::string_view end);

Json Annotation(JsonAlloc& a, absl::string_view text);

}  // namespace fhirgw::fhir

#endif  // FHIRGW_FHIR_DATATYPES_H_
