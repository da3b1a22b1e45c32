// The FHIR R4 transaction Bundle that carries one clinic record to an EHR.
//
// Every write is conditional, so that a resend never duplicates anything at the EHR:
//   - AddConditionalCreate: POST Type, ifNoneExist=identifier=SYSTEM|VALUE (shared resources:
//   Patient)
//   - AddConditionalUpdate: PUT Type?identifier=SYSTEM|VALUE (resources the record owns)
//   - AddConditionalDelete: DELETE Type?identifier=SYSTEM|VALUE (retractions of status-less
//   resources)
//
//   TransactionBundle bundle;
//   Json patient = Json::Object(bundle.alloc()); ...
//   bundle.AddConditionalCreate(urn, std::move(patient), "Patient", system, value);
//   std::string json = bundle.Write(JsonStyle::kCompact);
#ifndef FHIRGW_FHIR_BUNDLE_H_
#define FHIRGW_FHIR_BUNDLE_H_

#include <string>

#include "absl/strings/string_view.h"
#include "fhir/json.h"

namespace fhirgw::fhir {

class TransactionBundle {
 public:
  TransactionBundle();
  TransactionBundle(TransactionBundle&&) = default;
  TransactionBundle& operator=(TransactionBundle&&) = default;

  JsonAlloc& alloc() { return document_.GetAllocator(); }

  void AddConditionalCreate(absl::string_view full_url, Json resource,
                            absl::string_view resource_type, absl::string_view system,
                            absl::string_view value);
  void AddConditionalUpdate(absl::string_view full_url, Json resource,
                            absl::string_view resource_type, absl::string_view system,
                            absl::string_view value);
  void AddConditionalDelete(absl::string_view resource_type, absl::string_view system,
                            absl::string_view value);

  void AddUpdateById(absl::string_view full_url, Json resource, absl::string_view resource_type,
                     absl::string_view id);
  void AddDeleteById(absl::string_view resource_type, absl::string_view id);

  int entry_count() const { return entry_count_; }

  // The Bundle resource: {"resourceType": "Bundle", "type": "transaction", "entry": [...]}. Entries
  // added afterwards still appear in it.
  const JsonDocument& document();
  std::string Write(JsonStyle style);

 private:
  void AddEntry(absl::string_view full_url, Json resource, const char* method, std::string url,
                std::string if_none_exist);

  JsonDocument document_;
  JsonValue entries_;
  bool finished_ = false;
  int entry_count_ = 0;
};

// Returns "identifier=" + SYSTEM|VALUE, percent-encoded for use in a search URL.
std::string IdentifierSearch(absl::string_view system, absl::string_view value);

}  // namespace fhirgw::fhir

#endif  // FHIRGW_FHIR_BUNDLE_H_
